#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# End-to-end tests of socksify-server with real clients on loopback.
# Run: SOCKSIFY_SERVER=build/cli/socksify-server bats tests/e2e/server.bats
# (meson test --suite server sets SOCKSIFY_SERVER itself).

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
}

teardown() {
	common_teardown
}

# client ARGS...: the raw python SOCKS5 client (see socks5_client.py --help)
client() {
	"${CLIENT[@]}" "$@"
}

# dns_client ARGS...: the same in the stub's namespace (start_server_stubdns)
dns_client() {
	dns_run "${CLIENT[@]}" "$@"
}

# curl_fetch PROXYOPT PROXY URL FILE: curl through the server into FILE
curl_fetch() {
	"${CURL[@]}" "$1" "$2" -o "$4" "$3"
}

assert_big_intact() { # FILE
	assert_equal "$(stat -c %s "$1")" 1048576
	assert_equal "$(sha256sum "$1" | cut -d' ' -f1)" "$BIG_SHA"
}

# the -v log lines about connections from 127.0.0.1 clients
conn_log_lines() {
	log_lines | grep -E '(^|[^0-9])127\.0\.0\.1:[0-9]+' || true
}

# "GET / HTTP/1.0\r\n\r\n" in hex, for raw requests
HTTP_GET=474554202f20485454502f312e300d0a0d0a

# An address nothing listens on (connection refused).
closed_port() {
	free_port
}

# ---------------------------------------------------------------------------------
# curl: CONNECT by address and by name
# ---------------------------------------------------------------------------------

@test "curl --socks5 (address CONNECT) fetches index.html and the 1 MiB file intact" {
	start_server
	run -0 "${CURL[@]}" --socks5 "$PROXY" "http://127.0.0.1:$HTTP_PORT/index.html"
	assert_output --partial "socksify e2e index"
	curl_fetch --socks5 "$PROXY" "http://127.0.0.1:$HTTP_PORT/big.bin" "$BATS_TEST_TMPDIR/big"
	assert_big_intact "$BATS_TEST_TMPDIR/big"
}

@test "curl --socks5-hostname (server resolves localhost) fetches the 1 MiB file intact" {
	start_server
	curl_fetch --socks5-hostname "$PROXY" "http://localhost:$HTTP_PORT/big.bin" \
		"$BATS_TEST_TMPDIR/big"
	assert_big_intact "$BATS_TEST_TMPDIR/big"
	# the same name via the raw client: ATYP 3 reaches the HTTP server
	run -0 client connect --proxy "$PROXY" --target "localhost:$HTTP_PORT" \
		--send 'GET /index.html HTTP/1.0\r\n\r\n'
	assert_line --regexp '^http=HTTP/1\.[01] 200'
	assert_output --partial "socksify e2e index"
}

@test "an IP literal sent as a domain name (ATYP 3 \"127.0.0.1\") connects" {
	start_server
	run -0 client connect --proxy "$PROXY" --target "127.0.0.1:$HTTP_PORT" --atyp domain \
		--send 'GET /index.html HTTP/1.0\r\n\r\n'
	assert_output --partial "socksify e2e index"
}

@test "a name that does not resolve: curl --socks5-hostname fails, server replies 4" {
	# the server, the clients and the HTTP target in a namespace whose lookups
	# end at a stub that says NXDOMAIN (helpers.bash): nothing asks a real resolver
	start_server_stubdns
	run ! dns_run "${CURL[@]}" --socks5-hostname "$PROXY" "http://nonexistent.invalid:$HTTP_PORT/"
	run -0 dns_client connect --proxy "$PROXY" --target "nonexistent.invalid:80" --expect-rep 4
	assert_line "rep=4"
	assert_line "closed=yes"
	# and the server is still fine
	run -0 dns_run "${CURL[@]}" --socks5 "$PROXY" "http://127.0.0.1:$HTTP_PORT/index.html"
	assert_output --partial "socksify e2e index"
	assert_stub_lookups nonexistent.invalid
}

# ---------------------------------------------------------------------------------
# RFC 1929 username/password
# ---------------------------------------------------------------------------------

