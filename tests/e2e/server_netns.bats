#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# socksify-server's reply codes for failures that loopback cannot produce: no
# route, an unreachable or prohibited route, a destination that never answers.
# Each test builds a private network namespace (only lo, plus the routes it
# needs), runs the server and the raw client inside it, and deletes it in
# teardown. Also: every resolved address is tried in order before failing.
# Needs root (CI runs as root).

# shellcheck disable=SC2030,SC2031,SC2154

bats_require_minimum_version 1.5.0

setup_file() {
	load helpers
	make_www
}

setup() {
	load helpers
	common_setup
	NS=""
	if ((EUID != 0)); then
		skip "needs root to create network namespaces (CI runs as root)"
	fi
	NS=sxs-srv-$$-$BATS_TEST_NUMBER
	ip netns add "$NS"
	in_ns ip link set lo up
}

teardown() {
	common_teardown
	if [[ -n $NS ]]; then
		ip netns del "$NS" 2>/dev/null || true
	fi
}

in_ns() {
	ip netns exec "$NS" "$@"
}

# ns_server ARGS...: socksify-server -v inside the namespace on 127.0.0.1:1080.
ns_server() {
	SERVER_LOG=$BATS_TEST_TMPDIR/server.log
	# ip itself, not a function: $! must be the PID that becomes the server
	ip netns exec "$NS" "${NS_WRAP[@]}" "$SOCKSIFY_SERVER" -v -l 127.0.0.1:1080 "$@" \
		2>"$SERVER_LOG" 3>&- &
	SERVER_PID=$!
	echo "$SERVER_PID" >>"$(pidfile)"
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -n $(in_ns ss -Hltn 'sport = :1080') ]] && return 0
		sleep 0.05
	done
	cat "$SERVER_LOG" >&2
	fail "socksify-server did not listen inside $NS"
}

