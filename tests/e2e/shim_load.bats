#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Load through the shim and the server, in the namespaces of scripts/netns (the
# client reaches only the proxy): one python asyncio program (tests/e2e/load.py)
# under socksify opens 1,000 TCP connections at once and holds them all before
# each sends 2 KiB of its own through socksify-server to an echo target, which
# must come back intact; then 100 UDP sockets each send and check datagrams
# through UDP ASSOCIATE for 3 s. Each test starts its own socksify-server
# (--max-conns 4096) and echo target, and checks: every connection and
# association reached the target from the proxy's address; the server held
# them all at once (its descriptor count, sampled); afterwards the server's
# descriptors (/proc/PID/fd) and the program's own are back to what they were
# before.
#
# Run (as root):
#   SOCKSIFY_SERVER=build/cli/socksify-server SOCKSIFY=build/cli/socksify \
#   SOCKSIFY_SHIM=build/shim/libsocksify.so bats tests/e2e/shim_load.bats
# (meson test --suite shim sets these itself, and scripts/test runs it again
# with the ASan/UBSan shim and server.)

# bats runs each test in a subshell and sets status/output/lines/stderr:
# shellcheck disable=SC2030,SC2031,SC2154,SC2034,SC2001,SC2012

bats_require_minimum_version 1.5.0

LOAD_PORT=1085    # this file's socksify-server, on 198.18.1.1
LOAD_ECHO_PORT=9  # load.py echo-server, on 198.18.2.2 (TCP and UDP)
LOAD_TCP_N=1000
LOAD_TCP_SIZE=2048
LOAD_UDP_N=100
LOAD_UDP_SECS=3

setup_file() {
	load helpers
	load netns
	netns_setup_file || return 1
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
	LOAD_SX_LOG=$BATS_TEST_TMPDIR/sx-load.log
	LOAD_ECHO_LOG=$BATS_TEST_TMPDIR/echo-load.log
	: >"$LOAD_ECHO_LOG"
	# the server's sanitizer reports fail the test (netns_teardown checks SX_LOG)
	SX_LOG=$LOAD_SX_LOG
	netns_socksify_server "$LOAD_PORT" "$LOAD_SX_LOG" --allow-open --max-conns 4096
	LOAD_SX_PID=$SPAWNED_PID
	ns_spawn target "$BATS_TEST_TMPDIR/echo-load.out" \
		"$PYTHON" -u "$E2E_DIR/load.py" echo-server "$TARGET4" "$LOAD_ECHO_PORT" "$LOAD_ECHO_LOG"
	ns_wait_listen target tcp "$TARGET4" "$LOAD_ECHO_PORT" "$SPAWNED_PID"
	ns_wait_listen target udp "$TARGET4" "$LOAD_ECHO_PORT" "$SPAWNED_PID"
	LOAD_SX_FDS=$(fd_count "$LOAD_SX_PID")
}

teardown() {
	local rc=0
	netns_teardown || rc=$?
	if [[ -n ${output:-} ]]; then
		echo "# --- the output of the last command run:"
		sed 's/^/#   /' <<<"$output" | tail -n 30
	fi
	echo "# --- the server's log ($LOAD_SX_LOG), last lines:"
	tail -n 20 "$LOAD_SX_LOG" 2>/dev/null | sed 's/^/#   /'
	return "$rc"
}