@test "-u user:secret: curl --proxy-user user:secret fetches the 1 MiB file" {
	start_server -u user:secret
	"${CURL[@]}" --socks5 "$PROXY" --proxy-user user:secret -o "$BATS_TEST_TMPDIR/big" \
		"http://127.0.0.1:$HTTP_PORT/big.bin"
	assert_big_intact "$BATS_TEST_TMPDIR/big"
	run -0 client connect --proxy "$PROXY" --user user --pass secret \
		--target "127.0.0.1:$HTTP_PORT" --send 'GET /index.html HTTP/1.0\r\n\r\n'
	assert_line "method=02"
	assert_line "auth=00"
	assert_output --partial "socksify e2e index"
}

@test "-u user:secret: a wrong password fails (curl fails, auth status != 0, then close)" {
	start_server -u user:secret
	run ! "${CURL[@]}" --socks5 "$PROXY" --proxy-user user:wrong \
		"http://127.0.0.1:$HTTP_PORT/index.html"
	run -0 client connect --proxy "$PROXY" --user user --pass wrong \
		--target "127.0.0.1:$HTTP_PORT" --expect-auth-fail
	assert_line "method=02"
	assert_line --regexp '^auth=(0[1-9a-f]|[1-9a-f][0-9a-f])$'
	assert_line "closed=yes"
	# wrong user, right password; and an empty password
	run -0 client connect --proxy "$PROXY" --user other --pass secret \
		--target "127.0.0.1:$HTTP_PORT" --expect-auth-fail
	run -0 client connect --proxy "$PROXY" --user user --pass '' \
		--target "127.0.0.1:$HTTP_PORT" --expect-auth-fail
}

@test "-u user:secret: no credentials (only method 00 offered) gets method ff and close" {
	start_server -u user:secret
	run ! "${CURL[@]}" --socks5 "$PROXY" "http://127.0.0.1:$HTTP_PORT/index.html"
	run -0 client connect --proxy "$PROXY" --target "127.0.0.1:$HTTP_PORT" \
		--methods 00 --expect-method ff
	assert_line "method=ff"
	assert_line "closed=yes"
	# a greeting offering both: the server must pick 02, never 00
	run -0 client connect --proxy "$PROXY" --target "127.0.0.1:$HTTP_PORT" \
		--methods 0002 --user user --pass secret --send 'GET / HTTP/1.0\r\n\r\n'
	assert_line "method=02"
	assert_output --partial "socksify e2e index"
}

@test "several -u users: each one's own password works, not another's" {
	start_server -u alice:apw -u bob:bpw
	run -0 "${CURL[@]}" --socks5 "$PROXY" --proxy-user alice:apw \
		"http://127.0.0.1:$HTTP_PORT/index.html"
	run -0 "${CURL[@]}" --socks5 "$PROXY" --proxy-user bob:bpw \
		"http://127.0.0.1:$HTTP_PORT/index.html"
	run ! "${CURL[@]}" --socks5 "$PROXY" --proxy-user alice:bpw \
		"http://127.0.0.1:$HTTP_PORT/index.html"
}

