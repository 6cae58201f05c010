#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# scripts/package (issue 13): the .deb installs with dpkg into /usr and /etc,
# its `socksify --check` passes every step against its socksify-server with a
# local HTTP server as the target, its socksify carries curl through that
# server to the HTTP server (loopback), man finds its pages, and dpkg -r then dpkg -P leave none of its
# files behind. Root only (as in CI).
#
# The system it installs into is this machine's own, seen through an overlay:
# a mount namespace of this file's own (held by one sleeping process) mounts
# an overlayfs with / below and a tmpfs above, and every step runs there with
# nsenter and chroot. So dpkg works on the real /usr, /etc and package
# database, and nothing it writes reaches the machine: dante-client (whose
# /usr/bin/socksify the package conflicts with; scripts/deps installs it) and
# a socksify package installed from elsewhere are removed in the overlay only,
# two runs side by side do not meet, and the namespace goes with its process,
# also after a failure. Skips, saying why, where no such overlay can be
# mounted (no overlayfs, not allowed to unshare).
#
#   SOCKSIFY_BUILD=$PWD/build bats tests/e2e/package.bats
#   (the .deb is built in $SOCKSIFY_PACKAGE_BUILD, default REPO/build-deb)

# shellcheck disable=SC2016,SC2034 # sh -c and dpkg-query texts expand there, not here
load helpers

multiarch() {
	dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch
}

# why_not: why this machine cannot run the test (empty: it can)
why_not() {
	local t
	((EUID == 0)) || {
		echo "needs root (a mount namespace with an overlay of /)"
		return
	}
	for t in dpkg dpkg-deb unshare nsenter chroot man; do
		command -v "$t" >/dev/null || {
			echo "no $t"
			return
		}
	done
	grep -qw overlay /proc/filesystems || echo "no overlayfs in this kernel"
}

# in_sys CMD...: runs CMD in the overlaid system (the namespace, chrooted)
in_sys() {
	nsenter -t "$SYS_PID" -m chroot "$SYS" "$@"
}

# overlay_up: the namespace and its overlay; sets SYS_PID and SYS (the merged
# tree's path inside the namespace)
overlay_up() {
	local base=$BATS_FILE_TMPDIR/ovl i
	mkdir -p "$base"
	SYS=$base/sys
	spawn "$BATS_FILE_TMPDIR/ovl.log" unshare -m --propagation private sh -ec '
		mount -t tmpfs -o size=1g,mode=755 sxpkg "$1"
		mkdir "$1/upper" "$1/work" "$1/sys"
		mount -t overlay sxpkg -o "lowerdir=/,upperdir=$1/upper,workdir=$1/work" "$1/sys"
		mount -t proc proc "$1/sys/proc"
		mount --rbind /dev "$1/sys/dev"
		mount --rbind /sys "$1/sys/sys"
		echo ready
		exec sleep 3600' sh "$base"
	SYS_PID=$SPAWNED_PID
	for ((i = 0; i < 100; i++)); do
		grep -q ready "$BATS_FILE_TMPDIR/ovl.log" && break
		pid_alive "$SYS_PID" || break
		sleep 0.05
	done
	grep -q ready "$BATS_FILE_TMPDIR/ovl.log" || {
		cat "$BATS_FILE_TMPDIR/ovl.log" >&2
		return 1
	}
	export SYS SYS_PID
	# the packaged server as start_server runs it (exec all the way: its PID
	# is the server's)
	printf '#!/bin/sh\nexec nsenter -t %s -m chroot %s /usr/bin/socksify-server "$@"\n' \
		"$SYS_PID" "$SYS" >"$BATS_FILE_TMPDIR/packaged-server"
	chmod +x "$BATS_FILE_TMPDIR/packaged-server"
}

setup_file() {
	export SKIP_WHY
	SKIP_WHY=$(why_not)
	[[ -z $SKIP_WHY ]] || return 0
	common_setup_file
	IN_SETUP_FILE=1
	DEB=$("$REPO_ROOT/scripts/package" "${SOCKSIFY_PACKAGE_BUILD:-$REPO_ROOT/build-deb}" | tail -n 1)
	export DEB
	[[ -f $DEB ]] || {
		echo "scripts/package printed no .deb: $DEB" >&2
		return 1
	}
	if ! overlay_up; then
		SKIP_WHY="cannot mount an overlay of / in a mount namespace: $(tr '\n' ' ' <"$BATS_FILE_TMPDIR/ovl.log")"
		IN_SETUP_FILE=0
		return 0
	fi
	# what would be in the way, out of the way (in the overlay only)
	local p
	for p in socksify dante-client; do
		if in_sys dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^.[iUFHWt]'; then
			echo "# $p is installed on this machine: purged in the overlay only" >&3
			in_sys dpkg -P "$p" >/dev/null
		fi
	done
	IN_SETUP_FILE=0 # read by helpers.bash (pidfile)
}

teardown_file() {
	common_teardown_file # the namespace's process: the overlay goes with it
}

setup() {
	[[ -z $SKIP_WHY ]] || skip "$SKIP_WHY"
	common_setup
}

teardown() {
	common_teardown
}

# missing FILELIST: the non-directories of FILELIST (one path a line, on the
# host) that are missing in the overlaid system, one a line
missing() {
	in_sys sh -c 'while read -r f; do [ -d "$f" ] || [ -e "$f" ] || echo "$f"; done' <"$1"
}