# fd_count PID: how many descriptors PID has open
fd_count() {
	find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

# fd_sampler PID FILE: in the background, writes PID's highest descriptor
# count so far to FILE every 50 ms (spawned, so teardown stops it)
fd_sampler() {
	local pid=$1 file=$2
	echo 0 >"$file"
	# shellcheck disable=SC2016
	spawn "$file.out" bash -c '
		max=0
		while [[ -d /proc/$0/fd ]]; do
			n=$(find "/proc/$0/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
			if ((n > max)); then max=$n; echo "$max" >"$1.tmp"; mv "$1.tmp" "$1"; fi
			sleep 0.05
		done' "$pid" "$file"
}

# assert_server_fds_back: the server's descriptor count is back to what it was
# after it started (it closes a relay's descriptors when either side ends;
# waits up to 5 s), else fails listing them
assert_server_fds_back() {
	local i n
	for ((i = 0; i < 100; i++)); do
		n=$(fd_count "$LOAD_SX_PID")
		((n == LOAD_SX_FDS)) && return 0
		sleep 0.05
	done
	fail "socksify-server has $n descriptors, $LOAD_SX_FDS before the load:
$(ls -l "/proc/$LOAD_SX_PID/fd" | head -n 30)"
}

# assert_echo_peers KIND COUNT: the echo target logged exactly COUNT
# connections (tcp) or UDP sources (udp), every one from the proxy's address
assert_echo_peers() {
	local kind=$1 count=$2 lines bad n
	lines=$(grep "^$kind " "$LOAD_ECHO_LOG" || true)
	n=$(grep -c . <<<"$lines" || true)
	((n == count)) || fail "the echo target logged $n $kind peers, expected $count"
	bad=$(grep -Ev "^$kind ${PROXY_OUT4//./\\.}(:[0-9]+)?\$" <<<"$lines" | head -n 5 || true)
	[[ -z $bad ]] || fail "the echo target got $kind traffic from elsewhere than the proxy: $bad"
}

@test "1,000 TCP connections held at once through socksify and socksify-server: every byte back, descriptors back" {
	fd_sampler "$LOAD_SX_PID" "$BATS_TEST_TMPDIR/peak"
	local t0=$EPOCHREALTIME
	run -0 client_run "$SOCKSIFY" -p "socks5://$PROXY4:$LOAD_PORT" -- \
		"$PYTHON" "$E2E_DIR/load.py" tcp "$TARGET4" "$LOAD_ECHO_PORT" "$LOAD_TCP_N" "$LOAD_TCP_SIZE"
	local secs
	secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	assert_line "open $LOAD_TCP_N"
	assert_line "ok $LOAD_TCP_N of $LOAD_TCP_N"
	assert_line --regexp '^fds ([0-9]+) \1$'
	# and the warm-up connection (load.py)
	assert_echo_peers tcp $((LOAD_TCP_N + 1))
	# two descriptors a relay at the least (client and target): all held at once
	local peak
	peak=$(cat "$BATS_TEST_TMPDIR/peak")
	((peak >= LOAD_SX_FDS + 2 * LOAD_TCP_N)) ||
		fail "socksify-server peaked at $peak descriptors ($LOAD_SX_FDS idle): not $LOAD_TCP_N relays at once"
	assert_server_fds_back
	assert_no_dns_leak
	echo "# $LOAD_TCP_N connections x $LOAD_TCP_SIZE bytes: $secs s; server descriptors $LOAD_SX_FDS -> $peak -> $(fd_count "$LOAD_SX_PID"); $(grep '^fds' <<<"$output")" >&3
}

@test "100 UDP associations through socksify and socksify-server for 3 s: every datagram back, descriptors back" {
	fd_sampler "$LOAD_SX_PID" "$BATS_TEST_TMPDIR/peak"
	run -0 client_run "$SOCKSIFY" -p "socks5://$PROXY4:$LOAD_PORT" -- \
		"$PYTHON" "$E2E_DIR/load.py" udp "$TARGET4" "$LOAD_ECHO_PORT" "$LOAD_UDP_N" "$LOAD_UDP_SECS"
	assert_line "ok $LOAD_UDP_N of $LOAD_UDP_N"
	assert_line --regexp '^fds ([0-9]+) \1$'
	local dgrams
	dgrams=$(sed -n 's/^datagrams //p' <<<"$output")
	((dgrams >= LOAD_UDP_N)) || fail "only $dgrams datagrams went round"
	# one relay socket (one source port at the target) per association, and
	# the warm-up's (load.py)
	assert_echo_peers udp $((LOAD_UDP_N + 1))
	local peak
	peak=$(cat "$BATS_TEST_TMPDIR/peak")
	((peak >= LOAD_SX_FDS + 2 * LOAD_UDP_N)) ||
		fail "socksify-server peaked at $peak descriptors ($LOAD_SX_FDS idle): not $LOAD_UDP_N associations at once"
	assert_server_fds_back
	assert_no_dns_leak
	echo "# $LOAD_UDP_N UDP sockets for $LOAD_UDP_SECS s: $dgrams datagrams echoed; server descriptors $LOAD_SX_FDS -> $peak -> $(fd_count "$LOAD_SX_PID"); $(grep '^fds' <<<"$output")" >&3
}
