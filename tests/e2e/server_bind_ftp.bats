#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Active-mode FTP through socksify-server's BIND across two networks, with real
# programs: tnftp (ftp -A) under dante's socksify (dante-client), which sends
# the data connection's BIND through the proxy and gives the server the first
# reply's address in EPRT, and pyftpdlib as the FTP server. scripts/netns
# builds the namespaces:
#
#   client 198.18.1.2 -- 198.18.1.1 proxy 198.18.2.1 (+ 198.18.2.3) -- 198.18.2.2 ftp
#
# The FTP server's namespace reaches 198.18.2.0/24 only, so the proxy's front
# address 198.18.1.1 is no use to it: the BIND listener must be on the back
# side (the -b address, else the route's source), or the transfer fails
# (pyftpdlib also refuses an EPRT address other than the control connection's).
# Dante's client does not speak IPv6 to a proxy, so the IPv6 control connection
# case (a BIND over IPv6 for the IPv4 FTP server) uses Python's ftplib with its
# connections made through the proxy (ftp_bind_client.py). And a BIND for a
# peer the proxy has no route to fails with reply 3.
# root only, as in CI.

# shellcheck disable=SC2030,SC2031,SC2034,SC2154

bats_require_minimum_version 1.5.0

FTP_CLIENT=${FTP_CLIENT:-/usr/bin/tnftp}
DANTE_SOCKSIFY=${DANTE_SOCKSIFY:-/usr/bin/socksify}
FTP_SERVER=198.18.2.2

setup_file() {
	load helpers
	load netns
	IN_SETUP_FILE=1
	((EUID == 0)) || return 0 # each test skips, saying why
	netns_sweep_stale
	NX=sx$$r$RANDOM
	export NX
	echo "$NX" >"$BATS_FILE_TMPDIR/netns.prefix"
	"$NETNS" up "$NX" || return 1
	# a second address on the back network: -b chooses it over the route's 198.18.2.1
	ip -n "$NX-proxy" addr add 198.18.2.3/24 dev vp1
	FTP_ROOT=$BATS_FILE_TMPDIR/ftp
	mkdir -p "$FTP_ROOT/pub"
	head -c 300000 /dev/urandom >"$FTP_ROOT/pub/data.bin"
	export FTP_ROOT FTP_LOG=$BATS_FILE_TMPDIR/ftpd.log
	if "$PYTHON" -c 'import pyftpdlib' 2>/dev/null; then
		spawn "$FTP_LOG" ip netns exec "$NX-target" "$PYTHON" -m pyftpdlib -D \
			-i "$FTP_SERVER" -p 21 -d "$FTP_ROOT"
		ip netns exec "$NX-target" bash -c "$(declare -f wait_listen pid_alive); wait_listen 21 $SPAWNED_PID"
	fi
	IN_SETUP_FILE=0
}

teardown_file() {
	load helpers
	load netns
	netns_teardown_file
}

setup() {
	load helpers
	load netns
	common_setup
	((EUID == 0)) || skip "needs root (network namespaces)"
	[[ -x $FTP_CLIENT ]] || skip "no $FTP_CLIENT (apt-get install tnftp, or run scripts/deps)"
	[[ -x $DANTE_SOCKSIFY ]] || skip "no $DANTE_SOCKSIFY (apt-get install dante-client, or run scripts/deps)"
	"$PYTHON" -c 'import pyftpdlib' 2>/dev/null ||
		skip "no pyftpdlib (apt-get install python3-pyftpdlib, or run scripts/deps)"
	cat >"$BATS_TEST_TMPDIR/socks.conf" <<-EOF
		route {
			from: 0.0.0.0/0 to: 0.0.0.0/0 via: 198.18.1.1 port = 1080
			command: connect bind
			proxyprotocol: socks_v5
			method: none
		}
	EOF
}

teardown() {
	common_teardown
}

# proxy_server ARGS...: socksify-server -v on 198.18.1.1:1080 and
# [fd00:5:1::1]:1080 in the proxy namespace (SERVER_LOG), killed by teardown.
proxy_server() {
	SERVER_LOG=$BATS_TEST_TMPDIR/server.log
	spawn "$SERVER_LOG" ip netns exec "$NX-proxy" "$SOCKSIFY_SERVER" \
		-l 198.18.1.1:1080 -l '[fd00:5:1::1]:1080' --allow-open -v "$@"
	ip netns exec "$NX-proxy" bash -c "$(declare -f wait_listen pid_alive); wait_listen 1080 $SPAWNED_PID"
}

