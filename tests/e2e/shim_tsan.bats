#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The ThreadSanitizer pass over the shim's threaded paths (scripts/test, a
# -Db_sanitize=thread build): the threaded subcommands of the C probes
# (probe.c threads, udp_probe.c threads, hardening and forkhandshake), all
# built with ThreadSanitizer like the shim, the launcher and socksify-server,
# run under socksify on loopback against socksify-server (proxy_loopback, so
# that loopback destinations go through the proxy). Each test passes when the
# probe's checks pass, the proxy logged the probe's connections or
# associations, and ThreadSanitizer reported nothing, neither in the probe nor
# in the server.
#
# tests/e2e/tsan_fdorder.c is preloaded after the shim: it tells
# ThreadSanitizer that the kernel orders the reuse of a descriptor number (see
# the file).
#
# Run (as root, for the mount namespace that gives the proxy names the client
# cannot resolve; without it those names are left out):
#   meson setup build-tsan -Db_sanitize=thread -Db_lundef=false
#   meson test -C build-tsan --suite tsan

# bats runs each test in a subshell and sets status/output/lines:
# shellcheck disable=SC2030,SC2031,SC2154

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
	for v in SOCKSIFY SOCKSIFY_PROBE SOCKSIFY_UDP_PROBE SOCKSIFY_TSAN_FDORDER; do
		[[ -n ${!v:-} && -e ${!v} ]] || fail "$v is not set or names nothing (meson test --suite tsan sets it)"
	done
	# a report ends the program at once, with status 66
	export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66}
	UDP_LOG=""
	REMOTE_NAMES=()
}

teardown() {
	local rc=0
	# shown by bats only when the test failed: a ThreadSanitizer report is here
	if [[ -n ${output:-} ]]; then
		echo "# --- the output of the last command run:"
		sed 's/^/#   /' <<<"$output" | tail -n 80
	fi
	common_teardown || rc=$?
	if [[ -n $SERVER_LOG ]] && grep -q 'ThreadSanitizer' "$SERVER_LOG"; then
		echo "# ThreadSanitizer report in the server log" >&2
		rc=1
	fi
	if [[ -n $UDP_LOG && -s $UDP_LOG ]]; then
		echo "# --- UDP echo target log ($UDP_LOG):"
		sed 's/^/# /' "$UDP_LOG" | tail -n 20
	fi
	return "$rc"
}

# sx_run URL PROGRAM ARGS...: PROGRAM under the launcher through the proxy at
# URL, loopback proxied, with tsan_fdorder.c preloaded after the shim.
sx_run() {
	local url=$1
	shift
	LD_PRELOAD=$SOCKSIFY_TSAN_FDORDER SOCKSIFY_PROXY_LOOPBACK=1 "$SOCKSIFY" -p "$url" -- "$@"
}

# assert_no_tsan: the last run printed no ThreadSanitizer report (halt_on_error
# also makes the program exit 66, which run -0 catches).
assert_no_tsan() {
	refute_output --partial "ThreadSanitizer"
	refute_output --partial "FAIL "
}

