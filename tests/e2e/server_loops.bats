#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# socksify-server's event loops (-j N): several loops share the listening
# ports (SO_REUSEPORT), both serve, every kind of request works on each, and
# bad -j values are refused. In the ThreadSanitizer build (meson test --suite
# tsan) this file runs against the TSan server: a report there ends the server
# with status 66 and is in its log, and fails the test.
# Run: SOCKSIFY_SERVER=build/cli/socksify-server bats tests/e2e/server_loops.bats

# bats runs each test in a subshell and sets status/output/lines/stderr:
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
	export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66}
}

teardown() {
	local rc=0
	common_teardown || rc=$?
	if [[ -n $SERVER_LOG ]] && grep -q 'ThreadSanitizer' "$SERVER_LOG"; then
		echo "# ThreadSanitizer report in the server log" >&2
		rc=1
	fi
	return "$rc"
}

client() {
	"${CLIENT[@]}" "$@"
}

# accepted_by LOOP: the clients loop LOOP accepted, from its line at shutdown (-v)
accepted_by() {
	sed -n "s/^socksify-server: loop $1: \([0-9][0-9]*\) clients accepted$/\1/p" "$SERVER_LOG"
}

@test "-j 2: 24 clients are spread over both loops, and each loop serves its own" {
	start_server -v -j 2
	start_target echo-server
	local i
	for ((i = 0; i < 24; i++)); do
		client connect --proxy "$PROXY" --target "$TARGET" --echo-rounds 1 ||
			fail "client $i was not served"
	done
	stop_server TERM
	assert_equal "$SERVER_STATUS" 0
	local a b
	a=$(accepted_by 0)
	b=$(accepted_by 1)
	[[ -n $a && -n $b ]] || fail "no 'loop N: ... clients accepted' lines: $(cat "$SERVER_LOG")"
	assert_equal "$((a + b))" 24
	# SO_REUSEPORT hashes each client's address: all 24 on one loop is a 2^-23 chance
	((a > 0 && b > 0)) || fail "one loop accepted every client (loop 0: $a, loop 1: $b)"
	assert_equal "$(grep -c 'CONNECT .*succeeded' "$SERVER_LOG")" 24
}

@test "-j 2: names are resolved and UDP is relayed on every loop" {
	start_server -v -j 2
	start_target echo-server
	local i k port
	port=${TARGET##*:}
	for ((k = 0; k < 8; k++)); do
		run -0 "${CURL[@]}" --socks5-hostname "$PROXY" \
			"http://localhost:$HTTP_PORT/index.html"
		assert_output --partial "socksify e2e index"
		client connect --proxy "$PROXY" --target "localhost:$port" --echo-rounds 1
	done
	spawn "$BATS_TEST_TMPDIR/udp-echo.log" "${CLIENT[@]}" udp-echo-server --host 127.0.0.1
	local udp_port=""
	for ((i = 0; i < 100; i++)); do
		udp_port=$(sed -n 's/^port=//p' "$BATS_TEST_TMPDIR/udp-echo.log")
		[[ -n $udp_port ]] && break
		sleep 0.05
	done
	[[ -n $udp_port ]] || fail "the UDP echo target did not start"
	for ((k = 0; k < 6; k++)); do
		run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$udp_port" \
			--echo 100 --echo 1400
	done
	stop_server TERM
	assert_equal "$SERVER_STATUS" 0
	assert_equal "$(grep -c 'UDP ASSOCIATE .*down 2 datagrams' "$SERVER_LOG")" 6
}

@test "-j 2 --max-conns 4: the loops count together, so exactly 4 are served at once" {
	start_server -v -j 2 --max-conns 4
	start_target echo-server
	# 12 clients that hold their relay open for 3 s: 4 served, 8 refused,
	# however the kernel's hash spreads them over the loops
	local i refused
	for ((i = 0; i < 12; i++)); do
		spawn "$BATS_TEST_TMPDIR/held$i.log" "${CLIENT[@]}" connect --proxy "$PROXY" \
			--target "$TARGET" --echo-rounds 1 --expect-open-for 3 --timeout 10
	done
	for ((i = 0; i < 40; i++)); do
		refused=$(grep -c 'connection limit reached' "$SERVER_LOG" || true)
		((refused >= 8)) && break
		sleep 0.1
	done
	sleep 0.3
	refused=$(grep -c 'connection limit reached' "$SERVER_LOG" || true)
	((refused == 8)) ||
		fail "$refused of 12 clients refused with --max-conns 4 on 2 loops: $(cat "$SERVER_LOG")"
	assert_equal "$(grep -c 'succeeded' "$SERVER_LOG")" 0
}

@test "-j 2 -l 127.0.0.1:0: both loops listen on the one port chosen" {
	SERVER_LOG=$BATS_TEST_TMPDIR/server.log
	spawn "$SERVER_LOG" "$SOCKSIFY_SERVER" -j 2 -l 127.0.0.1:0
	SERVER_PID=$SPAWNED_PID
	local i port=""
	for ((i = 0; i < 100; i++)); do
		port=$(sed -n 's/^socksify-server: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' \
			"$SERVER_LOG")
		[[ -n $port ]] && break
		sleep 0.05
	done
	[[ -n $port && $port != 0 ]] || fail "no 'listening on 127.0.0.1:PORT' line"
	assert_equal "$(grep -c 'listening on' "$SERVER_LOG")" 1
	assert_equal "$(ss -Hltn "sport = :$port" | wc -l)" 2
	run -0 "${CURL[@]}" --socks5 "127.0.0.1:$port" "http://127.0.0.1:$HTTP_PORT/index.html"
}

# The first server's sockets have SO_REUSEPORT too: only the plain bind that
# comes first keeps the second from joining their group.
@test "-j 2 on a port another -j 2 server listens on: one line, status 1 (no sharing)" {
	start_server -j 2
	run --separate-stderr timeout 5 "$SOCKSIFY_SERVER" -j 2 -l "$PROXY"
	assert_equal "$status" 1
	assert_equal "${#stderr_lines[@]}" 1
	assert_equal "${stderr_lines[0]}" \
		"socksify-server: cannot listen on $PROXY: Address already in use"
}

@test "-j 4: SIGTERM and SIGINT stop every loop at once (status 0)" {
	local sig
	for sig in TERM INT; do
		start_server -j 4
		run -0 "${CURL[@]}" --socks5 "$PROXY" "http://127.0.0.1:$HTTP_PORT/index.html"
		# 4 loops and 8 name-lookup threads (ThreadSanitizer may add its own)
		(($(ls "/proc/$SERVER_PID/task" | wc -l) >= 4 + 8)) || fail "fewer than 12 threads"
		stop_server "$sig"
		assert_equal "$SERVER_STATUS" 0
	done
}

@test "bad -j values exit 2 with a one-line error" {
	local v
	for v in 0 65 -1 abc 2x ""; do
		run --separate-stderr timeout 5 "$SOCKSIFY_SERVER" -j "$v" -l 127.0.0.1:0
		assert_equal "$status" 2
		assert_equal "${#stderr_lines[@]}" 1
		assert_equal "${stderr_lines[0]}" \
			"socksify-server: -j $v: expected a number of event loops from 1 to 64"
	done
	run --separate-stderr timeout 5 "$SOCKSIFY_SERVER" --loops
	assert_equal "$status" 2
	assert_equal "${#stderr_lines[@]}" 1
}
