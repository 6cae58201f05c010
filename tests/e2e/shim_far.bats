#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Real programs that start many connections at once from one event loop, under
# socksify, through a far proxy: tests/e2e/far_proxy.py in the proxy namespace
# (far_proxy_start in netns.bash), which delays everything going towards the
# client by 200 ms, in front of socksify-server (and dante's sockd). A program
# whose non-blocking connect() (or first sendto()) runs the whole SOCKS
# handshake inside the call waits two round trips per connection, one after
# the other: 50 connections take about 20 s. When the handshake runs in the
# background they overlap, and all 50 finish in well under 2 s.
#
# Every test checks each answer (the target serves, for GET /TAG/I, a file
# holding "/TAG/I"; the UDP echo sends each query back), that the target saw
# every request from the proxy's address, and that the far proxy carried
# them; and prints the wall time the program took ("# asyncio 50 connects:
# 20.8 s"). Each must also finish within 2 s (FAR_FAST_TCP_S /
# FAR_FAST_UDP_S; SOCKSIFY_FAR_EXPECT_FAST=0 only prints the time).
# SOCKSIFY_FAR_DELAY_MS sets another delay (default 200).
#
# bg_probe (tests/e2e/bg_probe.c) checks the same from a C program's side:
# connect() returns at once, the socket looks in progress until the reply,
# then epoll (level, edge, one-shot; before and after connect; two sets),
# poll and select waiters see it complete; failures through SO_ERROR; close,
# dup2, fork and threads in the window; programs that never wait.
#
# Run (as root):
#   SOCKSIFY_SERVER=build/cli/socksify-server SOCKSIFY=build/cli/socksify \
#   SOCKSIFY_SHIM=build/shim/libsocksify.so bats tests/e2e/shim_far.bats
# (meson test --suite shim sets these itself.) SOCKSIFY_TEST_PRELOAD (see
# netns.bash) runs every program under test with more libraries preloaded:
# scripts/test uses it for the ASan/UBSan pass.

# bats runs each test in a subshell and sets status/output/lines/stderr:
# shellcheck disable=SC2030,SC2031,SC2154,SC2034,SC2001

bats_require_minimum_version 1.5.0

# the far proxies' ports on 198.18.1.1, and their delay
FAR_SX_PORT=1090    # in front of socksify-server --allow-open (1080)
FAR_DANTE_PORT=1092 # in front of dante (1082), when it is installed
FAR_DELAY_MS=${SOCKSIFY_FAR_DELAY_MS:-200}
# the limits with SOCKSIFY_FAR_EXPECT_FAST=1, in seconds
FAR_FAST_TCP_S=2
FAR_FAST_UDP_S=2
# how many at once, and how long each one may take (seconds)
FAR_N=50
FAR_UDP_N=20
FAR_TIMEOUT=60

setup_file() {
	load helpers
	load netns
	netns_setup_file || return 1
	netns_udp_targets || return 1
	IN_SETUP_FILE=1
	far_proxy_start "$FAR_SX_PORT" "$FAR_DELAY_MS" 1080 || return 1
	FAR_SX_LOG=$FAR_LOG
	FAR_DANTE_LOG=""
	if [[ -n ${DANTE_PID:-} ]]; then
		far_proxy_start "$FAR_DANTE_PORT" "$FAR_DELAY_MS" 1082 || return 1
		FAR_DANTE_LOG=$FAR_LOG
	fi
	IN_SETUP_FILE=0
	export FAR_SX_LOG FAR_DANTE_LOG
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
	TAG=t${BATS_TEST_NUMBER}x$RANDOM
	local v
	for v in FAR_SX_LOG FAR_DANTE_LOG; do
		[[ -n ${!v:-} ]] || continue
		printf -v "${v}_START" '%s' "$(log_size "${!v}")"
	done
}

