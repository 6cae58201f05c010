#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# socksify-server's credentials and privileges: --users FILE, -u wiped from the
# command line, --user NAME (giving up root once the listeners are open),
# SIGHUP, and the systemd unit (cli/systemd/) checked and run as written.
# Run: SOCKSIFY_SERVER=build/cli/socksify-server SOCKSIFY_BUILD=build \
#      bats tests/e2e/server_users.bats

# bats sets status/output/lines/stderr; start_server (helpers.bash) reads SERVER_WRAP:
# shellcheck disable=SC2030,SC2031,SC2034,SC2154

bats_require_minimum_version 1.5.0

setup_file() {
	load helpers
	common_setup_file
}

teardown_file() {
	load helpers
	common_teardown_file
}

setup() {
	load helpers
	common_setup
	USERS=$BATS_TEST_TMPDIR/users
}

teardown() {
	common_teardown
}

client() {
	"${CLIENT[@]}" "$@"
}

# users_file MODE LINE...: writes $USERS (one line each) with that mode
users_file() {
	local mode=$1
	shift
	printf '%s\n' "$@" >"$USERS"
	chmod "$mode" "$USERS"
}

# fetch_as USER:PASS: curl through $PROXY with those credentials
fetch_as() {
	"${CURL[@]}" --socks5 "$PROXY" --proxy-user "$1" \
		"http://127.0.0.1:$HTTP_PORT/index.html"
}

# refused ARGS...: the server exits 2 at once with one line on stderr, which is
# left in $output; nothing listens on the port it was given
refused() {
	local port
	port=$(free_port)
	run -2 --separate-stderr timeout 5 "$SOCKSIFY_SERVER" -l "127.0.0.1:$port" "$@"
	assert_equal "${#stderr_lines[@]}" 1
	output=$stderr
	[[ -z $(ss -Hltn "sport = :$port") ]] || fail "something listens on $port"
}

# status_field PID NAME: the values of NAME: in /proc/PID/status, space-separated
status_field() {
	awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status"
}

# ---------------------------------------------------------------------------------
# --users FILE
# ---------------------------------------------------------------------------------

@test "--users FILE: each user's password works, a wrong one gets 01 then close" {
	users_file 600 '# who may use the proxy' '' 'alice:s3cret' '   # indented comment' \
		'bob:pass:with:colons' '	'
	start_server --users "$USERS"
	run -0 fetch_as alice:s3cret
	assert_output --partial "socksify e2e index"
	run -0 fetch_as bob:pass:with:colons
	assert_output --partial "socksify e2e index"
	run ! fetch_as alice:wrong
	run ! "${CURL[@]}" --socks5 "$PROXY" "http://127.0.0.1:$HTTP_PORT/index.html"
	# raw: method 02 chosen, status 01 for the wrong password, then close
	run -0 client connect --proxy "$PROXY" --user alice --pass wrong \
		--target "127.0.0.1:$HTTP_PORT" --expect-auth-fail
	assert_line "method=02"
	assert_line "auth=01"
	assert_line "closed=yes"
	# a comment line is not a user
	run -0 client connect --proxy "$PROXY" --user '# who may use the proxy' --pass x \
		--target "127.0.0.1:$HTTP_PORT" --expect-auth-fail
	run -0 client connect --proxy "$PROXY" --user bob --pass pass:with:colons \
		--target "127.0.0.1:$HTTP_PORT" --send 'GET /index.html HTTP/1.0\r\n\r\n'
	assert_line "auth=00"
	assert_output --partial "socksify e2e index"
}

@test "--users FILE with -u and a second --users: every user works; a user given twice is refused" {
	users_file 400 'alice:s3cret'
	printf 'carol:c\n' >"$BATS_TEST_TMPDIR/more"
	chmod 600 "$BATS_TEST_TMPDIR/more"
	start_server --users "$USERS" -u bob:b --users "$BATS_TEST_TMPDIR/more"
	run -0 fetch_as alice:s3cret
	run -0 fetch_as bob:b
	run -0 fetch_as carol:c
	run ! fetch_as bob:s3cret
	refused --users "$USERS" -u alice:other
	assert_output "socksify-server: -u: this user is given twice"
	refused -u bob:b --users "$BATS_TEST_TMPDIR/more" --users "$BATS_TEST_TMPDIR/more"
	assert_output "socksify-server: $BATS_TEST_TMPDIR/more:1: this user is given twice"
}

