#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Several proxies (issue 13; shim/proxies.h): in the netns topology of
# scripts/netns, with two more proxies of this file's own:
#   LAST   socksify-server in the TARGET namespace on 198.18.2.2:1090, which
#          the client cannot reach (it reaches the proxy namespace only) and
#          the proxies can; chain-last.test resolves to 198.18.2.2 in the
#          target namespace's hosts file only, so only LAST can resolve it
#   SX2    socksify-server on 198.18.1.1:1091 (round-robin's second)
# Cases: a strict chain with credentials on the first hop (socksify-server
# -u) and a name only the last hop resolves; a strict chain dante -> the
# socksify-server with credentials; failover past a refused proxy and past a
# black-holed one (198.18.1.99: on the client's link, nobody answers ARP),
# with a second process of the same run skipping the dead one at once;
# round-robin alternating; UDP through the first proxy that grants UDP
# ASSOCIATE (microsocks refuses it); a static program under the supervisor
# with the failover list. -v names the proxy (or chain) of each connection.
#
# Run (as root):
#   SOCKSIFY_SERVER=build/cli/socksify-server SOCKSIFY=build/cli/socksify \
#   SOCKSIFY_SHIM=build/shim/libsocksify.so bats tests/e2e/shim_chain.bats
# (meson test --suite shim sets these itself.)

bats_require_minimum_version 1.5.0

LAST_NAME=chain-last.test

setup_file() {
	load helpers
	load netns
	netns_setup_file || return 1
	netns_udp_targets || return 1
	IN_SETUP_FILE=1
	# only the target namespace knows the name; scripts/netns down removes it
	printf '%s\t%s\n' "$TARGET4" "$LAST_NAME" >>"/etc/netns/$NX-target/hosts"
	LAST_LOG=$BATS_FILE_TMPDIR/last.log
	# --allow-local: the destination (198.18.2.2:80) is its own host
	ns_spawn target "$LAST_LOG" "$SOCKSIFY_SERVER" -v -l "$TARGET4:1090" --allow-open --allow-local
	ns_wait_listen target tcp "$TARGET4" 1090 "$SPAWNED_PID" || return 1
	SX2_LOG=$BATS_FILE_TMPDIR/sx2.log
	netns_socksify_server 1091 "$SX2_LOG" --allow-open || return 1
	IN_SETUP_FILE=0
	export LAST_LOG SX2_LOG
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
	LAST_LOG_START=$(log_size "$LAST_LOG")
	SX2_LOG_START=$(log_size "$SX2_LOG")
	CONF=$BATS_TEST_TMPDIR/socksify.conf
}

teardown() {
	local rc=0
	netns_teardown || rc=$?
	if [[ -n ${output:-} ]]; then
		echo "# --- the output of the last command run:"
		sed 's/^/#   /' <<<"$output" | tail -n 40
	fi
	return "$rc"
}

# curl_cmd: CURL as one string for sh -c (an empty argument kept)
curl_cmd() {
	printf '%q ' "${CURL[@]}"
}

# count_connects VAR: this test's CONNECT lines in the socksify-server log $VAR
count_connects() {
	log_since "$1" | grep -c " CONNECT " || true
}

@test "chain strict: socksify-server with credentials -> a proxy only it reaches, curl by a name only the last hop resolves" {
	client_run ping -c 1 -W 1 "$TARGET4" >/dev/null 2>&1 && fail "the client reaches the target network: the test proves nothing"
	printf 'chain = strict\n' >"$CONF"
	run -0 --separate-stderr client_run env SOCKSIFY_CONF="$CONF" "$SOCKSIFY" -v \
		-p "$(proxy_url auth h)" -p "socks5h://$TARGET4:1090" -- \
		"${CURL[@]}" "http://$LAST_NAME/small.txt?$TAG"
	[[ -n $output ]] || fail "curl got nothing"
	# the target saw it from the last hop (it runs in the target namespace)
	run -0 grep -cF "\"GET /small.txt?$TAG " < <(target_log_since)
	assert_output 1
	target_log_since | grep -F "$TAG" | grep -q "^$TARGET4 - - " || fail "not from the last hop: $(target_log_since)"
	# hop 1 connected to hop 2 (authenticated), hop 2 to the name
	wait_log SXAUTH_LOG "198\.18\.1\.2:[0-9]+ CONNECT 198\.18\.2\.2:1090"
	wait_log LAST_LOG "CONNECT chain-last\.test:80"
	[[ $stderr == *"via $PROXY4:1081 -> $TARGET4:1090: ok"* ]] || fail "no -v line naming the chain: $stderr"
	assert_no_dns_leak
}

@test "chain strict: dante -> socksify-server with credentials (the greeting and RFC 1929 of hop 2 over dante's stream), by a name the last hop resolves" {
	require_proxy dante
	run -0 --separate-stderr client_run env SOCKSIFY_CHAIN=strict "$SOCKSIFY" -v \
		-p "$(proxy_url dante h),$(proxy_url auth h)" -- \
		"${CURL[@]}" "http://$TARGET_NAME4/small.txt?$TAG"
	assert_via_proxy "/small.txt?$TAG" 1
	# hop 2 got the name from dante's connection, not from the client
	wait_log SXAUTH_LOG "CONNECT target4\.test:80"
	log_since SXAUTH_LOG | grep "CONNECT target4" | grep -q "198\.18\.1\.2:" &&
		fail "hop 2 was reached by the client directly: $(log_since SXAUTH_LOG)"
	[[ $stderr == *"via $PROXY4:1082 -> $PROXY4:1081: ok"* ]] || fail "no -v line naming the chain: $stderr"
}