teardown() {
	local rc=0
	netns_teardown || rc=$?
	# shown by bats only when the test failed
	if [[ -n ${output:-} ]]; then
		echo "# --- the output of the last command run:"
		sed 's/^/#   /' <<<"$output" | tail -n 40
	fi
	echo "# --- this test's part of the logs (namespace prefix $NX):"
	local v
	for v in FAR_SX_LOG FAR_DANTE_LOG SX_LOG DANTE_LOG HTTP_LOG UDP_ECHO_LOG DNS_LOG; do
		[[ -n ${!v:-} ]] || continue
		log_since "$v" | sed "s/^/# $v: /" | tail -n 20
	done
	return "$rc"
}

# --- small tools ---------------------------------------------------------------------

# far_paths N: N files in the target's web root, $WWW/$TAG/0 .. N-1, each
# holding its own path "/$TAG/I" (what the clients check each answer against).
far_paths() {
	local i
	mkdir -p "$WWW/$TAG"
	for ((i = 0; i < $1; i++)); do
		printf '/%s/%d\n' "$TAG" "$i" >"$WWW/$TAG/$i"
	done
}

# far_timed LABEL CMD...: runs CMD with bats' run, prints "# LABEL: S s" (wall
# time, to the TAP stream) and sets FAR_SECS to it.
far_timed() {
	local label=$1 t0 t1
	shift
	t0=$EPOCHREALTIME
	run "$@"
	t1=$EPOCHREALTIME
	FAR_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	echo "# $label: $FAR_SECS s" >&3
}

# far_expect_fast LIMIT: fails unless the last far_timed took at most LIMIT
# seconds (the handshakes overlap); SOCKSIFY_FAR_EXPECT_FAST=0 only prints it.
far_expect_fast() {
	[[ ${SOCKSIFY_FAR_EXPECT_FAST:-1} == 1 ]] || return 0
	if ! awk -v s="$FAR_SECS" -v l="$1" 'BEGIN { exit !(s <= l) }'; then
		fail "took $FAR_SECS s, more than $1 s (SOCKSIFY_FAR_EXPECT_FAST=1): they did not overlap"
	fi
}

# assert_far_carried VAR KIND COUNT: the far proxy whose log is in VAR accepted
# COUNT connections during this test (KIND tcp), or relayed COUNT UDP
# associations (KIND udp). A program's TCP connections through the shim come
# with one more: the pipelining probe (shim/pipeline.h), once per run.
assert_far_carried() {
	local var=$1 kind=$2 want=$3 got
	got=$(log_since "$var" | grep -c "^$kind " || true)
	((got == want)) || fail "the far proxy logged $got '$kind' lines, expected $want:
$(log_since "$var")"
}

# far_async KIND PORT LOGVAR: python asyncio, FAR_N connections at once
far_async() {
	local kind=$1 port=$2 logvar=$3
	far_paths "$FAR_N"
	far_timed "asyncio $FAR_N connects via $kind" \
		socksify_client "far:$port" -- "$PYTHON" "$E2E_DIR/far_client.py" \
		tcp "$TARGET4" 80 "/$TAG" "$FAR_N" "$FAR_TIMEOUT"
	assert_success
	assert_line "ok $FAR_N of $FAR_N"
	assert_via_proxy "/$TAG/" "$FAR_N"
	assert_far_carried "$logvar" tcp "$((FAR_N + 1))"
	assert_trap_untouched
	far_expect_fast "$FAR_FAST_TCP_S"
}

# ---------------------------------------------------------------------------------

@test "far proxy: a socks5h curl through it takes the delay, and reaches the target via the proxy" {
	# curl's own SOCKS client, no shim: the rig itself. A connect is the
	# method and request round trips, then the answer's: 3 x the delay.
	far_paths 1
	far_timed "curl --socks5-hostname, 1 request" client_run curl --silent --show-error \
		--fail --noproxy '' --max-time 15 --socks5-hostname "$PROXY4:$FAR_SX_PORT" \
		"http://$TARGET4/$TAG/0"
	assert_success
	assert_output "/$TAG/0"
	awk -v s="$FAR_SECS" -v d="$FAR_DELAY_MS" 'BEGIN { exit !(s >= 3 * d / 1000 - 0.05) }' ||
		fail "took $FAR_SECS s: the far proxy did not delay (3 round trips of $FAR_DELAY_MS ms)"
	assert_via_proxy "/$TAG/0 " 1
	assert_far_carried FAR_SX_LOG tcp 1
}

