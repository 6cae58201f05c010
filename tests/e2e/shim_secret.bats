#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The proxy's password kept out of the environment (shim/common/secret.h): the
# launcher hands it to the program tree in a sealed memfd named by
# SOCKSIFY_SECRET_FD, and SOCKSIFY_PROXY carries the URL without it. Against a
# socksify-server that requires user:secretpw (198.18.1.1:1085, SXPW_LOG) in
# the namespaces of scripts/netns: the programs connect through it, and no
# process of the tree shows the password in /proc/PID/environ or cmdline.
# Also: SOCKSIFY_PROXY with a password exported by hand (the shim moves it),
# the warning for a configuration file with a password that others may read,
# a bad descriptor (fail closed) and a supervised Go program. Several proxies,
# each with a password of its own: a second socksify-server requiring
# bob:secondpw (198.18.1.1:1086, SXPW2_LOG) for round-robin, and one in the
# target namespace (198.18.2.2:1087, HOP2_LOG, which the client cannot reach)
# as the second hop of a strict chain.
#
# Run (as root): meson test --suite shim, or
#   SOCKSIFY_SERVER=build/cli/socksify-server SOCKSIFY=build/cli/socksify \
#   SOCKSIFY_SHIM=build/shim/libsocksify.so \
#   SOCKSIFY_GOGET_STATIC=build/tests/e2e/goget-static bats tests/e2e/shim_secret.bats

# shellcheck disable=SC2030,SC2031,SC2154,SC2016

bats_require_minimum_version 1.5.0

setup_file() {
	load helpers
	load netns
	netns_setup_file || return 1
	SXPW_LOG=$BATS_FILE_TMPDIR/sxpw.log
	export SXPW_LOG
	IN_SETUP_FILE=1
	netns_socksify_server 1085 "$SXPW_LOG" -u user:secretpw || return 1
	SXPW2_LOG=$BATS_FILE_TMPDIR/sxpw2.log
	HOP2_LOG=$BATS_FILE_TMPDIR/hop2.log
	export SXPW2_LOG HOP2_LOG
	netns_socksify_server 1086 "$SXPW2_LOG" -u bob:secondpw || return 1
	# --allow-local: the destination (198.18.2.2:80) is its own host
	ns_spawn target "$HOP2_LOG" "$SOCKSIFY_SERVER" -v -l "$TARGET4:1087" \
		-u bob:secondpw --allow-local
	ns_wait_listen target tcp "$TARGET4" 1087 "$SPAWNED_PID" || return 1
	IN_SETUP_FILE=0
}

teardown_file() {
	load helpers
	load netns
	netns_teardown_file
}

setup() {
	load helpers
	load netns
	netns_setup
	require_socksify
	SXPW_LOG_START=$(log_size "$SXPW_LOG")
	SXPW2_LOG_START=$(log_size "$SXPW2_LOG")
	HOP2_LOG_START=$(log_size "$HOP2_LOG")
	TAG=t${BATS_TEST_NUMBER}x$RANDOM
	PWURL="socks5://user:secretpw@$PROXY4:1085"
	BARE="socks5://user@$PROXY4:1085"
	PW2URL="socks5://bob:secondpw@$PROXY4:1086"
	BARE2="socks5://bob@$PROXY4:1086"
}

teardown() {
	local rc=0
	netns_teardown || rc=$?
	if [[ -n ${output:-} ]]; then
		echo "# --- the output of the last command run:"
		sed 's/^/#   /' <<<"$output" | tail -n 40
	fi
	echo "# --- SXPW_LOG since the test began:"
	log_since SXPW_LOG | sed 's/^/#   /' | tail -n 20
	return "$rc"
}

# the password appears nowhere in what the last run printed
assert_no_password() {
	[[ $output != *secretpw* && $output != *secondpw* ]] || fail "a password is in the output"
	[[ ${stderr:-} != *secretpw* && ${stderr:-} != *secondpw* ]] ||
		fail "a password is on stderr: $stderr"
}