@test "--users FILE that group or others may read or write, or not a regular file: refused" {
	local mode
	for mode in 644 640 604 620 602 660 610 601; do
		users_file "$mode" 'alice:s3cret'
		refused --users "$USERS"
		assert_output "socksify-server: --users $USERS: group or others have permissions on it (mode 0$mode); chmod 600 it"
	done
	refused --users "$BATS_TEST_TMPDIR"
	assert_output "socksify-server: --users $BATS_TEST_TMPDIR: not a regular file"
	# a FIFO is refused without blocking on its open
	mkfifo -m 600 "$BATS_TEST_TMPDIR/fifo"
	refused --users "$BATS_TEST_TMPDIR/fifo"
	assert_output "socksify-server: --users $BATS_TEST_TMPDIR/fifo: not a regular file"
	refused --users "$BATS_TEST_TMPDIR/none"
	assert_output "socksify-server: --users $BATS_TEST_TMPDIR/none: No such file or directory"
	# a symbolic link is judged by the file it names
	users_file 600 'alice:s3cret'
	ln -s "$USERS" "$BATS_TEST_TMPDIR/link"
	start_server --users "$BATS_TEST_TMPDIR/link"
	run -0 fetch_as alice:s3cret
}

@test "--users FILE: a malformed line is one error naming FILE:LINE, without the password" {
	local long
	long=$(printf 'u%.0s' {1..256})
	local bad
	for bad in 'nocolon-secretword' ':secretword' 'alice:' "$long:secretword" \
		"alice:$long"; do
		users_file 600 '# users' 'bob:b' "$bad"
		refused --users "$USERS"
		assert_output "socksify-server: $USERS:3: expected user:password (each 1 to 255 bytes)"
	done
	# 255 bytes each is the RFC 1929 limit, accepted
	users_file 600 "${long:1}:${long:1}"
	start_server --users "$USERS"
	run -0 fetch_as "${long:1}:${long:1}"
	stop_server
	printf 'alice:secretword\r\n' >"$USERS"
	refused --users "$USERS"
	assert_output "socksify-server: $USERS:1: the line ends in a carriage return (DOS line endings?)"
	printf 'alice:secret\0word\n' >"$USERS"
	refused --users "$USERS"
	assert_output "socksify-server: $USERS:1: a NUL byte in the line"
	users_file 600 '# nobody yet' ''
	refused --users "$USERS"
	assert_output "socksify-server: --users $USERS: no user:password line in it"
}

@test "a non-loopback listener: --users is enough, without users it is refused" {
	[[ $(id -u) == 0 ]] || skip "needs root for a private network namespace"
	unshare -n true 2>/dev/null || skip "no network namespaces here (unshare -n)"
	users_file 600 'alice:s3cret'
	run -2 --separate-stderr "$SOCKSIFY_SERVER" -l 0.0.0.0:0
	assert_equal "$stderr" "socksify-server: refusing to listen on 0.0.0.0:0 without authentication: give --users FILE or -u USER:PASS, or --allow-open to run an open proxy"
	# 0.0.0.0 opened in a network namespace of its own: its loopback only
	run -124 timeout 1 unshare -n "$SOCKSIFY_SERVER" -l 0.0.0.0:0 --users "$USERS"
	assert_output --regexp "listening on 0\.0\.0\.0:[1-9][0-9]*"
}

@test "-u USER:PASS: the password is wiped from the command line (ps)" {
	start_server -u alice:Wipe0utMe
	run -0 fetch_as alice:Wipe0utMe
	run -0 cat "/proc/$SERVER_PID/cmdline"
	refute_output --partial "Wipe0utMe"
	run -0 ps -o args= -p "$SERVER_PID"
	refute_output --partial "Wipe0utMe"
	assert_output --partial "-u"
}