@test "far proxy: python asyncio, 50 connections at once, each answer checked" {
	far_async socksify-server "$FAR_SX_PORT" FAR_SX_LOG
}

@test "far proxy: curl --parallel --parallel-immediate --parallel-max 50, 50 URLs" {
	far_paths "$FAR_N"
	local out=$BATS_TEST_TMPDIR/out i args=()
	mkdir -p "$out"
	for ((i = 0; i < FAR_N; i++)); do
		args+=(-o "$out/$i" "http://$TARGET4/$TAG/$i")
	done
	far_timed "curl --parallel $FAR_N connects" socksify_client "far:$FAR_SX_PORT" -- \
		curl --silent --show-error --fail --noproxy '' --max-time "$FAR_TIMEOUT" \
		--parallel --parallel-immediate --parallel-max "$FAR_N" "${args[@]}"
	assert_success
	for ((i = 0; i < FAR_N; i++)); do
		[[ $(cat "$out/$i" 2>/dev/null) == "/$TAG/$i" ]] ||
			fail "answer $i: '$(head -c 80 "$out/$i" 2>/dev/null)', expected /$TAG/$i"
	done
	assert_via_proxy "/$TAG/" "$FAR_N"
	assert_far_carried FAR_SX_LOG tcp "$((FAR_N + 1))"
	far_expect_fast "$FAR_FAST_TCP_S"
}

@test "far proxy: node, 50 http.get at once, each answer checked" {
	command -v node >/dev/null || fail "node is not installed (scripts/deps installs it)"
	far_paths "$FAR_N"
	far_timed "node $FAR_N connects" socksify_client "far:$FAR_SX_PORT" -- \
		node "$E2E_DIR/far_client.js" "$TARGET4" 80 "/$TAG" "$FAR_N" "$FAR_TIMEOUT"
	assert_success
	assert_line "ok $FAR_N of $FAR_N"
	assert_via_proxy "/$TAG/" "$FAR_N"
	assert_far_carried FAR_SX_LOG tcp "$((FAR_N + 1))"
	far_expect_fast "$FAR_FAST_TCP_S"
}

@test "far proxy: python asyncio UDP, 20 non-blocking sockets send a query each at once" {
	far_timed "asyncio UDP $FAR_UDP_N sockets" socksify_client "far:$FAR_SX_PORT" -- \
		"$PYTHON" "$E2E_DIR/far_client.py" udp "$TARGET4" 7 "$FAR_UDP_N" "$FAR_TIMEOUT"
	assert_success
	assert_line "ok $FAR_UDP_N of $FAR_UDP_N"
	# each query reached the echo from the proxy, once
	assert_udp_via_proxy "$FAR_UDP_N" "$PROXY_OUT4"
	((UDP_VIA_COUNT == FAR_UDP_N)) ||
		fail "the echo got $UDP_VIA_COUNT datagrams, expected $FAR_UDP_N: $UDP_VIA_LINES"
	assert_far_carried FAR_SX_LOG udp "$FAR_UDP_N"
	far_expect_fast "$FAR_FAST_UDP_S"
}

@test "far proxy: python asyncio UDP, 20 connected non-blocking sockets (connect, then send) at once" {
	far_timed "asyncio UDP $FAR_UDP_N connected sockets" socksify_client "far:$FAR_SX_PORT" -- \
		"$PYTHON" "$E2E_DIR/far_client.py" udpc "$TARGET4" 7 "$FAR_UDP_N" "$FAR_TIMEOUT"
	assert_success
	assert_line "ok $FAR_UDP_N of $FAR_UDP_N"
	assert_udp_via_proxy "$FAR_UDP_N" "$PROXY_OUT4"
	((UDP_VIA_COUNT == FAR_UDP_N)) ||
		fail "the echo got $UDP_VIA_COUNT datagrams, expected $FAR_UDP_N: $UDP_VIA_LINES"
	far_expect_fast "$FAR_FAST_UDP_S"
}