# the authenticating proxy carried this test's connection to the target
assert_via_pw_proxy() {
	wait_log SXPW_LOG "198\\.18\\.1\\.2:[0-9]+ CONNECT ${TARGET4//./\\.}:80"
}

# tree_pids PID: PID and every descendant of it, one a line
tree_pids() {
	ps -e -o pid=,ppid= | awk -v root="$1" '
		{ parent[$1] = $2 }
		END {
			for (p in parent) {
				q = p
				for (i = 0; i < 64 && q != "" && q != 0; i++) {
					if (q == root) { print p; break }
					q = parent[q]
				}
			}
		}'
}

@test "-p with a password: curl through the authenticating proxy; the environment of the program, its shell and its parent without the password" {
	run -0 --separate-stderr client_run "$SOCKSIFY" -p "$PWURL" -- sh -c '
		tr "\0" "\n" </proc/$$/environ; echo ---
		tr "\0" "\n" </proc/$PPID/environ; echo ---
		env; echo ---
		ps e -o args= -p $$; echo ---
		ls -l /proc/$$/fd/
		exec "$@"' sh "${CURL[@]}" "http://$TARGET4/small.txt?$TAG"
	assert_no_password
	# not even overwritten (as the shim does with one exported by hand):
	# the program started without it
	refute_output --partial 'user:*'
	assert_line "SOCKSIFY_PROXY=$BARE"
	assert_line --regexp '^SOCKSIFY_SECRET_FD=9[5-9][0-9]$'
	assert_output --partial '/memfd:socksify-secret'
	assert_line "$SMALL_TEXT"
	assert_via_proxy "/small.txt?$TAG " 1
	assert_via_pw_proxy
}

@test "the proxy requires the password: without it (no memfd) the connection fails" {
	run ! client_run "$SOCKSIFY" -p "$BARE" -- "${CURL[@]}" "http://$TARGET4/small.txt?$TAG"
	[[ -z $(target_log_since) ]] || fail "the target was reached: $(target_log_since)"
	wait_log SXPW_LOG "198\\.18\\.1\\.2:[0-9]+"
}

@test "a running program tree: no process shows the password in /proc/PID/environ or cmdline" {
	local log=$BATS_TEST_TMPDIR/tree.log pid pids n=0
	ns_spawn client "$log" "$SOCKSIFY" -p "$PWURL" -- sh -c '
		sh -c "sleep 4" &
		"$0" -c "import subprocess; subprocess.run([\"sleep\", \"4\"])" &
		wait' "$PYTHON"
	# the launcher execs sh; a sleep (sh -c execs it), python and its sleep
	for ((i = 0; i < 100; i++)); do
		pids=$(tree_pids "$SPAWNED_PID")
		(($(grep -c . <<<"$pids") >= 4)) && break
		sleep 0.05
	done
	# teardown ends them if the test fails before they exit
	echo "$pids" >>"$(pidfile)"
	for pid in $pids; do
		[[ -r /proc/$pid/environ ]] || continue
		n=$((n + 1))
		if grep -qF secretpw "/proc/$pid/environ" "/proc/$pid/cmdline"; then
			fail "process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline")) shows the password"
		fi
		tr '\0' '\n' <"/proc/$pid/environ" | grep -qx "SOCKSIFY_PROXY=$BARE" ||
			fail "process $pid has no SOCKSIFY_PROXY=$BARE"
	done
	((n >= 4)) || fail "only $n processes of the tree seen: $pids"
}