# ns_server_hosts HOSTS ARGS...: ns_server with HOSTS as its /etc/hosts (a private
# mount namespace, so nothing else sees it).
ns_server_hosts() {
	local hosts=$1
	shift
	# shellcheck disable=SC2016
	NS_WRAP=(unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$hosts")
	ns_server "$@"
	NS_WRAP=()
}
NS_WRAP=()

ns_client() {
	in_ns "${CLIENT[@]}" "$@"
}

@test "no route to the destination -> reply 3 (network unreachable)" {
	ns_server
	run -0 ns_client connect --proxy 127.0.0.1:1080 --target 198.18.0.1:80 --expect-rep 3
	run -0 grep -F '198.18.0.1:80: reply 3' "$SERVER_LOG"
}

@test "an 'unreachable' route -> reply 4 (host unreachable)" {
	in_ns ip route add unreachable 198.18.3.0/24
	ns_server
	run -0 ns_client connect --proxy 127.0.0.1:1080 --target 198.18.3.1:80 --expect-rep 4
}

@test "a 'prohibit' route (EACCES) -> reply 2 (not allowed)" {
	in_ns ip route add prohibit 198.18.4.0/24
	ns_server
	run -0 ns_client connect --proxy 127.0.0.1:1080 --target 198.18.4.1:80 --expect-rep 2
}

@test "a destination that never answers: --connect-timeout 1 -> reply 4 after about 1 s" {
	# a veth whose peer is down: the SYN is never answered
	in_ns ip link add sxs0 type veth peer name sxs1
	in_ns ip addr add 198.18.5.1/24 dev sxs0
	in_ns ip link set sxs0 up
	ns_server --connect-timeout 1
	local start=$SECONDS
	run -0 ns_client connect --proxy 127.0.0.1:1080 --target 198.18.5.2:80 --expect-rep 4 \
		--timeout 10
	((SECONDS - start <= 4)) || fail "reply took $((SECONDS - start)) s"
	run -0 grep -F 'timed out' "$SERVER_LOG"
}

@test "a name with several addresses: a refused first address falls through to the next" {
	# multi.test resolves to ::1 (nothing listens there on the port) and 127.0.0.1
	# (the HTTP server); getaddrinfo puts ::1 first.
	in_ns "$PYTHON" -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' ||
		skip "no IPv6 loopback in the namespace"
	printf '::1 multi.test\n127.0.0.1 multi.test\n' >"$BATS_TEST_TMPDIR/hosts"
	local i
	ip netns exec "$NS" "$PYTHON" -m http.server --bind 127.0.0.1 --directory "$WWW" 8080 \
		>/dev/null 2>&1 3>&- &
	echo $! >>"$(pidfile)"
	ns_server_hosts "$BATS_TEST_TMPDIR/hosts"
	for ((i = 0; i < 100; i++)); do
		[[ -n $(in_ns ss -Hltn 'sport = :8080') ]] && break
		sleep 0.05
	done
	run -0 in_ns curl --silent --show-error --max-time 10 \
		--socks5-hostname 127.0.0.1:1080 http://multi.test:8080/index.html
	assert_output --partial 'socksify e2e index'
	run -0 grep -F 'CONNECT multi.test:8080 (127.0.0.1:8080): succeeded' "$SERVER_LOG"
}

@test "a name whose every address is refused -> reply 5 after trying them all" {
	in_ns "$PYTHON" -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' ||
		skip "no IPv6 loopback in the namespace"
	printf '::1 multi.test\n127.0.0.1 multi.test\n' >"$BATS_TEST_TMPDIR/hosts"
	ns_server_hosts "$BATS_TEST_TMPDIR/hosts" -vv
	run -0 ns_client connect --proxy 127.0.0.1:1080 --target multi.test:8080 --expect-rep 5
	run -0 grep -F 'connect to [::1]:8080: Connection refused' "$SERVER_LOG"
	run -0 grep -F 'connect to 127.0.0.1:8080: Connection refused' "$SERVER_LOG"
	run -0 grep -F 'CONNECT multi.test:8080: reply 5' "$SERVER_LOG"
}

# --- UDP ASSOCIATE: a relay of the request's family off loopback (issue 12) ---------

# ns_veth NAME: a veth pair NAME / NAMEp, both ends up, both in the namespace
# (no dummy module here).
ns_veth() {
	in_ns ip link add "$1" type veth peer name "$1p"
	in_ns ip link set "$1" up
	in_ns ip link set "$1p" up
}

# ns_udp_setup IPV4...: an interface sxd0 (ns_veth) in the namespace with fd00:99::1
# (no DAD) and the given IPv4 addresses (CIDR); a UDP echo target on 127.0.0.1
# there (UDP_PORT, UDP_LOG); then socksify-server -v on [fd00:99::1]:1080 only,
# with the rest of the arguments (further -l: only their ports are waited for).
ns_udp_setup() {
	local a i ports=(1080)
	ns_veth sxd0
	in_ns ip -6 addr add fd00:99::1/64 dev sxd0 nodad
	while [[ ${1:-} == */* ]]; do
		in_ns ip addr add "$1" dev sxd0
		shift
	done
	for a in "$@"; do
		[[ $a == *:[0-9]* && $a != -* ]] && ports+=("${a##*:}")
	done
	UDP_LOG=$BATS_TEST_TMPDIR/udp-echo.log
	spawn "$UDP_LOG" ip netns exec "$NS" "${CLIENT[@]}" udp-echo-server --host 127.0.0.1
	SERVER_LOG=$BATS_TEST_TMPDIR/server.log
	ip netns exec "$NS" "$SOCKSIFY_SERVER" -v -l "[fd00:99::1]:1080" --allow-open \
		--allow-local "$@" 2>"$SERVER_LOG" 3>&- &
	echo "$!" >>"$(pidfile)"
	for ((i = 0; i < 100; i++)); do
		UDP_PORT=$(sed -n 's/^port=//p' "$UDP_LOG")
		[[ -n $UDP_PORT ]] && break
		sleep 0.05
	done
	[[ -n $UDP_PORT ]] || fail "the UDP echo target did not start: $(cat "$UDP_LOG")"
	for a in "${ports[@]}"; do
		for ((i = 0; i < 100; i++)); do
			[[ -n $(in_ns ss -Hltn "sport = :$a") ]] && break
			sleep 0.05
		done
		[[ -n $(in_ns ss -Hltn "sport = :$a") ]] ||
			fail "socksify-server is not listening on port $a: $(cat "$SERVER_LOG")"
	done
}

@test "UDP ASSOCIATE 0.0.0.0 (ATYP 1) over IPv6 off loopback: BND is the IPv4 address of the control connection's interface" {
	ns_udp_setup 10.99.0.1/24
	run -0 ns_client udp --proxy "[fd00:99::1]:1080" --bind-src 0.0.0.0 --req-addr 0.0.0.0:0 \
		--target "127.0.0.1:$UDP_PORT" --echo 100 --echo 1400
	assert_line --regexp '^bnd=10\.99\.0\.1:[1-9][0-9]*$'
	assert_line "echoed=2"
}

@test "UDP ASSOCIATE 0.0.0.0 (ATYP 1) over IPv6, no IPv4 on that interface: BND is an IPv4 -l listener's address" {
	ns_veth sxd1
	in_ns ip addr add 10.99.1.1/24 dev sxd1
	ns_udp_setup -l 10.99.1.1:1081
	run -0 ns_client udp --proxy "[fd00:99::1]:1080" --bind-src 0.0.0.0 --req-addr 0.0.0.0:0 \
		--target "127.0.0.1:$UDP_PORT" --echo 100
	assert_line --regexp '^bnd=10\.99\.1\.1:[1-9][0-9]*$'
	assert_line "echoed=1"
}

@test "UDP ASSOCIATE 0.0.0.0 (ATYP 1) over IPv6, no IPv4 address to offer: reply 8, one log line" {
	ns_udp_setup
	run -0 ns_client udp --proxy "[fd00:99::1]:1080" --bind-src 0.0.0.0 --req-addr 0.0.0.0:0 \
		--target "127.0.0.1:$UDP_PORT" --expect-rep 8
	assert_line "closed=yes"
	sleep 0.2
	run -0 grep -c "no address of the request's family for the relay" "$SERVER_LOG"
	assert_output 1
	run -0 grep -F 'UDP ASSOCIATE 0.0.0.0:0: reply 8' "$SERVER_LOG"
}