@test "far proxy in front of dante: python asyncio, 50 connections at once" {
	[[ -n $FAR_DANTE_LOG ]] || fail "dante-server is not installed ($DANTED; scripts/deps installs it)"
	far_async dante "$FAR_DANTE_PORT" FAR_DANTE_LOG
}

# --- bg_probe: the program's side of a background handshake ------------------------

# bg_run PROXY-KIND CMD HOST PORT [ARGS...]: bg_probe under socksify.
bg_run() {
	local kind=$1
	shift
	socksify_client "$kind" -- "$SOCKSIFY_BG_PROBE" "$@"
}

@test "bg_probe window: connect() returns EINPROGRESS in under 50 ms; SO_ERROR 0, EALREADY, EAGAIN, ENOTCONN while pending; writable only after the reply" {
	far_paths 1
	run -0 bg_run "far:$FAR_SX_PORT" window "$TARGET4" 80 "/$TAG/0" "/$TAG/0"
	refute_line --partial FAIL
	assert_line --partial "ok connect() returned EINPROGRESS in"
	assert_line --partial "ok not before the far proxy answered"
	assert_via_proxy "/$TAG/0 " 1
}

@test "bg_probe window: the same on an AF_INET6 socket (the IPv4 far proxy reached v4-mapped)" {
	far_paths 1
	run -0 bg_run "far:$FAR_SX_PORT" window "$TARGET6" 80 "/$TAG/0" "/$TAG/0"
	refute_line --partial FAIL
	assert_via_proxy "/$TAG/0 " 1
}

@test "bg_probe epoll: level, edge and one-shot registrations, before and after connect, in two sets, report EPOLLOUT once connected" {
	far_paths 1
	run -0 bg_run "far:$FAR_SX_PORT" epoll "$TARGET4" 80 "/$TAG/0" "/$TAG/0"
	refute_line --partial FAIL
	assert_line --partial "ok the second epoll set reports it too"
	assert_via_proxy "/$TAG/0 " 6
}

@test "bg_probe pollselect: poll(), select(), ppoll() and pselect() waiters see the socket writable once connected, not before" {
	far_paths 1
	run -0 bg_run "far:$FAR_SX_PORT" pollselect "$TARGET4" 80 "/$TAG/0" "/$TAG/0"
	refute_line --partial FAIL
	assert_line "ok ppoll(): writable once connected"
	assert_line "ok pselect(): writable once connected"
	assert_via_proxy "/$TAG/0 " 2
}

@test "bg_probe error: refused (reply 5), no route (reply 3) and unreachable (reply 4) come back through SO_ERROR, once, with EPOLLIN|EPOLLOUT|EPOLLHUP" {
	run -0 bg_run "far:$FAR_SX_PORT" error "$TARGET4" 81 ECONNREFUSED
	refute_line --partial FAIL
	run -0 bg_run "far:$FAR_SX_PORT" error 198.18.9.9 80 ENETUNREACH
	refute_line --partial FAIL
	run -0 bg_run "far:$FAR_SX_PORT" error 198.18.7.1 80 EHOSTUNREACH
	refute_line --partial FAIL
}

@test "bg_probe lifecycle: close, dup2, fork, closefrom and another thread's wait in the pending window; nothing leaks" {
	far_paths 1
	run -0 bg_run "far:$FAR_SX_PORT" lifecycle "$TARGET4" 80 "/$TAG/0" "/$TAG/0"
	refute_line --partial FAIL
	assert_line --partial "ok no descriptor left behind"
	assert_line --partial "ok closefrom(3) in the window: no busy helper thread"
	assert_via_proxy "/$TAG/0 " 5
}

@test "bg_probe sleeper: a program that never waits still gets its connection; one made blocking in the window waits for it" {
	far_paths 1
	run -0 bg_run "far:$FAR_SX_PORT" sleeper "$TARGET4" 80 "/$TAG/0" "/$TAG/0"
	refute_line --partial FAIL
	assert_via_proxy "/$TAG/0 " 2
}