# start_proxy: socksify-server -v on a free loopback port. As root, in a private
# mount namespace whose /etc/hosts also has a.tsan.test and b.tsan.test
# (127.0.0.1): the proxy resolves them, the client cannot, so with socks5h://
# the client's lookups are answered from the shim's fake pool (REMOTE_NAMES
# lists them; empty without mount namespaces).
start_proxy() {
	local hosts=$BATS_TEST_TMPDIR/hosts
	{
		cat /etc/hosts
		printf '127.0.0.1\ta.tsan.test b.tsan.test\n'
	} >"$hosts"
	if unshare -m true 2>/dev/null; then
		# shellcheck disable=SC2016
		SERVER_WRAP=(unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$hosts")
		REMOTE_NAMES=(a.tsan.test b.tsan.test)
	fi
	start_server -v
	SERVER_WRAP=()
}

# start_udp_echo HOST...: the UDP echo target on HOSTs, one free port; sets
# UDP_PORT and UDP_LOG (one line per datagram: from=HOST:PORT to=... len=N).
start_udp_echo() {
	local args=() h i
	for h in "$@"; do
		args+=(--host "$h")
	done
	UDP_LOG=$BATS_TEST_TMPDIR/udp-echo.log
	spawn "$UDP_LOG" "${CLIENT[@]}" udp-echo-server "${args[@]}"
	for ((i = 0; i < 100; i++)); do
		UDP_PORT=$(sed -n 's/^port=//p' "$UDP_LOG")
		[[ -n $UDP_PORT ]] && return 0
		pid_alive "$SPAWNED_PID" || break
		sleep 0.05
	done
	fail "the UDP echo target did not start on $*"
}

# wait_server_lines ERE COUNT: the server's log gets at least COUNT lines
# matching ERE within 5 s (it logs a connection or an association when it ends).
wait_server_lines() {
	local re=$1 want=$2 n=0 i
	for ((i = 0; i < 100; i++)); do
		n=$(grep -cE -- "$re" "$SERVER_LOG" || true)
		((n >= want)) && return 0
		sleep 0.05
	done
	fail "the server logged $n lines matching /$re/, expected at least $want: $(log_lines)"
}

@test "tsan: probe threads: 4 threads x 4 rounds of getaddrinfo, connect (blocking, non-blocking), getpeername, GET through the proxy" {
	start_proxy
	local names=("${REMOTE_NAMES[@]}" 127.0.0.1)
	run -0 sx_run "socks5h://$PROXY" "$SOCKSIFY_PROBE" threads "$HTTP_PORT" /index.html \
		"socksify e2e index" "${names[@]}"
	assert_no_tsan
	assert_line "ok 4 threads: all 16 rounds passed"
	wait_server_lines "^socksify-server: 127\\.0\\.0\\.1:[0-9]+ CONNECT .*: succeeded" 16
	local name
	for name in "${REMOTE_NAMES[@]}"; do
		# sent to the proxy by name: the client never resolved it
		grep -qE "CONNECT $name:$HTTP_PORT .*succeeded" "$SERVER_LOG" ||
			fail "the proxy never connected to $name: $(log_lines)"
	done
}

@test "tsan: probe twins: non-blocking connects to a name's IPv4 fake and IPv6 twin at once (the twin parked behind the first handshake, closed or started)" {
	start_proxy
	((${#REMOTE_NAMES[@]})) || skip "no mount namespace for a name only the proxy resolves"
	run -0 sx_run "socks5h://$PROXY" "$SOCKSIFY_PROBE" twins "${REMOTE_NAMES[0]}" "$HTTP_PORT" \
		"/index.html?twins" "socksify e2e index"
	assert_no_tsan
	assert_line --partial "ok race: the IPv4 fake, the twin closed: GET /index.html?twins-race: 200"
	assert_line --partial "ok both: the IPv6 twin: GET /index.html?twins-6: 200"
	wait_server_lines "CONNECT ${REMOTE_NAMES[0]//./\\.}:$HTTP_PORT .*succeeded" 3
}

@test "tsan: udp_probe threads: 4 threads' first datagrams on one socket at once, sockets of their own with dup and close" {
	start_proxy
	start_udp_echo 127.0.0.1
	run -0 sx_run "socks5://$PROXY" "$SOCKSIFY_UDP_PROBE" threads 127.0.0.1 "$UDP_PORT"
	assert_no_tsan
	assert_line "ok 4 threads sent their first datagram on one socket at once"
	assert_line "ok the shared socket got 4 of 4 echoes back"
	# the shared socket and 4 x 8 sockets of the threads' own: one association each
	wait_server_lines "^socksify-server: 127\\.0\\.0\\.1:[0-9]+ UDP ASSOCIATE " 33
	[[ $(grep -c '^from=' "$UDP_LOG") -ge 100 ]] ||
		fail "the echo target got $(grep -c '^from=' "$UDP_LOG") datagrams, expected 4 + 4 x 8 x 3"
}

@test "tsan: udp_probe hardening: siglongjmp out of recv, close during another thread's recv, closes behind the shim's back" {
	[[ -z $(ipv6_loopback_error) ]] || skip "no IPv6 loopback: $(ipv6_loopback_error)"
	start_proxy
	start_udp_echo 127.0.0.1 ::1
	run -0 sx_run "socks5://$PROXY" "$SOCKSIFY_UDP_PROBE" hardening ::1 127.0.0.1 "$UDP_PORT"
	assert_no_tsan
	assert_line --partial "ok close() during another thread's recv()"
	assert_line --partial "ok after a siglongjmp out of recv, a new socket's round trip"
	wait_server_lines "^socksify-server: 127\\.0\\.0\\.1:[0-9]+ UDP ASSOCIATE " 5
}

@test "tsan: udp_probe forkhandshake: fork while another thread is in the handshake with a silent proxy" {
	local port
	port=$(free_port)
	spawn "$BATS_TEST_TMPDIR/silent.log" "$PYTHON" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
held = []
while True:
    held.append(s.accept()[0])
' "$port"
	wait_listen "$port" "$SPAWNED_PID"
	local conf=$BATS_TEST_TMPDIR/socksify.conf
	printf 'proxy = socks5://127.0.0.1:%s\nconnect_timeout = 2\n' "$port" >"$conf"
	start_udp_echo 127.0.0.1
	run -0 env LD_PRELOAD="$SOCKSIFY_TSAN_FDORDER" SOCKSIFY_PROXY_LOOPBACK=1 \
		"$SOCKSIFY" -c "$conf" -- "$SOCKSIFY_UDP_PROBE" forkhandshake 127.0.0.1 "$UDP_PORT"
	assert_no_tsan
	assert_line "ok the child's recv() timed out as asked (exited)"
	assert_line --partial "ok the parent's sendto failed against the silent proxy"
	[[ $(grep -c '^from=' "$UDP_LOG") == 0 ]] || fail "a datagram went around the proxy"
}

# start_far: tests/e2e/far_proxy.py on loopback in front of the proxy, 150 ms
# towards the client; sets FAR (its address) and FAR_LOG.
start_far() {
	local port
	port=$(free_port)
	FAR_LOG=$BATS_TEST_TMPDIR/far.log
	spawn "$FAR_LOG" "$PYTHON" -u "$E2E_DIR/far_proxy.py" -d 150 "127.0.0.1:$port" "$PROXY"
	wait_listen "$port" "$SPAWNED_PID"
	FAR=127.0.0.1:$port
}

@test "tsan: bg_probe through a far proxy on loopback: the helper thread, epoll, poll/select and threads in the pending window" {
	[[ -n ${SOCKSIFY_BG_PROBE:-} && -e $SOCKSIFY_BG_PROBE ]] || fail "SOCKSIFY_BG_PROBE is not set (meson test --suite tsan sets it)"
	start_proxy
	start_far
	local cmd
	for cmd in epoll pollselect lifecycle; do
		run -0 sx_run "socks5://$FAR" "$SOCKSIFY_BG_PROBE" "$cmd" 127.0.0.1 "$HTTP_PORT" \
			/index.html "socksify e2e index"
		assert_no_tsan
	done
	wait_server_lines "^socksify-server: 127\\.0\\.0\\.1:[0-9]+ CONNECT .*: succeeded" 12
}