@test "grandchildren: sh -> sh -> curl and python's subprocess (close_fds: close_range) -> curl through the authenticating proxy" {
	run -0 --separate-stderr client_run "$SOCKSIFY" -p "$PWURL" -- sh -c '
		a=$1 b=$2 py=$3
		shift 3
		sh -c "\"\$@\" \"$a\"" sh "$@"
		"$py" -c "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)" \
			"$@" "$b"' sh "http://$TARGET4/small.txt?$TAG-sh" "http://$TARGET4/small.txt?$TAG-py" \
		"$PYTHON" "${CURL[@]}"
	assert_no_password
	assert_equal "${#lines[@]}" 2
	assert_line --index 0 "$SMALL_TEXT"
	assert_line --index 1 "$SMALL_TEXT"
	assert_via_proxy "/small.txt?$TAG-" 2
	assert_via_pw_proxy
}

@test "LD_PRELOAD and SOCKSIFY_PROXY with a password by hand: works; the shell's own environ overwritten, its children get the memfd" {
	run -0 --separate-stderr client_run env LD_PRELOAD="$SHIM_PRELOAD" SOCKSIFY_PROXY="$PWURL" \
		sh -c 'tr "\0" "\n" </proc/$$/environ; echo ---; env; echo ---
			"$@" && sh -c "\"\$@\"" sh "$@"' sh "${CURL[@]}" "http://$TARGET4/small.txt?$TAG"
	assert_no_password
	assert_line "SOCKSIFY_PROXY=socks5://user:********@$PROXY4:1085"
	assert_line "SOCKSIFY_PROXY=$BARE"
	assert_line --regexp '^SOCKSIFY_SECRET_FD=[0-9]+$'
	assert_equal "$(grep -cx "$SMALL_TEXT" <<<"$output")" 2
	assert_via_proxy "/small.txt?$TAG " 2
	assert_via_pw_proxy
}

@test "a program that sets SOCKSIFY_PROXY with a password for its children: the child's shim moves it into a memfd of its own" {
	run -0 --separate-stderr client_run "$SOCKSIFY" -p "$PWURL" -- sh -c '
		SOCKSIFY_PROXY=$0 sh -c "env; exec \"\$@\"" sh "$@"' "$PWURL" \
		"${CURL[@]}" "http://$TARGET4/small.txt?$TAG"
	assert_no_password
	assert_line "SOCKSIFY_PROXY=$BARE"
	# the launcher's memfd took the first number, the child's the next
	assert_line --regexp '^SOCKSIFY_SECRET_FD=9[5-9][1-9]$'
	assert_line "$SMALL_TEXT"
	assert_via_proxy "/small.txt?$TAG " 1
	assert_via_pw_proxy
}

@test "a configuration file with the password that others may read: one warning for the whole tree; none at 0600" {
	local conf=$BATS_TEST_TMPDIR/pw.conf
	printf 'proxy = %s\n' "$PWURL" >"$conf"
	chmod 0644 "$conf"
	local twice=('sh' '-c' '"$@" && sh -c "\"\$@\"" sh "$@"' 'sh' "${CURL[@]}")
	run -0 --separate-stderr client_run "$SOCKSIFY" -c "$conf" -- "${twice[@]}" \
		"http://$TARGET4/small.txt?$TAG-a"
	assert_equal "$(grep -cx "$SMALL_TEXT" <<<"$output")" 2
	assert_equal "$stderr" "socksify: warning: $conf holds the proxy password and other users may read it (chmod go-rwx it)"
	run -0 --separate-stderr client_run env SOCKSIFY_CONF="$conf" LD_PRELOAD="$SHIM_PRELOAD" \
		"${twice[@]}" "http://$TARGET4/small.txt?$TAG-b"
	assert_equal "$(grep -cx "$SMALL_TEXT" <<<"$output")" 2
	assert_equal "$(grep -c 'holds the proxy password and other users may read it' <<<"$stderr")" 1
	[[ $stderr == *"$conf"* ]] || fail "the warning does not name the file: $stderr"
	chmod 0600 "$conf"
	run -0 --separate-stderr client_run "$SOCKSIFY" -c "$conf" -- "${twice[@]}" \
		"http://$TARGET4/small.txt?$TAG-c"
	assert_equal "$(grep -cx "$SMALL_TEXT" <<<"$output")" 2
	assert_equal "$stderr" ""
	run -0 --separate-stderr client_run env SOCKSIFY_CONF="$conf" LD_PRELOAD="$SHIM_PRELOAD" \
		"${twice[@]}" "http://$TARGET4/small.txt?$TAG-d"
	assert_equal "$stderr" ""
	assert_via_proxy "/small.txt?$TAG-" 8
}

