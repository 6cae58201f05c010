#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# socksify-server's BIND: two replies, the expected-peer check, the timeout,
# the listener's family (the request's, not the control connection's) and
# address (-b, else the route to the peer), with a test client and a test peer
# (bind_client.py) on loopback. Active FTP across two networks:
# server_bind_ftp.bats.

# shellcheck disable=SC2030,SC2031,SC2034,SC2154

bats_require_minimum_version 1.5.0

setup() {
	load helpers
	common_setup
}

teardown() {
	common_teardown
}

bind_client() {
	"$PYTHON" "$E2E_DIR/bind_client.py" "$@"
}

# start_server_hosts LINE ARGS...: start_server in a private mount namespace
# whose /etc/hosts is "LINE" and whose resolver points at 127.0.0.1:53, where
# nothing answers (no lookup leaves the machine).
start_server_hosts() {
	local line=$1
	shift
	unshare -m true 2>/dev/null || skip "no mount namespaces (unshare -m) for a private /etc/hosts"
	printf '127.0.0.1 localhost\n%s\n' "$line" >"$BATS_TEST_TMPDIR/hosts"
	printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$BATS_TEST_TMPDIR/resolv.conf"
	# shellcheck disable=SC2016
	SERVER_WRAP=(unshare -m sh -c 'mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/resolv.conf && shift && exec "$@"'
		"$BATS_TEST_TMPDIR/hosts" "$BATS_TEST_TMPDIR/resolv.conf")
	start_server "$@"
	SERVER_WRAP=()
}

# start_server6 ARGS...: listening on [::1] and 127.0.0.1, the same port.
start_server6() {
	local port
	port=$(free_port)
	start_server -l "[::1]:$port" -l "127.0.0.1:$port" "$@"
}

@test "BIND: first reply names the listening address, second the peer, then data both ways" {
	start_server -v
	run -0 bind_client 127.0.0.1 "$PROXY_PORT"
	assert_line --regexp '^first rep=0 bnd=127\.0\.0\.1:[0-9]+$'
	assert_line --regexp '^second rep=0 peer=127\.0\.0\.1:[0-9]+$'
	assert_line "relayed both ways"
	run -0 grep -E 'BIND 0\.0\.0\.0:0: succeeded, up 11 down 9 bytes' "$SERVER_LOG"
}

@test "BIND with an expected peer: a connection from another address is closed, the expected one is served" {
	start_server
	run -0 bind_client 127.0.0.1 "$PROXY_PORT" --expect 127.0.0.5 \
		--peer-from 127.0.0.1 --peer-from 127.0.0.5
	assert_line "peer 127.0.0.1: closed"
	assert_line --regexp '^second rep=0 peer=127\.0\.0\.5:[0-9]+$'
	assert_line "relayed both ways"
}

@test "BIND: no peer within --connect-timeout 1 -> a failure reply (4)" {
	start_server --connect-timeout 1
	run -0 bind_client 127.0.0.1 "$PROXY_PORT" --no-peer
	assert_line "second rep=4"
}

@test "BIND with -u user:pass: works with the credentials, refused without" {
	start_server -u user:pass
	run -0 bind_client 127.0.0.1 "$PROXY_PORT" --user user --password pass
	assert_line "relayed both ways"
	run -1 bind_client 127.0.0.1 "$PROXY_PORT"
	assert_line "FAIL method refused"
}

@test "BIND over an IPv6 control connection for an IPv4 peer: an IPv4 listener, data both ways" {
	start_server6 -v
	run -0 bind_client ::1 "$PROXY_PORT" --expect 127.0.0.1
	assert_line --regexp '^control \[::1\]:[0-9]+$'
	assert_line --regexp '^first rep=0 bnd=127\.0\.0\.1:[0-9]+$'
	assert_line --regexp '^second rep=0 peer=127\.0\.0\.1:[0-9]+$'
	assert_line "relayed both ways"
	run -0 grep -E '\[::1\]:[0-9]+ BIND 127\.0\.0\.1:0: succeeded, up 11 down 9 bytes' "$SERVER_LOG"
}

@test "BIND over IPv4 for an IPv6 peer: an IPv6 listener; a v4-mapped peer gets an IPv4 one" {
	start_server6
	run -0 bind_client 127.0.0.1 "$PROXY_PORT" --expect ::1
	assert_line --regexp '^first rep=0 bnd=\[::1\]:[0-9]+$'
	assert_line --regexp '^second rep=0 peer=\[::1\]:[0-9]+$'
	assert_line "relayed both ways"
	run -0 bind_client ::1 "$PROXY_PORT" --expect ::ffff:127.0.0.1
	assert_line --regexp '^first rep=0 bnd=127\.0\.0\.1:[0-9]+$'
	assert_line --regexp '^second rep=0 peer=127\.0\.0\.1:[0-9]+$'
	assert_line "relayed both ways"
}

@test "BIND for any peer over IPv6: the reply names [::1], an IPv4 peer is served too (dual-stack)" {
	start_server6
	run -0 bind_client ::1 "$PROXY_PORT" --expect ::
	assert_line --regexp '^first rep=0 bnd=\[::1\]:[0-9]+$'
	assert_line "relayed both ways"
	run -0 bind_client ::1 "$PROXY_PORT" --expect :: --connect-to 127.0.0.1
	assert_line --regexp '^first rep=0 bnd=\[::1\]:[0-9]+$'
	assert_line --regexp '^second rep=0 peer=127\.0\.0\.1:[0-9]+$'
	assert_line "relayed both ways"
}

@test "BIND with -b: the listener is on the -b address of the peer's family; none of its family -> reply 3" {
	start_server6 -b 127.0.0.3
	run -0 bind_client ::1 "$PROXY_PORT" --expect 127.0.0.1
	assert_line --regexp '^first rep=0 bnd=127\.0\.0\.3:[0-9]+$'
	assert_line "relayed both ways"
	# any peer: the -b address even over IPv6 (the only one given)
	run -0 bind_client ::1 "$PROXY_PORT" --expect ::
	assert_line --regexp '^first rep=0 bnd=127\.0\.0\.3:[0-9]+$'
	assert_line "relayed both ways"
	run -1 bind_client 127.0.0.1 "$PROXY_PORT" --expect ::1
	assert_line "FAIL first reply 3"
}

@test "BIND for a name: resolved, the listener of its address's family, only that address served" {
	start_server_hosts '127.0.0.7 bindpeer.test'
	run -0 bind_client 127.0.0.1 "$PROXY_PORT" --expect bindpeer.test \
		--peer-from 127.0.0.1 --peer-from 127.0.0.7
	assert_line --regexp '^first rep=0 bnd=127\.0\.0\.1:[0-9]+$'
	assert_line "peer 127.0.0.1: closed"
	assert_line --regexp '^second rep=0 peer=127\.0\.0\.7:[0-9]+$'
	assert_line "relayed both ways"
	run -1 bind_client 127.0.0.1 "$PROXY_PORT" --expect nosuch.bindpeer.test
	assert_line "FAIL first reply 4"
}
