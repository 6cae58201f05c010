#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# socksify-server's relay under load: bulk data through the splice path, and
# many held connections (memory per connection).
# Run: SOCKSIFY_SERVER=build/cli/socksify-server SOCKSIFY_BUILD=build bats tests/e2e/server_relay.bats
# (meson test --suite server sets both).

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
	HOLDBENCH=${SOCKSIFY_BUILD:-$REPO_ROOT/build}/tests/bench/holdbench
}

teardown() {
	common_teardown
}

client() {
	"${CLIENT[@]}" "$@"
}

# splice_lines: the -vv lines of directions that moved to splice(2)
splice_lines() {
	grep -c 'splicing after' "$SERVER_LOG" || true
}

@test "16 MiB each way at once through an echo target arrives intact, then EOF; both directions splice" {
	start_server -vv
	start_target echo-server
	run -0 client bulk --proxy "$PROXY" --target "$TARGET" --bytes $((16 << 20)) --timeout 30
	assert_line "sent=16777216 received=16777216"
	assert_line "intact=yes"
	# relay.h: a direction splices once it has carried 256 KiB
	assert_equal "$(splice_lines)" 2
}

@test "a relay that moves little (echoes of a few bytes) never splices" {
	start_server -vv
	start_target echo-server
	run -0 client connect --proxy "$PROXY" --target "$TARGET" --echo-rounds 20
	assert_line "echo_rounds=20"
	assert_equal "$(splice_lines)" 0
}

@test "half-close through the splice path: the target sees EOF after 1 MiB, then its 1 MiB reply arrives" {
	start_server -vv
	start_target eof-server --reply-file "$WWW/big.bin"
	run -0 client connect --proxy "$PROXY" --target "$TARGET" --timeout 10 \
		--send-file "$WWW/big.bin" --shut-wr --output "$BATS_TEST_TMPDIR/out"
	assert_equal "$(head -n 1 "$BATS_TEST_TMPDIR/out")" "1048576"
	tail -c +9 "$BATS_TEST_TMPDIR/out" >"$BATS_TEST_TMPDIR/big"
	assert_equal "$(sha256sum <"$BATS_TEST_TMPDIR/big" | cut -d' ' -f1)" "$BIG_SHA"
	assert_equal "$(splice_lines)" 2
}

# The memory a held, quiet relayed connection costs the server (VmRSS growth
# over the connections, measured by holdbench). Today about 1 KiB; the bound
# leaves room for allocator noise. The ASan build's allocator keeps freed
# memory in quarantine and pads every block, so there the bound is wider.
rss_bound_kib() {
	if ldd "$SOCKSIFY_SERVER" 2>/dev/null | grep -q libasan; then
		echo 16
	else
		echo 4
	fi
}

@test "10,000 held relayed connections all echo; the server's memory per connection stays small" {
	[[ -x $HOLDBENCH ]] || fail "holdbench not built: $HOLDBENCH"
	local n=10000 hard want
	# The server needs two descriptors per connection, plus a few.
	want=$((2 * n + 256))
	hard=$(ulimit -Hn)
	if [[ $hard != unlimited ]] && ((hard < want)); then
		if ! ulimit -Hn "$want" 2>/dev/null; then
			n=$(((hard - 256) / 2))
			echo "# the descriptor hard limit ($hard) cannot be raised here: $n connections" >&3
		fi
	fi
	ulimit -n "$(ulimit -Hn)"
	start_server --max-conns "$n"
	spawn "$BATS_TEST_TMPDIR/echo.log" "$HOLDBENCH" -e 0
	local i port=""
	for ((i = 0; i < 100; i++)); do
		port=$(awk '/^listening/ { print $2 }' "$BATS_TEST_TMPDIR/echo.log")
		[[ -z $port ]] || break
		sleep 0.05
	done
	[[ -n $port ]] || fail "holdbench -e did not start: $(cat "$BATS_TEST_TMPDIR/echo.log")"
	run -0 timeout 120 "$HOLDBENCH" -p "$PROXY" -t "127.0.0.1:$port" -n "$n" -P "$SERVER_PID"
	echo "# $output" >&3
	[[ $output =~ ^held\ $n\ open/s\ [0-9]+\ rss_before_kib\ [0-9]+\ rss_after_kib\ [0-9]+\ per_conn_kib\ ([0-9.]+)$ ]] ||
		fail "unexpected holdbench output: $output"
	local per=${BASH_REMATCH[1]} bound
	bound=$(rss_bound_kib)
	awk -v p="$per" -v b="$bound" 'BEGIN { exit !(p < b) }' ||
		fail "the server grew by $per KiB per held connection (bound: $bound KiB)"
	# and it still serves once they are gone
	run -0 client connect --proxy "$PROXY" --target "127.0.0.1:$port" --echo-rounds 1
}