# present FILELIST: those that are there
present() {
	in_sys sh -c 'while read -r f; do [ -d "$f" ] || [ ! -e "$f" ] || echo "$f"; done' <"$1"
}

# connects_reach N: within 3 s the packaged server has logged N CONNECTs to
# the HTTP server that succeeded (its line comes when the relay ends)
connects_reach() {
	local i
	for ((i = 0; i < 60; i++)); do
		(($(grep -c "CONNECT 127\.0\.0\.1:$HTTP_PORT: succeeded" "$SERVER_LOG") >= $1)) && return 0
		sleep 0.05
	done
	return 1
}

@test "package: dpkg -i installs the .deb (files, conffile, dependencies met)" {
	run dpkg-deb -f "$DEB" Package Depends
	assert_output --regexp $'^Package: socksify\nDepends: libc6'
	run in_sys dpkg -i "$DEB"
	assert_success
	touch "$BATS_FILE_TMPDIR/installed"
	in_sys dpkg-query -L socksify >"$BATS_FILE_TMPDIR/files"
	run missing "$BATS_FILE_TMPDIR/files"
	assert_output ""
	local f n
	n=$(present "$BATS_FILE_TMPDIR/files" | wc -l)
	((n >= 12)) || fail "only $n files installed"
	for f in /usr/bin/socksify /usr/bin/socksify-server /etc/socksify.conf \
		"/usr/lib/$(multiarch)/socksify/libsocksify.so" \
		/usr/share/man/man1/socksify.1.gz /usr/share/bash-completion/completions/socksify; do
		grep -qxF "$f" "$BATS_FILE_TMPDIR/files" || fail "the package lacks $f"
	done
	run in_sys dpkg-query -W -f='${Conffiles}' socksify
	assert_output --regexp '^ /etc/socksify.conf [0-9a-f]{32}$'
	# the machine itself has none of it
	[[ ! -e /usr/lib/$(multiarch)/socksify/libsocksify.so ]] || fail "the shim is in the machine's /usr"
}

@test "package: the packaged socksify --check passes, and carries curl, through the packaged socksify-server" {
	[[ -f $BATS_FILE_TMPDIR/installed ]] || skip "not installed (the test before failed)"
	# the installed launcher finds the installed shim
	run in_sys /usr/bin/socksify --env
	assert_success
	assert_line --index 0 "export LD_PRELOAD='/usr/lib/$(multiarch)/socksify/libsocksify.so'"
	SOCKSIFY_SERVER=$BATS_FILE_TMPDIR/packaged-server start_server -v
	# the doctor: every step against the packaged server, the local HTTP
	# server as the target (the system file, /etc/socksify.conf, is read too)
	run in_sys /usr/bin/socksify -p "socks5h://$PROXY" --check "127.0.0.1:$HTTP_PORT"
	assert_success
	assert_line --index 0 "ok      config: proxy socks5h://$PROXY (from -p)"
	assert_line --index 1 --regexp "^ok      proxy $PROXY: reached in [0-9.]+ ms$"
	assert_line --index 2 "ok      method: no authentication"
	assert_line --index 3 --regexp "^ok      CONNECT 127\.0\.0\.1:$HTTP_PORT \(127\.0\.0\.1:$HTTP_PORT\) [0-9.]+ ms$"
	assert_line --index 4 --regexp "^ok      UDP ASSOCIATE: granted, relay 127\.0\.0\.1:[0-9]+ [0-9.]+ ms$"
	((${#lines[@]} == 5)) || fail "expected 5 lines, got ${#lines[@]}"
	connects_reach 1 || fail "the packaged server logged no CONNECT for --check"
	# and a real program through it
	run in_sys env SOCKSIFY_PROXY_LOOPBACK=1 /usr/bin/socksify -v -p "socks5h://$PROXY" \
		"${CURL[@]}" "http://127.0.0.1:$HTTP_PORT/index.html"
	assert_success
	assert_output --partial "socksify e2e index"
	connects_reach 2 || fail "the packaged server did not carry curl's connection"
}

@test "package: man finds the installed pages" {
	[[ -f $BATS_FILE_TMPDIR/installed ]] || skip "not installed (the test before failed)"
	local p
	for p in 1:socksify 1:socksify-server 5:socksify.conf 7:libsocksify; do
		run in_sys man -w "${p%%:*}" "${p#*:}"
		assert_success
		assert_output "/usr/share/man/man${p%%:*}/${p#*:}.${p%%:*}.gz"
	done
	run in_sys env MANWIDTH=80 man -E ascii 1 socksify
	assert_success
	assert_output --partial "--allow-direct"
}

@test "package: dpkg -r keeps only the conffile, dpkg -P removes everything" {
	[[ -f $BATS_FILE_TMPDIR/installed ]] || skip "not installed (the test before failed)"
	run in_sys dpkg -r socksify
	assert_success
	run present "$BATS_FILE_TMPDIR/files"
	assert_output "/etc/socksify.conf"
	run in_sys dpkg -P socksify
	assert_success
	run present "$BATS_FILE_TMPDIR/files"
	assert_output ""
	run in_sys sh -c "ls -d /usr/lib/*/socksify /usr/share/doc/socksify 2>/dev/null"
	assert_output ""
	run in_sys dpkg-query -W -f='${db:Status-Abbrev}' socksify
	[[ $status != 0 || $output != ?i* ]] || fail "still installed: $output"
}
