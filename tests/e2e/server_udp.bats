#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# End-to-end tests of socksify-server's UDP ASSOCIATE (RFC 1928 section 4,
# command 3, and the section 7 datagram header) on loopback: the raw python
# client (socks5_client.py udp) against a python UDP echo target.
# Run: SOCKSIFY_SERVER=build/cli/socksify-server bats tests/e2e/server_udp.bats
# (meson test --suite server sets SOCKSIFY_SERVER itself).
#
# Datagrams the server must drop are checked by waiting (1 s unless --quiet says
# otherwise) for a reply that must not come, and by the echo target's log (one
# line per datagram it received).

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
	UDP_PORT=""
	UDP_LOG=""
}

teardown() {
	local rc=0
	common_teardown || rc=$?
	if [[ -n $UDP_LOG && -s $UDP_LOG ]]; then
		echo "# --- UDP echo target log ($UDP_LOG):"
		sed 's/^/# /' "$UDP_LOG" | head -n 40
	fi
	return "$rc"
}

# client ARGS...: the raw python SOCKS5 client (see socks5_client.py udp --help)
client() {
	"${CLIENT[@]}" "$@"
}

have_ipv6() {
	[[ -z $(ipv6_loopback_error) ]]
}

# start_udp_echo [HOST...]: the UDP echo target on HOSTs (default 127.0.0.1), all
# on one free port; sets UDP_PORT and UDP_LOG (one line per datagram received:
# from=HOST:PORT to=HOST:PORT len=N).
start_udp_echo() {
	local hosts=("$@") args=() h i
	((${#hosts[@]})) || hosts=(127.0.0.1)
	for h in "${hosts[@]}"; do
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
	cat "$UDP_LOG" >&2
	fail "the UDP echo target did not start on ${hosts[*]}"
}

# target_got: the number of datagrams the echo target received
target_got() {
	grep -c '^from=' "$UDP_LOG" || true
}

# assert_target_got N: the echo target received exactly N datagrams (a dropped one
# must not reach it, even if its echo were lost)
assert_target_got() {
	local got
	got=$(target_got)
	[[ $got == "$1" ]] || fail "the echo target received $got datagrams, not $1: $(cat "$UDP_LOG")"
}

# value KEY: the value of the client's KEY=... line in $output
value() {
	sed -n "s/^$1=//p" <<<"$output" | head -n 1
}

# wait_assoc_lines N: waits (max 3 s) until the server's log has N lines about a
# UDP association (they are logged when it ends), then checks it has exactly N.
wait_assoc_lines() {
	local i n=0
	for ((i = 0; i < 60; i++)); do
		n=$(grep -c 'UDP ASSOCIATE' "$SERVER_LOG" || true)
		((n >= $1)) && break
		sleep 0.05
	done
	sleep 0.1
	n=$(grep -c 'UDP ASSOCIATE' "$SERVER_LOG" || true)
	[[ $n == "$1" ]] || fail "$n 'UDP ASSOCIATE' lines in the server log, not $1"
}

# assert_log_mentions_drops: the last association line counts dropped datagrams
assert_log_mentions_drops() {
	local line
	line=$(grep 'UDP ASSOCIATE' "$SERVER_LOG" | tail -n 1)
	grep -Eiq 'drop[a-z]*[ =:]+[1-9]|[1-9][0-9]* (datagrams? )?drop' <<<"$line" ||
		fail "the association's log line does not count the dropped datagrams: $line"
}

# A 1400-byte payload behind a good header to 127.0.0.1:$UDP_PORT, except that
# RSV, ATYP or the length is wrong: the server must drop them all.
malformed_datagrams() {
	local dst pl
	dst=7f000001$(printf '%04x' "$UDP_PORT")
	pl=$(printf 'ab%.0s' {1..1400})
	printf '%s\n' \
		"0001 00 01 $dst $pl" \
		"0100 00 01 $dst $pl" \
		"ffff 00 01 $dst $pl" \
		"0000 00 05 $dst $pl" \
		"0000 00 02 $dst $pl" \
		"0000 00 00 $dst $pl" \
		"0000 00 01 7f00" \
		"0000 00 01 7f000001 00" \
		"0000 00 04 00000000000000000000" \
		"0000 00 03 20 6c6f63616c" \
		"0000 00 03 00 $(printf '%04x' "$UDP_PORT") $pl" \
		"0000 00" \
		"00" \
		""
}

# ---------------------------------------------------------------------------------
# The reply, and datagrams both ways
# ---------------------------------------------------------------------------------

@test "UDP ASSOCIATE: reply 0, BND = 127.0.0.1:<real port>; 1/1400/8000/60000 bytes echo intact" {
	start_server
	start_udp_echo
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" \
		--echo 1 --echo 1400 --echo 8000 --echo 60000 --ask-peer
	assert_line "rep=0"
	assert_line "req=0.0.0.0:0"
	assert_line --regexp '^bnd=127\.0\.0\.1:[1-9][0-9]*$'
	# the header of each reply names the target (checked by the client, shown here)
	assert_line "echo=1 from=127.0.0.1:$UDP_PORT"
	assert_line "echo=1400 from=127.0.0.1:$UDP_PORT"
	assert_line "echo=8000 from=127.0.0.1:$UDP_PORT"
	assert_line "echo=60000 from=127.0.0.1:$UDP_PORT"
	assert_line "echoed=4"
	# the target got the bare payloads from the server's outgoing socket, not
	# from the client's socket and not from the relay socket the client talks to
	local saw local_
	saw=$(value target_saw)
	local_=$(value udp_local)
	[[ $saw == 127.0.0.1:* ]] || fail "the target saw the datagrams come from $saw"
	[[ $saw != "$local_" ]] || fail "the target saw the client's own socket $saw"
	run -0 cat "$UDP_LOG"
	assert_line "from=$saw to=127.0.0.1:$UDP_PORT len=1"
	assert_line "from=$saw to=127.0.0.1:$UDP_PORT len=1400"
	assert_line "from=$saw to=127.0.0.1:$UDP_PORT len=8000"
	assert_line "from=$saw to=127.0.0.1:$UDP_PORT len=60000"
	assert_line "from=$saw to=127.0.0.1:$UDP_PORT len=5"
	assert_target_got 5
}

@test "a burst of 48 datagrams sent at once all echo intact (recvmmsg/sendmmsg); -v counts them" {
	start_server -v
	start_udp_echo
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" \
		--burst 48 --echo 60000 --burst 48
	assert_line "burst=48"
	assert_line "echoed=97"
	assert_target_got 97
	wait_assoc_lines 1
	run -0 grep 'UDP ASSOCIATE' "$SERVER_LOG"
	assert_output --partial "up 97 datagrams"
	assert_output --partial "down 97 datagrams"
	assert_output --partial "dropped 0"
}

@test "-b 127.0.0.2: the target sees the datagrams come from 127.0.0.2" {
	start_server -b 127.0.0.2
	start_udp_echo
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" --echo 1400 --ask-peer
	assert_line --regexp '^bnd=127\.0\.0\.1:[1-9][0-9]*$'
	assert_line --regexp '^target_saw=127\.0\.0\.2:[1-9][0-9]*$'
	assert_line "echo=1400 from=127.0.0.1:$UDP_PORT"
	run -0 grep -c '^from=127\.0\.0\.2:' "$UDP_LOG"
	assert_output 2
}

@test "the largest datagrams echo; a reply too big for the header is dropped, not cut" {
	local hosts=(127.0.0.1) args=() query
	have_ipv6 && hosts+=(::1)
	start_server -v
	start_udp_echo "${hosts[@]}"
	# 65507 (the most an IPv4 datagram carries) = 10 (header) + 65497
	args=(--echo 65497)
	# "?size=65498": the target answers with 65498 bytes, which do not fit
	query=$(printf '?size=65498' | od -An -tx1 | tr -d ' \n')
	args+=(--raw-hex "0000 00 01 7f000001 $(printf '%04x' "$UDP_PORT") $query")
	# an IPv6 destination: 22 header bytes
	have_ipv6 && args+=(--echo "65485@[::1]:$UDP_PORT")
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" "${args[@]}" --echo 100
	assert_line "echo=65497 from=127.0.0.1:$UDP_PORT"
	assert_line "echo=100 from=127.0.0.1:$UDP_PORT"
	# the query reached the target: the server dropped its answer
	run -0 grep -c 'len=11$' "$UDP_LOG"
	assert_output 1
	pid_alive "$SERVER_PID" || fail "socksify-server died"
	wait_assoc_lines 1
	assert_log_mentions_drops
}

@test "IPv6 target [::1]: 1/1400/8000/60000 bytes echo intact, reply header ATYP 4 [::1]" {
	require_ipv6
	start_server
	start_udp_echo ::1
	run -0 client udp --proxy "$PROXY" --target "[::1]:$UDP_PORT" \
		--echo 1 --echo 1400 --echo 8000 --echo 60000 --ask-peer
	assert_line "echo=1 from=[::1]:$UDP_PORT"
	assert_line "echo=60000 from=[::1]:$UDP_PORT"
	assert_line "echoed=4"
	assert_line --regexp '^target_saw=\[::1\]:[1-9][0-9]*$'
	assert_target_got 5
}

@test "IPv6 control connection ([::1] listener): BND is [::1]; IPv4 and IPv6 targets" {
	require_ipv6
	start_server -l "[::1]:$(free_port)"
	start_udp_echo 127.0.0.1 ::1
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" \
		--echo 1400 --echo "8000@[::1]:$UDP_PORT"
	assert_line "req=[::]:0"
	assert_line --regexp '^bnd=\[::1\]:[1-9][0-9]*$'
	assert_line "echo=1400 from=127.0.0.1:$UDP_PORT"
	assert_line "echo=8000 from=[::1]:$UDP_PORT"
}

@test "BND is the address the client reached: -l 127.0.0.3 -> BND 127.0.0.3" {
	start_server -l "127.0.0.3:$(free_port)"
	start_udp_echo
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" --echo 100
	# the control connection comes from 127.0.0.1, the datagrams too
	assert_line --regexp '^udp_local=127\.0\.0\.1:[0-9]+$'
	assert_line --regexp '^bnd=127\.0\.0\.3:[1-9][0-9]*$'
	assert_line "echoed=1"
}

@test "a wildcard listener (-l 0.0.0.0 with -u): BND is 127.0.0.1, never 0.0.0.0" {
	local port
	port=$(free_port)
	# the echo target is on this host: --allow-local (see server_policy.bats)
	start_server -l "0.0.0.0:$port" -u user:secret --allow-local
	start_udp_echo
	run -0 client udp --proxy "127.0.0.1:$port" --user user --pass secret \
		--target "127.0.0.1:$UDP_PORT" --echo 100
	assert_line --regexp '^bnd=127\.0\.0\.1:[1-9][0-9]*$'
	assert_line "echoed=1"
}

@test "a domain-name destination (ATYP 3 localhost) is resolved and echoes" {
	local hosts=(127.0.0.1)
	have_ipv6 && hosts+=(::1)
	start_server
	start_udp_echo "${hosts[@]}"
	run -0 client udp --proxy "$PROXY" --target "localhost:$UDP_PORT" \
		--echo 100 --echo 8000 --echo 100
	# the reply header carries the address localhost resolved to, not the name
	assert_line --regexp "^echo=8000 from=(127\\.0\\.0\\.1|\\[::1\\]):$UDP_PORT\$"
	assert_line "echoed=3"
	assert_target_got 3
}

@test "a name lookup that hangs does not hold up other datagrams" {
	# the server, the echo target and the client in a namespace whose lookups
	# end at a stub name server that never answers (helpers.bash); a 3 s timeout
	stubdns_setup silent
	printf 'nameserver 127.0.0.1\noptions timeout:3 attempts:1\n' >"/etc/netns/$DNSNS/resolv.conf"
	SERVER_WRAP=(ip netns exec "$DNSNS")
	LISTEN_WRAP=(ip netns exec "$DNSNS")
	start_server -l 127.0.0.1:1080
	# shellcheck disable=SC2034 # read by start_server, wait_listen
	SERVER_WRAP=() LISTEN_WRAP=()
	CLIENT=(ip netns exec "$DNSNS" "${CLIENT[@]}") # for start_udp_echo and client
	start_udp_echo
	# while slow.example is being looked up, a datagram to an address must echo
	# within 1 s (the lookup takes 3 s)
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" --timeout 1 \
		--quiet 0.1 --no-reply "100@slow.example:$UDP_PORT" --echo 100 --echo 1400
	assert_line "echoed=2"
	assert_target_got 2
	assert_stub_lookups slow.example
}

# ---------------------------------------------------------------------------------
# Who may send: the client's IP, the requested or the first port
# ---------------------------------------------------------------------------------

@test "a datagram from another source IP (127.0.0.2) is dropped; the client's still work" {
	start_server
	start_udp_echo
	# the other IP first: it must not pin the association's port either
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" \
		--from-ip 127.0.0.2 --echo 100 --from-ip 127.0.0.2 --echo 1400
	assert_line --regexp '^udp_local=127\.0\.0\.1:'
	assert_line --regexp '^sent_dropped=from=127\.0\.0\.2:'
	assert_line "silent=1s"
	assert_line "echoed=2"
	assert_target_got 2
	run -0 grep -c 'len=1400$' "$UDP_LOG"
}

@test "request port 0: the first datagram's port is pinned, another port is dropped" {
	start_server
	start_udp_echo
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" \
		--echo 100 --from-other-port --echo 100 --from-other-port --echo 100
	assert_line "req=0.0.0.0:0"
	assert_line "echoed=3"
	assert_target_got 3
}

@test "request with the client's port: only that port is accepted" {
	start_server
	start_udp_echo
	# another port first: with an explicit port nothing is pinned by it
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" --req-addr self \
		--from-other-port --echo 100 --from-other-port --echo 1400
	local local_
	local_=$(value udp_local)
	assert_line "req=$local_"
	assert_line "echoed=2"
	assert_target_got 2
}

@test "request 0.0.0.0 with the client's port: only that port is accepted" {
	start_server
	start_udp_echo
	local port
	port=$("$PYTHON" -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" --src-port "$port" \
		--req-addr "0.0.0.0:$port" --from-other-port --echo 100
	assert_line "udp_local=127.0.0.1:$port"
	assert_line "echoed=1"
	assert_target_got 1
}

# ---------------------------------------------------------------------------------
# The request's DST: the relay's family and the one source accepted (issue 12)
# ---------------------------------------------------------------------------------

@test "IPv6 control connection, IPv4 UDP socket named in the request: BND 127.0.0.1; IPv4 and IPv6 targets" {
	require_ipv6
	start_server -l "[::1]:$(free_port)"
	start_udp_echo 127.0.0.1 ::1
	run -0 client udp --proxy "$PROXY" --bind-src 127.0.0.1 --req-addr self \
		--target "127.0.0.1:$UDP_PORT" --echo 1400 --echo "8000@[::1]:$UDP_PORT" --ask-peer
	assert_line --regexp '^req=127\.0\.0\.1:[1-9][0-9]*$'
	assert_line --regexp '^bnd=127\.0\.0\.1:[1-9][0-9]*$'
	assert_line "echo=1400 from=127.0.0.1:$UDP_PORT"
	assert_line "echo=8000 from=[::1]:$UDP_PORT"
	assert_line "echoed=2"
	assert_target_got 3
}

@test "IPv4 control connection, IPv6 UDP socket named in the request: BND [::1]; IPv6 and IPv4 targets" {
	require_ipv6
	start_server
	start_udp_echo 127.0.0.1 ::1
	run -0 client udp --proxy "$PROXY" --bind-src ::1 --req-addr self \
		--target "[::1]:$UDP_PORT" --echo 1400 --echo "8000@127.0.0.1:$UDP_PORT"
	assert_line --regexp '^req=\[::1\]:[1-9][0-9]*$'
	assert_line --regexp '^bnd=\[::1\]:[1-9][0-9]*$'
	assert_line "echo=1400 from=[::1]:$UDP_PORT"
	assert_line "echo=8000 from=127.0.0.1:$UDP_PORT"
	assert_target_got 2
}

@test "IPv6 control connection, unbound IPv4 UDP socket, request 0.0.0.0:0 (ATYP 1): BND 127.0.0.1; IPv4 and IPv6 targets; a second source is dropped" {
	require_ipv6
	start_server -l "[::1]:$(free_port)" -v
	start_udp_echo 127.0.0.1 ::1
	run -0 client udp --proxy "$PROXY" --bind-src 0.0.0.0 --req-addr 0.0.0.0:0 \
		--target "127.0.0.1:$UDP_PORT" --echo 1400 --echo "8000@[::1]:$UDP_PORT" \
		--from-ip 127.0.0.2 --from-other-port --echo 100
	assert_line "req=0.0.0.0:0"
	assert_line --regexp '^bnd=127\.0\.0\.1:[1-9][0-9]*$'
	assert_line "echo=1400 from=127.0.0.1:$UDP_PORT"
	assert_line "echo=8000 from=[::1]:$UDP_PORT"
	# the first datagram's source (127.0.0.1 and its port) is the only one
	assert_line --regexp '^sent_dropped=from=127\.0\.0\.2:'
	assert_line --regexp '^sent_dropped=from=0\.0\.0\.0:'
	assert_line "echoed=3"
	assert_target_got 3
	wait_assoc_lines 1
	assert_log_mentions_drops
}

@test "IPv4 control connection, unbound IPv6 UDP socket, request [::]:0 (ATYP 4): BND [::1]; IPv6 and IPv4 targets; another port is dropped" {
	require_ipv6
	start_server
	start_udp_echo 127.0.0.1 ::1
	run -0 client udp --proxy "$PROXY" --bind-src :: --req-addr "[::]:0" \
		--target "[::1]:$UDP_PORT" --echo 1400 --echo "8000@127.0.0.1:$UDP_PORT" \
		--from-other-port --echo 100
	assert_line "req=[::]:0"
	assert_line --regexp '^bnd=\[::1\]:[1-9][0-9]*$'
	assert_line "echo=1400 from=[::1]:$UDP_PORT"
	assert_line "echo=8000 from=127.0.0.1:$UDP_PORT"
	assert_line --regexp '^sent_dropped=from=\[::\]:'
	assert_line "echoed=3"
	assert_target_got 3
}

@test "IPv6 control connection, request 0.0.0.0:PORT (ATYP 1): another port first is dropped and pins nothing; PORT is accepted" {
	require_ipv6
	start_server -l "[::1]:$(free_port)"
	start_udp_echo
	local port
	port=$("$PYTHON" -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
	run -0 client udp --proxy "$PROXY" --bind-src 127.0.0.1 --src-port "$port" \
		--req-addr "0.0.0.0:$port" --target "127.0.0.1:$UDP_PORT" \
		--from-other-port --echo 100 --from-other-port --echo 1400
	assert_line "udp_local=127.0.0.1:$port"
	assert_line --regexp '^bnd=127\.0\.0\.1:[1-9][0-9]*$'
	assert_line "echoed=2"
	assert_target_got 2
}

@test "the shim: an unbound IPv4 UDP socket through socksify-server known only at [::1] (socks5h): control over IPv6, IPv4 relay, 3 datagrams echo" {
	require_ipv6
	local socksify=${SOCKSIFY:-$SOCKSIFY_BUILD/cli/socksify} preload=()
	# (socksify finds the shim of its own build tree)
	[[ -x $socksify ]] || fail "socksify not built: $socksify"
	# an ASan launcher and shim (build-asan) in an uninstrumented python:
	# libasan first (as scripts/test's shim-asan pass does)
	if readelf -d "$socksify" 2>/dev/null | grep -q 'libasan'; then
		preload=(env "LD_PRELOAD=$(gcc -print-file-name=libasan.so)"
			"ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0")
	fi
	start_server -l "[::1]:$(free_port)" -v
	start_udp_echo
	run -0 env SOCKSIFY_PROXY_LOOPBACK=1 "${preload[@]}" timeout 20 "$socksify" -v \
		-p "socks5h://$PROXY" -- "$PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
for n in (1, 1400, 8000):
    s.sendto(b"x" * n, ("127.0.0.1", int(sys.argv[1])))
    data, src = s.recvfrom(9000)
    print("echo", len(data), src[0], src[1])
' "$UDP_PORT"
	assert_line "echo 1 127.0.0.1 $UDP_PORT"
	assert_line "echo 1400 127.0.0.1 $UDP_PORT"
	assert_line "echo 8000 127.0.0.1 $UDP_PORT"
	assert_output --regexp 'udp associate via \[::1\]:[0-9]+: relay 127\.0\.0\.1:[1-9]'
	# the datagrams went through the server: the request was ATYP 1 0.0.0.0
	# with the socket's port, over the IPv6 control connection
	wait_assoc_lines 1
	run -0 grep 'UDP ASSOCIATE' "$SERVER_LOG"
	assert_output --regexp '^socksify-server: \[::1\]:[0-9]+ UDP ASSOCIATE 0\.0\.0\.0:[1-9][0-9]*: .*up 3 datagrams'
	assert_target_got 3
}

@test "an IPv4 client (IPv4 control connection and socket) reaches an IPv6 target [::1]" {
	require_ipv6
	start_server
	start_udp_echo ::1
	run -0 client udp --proxy "$PROXY" --target "[::1]:$UDP_PORT" --echo 100 --echo 8000 --ask-peer
	assert_line "req=0.0.0.0:0"
	assert_line --regexp '^bnd=127\.0\.0\.1:[1-9][0-9]*$'
	assert_line --regexp '^target_saw=\[::1\]:[1-9][0-9]*$'
	assert_line "echoed=2"
}

@test "declared source 127.0.0.2 (control from 127.0.0.1): relayed; 127.0.0.3 and the control's own IP dropped" {
	start_server
	start_udp_echo
	run -0 client udp --proxy "$PROXY" --bind-src 127.0.0.2 --req-addr self \
		--target "127.0.0.1:$UDP_PORT" --echo 100 --from-ip 127.0.0.3 --from-ip 127.0.0.1 \
		--from-other-port --echo 1400
	local local_
	local_=$(value udp_local)
	[[ $local_ == 127.0.0.2:* ]] || fail "the UDP socket is not on 127.0.0.2: $local_"
	assert_line "req=$local_"
	assert_line --regexp '^bnd=127\.0\.0\.1:[1-9][0-9]*$'
	assert_line --regexp '^sent_dropped=from=127\.0\.0\.3:'
	assert_line --regexp '^sent_dropped=from=127\.0\.0\.1:'
	assert_line "echoed=2"
	assert_target_got 2
}

@test "declared address 127.0.0.2 with port 0: its first port is pinned" {
	start_server
	start_udp_echo
	run -0 client udp --proxy "$PROXY" --bind-src 127.0.0.2 --req-addr 127.0.0.2:0 \
		--target "127.0.0.1:$UDP_PORT" --echo 100 --from-other-port --echo 100
	assert_line "req=127.0.0.2:0"
	assert_line "echoed=2"
	assert_target_got 2
}

# ---------------------------------------------------------------------------------
# Datagrams to a name wait for its lookup, in order (issue 12, item 7)
# ---------------------------------------------------------------------------------

# start_server_slow_dns NAME [ARGS...]: start_server in a private mount namespace
# whose /etc/resolv.conf points at slow_dns.py on a random 127/8 address, which
# answers NAME A 127.0.0.1 (and the rest with no data) 300 ms after each query;
# its log is DNS_LOG ("query TYPE NAME" per query).
start_server_slow_dns() {
	local name=$1 ns i
	shift
	grep -Eq '^hosts:[[:space:]]+files[[:space:]]+dns[[:space:]]*$' /etc/nsswitch.conf ||
		skip "/etc/nsswitch.conf hosts is not 'files dns'"
	unshare -m true 2>/dev/null || skip "no mount namespaces (unshare -m)"
	ns=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
	DNS_LOG=$BATS_TEST_TMPDIR/dns.log
	spawn "$DNS_LOG" "$PYTHON" "$E2E_DIR/slow_dns.py" "$ns" "$name" 127.0.0.1 300
	for ((i = 0; i < 100; i++)); do
		grep -q ready "$DNS_LOG" && break
		pid_alive "$SPAWNED_PID" || break
		sleep 0.05
	done
	grep -q ready "$DNS_LOG" || fail "the slow name server did not start on $ns: $(cat "$DNS_LOG")"
	printf 'nameserver %s\noptions timeout:3 attempts:1\n' "$ns" >"$BATS_TEST_TMPDIR/resolv.conf"
	# shellcheck disable=SC2016
	SERVER_WRAP=(unshare -m sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
		"$BATS_TEST_TMPDIR/resolv.conf")
	start_server "$@"
	# shellcheck disable=SC2034 # read by start_server
	SERVER_WRAP=()
}

@test "a burst of 20 datagrams to a name being looked up (300 ms) all arrive, in order" {
	local name=udpq$RANDOM.test
	start_server_slow_dns "$name" -v
	start_udp_echo
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" \
		--resolves-to "$name=127.0.0.1" --burst-ordered "20@$name:$UDP_PORT" \
		--burst-ordered "20@$name:$UDP_PORT"
	assert_line "burst_ordered=20"
	assert_line "echoed=40"
	assert_target_got 40
	# one lookup, by the server (A and AAAA)
	[[ $(grep -c "^query 1 $name\$" "$DNS_LOG") == 1 ]] ||
		fail "not one A query for $name: $(cat "$DNS_LOG")"
	wait_assoc_lines 1
	run grep 'UDP ASSOCIATE' "$SERVER_LOG"
	assert_output --partial "up 40 datagrams"
	assert_output --partial "dropped 0"
}

@test "datagrams held for lookups are bounded (64 per association): the rest dropped, -v says so" {
	local name=udpq$RANDOM.test
	start_server_slow_dns "$name" -v
	start_udp_echo
	local args=() i
	for ((i = 0; i < 70; i++)); do
		args+=(--fire "100@$name:$UDP_PORT")
	done
	# 70 at once while the name resolves: 64 reach the target, 6 are dropped
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" "${args[@]}" --sleep 1
	assert_target_got 64
	wait_assoc_lines 2
	run grep 'UDP ASSOCIATE' "$SERVER_LOG"
	assert_output --partial "$name: too many datagrams wait for lookups, 1 datagram dropped"
	assert_output --partial "dropped 6"
}

@test "datagrams held for a name that does not resolve are dropped, -v says how many" {
	start_server_slow_dns known.test -v
	start_udp_echo
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" --quiet 0.1 \
		--no-reply "100@nosuch$RANDOM.test:$UDP_PORT" --no-reply "100@nosuch$RANDOM.test:$UDP_PORT" \
		--sleep 0.8 --echo 100
	assert_target_got 1
	wait_assoc_lines 3
	run grep 'UDP ASSOCIATE' "$SERVER_LOG"
	assert_output --regexp 'nosuch[0-9]+\.test: .*, 1 datagram dropped'
	assert_output --partial "dropped 2"
}

# ---------------------------------------------------------------------------------
# What is dropped
# ---------------------------------------------------------------------------------

@test "FRAG != 0 (1, 0x80, 0xff) is dropped; then a whole datagram works" {
	start_server
	start_udp_echo
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" \
		--frag 1 --frag 128 --frag 255 --echo 100
	assert_line "sent_dropped=frag=1"
	assert_line "echoed=1"
	assert_target_got 1
}

@test "malformed headers (bad RSV, bad ATYP, truncated, empty) are dropped; -v counts them" {
	start_server -v
	start_udp_echo
	local args=() d
	while IFS= read -r d; do
		args+=(--raw-hex "$d")
	done < <(malformed_datagrams)
	((${#args[@]} == 28)) || fail "malformed_datagrams: ${#args[@]} arguments"
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" \
		--echo 100 "${args[@]}" --echo 1400
	assert_line "echoed=2"
	assert_target_got 2
	pid_alive "$SERVER_PID" || fail "socksify-server died"
	wait_assoc_lines 1
	assert_log_mentions_drops
}

@test "--deny 127.0.0.0/8 drops datagrams to 127.0.0.1; [::1] still echoes" {
	require_ipv6
	start_server --deny 127.0.0.0/8
	start_udp_echo 127.0.0.1 ::1
	# 0.0.0.0 and ::ffff:127.0.0.1 reach 127.0.0.1 too
	local args=(--no-reply 100 --echo "1400@[::1]:$UDP_PORT" --no-reply "100@0.0.0.0:$UDP_PORT"
		--no-reply "100@[::ffff:127.0.0.1]:$UDP_PORT")
	# a name that resolves only into the range is denied as well
	if [[ $(getent ahosts localhost | awk '{ print $1 }' | sort -u) == 127.0.0.1 ]]; then
		args+=(--no-reply "100@localhost:$UDP_PORT")
	fi
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" "${args[@]}" \
		--echo "100@[::1]:$UDP_PORT"
	assert_line "echoed=2"
	assert_target_got 2
	run -0 grep -c "to=\\[::1\\]:$UDP_PORT" "$UDP_LOG"
	assert_output 2
}

# ---------------------------------------------------------------------------------
# The end of an association
# ---------------------------------------------------------------------------------

@test "closing the TCP control connection ends the association; -v logs one line" {
	start_server -v
	start_udp_echo
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" \
		--echo 100 --echo 100 --close-then-send
	assert_line "echoed=2"
	assert_line --regexp '^gone=(timeout|refused)$'
	assert_target_got 2
	wait_assoc_lines 1
	run -0 grep 'UDP ASSOCIATE' "$SERVER_LOG"
	assert_output --regexp '127\.0\.0\.1:[0-9]+'
}

# The association's watches were freed with it while later events of the same
# batch still named them (a use after free: the ASan build reports it; the
# plain one crashed once under server_garbage.bats). The server is stopped so
# that the end, a reply and a datagram come in one batch, the end first.
# MALLOC_PERTURB_ makes glibc fill freed memory (0x41 bytes: a watch with
# descriptor 0x41414141 and callback 0x4141414141414141), so that the plain
# build crashes at such a use too.
@test "the control connection ends in the same batch of events as a reply and a datagram: the server lives on" {
	MALLOC_PERTURB_=65 start_server -v -j 1
	start_udp_echo
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" \
		--echo 100 --close-while-stopped "$SERVER_PID"
	assert_line "closed_while_stopped=yes"
	assert_line --regexp '^gone=(timeout|refused)$'
	pid_alive "$SERVER_PID" || fail "socksify-server died: $(cat "$SERVER_LOG")"
	wait_assoc_lines 1
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" --echo 100
	assert_line "echoed=1"
	if grep -Eq 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$SERVER_LOG"; then
		fail "a sanitizer report in the server's log: $(cat "$SERVER_LOG")"
	fi
}

@test "--idle-timeout 1: an idle association ends, the server closes the TCP connection" {
	start_server --idle-timeout 1
	start_udp_echo
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" \
		--echo 100 --min-seconds 0.5 --expect-tcp-close-within 3 --expect-gone
	assert_line --regexp '^tcp_closed_after=[0-9.]+$'
	assert_line --regexp '^gone=(timeout|refused)$'
	assert_target_got 1
}

@test "--idle-timeout 1: a datagram every 0.4 s keeps the association for 2.4 s" {
	start_server --idle-timeout 1
	start_udp_echo
	local args=(--echo 100) i
	for ((i = 0; i < 6; i++)); do
		args+=(--sleep 0.4 --echo 100)
	done
	run -0 client udp --proxy "$PROXY" --target "127.0.0.1:$UDP_PORT" "${args[@]}" --tcp-open
	assert_line "echoed=7"
	assert_line "tcp_open=yes"
}

@test "SIGTERM with associations open -> exit status 0" {
	start_server
	start_udp_echo
	spawn "$BATS_TEST_TMPDIR/held.log" "${CLIENT[@]}" udp --proxy "$PROXY" \
		--target "127.0.0.1:$UDP_PORT" --echo 100 --sleep 20 --timeout 25
	local i
	for ((i = 0; i < 100; i++)); do
		grep -q '^echoed=\|^echo=' "$BATS_TEST_TMPDIR/held.log" && break
		sleep 0.05
	done
	grep -q '^echo=100' "$BATS_TEST_TMPDIR/held.log" ||
		fail "the held association did not start: $(cat "$BATS_TEST_TMPDIR/held.log")"
	stop_server TERM
	assert_equal "$SERVER_STATUS" 0
}

# ---------------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------------

@test "-u user:secret: UDP ASSOCIATE after RFC 1929 works; no or wrong credentials fail" {
	start_server -u user:secret
	start_udp_echo
	run -0 client udp --proxy "$PROXY" --user user --pass secret \
		--target "127.0.0.1:$UDP_PORT" --echo 1400 --echo 60000
	assert_line "method=02"
	assert_line "auth=00"
	assert_line "echoed=2"
	run -0 client udp --proxy "$PROXY" --methods 00 --expect-method ff \
		--target "127.0.0.1:$UDP_PORT"
	assert_line "closed=yes"
	run -0 client udp --proxy "$PROXY" --user user --pass wrong --expect-auth-fail \
		--target "127.0.0.1:$UDP_PORT"
	assert_line "closed=yes"
	assert_target_got 2
}

# ---------------------------------------------------------------------------------
# All of it against one server
# ---------------------------------------------------------------------------------

@test "all of the above against one server (-v); then it still serves curl CONNECT" {
	local hosts=(127.0.0.1)
	have_ipv6 && hosts+=(::1)
	start_server -v
	start_udp_echo "${hosts[@]}"
	local fds
	fds=$(find "/proc/$SERVER_PID/fd" -mindepth 1 | wc -l)
	local tgt=127.0.0.1:$UDP_PORT args=() d n=0
	while IFS= read -r d; do
		args+=(--raw-hex "$d")
	done < <(malformed_datagrams)
	run -0 client udp --proxy "$PROXY" --target "$tgt" --quiet 0.5 \
		--echo 1 --echo 60000 --from-ip 127.0.0.2 --from-other-port --frag 1 \
		"${args[@]}" --echo 8000 --echo "100@localhost:$UDP_PORT"
	((++n))
	assert_line "echoed=4"
	if have_ipv6; then
		run -0 client udp --proxy "$PROXY" --target "[::1]:$UDP_PORT" --echo 60000
		((++n))
	fi
	run -0 client udp --proxy "$PROXY" --target "$tgt" --req-addr self --quiet 0.5 \
		--from-other-port --echo 1400 --close-then-send
	((++n))
	# many associations open at once, each with its own relay socket
	local pids=() i
	for ((i = 0; i < 8; i++)); do
		client udp --proxy "$PROXY" --target "$tgt" --echo 1400 --sleep 0.3 --echo 8000 \
			>"$BATS_TEST_TMPDIR/par$i.log" 2>&1 3>&- &
		pids+=($!)
		echo "$!" >>"$(pidfile)"
		((++n))
	done
	for i in "${!pids[@]}"; do
		wait "${pids[i]}" || fail "parallel association $i: $(cat "$BATS_TEST_TMPDIR/par$i.log")"
	done
	run -0 cat "$BATS_TEST_TMPDIR"/par*.log
	run -0 grep -c '^bnd=' <<<"$output"
	assert_output 8
	# the refused and failed handshakes
	run -0 client udp --proxy "$PROXY" --target "$tgt" --methods 02 --expect-method ff
	pid_alive "$SERVER_PID" || fail "socksify-server died"
	wait_assoc_lines "$n"
	# every association's sockets are closed
	assert_equal "$(find "/proc/$SERVER_PID/fd" -mindepth 1 | wc -l)" "$fds"
	# and TCP CONNECT still works
	"${CURL[@]}" --socks5 "$PROXY" -o "$BATS_TEST_TMPDIR/big" "http://127.0.0.1:$HTTP_PORT/big.bin"
	assert_equal "$(sha256sum "$BATS_TEST_TMPDIR/big" | cut -d' ' -f1)" "$BIG_SHA"
	run -0 "${CURL[@]}" --socks5-hostname "$PROXY" "http://localhost:$HTTP_PORT/index.html"
	assert_output --partial "socksify e2e index"
	stop_server TERM
	assert_equal "$SERVER_STATUS" 0
}
