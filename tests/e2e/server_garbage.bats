#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# socksify-server against a client that sends it garbage for a while
# (tests/e2e/garbage_client.py): random bytes, and greetings, RFC 1929 user/pass,
# CONNECT, BIND and UDP ASSOCIATE requests and datagrams to the relay with a
# part mutated, from 32 connections at once. The server must not crash: it is
# still alive and serves curl afterwards, its log has no sanitizer report (the
# ASan/UBSan build runs this suite too), its descriptors are back to what they
# were before, and it exits 0 on SIGTERM. The garbage carries names (ATYP 3)
# the server looks up: it runs in a namespace with nothing but loopback whose
# lookups end at a stub (start_server_stubdns, helpers.bash).
#
# The seed is printed ("# seed N"); SOCKSIFY_GARBAGE_SEED=N replays the same
# inputs, SOCKSIFY_GARBAGE_SECS sets how long (default 8 s, and 4 s for the
# variant with small pre-authentication limits), SOCKSIFY_GARBAGE_WORKERS how
# many connections at once (32, 48), SOCKSIFY_GARBAGE_ARGS adds server options.
# glibc fills freed memory (MALLOC_PERTURB_), so that a use after free crashes
# the plain build too rather than reading what the memory still held.
# Run (as root): SOCKSIFY_SERVER=build/cli/socksify-server bats tests/e2e/server_garbage.bats

# bats runs each test in a subshell and sets status/output/lines:
# shellcheck disable=SC2030,SC2031,SC2154,SC2012

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
}

teardown() {
	common_teardown
}

fd_count() {
	find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

# garbage SECS WORKERS SERVER_ARGS...: the garbage client against a server
# started with SERVER_ARGS; then the checks above.
garbage() {
	local secs=${SOCKSIFY_GARBAGE_SECS:-$1} workers=${SOCKSIFY_GARBAGE_WORKERS:-$2}
	shift 2
	local seed=${SOCKSIFY_GARBAGE_SEED:-$((RANDOM * 32768 + RANDOM))}
	local extra
	read -r -a extra <<<"${SOCKSIFY_GARBAGE_ARGS:-}"
	echo "# seed $seed (SOCKSIFY_GARBAGE_SEED=$seed replays it)" >&3
	MALLOC_PERTURB_=65 start_server_stubdns "$@" "${extra[@]}"
	local fds0 fds i
	fds0=$(fd_count "$SERVER_PID")
	run -0 dns_run "$PYTHON" "$E2E_DIR/garbage_client.py" "$PROXY" user:pass "$secs" \
		"$seed" "$workers"
	echo "# $(grep -E '^(sessions|replies|refused) ' <<<"$output" | tr '\n' ';')" >&3
	assert_line --regexp '^sessions [0-9]+ '
	refute_line --regexp '^refused '
	pid_alive "$SERVER_PID" || fail "socksify-server died (seed $seed): $(tail -n 40 "$SERVER_LOG")"
	# a good client still gets through
	run -0 dns_run "${CURL[@]}" -x "socks5://user:pass@$PROXY" \
		"http://127.0.0.1:$HTTP_PORT/index.html"
	assert_output --partial "socksify e2e index"
	for ((i = 0; i < 100; i++)); do
		fds=$(fd_count "$SERVER_PID")
		((fds == fds0)) && break
		sleep 0.05
	done
	((fds == fds0)) || fail "socksify-server has $fds descriptors, $fds0 before (seed $seed):
$(ls -l "/proc/$SERVER_PID/fd")"
	stop_server
	((SERVER_STATUS == 0)) || fail "socksify-server exited with status $SERVER_STATUS (seed $seed)"
	if grep -Eq 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$SERVER_LOG"; then
		fail "a sanitizer report in the server's log (seed $seed)"
	fi
}

# -q: errors only (the garbage would make a line a connection); short timeouts,
# so what the garbage leaves half-done ends soon
@test "garbage from 32 connections for 8 s: the server stays up, serves curl, no sanitizer report, descriptors back" {
	garbage 8 32 -u user:pass -q --handshake-timeout 2 --connect-timeout 2
}

# Limits small enough that clients in their handshake are shed (the oldest of
# a loop's 4, with an RST), reset at accept (over 8 from 127.0.0.1) and shed
# for --max-conns, on two loops sharing the per-source table, while others
# resolve, connect, relay, BIND and associate; idle relays end after 1 s.
@test "garbage from 48 connections for 4 s under small limits (-j 2, --max-unauth 8, --max-conns 40): the same" {
	garbage 4 48 -u user:pass -q -j 2 --max-unauth 8 --max-unauth-per-source 8 \
		--max-conns 40 --handshake-timeout 1 --connect-timeout 1 --idle-timeout 1
}