@test "fail closed: SOCKSIFY_SECRET_FD naming a closed descriptor, a pipe or an unsealed memfd: a clear error, the connection fails, nothing goes direct" {
	local url="http://$TARGET4/small.txt?$TAG" py
	run ! --separate-stderr client_run env LD_PRELOAD="$SHIM_PRELOAD" SOCKSIFY_PROXY="$BARE" \
		SOCKSIFY_SECRET_FD=77 "${CURL[@]}" "$url"
	assert_equal "$output" ""
	[[ $stderr == *"SOCKSIFY_SECRET_FD: descriptor 77 is not open; every connection that would be proxied fails"* ]] ||
		fail "no clear error: $stderr"
	# a python that is not preloaded hands the program a descriptor of its own
	py='import os, subprocess, sys
kind = sys.argv[1]
if kind == "pipe":
    fd = os.pipe()[0]
else:
    fd = os.memfd_create("socksify-secret", os.MFD_ALLOW_SEALING)
    os.write(fd, sys.argv[2].encode())
    if kind == "writable":
        import fcntl
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
env = dict(os.environ, SOCKSIFY_SECRET_FD=str(fd), LD_PRELOAD=sys.argv[3])
sys.exit(subprocess.run(sys.argv[4:], env=env, pass_fds=[fd]).returncode)'
	run ! --separate-stderr client_run env SOCKSIFY_PROXY="$BARE" "$PYTHON" -c "$py" \
		pipe "$PWURL" "$SHIM_PRELOAD" "${CURL[@]}" "$url"
	[[ $stderr =~ SOCKSIFY_SECRET_FD:\ descriptor\ [0-9]+\ is\ not\ a\ memfd ]] ||
		fail "no clear error: $stderr"
	run ! --separate-stderr client_run env SOCKSIFY_PROXY="$BARE" "$PYTHON" -c "$py" \
		unsealed "$PWURL" "$SHIM_PRELOAD" "${CURL[@]}" "$url"
	[[ $stderr =~ SOCKSIFY_SECRET_FD:\ the\ memfd\ on\ descriptor\ [0-9]+\ is\ not\ sealed ]] ||
		fail "no clear error: $stderr"
	run ! --separate-stderr client_run env SOCKSIFY_PROXY="$BARE" "$PYTHON" -c "$py" \
		writable "$PWURL" "$SHIM_PRELOAD" "${CURL[@]}" "$url"
	[[ $stderr =~ is\ not\ sealed ]] || fail "no clear error: $stderr"
	assert_no_password
	# the launcher refuses to start with one (exit 2, one line)
	local ran=$BATS_TEST_TMPDIR/ran
	run -2 --separate-stderr client_run env SOCKSIFY_SECRET_FD=77 "$SOCKSIFY" -p "$PWURL" -- touch "$ran"
	assert_equal "$stderr" "socksify: SOCKSIFY_SECRET_FD: descriptor 77 is not open"
	[[ ! -e $ran ]] || fail "the program ran"
	assert_trap_untouched
	[[ -z $(target_log_since) ]] || fail "the target was reached: $(target_log_since)"
}