@test "SIGHUP: logged and ignored, the server goes on with the same users" {
	users_file 600 'alice:s3cret'
	start_server --users "$USERS"
	kill -HUP "$SERVER_PID"
	for _ in {1..50}; do
		grep -q 'SIGHUP ignored' "$SERVER_LOG" && break
		sleep 0.05
	done
	run -0 grep -c 'SIGHUP ignored: the users are read once, at start; restart to change them' \
		"$SERVER_LOG"
	pid_alive "$SERVER_PID" || fail "the server died of SIGHUP"
	run -0 fetch_as alice:s3cret
	stop_server
	assert_equal "$SERVER_STATUS" 0
}

# ---------------------------------------------------------------------------------
# --user NAME: giving up root
# ---------------------------------------------------------------------------------

@test "--user nobody as root: every uid and gid is nobody's, no capability, no_new_privs, still serves" {
	[[ $(id -u) == 0 ]] || skip "needs root (runs as uid $(id -u))"
	id nobody >/dev/null 2>&1 || skip "no user nobody here"
	local uid gid
	uid=$(id -u nobody)
	gid=$(id -g nobody)
	users_file 600 'alice:s3cret'
	start_server --users "$USERS" --user nobody -j 2
	run -0 fetch_as alice:s3cret
	assert_output --partial "socksify e2e index"
	assert_equal "$(status_field "$SERVER_PID" Uid)" "$uid $uid $uid $uid"
	assert_equal "$(status_field "$SERVER_PID" Gid)" "$gid $gid $gid $gid"
	assert_equal "$(status_field "$SERVER_PID" CapEff)" 0000000000000000
	assert_equal "$(status_field "$SERVER_PID" CapPrm)" 0000000000000000
	assert_equal "$(status_field "$SERVER_PID" NoNewPrivs)" 1
	# not dumpable: /proc/PID/mem belongs to root, no process of nobody's may
	# ptrace it or read the passwords in its memory
	assert_equal "$(stat -c %u "/proc/$SERVER_PID/mem")" 0
	# every thread (the loops, the name lookups) switched, not only the first
	local t
	for t in /proc/"$SERVER_PID"/task/*; do
		assert_equal "$(awk '$1 == "Uid:" { print $2 $3 $4 $5 }' "$t/status")" \
			"$uid$uid$uid$uid"
	done
	# the users file (root's, mode 600) is not held open: nothing to read it again
	run -0 find "/proc/$SERVER_PID/fd" -lname "$USERS"
	assert_output ""
	run -0 grep -c "running as user nobody (uid $uid, gid $gid)" "$SERVER_LOG"
	# a name through the lookup threads still resolves and connects
	run -0 "${CURL[@]}" --socks5-hostname "$PROXY" --proxy-user alice:s3cret \
		"http://localhost:$HTTP_PORT/index.html"
	stop_server
	assert_equal "$SERVER_STATUS" 0
}

@test "--user: an unknown user or group, root, USER:PASS by mistake, --group alone: one line, status 2" {
	refused --user no-such-user-xyz
	assert_output "socksify-server: --user no-such-user-xyz: no such user (--user names the system user to run as; RFC 1929 users are -u USER:PASS or --users FILE)"
	refused --user alice:s3cret
	assert_output --partial "socksify-server: --user alice:s3cret: no such user"
	refused --user root
	assert_output "socksify-server: --user root: refusing to run as root's user or group: name an unprivileged user"
	id nobody >/dev/null 2>&1 || skip "no user nobody here"
	refused --user nobody --group no-such-group-xyz
	assert_output "socksify-server: --group no-such-group-xyz: no such group"
	refused --group nogroup
	assert_output "socksify-server: --group nogroup: only with --user (see --help)"
}

@test "--user when not root: another user is refused, the same user is nothing to do" {
	[[ $(id -u) == 0 ]] || skip "needs root to start the server as nobody"
	id nobody >/dev/null 2>&1 || skip "no user nobody here"
	id daemon >/dev/null 2>&1 || skip "no user daemon here"
	command -v setpriv >/dev/null || skip "no setpriv (util-linux)"
	local as_nobody=(setpriv --reuid nobody --regid "$(id -g nobody)" --clear-groups)
	"${as_nobody[@]}" test -x "$SOCKSIFY_SERVER" ||
		skip "nobody cannot run $SOCKSIFY_SERVER (a directory above it is private)"
	run -2 --separate-stderr "${as_nobody[@]}" "$SOCKSIFY_SERVER" -l 127.0.0.1:0 --user daemon
	assert_equal "$stderr" "socksify-server: --user daemon: only root can switch users (running as uid $(id -u nobody))"
	SERVER_WRAP=("${as_nobody[@]}")
	start_server --user nobody -u alice:s3cret
	SERVER_WRAP=()
	run -0 fetch_as alice:s3cret
	assert_equal "$(status_field "$SERVER_PID" NoNewPrivs)" 1
}

# ---------------------------------------------------------------------------------
# The systemd unit
# ---------------------------------------------------------------------------------

UNIT_NAME=socksify-server.service

unit_file() {
	local unit=$SOCKSIFY_BUILD/cli/$UNIT_NAME
	[[ -n ${SOCKSIFY_BUILD:-} ]] || fail "SOCKSIFY_BUILD is not set"
	[[ -f $unit ]] || fail "no configured unit at $unit"
	echo "$unit"
}

@test "systemd unit: systemd-analyze verify finds nothing to say" {
	local unit dir=$BATS_TEST_TMPDIR/unit
	unit=$(unit_file)
	command -v systemd-analyze >/dev/null || skip "no systemd-analyze here (package systemd)"
	mkdir "$dir"
	# verify checks that ExecStart's program exists: the built one stands in
	sed "s#^ExecStart=[^ ]*/socksify-server #ExecStart=$SOCKSIFY_SERVER #" "$unit" \
		>"$dir/$UNIT_NAME"
	run -0 grep -c "^ExecStart=$SOCKSIFY_SERVER " "$dir/$UNIT_NAME"
	run -0 systemd-analyze verify "$dir/$UNIT_NAME"
	assert_output ""
	# and it would have said something about a mistake
	sed -i 's/^NoNewPrivileges=yes/NoNewPrivilege=yes/' "$dir/$UNIT_NAME"
	run systemd-analyze verify "$dir/$UNIT_NAME"
	assert_output --partial "Unknown key"
}

