#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# socksify-server's BIND: two replies, the expected-peer check, the timeout,
# with a test client and a test peer (bind_client.py) on loopback.

# shellcheck disable=SC2030,SC2031,SC2154

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