# active_ftp: LIST and RETR of pub/data.bin with tnftp -A (active mode only)
# under dante's socksify in the client namespace; the listing in $output.
active_ftp() {
	local got=$BATS_TEST_TMPDIR/got.bin
	rm -f "$got"
	run -0 timeout 30 ip netns exec "$NX-client" env SOCKS_CONF="$BATS_TEST_TMPDIR/socks.conf" \
		"$DANTE_SOCKSIFY" "$FTP_CLIENT" -A -n -v "$FTP_SERVER" 21 <<-EOF
			user anonymous test@
			binary
			ls pub
			get pub/data.bin $got
			quit
		EOF
	assert_line --partial "226 Transfer complete"
	assert_line --regexp ' data\.bin$'
	refute_line --partial "501 Rejected"
	cmp "$got" "$FTP_ROOT/pub/data.bin"
}

@test "active FTP (tnftp -A under dante's socksify) with -b on the back network: the server connects to the -b address" {
	proxy_server -b 198.18.2.3
	active_ftp
	# the control connection, and the EPRT address (BIND's first reply): the -b address
	run -0 grep -E '198\.18\.2\.3:[0-9]+-\[anonymous\] <- (EPRT \|1\|198\.18\.2\.3\||PORT 198,18,2,3,)' "$FTP_LOG"
	run -0 grep -E '198\.18\.2\.3:[0-9]+-\[anonymous\] RETR .*/pub/data\.bin completed=1 bytes=300000' "$FTP_LOG"
	# two BINDs (LIST, RETR) for the FTP server's address, both relayed
	run -0 grep -cE ' BIND 198\.18\.2\.2:0: succeeded' "$SERVER_LOG"
	assert_equal "$output" 2
	run -0 grep -E ' BIND 198\.18\.2\.2:0: succeeded, up 0 down 300000 bytes' "$SERVER_LOG"
}

@test "active FTP without -b: the BIND listener is on the source address of the route to the FTP server" {
	proxy_server
	active_ftp
	run -0 grep -E '198\.18\.2\.1:[0-9]+-\[anonymous\] <- (EPRT \|1\|198\.18\.2\.1\||PORT 198,18,2,1,)' "$FTP_LOG"
	run -0 grep -E ' BIND 198\.18\.2\.2:0: succeeded, up 0 down 300000 bytes' "$SERVER_LOG"
}

@test "active FTP over an IPv6 control connection (ftplib through CONNECT and BIND) to an IPv4 FTP server: an IPv4 listener on -b" {
	proxy_server -b 198.18.2.3 -b fd00:5:2::1
	local got=$BATS_TEST_TMPDIR/got6.bin
	run -0 ip netns exec "$NX-client" "$PYTHON" "$E2E_DIR/ftp_bind_client.py" \
		fd00:5:1::1 1080 "$FTP_SERVER" 21 pub pub/data.bin "$got"
	assert_line --regexp '^bind bnd=198\.18\.2\.3:[0-9]+ peer=198\.18\.2\.2:[0-9]+$'
	assert_line --regexp ' data\.bin$'
	assert_line "retr bytes=300000"
	cmp "$got" "$FTP_ROOT/pub/data.bin"
	run -0 grep -E '198\.18\.2\.3:[0-9]+-\[anonymous\] <- EPRT \|1\|198\.18\.2\.3\|' "$FTP_LOG"
	run -0 grep -cE '^socksify-server: \[fd00:5:1::2\]:[0-9]+ BIND 198\.18\.2\.2:0: succeeded' "$SERVER_LOG"
	assert_equal "$output" 2
}

@test "BIND for a peer the proxy has no route to: reply 3 (network unreachable)" {
	proxy_server
	run -1 ip netns exec "$NX-client" "$PYTHON" "$E2E_DIR/bind_client.py" 198.18.1.1 1080 \
		--expect 203.0.113.9 --timeout 5
	assert_line "FAIL first reply 3"
	run -0 grep -E ' BIND 203\.0\.113\.9:0: .*[Nn]etwork is unreachable' "$SERVER_LOG"
}