@test "systemd unit: the hardening asked for is there, and its ExecStart serves loopback only" {
	local unit
	unit=$(unit_file)
	local want
	for want in DynamicUser=yes NoNewPrivileges=yes CapabilityBoundingSet= \
		ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
		'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX'; do
		grep -qx -- "$want" "$unit" || fail "$unit has no line $want"
	done
	local line
	line=$(grep '^ExecStart=' "$unit")
	local -a words
	read -ra words <<<"${line#ExecStart=}"
	[[ ${words[0]} == /*/socksify-server ]] || fail "ExecStart runs ${words[0]}"
	assert_equal "${words[*]:1}" "-l 127.0.0.1:1080"
	local port
	port=$(free_port)
	words=("${words[@]:1}")
	start_server "${words[@]/127.0.0.1:1080/127.0.0.1:$port}"
	assert_equal "$PROXY" "127.0.0.1:$port"
	run -0 "${CURL[@]}" --socks5-hostname "$PROXY" "http://localhost:$HTTP_PORT/index.html"
	assert_output --partial "socksify e2e index"
}

@test "systemd unit: the drop-in its comment shows (LoadCredential, --users %d/users) works" {
	local unit
	unit=$(unit_file)
	run -0 grep -c '^#   LoadCredential=users:/etc/socksify/users$' "$unit"
	local line
	line=$(grep '^#   ExecStart=/' "$unit")
	local -a words
	read -ra words <<<"${line#'#   ExecStart='}"
	[[ ${words[0]} == /*/socksify-server ]] || fail "ExecStart runs ${words[0]}"
	assert_equal "${words[*]:1}" "-l 0.0.0.0:1080 --users %d/users"
	# systemd's copy: the credential named "users", mode 400, in %d
	local creds=$BATS_TEST_TMPDIR/credentials port
	mkdir -m 700 "$creds"
	printf 'alice:s3cret\n' >"$creds/users"
	chmod 400 "$creds/users"
	port=$(free_port)
	words=("${words[@]:1}")
	words=("${words[@]/0.0.0.0:1080/127.0.0.1:$port}")
	start_server "${words[@]/\%d/$creds}"
	run -0 fetch_as alice:s3cret
	run ! fetch_as alice:wrong
}