@test "supervised: a Go program through the authenticating proxy; its shell's environment and the launcher's command line without the password" {
	[[ -x ${SOCKSIFY_GOGET_STATIC:-} ]] ||
		fail "SOCKSIFY_GOGET_STATIC is not set or not built (meson builds goget-static when go is installed; scripts/deps installs golang-go)"
	run -0 --separate-stderr client_run "$SOCKSIFY" -p "$PWURL" -- "$SOCKSIFY_GOGET_STATIC" \
		-sh 'L=$(ps -o ppid= -p $PPID | tr -d " "); tr "\0" " " </proc/$L/cmdline; echo
			cat /proc/$L/environ /proc/$PPID/environ /proc/$$/environ | tr "\0" "\n"
			curl --silent --show-error --fail --max-time 15 --noproxy "" http://'"$TARGET4/small.txt?$TAG-sh" \
		"http://$TARGET4/small.txt?$TAG-go"
	assert_no_password
	assert_line --regexp "socksify -p socks5://user:\\*{8}@198\\.18\\.1\\.1:1085 "
	assert_line "SOCKSIFY_PROXY=$BARE"
	assert_line "$SMALL_TEXT"
	assert_line "ok http://$TARGET4/small.txt?$TAG-go 200 $((${#SMALL_TEXT} + 1))"
	assert_via_proxy "/small.txt?$TAG-" 2
	assert_via_pw_proxy
}

# count_connects VAR: this test's CONNECT lines from the client in log $VAR
count_connects() {
	log_since "$1" | grep -c "198\.18\.1\.2:[0-9]* CONNECT " || true
}

@test "round-robin over two authenticating proxies, each its own password: both carry connections; no password in any environment" {
	run -0 --separate-stderr client_run env SOCKSIFY_CHAIN=round-robin "$SOCKSIFY" \
		-p "$PWURL,$PW2URL" -- sh -c '
		tr "\0" "\n" </proc/$$/environ; echo ---
		for i in 1 2 3 4; do
			"$@" "http://'"$TARGET4"'/small.txt?'"$TAG"'-$i" || echo "curl $i failed"
		done' sh "${CURL[@]}"
	assert_no_password
	assert_line "SOCKSIFY_PROXY=$BARE,$BARE2"
	assert_line --regexp '^SOCKSIFY_SECRET_FD=9[5-9][0-9]$'
	refute_line --partial failed
	assert_equal "$(grep -cx "$SMALL_TEXT" <<<"$output")" 4
	assert_via_proxy "/small.txt?$TAG-" 4
	sleep 0.3 # the servers log a connection when it closes
	(($(count_connects SXPW_LOG) >= 1)) || fail "user's proxy carried nothing"
	(($(count_connects SXPW2_LOG) >= 1)) || fail "bob's proxy carried nothing"
	assert_equal "$(($(count_connects SXPW_LOG) + $(count_connects SXPW2_LOG)))" 4
}

@test "strict chain, a password for each hop (the second only the first reaches), repeated -p: the running tree shows neither password" {
	local log=$BATS_TEST_TMPDIR/tree.log pid pids n=0
	local hop2="socks5h://bob:secondpw@$TARGET4:1087" url="http://$TARGET4/small.txt?$TAG"
	ns_spawn client "$log" env SOCKSIFY_CHAIN=strict "$SOCKSIFY" -p "$PWURL" -p "$hop2" -- \
		sh -c '"$@"; echo "curl: $?"; sleep 4' sh "${CURL[@]}" "$url"
	for ((i = 0; i < 100; i++)); do
		grep -q "^curl: " "$log" && break
		sleep 0.05
	done
	pids=$(tree_pids "$SPAWNED_PID")
	echo "$pids" >>"$(pidfile)"
	for pid in $pids; do
		[[ -r /proc/$pid/environ ]] || continue
		n=$((n + 1))
		if grep -qE "secretpw|secondpw" "/proc/$pid/environ" "/proc/$pid/cmdline"; then
			fail "process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline")) shows a password"
		fi
		tr '\0' '\n' <"/proc/$pid/environ" |
			grep -qx "SOCKSIFY_PROXY=$BARE,socks5h://bob@$TARGET4:1087" ||
			fail "process $pid has not SOCKSIFY_PROXY without the passwords"
	done
	((n >= 2)) || fail "only $n processes of the tree seen: $pids"
	grep -qx "curl: 0" "$log" || fail "curl through the chain failed: $(cat "$log")"
	grep -qxF "$SMALL_TEXT" "$log" || fail "no page: $(cat "$log")"
	# hop 1 (user's password) reached hop 2 (bob's), hop 2 the target
	wait_log SXPW_LOG "198\\.18\\.1\\.2:[0-9]+ CONNECT 198\\.18\\.2\\.2:1087"
	wait_log HOP2_LOG "CONNECT 198\\.18\\.2\\.2:80"
	run -0 grep -cF "\"GET /small.txt?$TAG " < <(target_log_since)
	assert_output 1
}