@test "chain strict: a dead hop fails the connection, with the chain in the log, nothing direct" {
	run --separate-stderr client_run env SOCKSIFY_CHAIN=strict "$SOCKSIFY" -v \
		-p "$(proxy_url sx h)" -p "socks5h://$TARGET4:1" -- \
		"${CURL[@]}" "http://$TARGET4/small.txt?$TAG"
	((status != 0)) || fail "curl succeeded through a dead hop"
	[[ $stderr == *"via $PROXY4:1080 -> $TARGET4:1: Connection refused"* ]] || fail "unexpected log: $stderr"
	[[ -z $(target_log_since | grep -F "$TAG") ]] || fail "the target was reached"
}

@test "failover: a refused first proxy is skipped, and skipped at once by the next process of the run" {
	run -0 --separate-stderr client_run "$SOCKSIFY" -v -p "socks5h://$PROXY4:1" -p "$(proxy_url sx h)" -- \
		sh -c "$(curl_cmd) -o /dev/null http://$TARGET4/small.txt?$TAG-1 && $(curl_cmd) -o /dev/null http://$TARGET4/small.txt?$TAG-2"
	assert_via_proxy "/small.txt?$TAG-" 2
	run -0 grep -c "proxy $PROXY4:1 failed (Connection refused): skipped for 30000 ms" <<<"$stderr"
	assert_output 1
	run -0 grep -c "via $PROXY4:1080: ok" <<<"$stderr"
	assert_output 2
}

@test "failover: a black-holed first proxy times out (connect_timeout 1), the second serves; the next process skips it at once" {
	printf 'connect_timeout = 1\n' >"$CONF"
	run -0 --separate-stderr client_run env SOCKSIFY_CONF="$CONF" "$SOCKSIFY" -v \
		-p "socks5h://198.18.1.99:1080" -p "$(proxy_url sx h)" -- \
		sh -c "for i in 1 2; do $(curl_cmd) -o /dev/null -w '%{time_total}\n' http://$TARGET4/small.txt?$TAG-\$i; done"
	assert_via_proxy "/small.txt?$TAG-" 2
	local first=${lines[0]} second=${lines[1]}
	awk -v t="$first" 'BEGIN { exit !(t >= 0.9 && t < 3) }' || fail "first curl took $first s (want ~1 s)"
	awk -v t="$second" 'BEGIN { exit !(t < 0.5) }' || fail "second curl took $second s: the dead proxy was tried again"
	run -0 grep -c "proxy 198.18.1.99:1080 failed (Connection timed out)" <<<"$stderr"
	assert_output 1
}

@test "failover: a refusal by the destination is returned, not failed over" {
	run --separate-stderr client_run "$SOCKSIFY" -v -p "$(proxy_url deny h)" -p "$(proxy_url sx h)" -- \
		"${CURL[@]}" "http://$TARGET4/small.txt?$TAG"
	((status != 0)) || fail "curl succeeded: the second proxy was used"
	[[ $stderr != *"failed ("*"skipped"* ]] || fail "the first proxy was marked dead: $stderr"
	[[ -z $(target_log_since | grep -F "$TAG") ]] || fail "the target was reached"
}

@test "round-robin: four connections alternate between two proxies" {
	run -0 --separate-stderr client_run env SOCKSIFY_CHAIN=round-robin "$SOCKSIFY" -v \
		-p "$(proxy_url sx h)" -p "socks5h://$PROXY4:1091" -- \
		sh -c "for i in 1 2 3 4; do $(curl_cmd) -o /dev/null http://$TARGET4/small.txt?$TAG-\$i; done"
	assert_via_proxy "/small.txt?$TAG-" 4
	wait_log SX2_LOG "CONNECT 198\.18\.2\.2:80"
	sleep 0.3 # the servers log a connection when it closes
	assert_equal "$(count_connects SX_LOG)" 2
	assert_equal "$(count_connects SX2_LOG)" 2
	run -0 grep -c "via $PROXY4:1091: ok" <<<"$stderr"
	assert_output 2
}

@test "UDP: the first proxy refuses UDP ASSOCIATE (microsocks), the second carries the datagrams" {
	command -v microsocks >/dev/null || fail "microsocks is not installed (scripts/deps installs it)"
	ns_spawn proxy "$BATS_TEST_TMPDIR/microsocks.log" microsocks -i "$PROXY4" -p 1092
	ns_wait_listen proxy tcp "$PROXY4" 1092 "$SPAWNED_PID"
	run -0 --separate-stderr client_run "$SOCKSIFY" -v -p "socks5://$PROXY4:1092" -p "$(proxy_url sx)" -- \
		"$PYTHON" "$E2E_DIR/udp_prog.py" sizes "$TARGET4" 7 1 1400
	assert_udp_via_proxy 2 "$PROXY_OUT4"
	assert_proxy_udp sx
	[[ $stderr == *"udp associate via $PROXY4:1080: relay"* ]] || fail "no -v line naming the proxy: $stderr"
	[[ $stderr == *"proxy $PROXY4:1092 failed (Operation not supported)"* ]] || fail "microsocks not marked: $stderr"
}

@test "supervisor: a static program's connect follows the failover list" {
	static_prog_bin || skip "$STATIC_PROG_WHY"
	run -0 --separate-stderr client_run "$SOCKSIFY" -v -p "socks5h://$PROXY4:1" -p "$(proxy_url sx h)" -- \
		"$STATIC_PROG" "$TARGET4" 80 "small.txt?$TAG"
	assert_output --partial "200"
	assert_via_proxy "/small.txt?$TAG" 1
	[[ $stderr == *"supervisor: connect $TARGET4:80 via $PROXY4:1080 for pid"*": ok"* ]] || fail "no log line: $stderr"
	[[ $stderr == *"proxy $PROXY4:1 failed (Connection refused)"* ]] || fail "the dead proxy not marked: $stderr"
}