@test "-v logs one line per connection; passwords never appear in the log" {
	start_server -v -u user:S3cretPW
	"${CURL[@]}" --socks5 "$PROXY" --proxy-user user:S3cretPW -o "$BATS_TEST_TMPDIR/big" \
		"http://127.0.0.1:$HTTP_PORT/big.bin"
	run ! "${CURL[@]}" --socks5 "$PROXY" --proxy-user user:Wr0ngPW \
		"http://127.0.0.1:$HTTP_PORT/index.html"
	run -0 client connect --proxy "$PROXY" --user user --pass S3cretPW --split-bytes \
		--target "127.0.0.1:$HTTP_PORT" --send 'GET / HTTP/1.0\r\n\r\n'
	stop_server TERM
	run cat "$SERVER_LOG"
	refute_output --partial "S3cretPW"
	refute_output --partial "Wr0ngPW"
	# one line per connection: three connections, three lines naming the client
	# (other lines, e.g. about the shutdown, are allowed)
	run conn_log_lines
	assert_equal "${#lines[@]}" 3
	# the successful 1 MiB fetch: destination and bytes to the client are logged
	assert_line --index 0 --partial "127.0.0.1:$HTTP_PORT"
	local n big=0
	while read -r n; do
		if ((10#$n >= 1048576)); then big=1; fi
	done < <(grep -oE '[0-9]+' <<<"${lines[0]}")
	((big)) || fail "no byte count >= 1048576 in the log line: ${lines[0]}"
}

# ---------------------------------------------------------------------------------
# IPv6
# ---------------------------------------------------------------------------------

@test "IPv6 destination: curl --socks5 to http://[::1]:PORT/ fetches the 1 MiB file" {
	require_ipv6
	start_server
	curl_fetch --socks5 "$PROXY" "http://[::1]:$HTTP6_PORT/big.bin" "$BATS_TEST_TMPDIR/big"
	assert_big_intact "$BATS_TEST_TMPDIR/big"
	run -0 client connect --proxy "$PROXY" --target "[::1]:$HTTP6_PORT" \
		--send 'GET /index.html HTTP/1.0\r\n\r\n'
	assert_output --partial "socksify e2e index"
}

@test "IPv6 listener: -l [::1]:PORT serves curl --socks5 over IPv6" {
	require_ipv6
	local port
	port=$(free_port)
	start_server -l "[::1]:$port"
	curl_fetch --socks5 "[::1]:$port" "http://127.0.0.1:$HTTP_PORT/big.bin" \
		"$BATS_TEST_TMPDIR/big"
	assert_big_intact "$BATS_TEST_TMPDIR/big"
	run -0 client connect --proxy "[::1]:$port" --target "[::1]:$HTTP6_PORT" \
		--send 'GET /index.html HTTP/1.0\r\n\r\n'
	assert_output --partial "socksify e2e index"
}

@test "two -l listeners (IPv4 and IPv6) both serve" {
	require_ipv6
	local p4 p6
	p4=$(free_port)
	p6=$(free_port)
	start_server -l "127.0.0.1:$p4" -l "[::1]:$p6"
	run -0 "${CURL[@]}" --socks5 "127.0.0.1:$p4" "http://127.0.0.1:$HTTP_PORT/index.html"
	run -0 "${CURL[@]}" --socks5 "[::1]:$p6" "http://127.0.0.1:$HTTP_PORT/index.html"
	assert_output --partial "socksify e2e index"
}

# ---------------------------------------------------------------------------------
# Odd but valid clients
# ---------------------------------------------------------------------------------

@test "handshake split into single bytes (greeting, request) connects and relays" {
	start_server
	run -0 client connect --proxy "$PROXY" --split-bytes --target "127.0.0.1:$HTTP_PORT" \
		--send 'GET /index.html HTTP/1.0\r\n\r\n'
	assert_line "rep=0"
	assert_output --partial "socksify e2e index"
	# a domain-name request, byte by byte
	run -0 client connect --proxy "$PROXY" --split-bytes --target "localhost:$HTTP_PORT" \
		--send 'GET /index.html HTTP/1.0\r\n\r\n'
	assert_output --partial "socksify e2e index"
}

@test "handshake split into single bytes with username/password auth" {
	start_server -u user:secret
	run -0 client connect --proxy "$PROXY" --split-bytes --user user --pass secret \
		--target "127.0.0.1:$HTTP_PORT" --send 'GET /index.html HTTP/1.0\r\n\r\n'
	assert_line "auth=00"
	assert_output --partial "socksify e2e index"
}

@test "greeting + request + HTTP request in one write: the data is relayed, not lost" {
	start_server
	run -0 client connect --proxy "$PROXY" --target "127.0.0.1:$HTTP_PORT" \
		--coalesce-data 'GET /index.html HTTP/1.0\r\n\r\n'
	assert_line --regexp '^http=HTTP/1\.[01] 200'
	assert_output --partial "socksify e2e index"
	# the big file, asked for in the same write as the handshake
	run -0 client connect --proxy "$PROXY" --target "localhost:$HTTP_PORT" \
		--coalesce-data 'GET /big.bin HTTP/1.0\r\n\r\n' --body-output "$BATS_TEST_TMPDIR/big"
	assert_big_intact "$BATS_TEST_TMPDIR/big"
}

@test "greeting + auth + request + data in one write (echo target gets every byte)" {
	start_server -u user:secret
	start_target echo-server
	run -0 client connect --proxy "$PROXY" --user user --pass secret --target "$TARGET" \
		--coalesce-data 'coalesced payload\n' --expect-echo
	assert_line "echoed=18"
}

@test "client shutdown(SHUT_WR) after its request still receives the whole 1 MiB" {
	start_server
	run -0 client connect --proxy "$PROXY" --target "127.0.0.1:$HTTP_PORT" \
		--send 'GET /big.bin HTTP/1.0\r\n\r\n' --shut-wr --body-output "$BATS_TEST_TMPDIR/big"
	assert_big_intact "$BATS_TEST_TMPDIR/big"
}

@test "half-close is passed on: the target sees EOF, then its 1 MiB reply arrives" {
	start_server
	start_target eof-server --reply-file "$WWW/big.bin"
	# the eof-server answers only after EOF: without the server's shutdown(SHUT_WR)
	# towards the target this times out
	run -0 client connect --proxy "$PROXY" --target "$TARGET" --timeout 10 \
		--send 'twelve bytes' --shut-wr --output "$BATS_TEST_TMPDIR/out"
	assert_equal "$(head -n 1 "$BATS_TEST_TMPDIR/out")" "12"
	tail -c +4 "$BATS_TEST_TMPDIR/out" >"$BATS_TEST_TMPDIR/big"
	assert_big_intact "$BATS_TEST_TMPDIR/big"
}

# ---------------------------------------------------------------------------------
# The success reply carries the real bound address
# ---------------------------------------------------------------------------------

@test "success reply BND.ADDR:BND.PORT is the source address the target saw (IPv4)" {
	start_server
	start_target peer-server
	run -0 client connect --proxy "$PROXY" --target "$TARGET" --print-data
	local bnd data
	bnd=$(sed -n 's/^bnd=//p' <<<"$output")
	data=$(sed -n 's/^data=//p' <<<"$output")
	[[ $bnd != 0.0.0.0:* && $bnd != *:0 ]] || fail "reply carries a dummy address: $bnd"
	assert_equal "$bnd" "$data"
}

@test "success reply BND.ADDR:BND.PORT is the source address the target saw (IPv6)" {
	require_ipv6
	start_server
	TARGET_HOST=::1 start_target peer-server
	run -0 client connect --proxy "$PROXY" --target "$TARGET" --print-data
	local bnd data
	bnd=$(sed -n 's/^bnd=//p' <<<"$output")
	data=$(sed -n 's/^data=//p' <<<"$output")
	assert_equal "$bnd" "$data"
	[[ $bnd == "[::1]:"* ]] || fail "unexpected bound address $bnd"
}

@test "-b 127.0.0.2: outgoing connections come from 127.0.0.2, and the reply says so" {
	start_server -b 127.0.0.2
	start_target peer-server
	run -0 client connect --proxy "$PROXY" --target "$TARGET" --print-data
	assert_line --regexp '^data=127\.0\.0\.2:[1-9][0-9]*$'
	local bnd data
	bnd=$(sed -n 's/^bnd=//p' <<<"$output")
	data=$(sed -n 's/^data=//p' <<<"$output")
	assert_equal "$bnd" "$data"
}

# ---------------------------------------------------------------------------------
# Malformed and refused requests, case by case
# (greeting 050100 = version 5, one method, no auth; 7f000001 = 127.0.0.1)
# ---------------------------------------------------------------------------------

@test "malformed: bad version in the greeting (04 01 00) -> closed, no method chosen" {
	start_server
	run -0 client raw --proxy "$PROXY" --hex 040100 --expect-close
	assert_line --regexp '^reply=(05ff)?$'
}

@test "malformed: NMETHODS 0 (05 00) -> closed, no method chosen" {
	start_server
	run -0 client raw --proxy "$PROXY" --hex 0500 --expect-close
	assert_line --regexp '^reply=(05ff)?$'
}

@test "unknown command 9 -> reply 7 (command not supported), then close" {
	start_server
	run -0 client connect --proxy "$PROXY" --target "127.0.0.1:$HTTP_PORT" --cmd 9 \
		--expect-rep 7
	assert_line "closed=yes"
}

@test "unknown ATYP 5 -> reply 8 (address type not supported), then close" {
	start_server
	run -0 client raw --proxy "$PROXY" --hex "050100 05010005 7f000001 0050" \
		--expect 05000508 --expect-close
	# a complete reply: VER REP RSV ATYP(1 or 4) ADDR PORT
	assert_line --regexp '^reply=0500050800(01[0-9a-f]{12}|04[0-9a-f]{36})$'
}

@test "zero-length domain name -> close, or reply 1 then close" {
	start_server
	run -0 client raw --proxy "$PROXY" --hex "050100 0501000300 0050" --expect 0500 \
		--expect-close
	assert_line --regexp '^reply=0500(050100.*)?$'
}

@test "RSV != 0 in the request -> reply 1 (general failure), then close" {
	start_server
	local port_hex
	port_hex=$(printf '%04x' "$HTTP_PORT")
	# an HTTP request follows: it must not be relayed to the target
	run -0 client raw --proxy "$PROXY" --hex "050100 05010101 7f000001 $port_hex $HTTP_GET" \
		--expect 0500 --expect-close
	assert_line --regexp '^reply=0500050100(01[0-9a-f]{12}|04[0-9a-f]{36})$'
}

@test "bad username/password sub-negotiation version -> closed without success" {
	start_server -u user:secret
	# greeting offers 02, then auth with VER 05 instead of 01
	run -0 client raw --proxy "$PROXY" --hex "050102 0504 75736572 06 736563726574" \
		--expect 0502 --expect-close
	assert_line --regexp '^reply=0502([0-9a-f]{2}(0[1-9a-f]|[1-9a-f][0-9a-f]))?$'
}

@test "destination refused (closed port) -> reply 5 (connection refused)" {
	start_server
	run -0 client connect --proxy "$PROXY" --target "127.0.0.1:$(closed_port)" --expect-rep 5
	assert_line "closed=yes"
	run -0 client connect --proxy "$PROXY" --target "localhost:$(closed_port)" --expect-rep 5
	run ! "${CURL[@]}" --socks5 "$PROXY" "http://127.0.0.1:$(closed_port)/"
}

@test "--deny 127.0.0.0/8 -> reply 2 (not allowed by ruleset); other ranges still work" {
	require_ipv6
	start_server --deny 127.0.0.0/8
	run -0 client connect --proxy "$PROXY" --target "127.0.0.1:$HTTP_PORT" --expect-rep 2
	assert_line "closed=yes"
	run -0 client connect --proxy "$PROXY" --target "127.0.0.2:$HTTP_PORT" --expect-rep 2
	run ! "${CURL[@]}" --socks5 "$PROXY" "http://127.0.0.1:$HTTP_PORT/index.html"
	# the rule also holds when the name resolves into the range
	if [[ $(getent ahosts localhost | awk '{ print $1 }' | sort -u) == 127.0.0.1 ]]; then
		run -0 client connect --proxy "$PROXY" --target "localhost:$HTTP_PORT" --expect-rep 2
	fi
	# ::1 is outside 127.0.0.0/8
	run -0 "${CURL[@]}" --socks5 "$PROXY" "http://[::1]:$HTTP6_PORT/index.html"
	assert_output --partial "socksify e2e index"
}

@test "--deny 127.0.0.0/8 cannot be bypassed with 0.0.0.0 (which reaches this host)" {
	start_server --deny 127.0.0.0/8
	run -0 client connect --proxy "$PROXY" --target "0.0.0.0:$HTTP_PORT" --expect-rep 2
	run -0 client connect --proxy "$PROXY" --target "0.0.0.0:$HTTP_PORT" --atyp domain \
		--expect-rep 2
}

@test "data the destination sends just before a reset still reaches the client" {
	start_server -v
	local port
	port=$(free_port)
	# a target that sends one line, then closes with SO_LINGER 0 (a reset)
	spawn "$BATS_TEST_TMPDIR/rst.log" "$PYTHON" -c '
import socket, struct, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
while True:
    c, _ = s.accept()
    c.sendall(b"hello-before-reset\n")
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
' "$port"
	wait_listen "$port" "$SPAWNED_PID"
	local i
	for ((i = 0; i < 20; i++)); do
		run client connect --proxy "$PROXY" --target "127.0.0.1:$port" --print-data \
			--expect-contains hello-before-reset
		((status == 0)) || fail "run $i: $output"
	done
}

@test "--deny ::1/128 -> reply 2 for [::1], IPv4 still allowed" {
	require_ipv6
	start_server --deny ::1/128
	run -0 client connect --proxy "$PROXY" --target "[::1]:$HTTP6_PORT" --expect-rep 2
	run -0 "${CURL[@]}" --socks5 "$PROXY" "http://127.0.0.1:$HTTP_PORT/index.html"
}

@test "all malformed inputs against one server, then it still serves curl" {
	# in a namespace whose lookups end at a stub (helpers.bash)
	start_server_stubdns
	local port_hex closed
	port_hex=$(printf '%04x' "$HTTP_PORT")
	closed=$(closed_port)
	run -0 dns_client raw --proxy "$PROXY" --hex 040100 --expect-close
	run -0 dns_client raw --proxy "$PROXY" --hex 0500 --expect-close
	run -0 dns_client raw --proxy "$PROXY" --hex "050100 05090001 7f000001 $port_hex" \
		--expect 05000507 --expect-close
	run -0 dns_client raw --proxy "$PROXY" --hex "050100 05010005 7f000001 $port_hex" \
		--expect 05000508 --expect-close
	run -0 dns_client raw --proxy "$PROXY" --hex "050100 0501000300 $port_hex" --expect-close
	run -0 dns_client raw --proxy "$PROXY" --hex "050100 05010101 7f000001 $port_hex $HTTP_GET" \
		--expect 0500 --expect-close
	run -0 dns_client raw --proxy "$PROXY" --hex "050102 0504 75736572 06 736563726574" \
		--expect 05ff --expect-close
	run -0 dns_client raw --proxy "$PROXY" --hex "ffffffffffffffffffffffff" --expect-close
	run -0 dns_client raw --proxy "$PROXY" --hex "05ff$(printf '00%.0s' {1..255})" --expect 0500
	run -0 dns_client hold --proxy "$PROXY" --seconds 0.2
	run -0 dns_client connect --proxy "$PROXY" --target "127.0.0.1:$closed" --expect-rep 5
	run -0 dns_client connect --proxy "$PROXY" --target "nonexistent.invalid:80" --expect-rep 4
	run -0 dns_client raw --proxy "$PROXY" --split-bytes --hex "050100 05010003" --expect 0500
	# still alive and serving
	pid_alive "$SERVER_PID" || fail "socksify-server died"
	dns_run "${CURL[@]}" --socks5 "$PROXY" -o "$BATS_TEST_TMPDIR/big" \
		"http://127.0.0.1:$HTTP_PORT/big.bin"
	assert_big_intact "$BATS_TEST_TMPDIR/big"
	run -0 dns_run "${CURL[@]}" --socks5-hostname "$PROXY" \
		"http://localhost:$HTTP_PORT/index.html"
	assert_output --partial "socksify e2e index"
	# localhost from the hosts file; only the unknown name reached the stub
	assert_stub_lookups nonexistent.invalid
}

# ---------------------------------------------------------------------------------
# Timeouts
# ---------------------------------------------------------------------------------

@test "--handshake-timeout 1: a silent client is closed within 3 s (not at once)" {
	start_server --handshake-timeout 1
	run -0 client hold --proxy "$PROXY" --expect-close-within 3 --min-seconds 0.5
	assert_line "reply="
}

# The listeners defer accepting (TCP_DEFER_ACCEPT, 1 s) until the greeting comes:
# the kernel holds a silent client about 1 s before handing it over, and that
# second counts towards the timeout (closed at 2 s, not 3).
@test "--handshake-timeout 2: a silent client is closed after 1.5 to 2.7 s" {
	start_server --handshake-timeout 2
	run -0 client hold --proxy "$PROXY" --expect-close-within 2.7 --min-seconds 1.5
	assert_line "reply="
}

@test "--handshake-timeout 1: a half greeting (05 02 00) is closed within 3 s" {
	start_server --handshake-timeout 1
	run -0 client hold --proxy "$PROXY" --hex 050200 --expect-close-within 3 \
		--min-seconds 0.5
	assert_line "reply="
}

@test "--handshake-timeout 1: a client stalled after the greeting, mid-request, is closed" {
	start_server --handshake-timeout 1
	run -0 client hold --proxy "$PROXY" --hex "050100 050100" --expect-close-within 3 \
		--min-seconds 0.5
	assert_line "reply=0500"
}

@test "--handshake-timeout does not cut an established relay" {
	start_server --handshake-timeout 1
	start_target echo-server
	run -0 client connect --proxy "$PROXY" --target "$TARGET" --echo-rounds 2 \
		--interval 1.5
}

@test "--idle-timeout 1: an idle relayed connection is closed within 3 s" {
	start_server --idle-timeout 1
	start_target echo-server
	run -0 client connect --proxy "$PROXY" --target "$TARGET" --echo-rounds 1 \
		--expect-close-within 3
}

@test "--idle-timeout 1: a connection with traffic every 0.4 s stays open for 2.4 s" {
	start_server --idle-timeout 1
	start_target echo-server
	run -0 client connect --proxy "$PROXY" --target "$TARGET" --echo-rounds 7 \
		--interval 0.4
	assert_line "echo_rounds=7"
}

@test "without --idle-timeout an idle relayed connection stays open (2 s)" {
	start_server
	start_target echo-server
	run -0 client connect --proxy "$PROXY" --target "$TARGET" --echo-rounds 1 \
		--expect-open-for 2
}

# ---------------------------------------------------------------------------------
# Connection limit
# ---------------------------------------------------------------------------------

# With the default -j (one loop per CPU): the loops count together.
@test "--max-conns 2: a 3rd client gets 05 ff and close; the 2 held relays keep working" {
	start_server --max-conns 2
	start_target echo-server
	run -0 client maxconns --proxy "$PROXY" --target "$TARGET" --held 2
	assert_line "refused_reply=05ff"
	assert_line "held_still_work=yes"
	assert_line "served_after_close=yes"
}

# ---------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------

# run_server_cmd ARGS...: runs the server in the foreground, at most 5 s
run_server_cmd() {
	run --separate-stderr timeout 5 "$SOCKSIFY_SERVER" "$@"
}

assert_one_line_error() {
	[[ $status == 2 ]] || fail "exit status $status, not 2; stderr: $stderr"
	[[ ${#stderr_lines[@]} == 1 && -n ${stderr_lines[0]} ]] ||
		fail "not one error line on stderr (${#stderr_lines[@]} lines): $stderr"
}

@test "refuses a non-loopback listener without -u: -l 0.0.0.0:PORT exits 2, one line" {
	run_server_cmd -l "0.0.0.0:$(free_port)"
	assert_one_line_error
	run_server_cmd -l "127.0.0.1:$(free_port)" -l "0.0.0.0:$(free_port)"
	assert_one_line_error
}

@test "refuses -l [::]:PORT without -u (exit 2, one line)" {
	require_ipv6
	run_server_cmd -l "[::]:$(free_port)"
	assert_one_line_error
}

@test "-l 0.0.0.0:PORT with --allow-open starts and serves" {
	local port
	port=$(free_port)
	# the destination is on this host, which a wildcard listener refuses without
	# --allow-local (server_policy.bats)
	start_server -l "0.0.0.0:$port" --allow-open --allow-local
	run -0 "${CURL[@]}" --socks5 "127.0.0.1:$port" "http://127.0.0.1:$HTTP_PORT/index.html"
	assert_output --partial "socksify e2e index"
}

@test "-l 0.0.0.0:PORT with -u starts (auth required) and serves" {
	local port
	port=$(free_port)
	start_server -l "0.0.0.0:$port" -u user:secret --allow-local
	run -0 "${CURL[@]}" --socks5 "127.0.0.1:$port" --proxy-user user:secret \
		"http://127.0.0.1:$HTTP_PORT/index.html"
	run ! "${CURL[@]}" --socks5 "127.0.0.1:$port" "http://127.0.0.1:$HTTP_PORT/index.html"
}

@test "bad options exit 2 with a one-line error" {
	local bad
	for bad in "-l nonsense" "-l 127.0.0.1" "-l 127.0.0.1:99999" "-l [::1" "-u nocolon" \
		"--bogus" "--max-conns abc" "--handshake-timeout -1" "--deny notacidr" \
		"--deny 10.0.0.0/33" "--deny 10.0.0.0/-0" "--deny 10.0.0.0/+8" "-b notanaddress" "-l"; do
		# shellcheck disable=SC2086 # split on purpose
		run_server_cmd $bad
		[[ $status == 2 && ${#stderr_lines[@]} == 1 ]] ||
			fail "'$bad': status $status, stderr: $stderr"
	done
}

@test "--help and --version exit 0 and print something" {
	run -0 timeout 5 "$SOCKSIFY_SERVER" --help
	assert_output --partial -- "--max-conns"
	run -0 timeout 5 "$SOCKSIFY_SERVER" --version
	assert_output --regexp '[0-9]+\.[0-9]+'
}

@test "-l 127.0.0.1:0 prints the real port on stderr and serves on it" {
	SERVER_LOG=$BATS_TEST_TMPDIR/server.log
	spawn "$SERVER_LOG" "$SOCKSIFY_SERVER" -l 127.0.0.1:0
	SERVER_PID=$SPAWNED_PID
	local i port=""
	for ((i = 0; i < 100; i++)); do
		port=$(sed -n 's/^socksify-server: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' \
			"$SERVER_LOG")
		[[ -n $port ]] && break
		sleep 0.05
	done
	[[ -n $port && $port != 0 ]] || fail "no 'listening on 127.0.0.1:PORT' line"
	run -0 "${CURL[@]}" --socks5 "127.0.0.1:$port" "http://127.0.0.1:$HTTP_PORT/index.html"
	assert_output --partial "socksify e2e index"
}

@test "-q: nothing on stderr, even while serving" {
	start_server -q
	run -0 "${CURL[@]}" --socks5 "$PROXY" "http://127.0.0.1:$HTTP_PORT/index.html"
	stop_server TERM
	assert_equal "$SERVER_STATUS" 0
	run cat "$SERVER_LOG"
	assert_output ""
}

@test "default listener is 127.0.0.1:1080" {
	[[ -z $(ss -Hltn 'sport = :1080') ]] || skip "port 1080 is in use"
	SERVER_LOG=$BATS_TEST_TMPDIR/server.log
	spawn "$SERVER_LOG" "$SOCKSIFY_SERVER"
	SERVER_PID=$SPAWNED_PID
	wait_listen 1080 "$SERVER_PID"
	run ss -Hltn 'sport = :1080'
	assert_output --partial "127.0.0.1:1080"
	run -0 "${CURL[@]}" --socks5 127.0.0.1:1080 "http://127.0.0.1:$HTTP_PORT/index.html"
}

# ---------------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------------

@test "SIGTERM -> exit status 0" {
	start_server
	run -0 "${CURL[@]}" --socks5 "$PROXY" "http://127.0.0.1:$HTTP_PORT/index.html"
	stop_server TERM
	assert_equal "$SERVER_STATUS" 0
}

@test "SIGINT -> exit status 0" {
	start_server
	stop_server INT
	assert_equal "$SERVER_STATUS" 0
}

@test "SIGTERM with a relay open -> exit status 0" {
	start_server
	start_target echo-server
	spawn "$BATS_TEST_TMPDIR/held.log" "${CLIENT[@]}" connect --proxy "$PROXY" \
		--target "$TARGET" --echo-rounds 1 --expect-open-for 30 --timeout 30
	sleep 0.5
	stop_server TERM
	assert_equal "$SERVER_STATUS" 0
}