@test "a list with passwords exported by hand: the shell's environ overwritten, children get the list without them and reach both proxies" {
	run -0 --separate-stderr client_run env LD_PRELOAD="$SHIM_PRELOAD" SOCKSIFY_CHAIN=round-robin \
		SOCKSIFY_PROXY="$PWURL, $PW2URL" sh -c '
		tr "\0" "\n" </proc/$$/environ; echo ---; env; echo ---
		for i in 1 2 3 4; do sh -c "\"\$@\"" sh "$@" "$0-$i"; done' \
		"http://$TARGET4/small.txt?$TAG" "${CURL[@]}"
	assert_no_password
	assert_line "SOCKSIFY_PROXY=socks5://user:********@$PROXY4:1085, socks5://bob:********@$PROXY4:1086"
	assert_line "SOCKSIFY_PROXY=$BARE,$BARE2"
	assert_equal "$(grep -cx "$SMALL_TEXT" <<<"$output")" 4
	sleep 0.3
	(($(count_connects SXPW_LOG) >= 1)) || fail "user's proxy carried nothing"
	(($(count_connects SXPW2_LOG) >= 1)) || fail "bob's proxy carried nothing"
}

@test "supervised with -p URL1,URL2: the launcher's command line shows neither password; a failover list past a dead proxy with a password" {
	[[ -x ${SOCKSIFY_GOGET_STATIC:-} ]] ||
		fail "SOCKSIFY_GOGET_STATIC is not set or not built (meson builds goget-static when go is installed; scripts/deps installs golang-go)"
	run -0 --separate-stderr client_run "$SOCKSIFY" -p "socks5://user:secretpw@$PROXY4:1,$PW2URL" -- \
		"$SOCKSIFY_GOGET_STATIC" -sh 'L=$(ps -o ppid= -p $PPID | tr -d " "); tr "\0" " " </proc/$L/cmdline; echo
			cat /proc/$L/environ /proc/$PPID/environ /proc/$$/environ | tr "\0" "\n"' \
		"http://$TARGET4/small.txt?$TAG-go"
	assert_no_password
	assert_line --regexp "socksify -p socks5://user:\\*{8}@198\\.18\\.1\\.1:1,socks5://bob:\\*{8}@198\\.18\\.1\\.1:1086 "
	assert_line "SOCKSIFY_PROXY=socks5://user@$PROXY4:1,$BARE2"
	assert_line "ok http://$TARGET4/small.txt?$TAG-go 200 $((${#SMALL_TEXT} + 1))"
	assert_via_proxy "/small.txt?$TAG-" 1
	wait_log SXPW2_LOG "CONNECT ${TARGET4//./\\.}:80"
}

@test "--env with a list where only the second URL has a password: the warning; a list without one: none" {
	run -0 --separate-stderr "$SOCKSIFY" --env -p "socks5://$PROXY4:1080,$PW2URL"
	assert_equal "$stderr" "socksify: warning: --env puts the proxy password into the shell's environment (a configuration file that only you can read keeps it out)"
	assert_line "export SOCKSIFY_PROXY='socks5://$PROXY4:1080,$PW2URL'"
	run -0 --separate-stderr "$SOCKSIFY" --env -p "socks5://$PROXY4:1080,$BARE2"
	assert_equal "$stderr" ""
}