@test "bg_probe window and epoll through dante behind a far proxy" {
	[[ -n $FAR_DANTE_LOG ]] || fail "dante-server is not installed ($DANTED; scripts/deps installs it)"
	far_paths 1
	run -0 bg_run "far:$FAR_DANTE_PORT" window "$TARGET4" 80 "/$TAG/0" "/$TAG/0"
	refute_line --partial FAIL
	run -0 bg_run "far:$FAR_DANTE_PORT" epoll "$TARGET4" 80 "/$TAG/0" "/$TAG/0"
	refute_line --partial FAIL
	assert_via_proxy "/$TAG/0 " 7
}

@test "valgrind: bg_probe window and epoll under the shim, no memory errors or definite leaks" {
	[[ -z ${SOCKSIFY_TEST_PRELOAD:-} ]] || skip "valgrind cannot run with the ASan shim (this is the ASan pass)"
	command -v valgrind >/dev/null || fail "valgrind is not installed (scripts/deps installs it)"
	far_paths 1
	local cmd
	for cmd in window epoll; do
		# valgrind's tool is static: the shim's exec hook runs it supervised,
		# through the launcher named here (LD_PRELOAD is set without one)
		run -0 client_run env LD_PRELOAD="$SHIM_PRELOAD" SOCKSIFY_LAUNCHER="$SOCKSIFY" SOCKSIFY_PROXY="$(proxy_url "far:$FAR_SX_PORT")" \
			BG_PROBE_FAST_MS=200 valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
			--show-possibly-lost=no "$SOCKSIFY_BG_PROBE" "$cmd" "$TARGET4" 80 "/$TAG/0" "/$TAG/0"
		refute_line --partial FAIL
		refute_line --partial "=="
	done
	assert_via_proxy "/$TAG/0 " 7
}

# --- UDP: first datagrams queued while UDP ASSOCIATE runs in the background --------------

@test "far proxy UDP: a non-blocking socket's datagrams queue while associating (64, then EAGAIN) and go out in order" {
	run -0 socksify_client "far:$FAR_SX_PORT" -- "$PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
dst = (sys.argv[1], int(sys.argv[2]))
ok = 0
for i in range(70):
    try:
        s.sendto(b"q%d" % i, dst)
        ok += 1
    except BlockingIOError:
        print("EAGAIN after", ok)
        break
got = []
s.settimeout(5)
try:
    while len(got) < ok:
        got.append(s.recv(100))
except socket.timeout:
    pass
print("echoes", len(got), "in order" if got == [b"q%d" % i for i in range(ok)] else "OUT OF ORDER")
' "$TARGET4" 7
	assert_line "EAGAIN after 64"
	assert_line "echoes 64 in order"
	assert_udp_via_proxy 64 "$PROXY_OUT4"
}

@test "far proxy UDP: a proxy refusing UDP ASSOCIATE (microsocks): the queue is dropped with one line, the next send fails EOPNOTSUPP, nothing goes directly" {
	command -v microsocks >/dev/null || fail "microsocks is not installed (scripts/deps installs it)"
	ns_spawn proxy "$BATS_TEST_TMPDIR/microsocks.log" microsocks -i "$PROXY4" -p 1086
	ns_wait_listen proxy tcp "$PROXY4" 1086 "$SPAWNED_PID"
	far_proxy_start 1096 "$FAR_DELAY_MS" 1086
	run -0 socksify_client "far:1096" -- "$PYTHON" -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
dst = (sys.argv[1], int(sys.argv[2]))
print("first", s.sendto(b"one", dst), s.sendto(b"two", dst))
time.sleep(1.5)
try:
    s.sendto(b"three", dst)
    print("SENT")
except OSError as e:
    print("next send:", e.errno)
' "$TARGET4" 7
	assert_line "first 3 3"
	assert_line "next send: 95"
	local out=$output
	run -0 grep -c "does not carry UDP" <<<"$out"
	assert_output 1
	run -0 grep -c "2 datagrams sent while associating dropped" <<<"$out"
	assert_output 1
	[[ -z $(log_since UDP_ECHO_LOG) ]] || fail "a datagram reached the target: $(log_since UDP_ECHO_LOG)"
}
