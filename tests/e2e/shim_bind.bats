#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Client-side BIND (bind = auto, shim/cbind.h): active-mode FTP (curl -P -,
# EPRT and PORT) through socksify-server and dante in the netns topology,
# where the FTP server (pyftpdlib on 198.18.2.2:21) cannot reach the client:
# the data connection must come through the proxy's BIND, the address curl
# announces must be the proxy's, never the client's 198.18.1.2. With
# bind = never curl announces its own address and the transfer fails. By
# name (socks5h): the BIND names the FTP server. Then bind_probe.c for the
# socket semantics (readiness, accept flags, addresses, a second accept,
# close before the peer, the wildcard; a refused BIND, a failed second reply,
# bind = never) and an AF_INET6 listener in python through dante.
# root only, as in CI; about 5 s (7 s at a load average of 14), most of it the topology.

# shellcheck disable=SC2001

bats_require_minimum_version 1.5.0

FTP_SERVER=198.18.2.2

setup_file() {
	load helpers
	load netns
	netns_setup_file
	((EUID == 0)) || return 0
	"$PYTHON" -c 'import pyftpdlib' 2>/dev/null || return 0
	FTP_ROOT=$BATS_FILE_TMPDIR/ftp
	mkdir -p "$FTP_ROOT/pub"
	head -c 300000 /dev/urandom >"$FTP_ROOT/pub/data.bin"
	export FTP_ROOT FTP_LOG=$BATS_FILE_TMPDIR/ftpd.log
	# a name for the FTP server that only the proxy resolves (IPv4 only, as
	# the server listens); scripts/netns down removes the file
	printf '%s\t%s\n' "$FTP_SERVER" ftp4.test >>"/etc/netns/$NX-proxy/hosts"
	ns_spawn target "$FTP_LOG" "$PYTHON" -m pyftpdlib -D -i "$FTP_SERVER" -p 21 -d "$FTP_ROOT"
	ns_wait_listen target tcp "$FTP_SERVER" 21 "$SPAWNED_PID"
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
	"$PYTHON" -c 'import pyftpdlib' 2>/dev/null ||
		skip "no pyftpdlib (apt-get install python3-pyftpdlib, or run scripts/deps)"
	FTP_START=$(log_size "$FTP_LOG")
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

# ftp_lines: what the FTP server logged since the test began
ftp_lines() {
	tail -c +"$((FTP_START + 1))" "$FTP_LOG"
}

# active_get KIND [CURL ARGS...]: RETR pub/data.bin with curl -P - through the
# proxy KIND; the file must arrive whole.
active_get() {
	local kind=$1 got=$BATS_TEST_TMPDIR/got.bin
	shift
	rm -f "$got"
	run -0 client_run "$SOCKSIFY" -p "$(proxy_url "$kind")" -- "${CURL[@]}" -v -P - "$@" \
		-o "$got" "ftp://$FTP_SERVER/pub/data.bin"
	cmp "$got" "$FTP_ROOT/pub/data.bin"
}

# announced_by KIND CMD OUT: the FTP server got CMD (EPRT or PORT) with the
# proxy's outgoing address OUT from the proxy's control connection, and the
# client's address never appeared in what it got.
announced_by() {
	local cmd=$2 out=$3 host re
	host=${out//./\\.}
	if [[ $cmd == EPRT ]]; then
		re="EPRT \\|1\\|$host\\|[0-9]+\\|"
	else
		re="PORT ${out//./,},[0-9]+,[0-9]+"
	fi
	run -0 ftp_lines
	assert_output --regexp "$host:[0-9]+-\\[anonymous\\] <- $re"
	assert_output --regexp 'RETR .*/pub/data\.bin completed=1 bytes=300000'
	refute_output --partial "198.18.1.2"
	refute_output --partial "198,18,1,2"
}

@test "curl -P - (EPRT) through socksify-server: the data connection comes through the proxy's BIND" {
	active_get sx
	assert_output --partial "EPRT |1|$PROXY_OUT4|"
	announced_by sx EPRT "$PROXY_OUT4"
	wait_log SX_LOG "BIND 198\.18\.2\.2:0: succeeded, up 0 down 300000 bytes"
}

@test "curl -P - --disable-eprt (PORT) through socksify-server" {
	active_get sx --disable-eprt
	assert_output --partial "PORT 198,18,2,1,"
	announced_by sx PORT "$PROXY_OUT4"
}

@test "curl -P - (EPRT) and PORT through dante" {
	have_dante || skip "no danted (apt-get install dante-server, or run scripts/deps)"
	active_get dante
	announced_by dante EPRT "$PROXY_OUT4"
	FTP_START=$(log_size "$FTP_LOG")
	active_get dante --disable-eprt
	announced_by dante PORT "$PROXY_OUT4"
	wait_log DANTE_LOG "tcp/bind"
}

@test "curl -P - by name through dante (socks5h): the BIND names the FTP server by its name" {
	have_dante || skip "no danted (apt-get install dante-server, or run scripts/deps)"
	local got=$BATS_TEST_TMPDIR/got.bin
	run -0 client_run env SOCKSIFY_LOG_LEVEL=info "$SOCKSIFY" -p "$(proxy_url dante h)" -- \
		"${CURL[@]}" -v -P - -o "$got" ftp://ftp4.test/pub/data.bin
	cmp "$got" "$FTP_ROOT/pub/data.bin"
	assert_output --regexp "BIND ftp4\.test:0: bound $PROXY_OUT4:[0-9]+"
	assert_output --regexp "BIND ftp4\.test:0: peer $FTP_SERVER:[0-9]+"
	announced_by dante EPRT "$PROXY_OUT4"
}

@test "bind = never: curl announces the client's own address and the FTP server cannot connect" {
	run ! client_run env SOCKSIFY_BIND=never "$SOCKSIFY" -p "$(proxy_url sx)" -- \
		"${CURL[@]}" -v -P - -o /dev/null "ftp://$FTP_SERVER/pub/data.bin"
	assert_output --partial "EPRT |1|198.18.1.2|"
}

# The peer of bind_probe served, at the destination's side: waits for the
# address in FILE, connects, sends a line, prints what comes back.
# argv: FILE
PEER_PY='
import os, socket, sys, time
f = sys.argv[1]
for _ in range(400):
    if os.path.exists(f) and open(f).read().endswith("\n"):
        break
    time.sleep(0.05)
ip, port = open(f).read().split()
s = socket.create_connection((ip, int(port)), timeout=10)
s.sendall(b"hello from the peer\n")
got = b""
while True:
    d = s.recv(100)
    if not d:
        break
    got += d
print("peer got:", got.decode().strip(), flush=True)
'

# A SOCKS5 proxy that says yes to CONNECT (BND 198.18.2.1:4242, without
# connecting anywhere) and, with MODE refuse, refuses BIND with REP 7 (command
# not supported); with MODE peerfail, answers BIND's first reply (198.18.2.1:
# 4243) and 200 ms later a second one with REP 2 (not allowed).
# argv: ADDR PORT MODE
REFUSER_PY='
import socket, sys, threading, time
def serve(c):
    c.recv(3)
    c.sendall(b"\x05\x00")
    req = c.recv(300)
    if req[1] == 1:
        c.sendall(b"\x05\x00\x00\x01\xc6\x12\x02\x01\x10\x92")
        c.recv(1)
    elif sys.argv[3] == "refuse":
        c.sendall(b"\x05\x07\x00\x01\x00\x00\x00\x00\x00\x00")
    else:
        c.sendall(b"\x05\x00\x00\x01\xc6\x12\x02\x01\x10\x93")
        time.sleep(0.2)
        c.sendall(b"\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00")
        c.recv(1)
    c.close()
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], int(sys.argv[2])))
l.listen(8)
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'

# probe_served KIND: bind_probe served against the TCP echo at 198.18.2.2:7,
# its peer in the target namespace
probe_served() {
	local file=$BATS_TEST_TMPDIR/bnd.addr
	ns_spawn target "$BATS_TEST_TMPDIR/peer.out" "$PYTHON" -c "$PEER_PY" "$file"
	local peer=$SPAWNED_PID
	run -0 client_run "$SOCKSIFY" -p "$(proxy_url "$1")" -- "$SOCKSIFY_BIND_PROBE" served "$TARGET4" 7 "$file"
	refute_output --partial FAIL
	assert_output --partial "ok getsockname() of the connection: $PROXY_OUT4:"
	assert_output --partial "ok getsockname() of the listener: the proxy's $PROXY_OUT4:"
	wait_exit "$peer" 10
	run -0 cat "$BATS_TEST_TMPDIR/peer.out"
	assert_output "peer got: hello from the probe"
}

@test "bind_probe through dante: readiness, accept4 flags, addresses, a second accept, close before the peer, a wildcard listener" {
	have_dante || skip "no danted (apt-get install dante-server, or run scripts/deps)"
	probe_served dante
}

@test "bind_probe through socksify-server" {
	probe_served sx
}

# An FTP-style program in python on AF_INET6 sockets: a connection to
# [DEST]:80, a listener bound to its getsockname() address, the address into
# FILE for the peer, one connection accepted. argv: DEST FILE
V6_PY='
import socket, sys
c = socket.create_connection((sys.argv[1], 80), timeout=10)
me = c.getsockname()
l = socket.socket(socket.AF_INET6)
l.bind((me[0], 0))
l.listen(1)
bnd = l.getsockname()
print("connection", me[0], "listener", bnd[0], bnd[1], flush=True)
open(sys.argv[2], "w").write("%s %d\n" % (bnd[0], bnd[1]))
l.settimeout(10)
a, peer = l.accept()
print("peer", peer[0], flush=True)
print("got", a.recv(100).decode().strip(), flush=True)
a.sendall(b"hello from the probe\n")
a.close()
'

@test "IPv6: an AF_INET6 FTP-style listener through dante is served by BIND (python)" {
	have_dante || skip "no danted (apt-get install dante-server, or run scripts/deps)"
	local file=$BATS_TEST_TMPDIR/bnd.addr
	ns_spawn target "$BATS_TEST_TMPDIR/peer.out" "$PYTHON" -c "$PEER_PY" "$file"
	local peer=$SPAWNED_PID
	run -0 client_run "$SOCKSIFY" -p "$(proxy_url dante)" -- "$PYTHON" -c "$V6_PY" "$TARGET6" "$file"
	assert_line --regexp "^connection $PROXY_OUT6 listener $PROXY_OUT6 [0-9]+\$"
	assert_line "peer $TARGET6"
	assert_line "got hello from the peer"
	wait_exit "$peer" 10
	run -0 cat "$BATS_TEST_TMPDIR/peer.out"
	assert_output "peer got: hello from the probe"
}

@test "bind_probe: a proxy that refuses BIND makes getsockname() and listen() fail with EOPNOTSUPP" {
	ns_spawn proxy "$BATS_TEST_TMPDIR/refuser.out" "$PYTHON" -c "$REFUSER_PY" "$PROXY4" 1095 refuse
	ns_wait_listen proxy tcp "$PROXY4" 1095 "$SPAWNED_PID"
	run -0 client_run "$SOCKSIFY" -p "socks5://$PROXY4:1095" -- "$SOCKSIFY_BIND_PROBE" refused "$TARGET4" 7 95
	refute_output --partial FAIL
	assert_output --partial "ok listen(): -1 errno 95"
	# asked once, at getsockname(): one error line of the shim's
	run -0 grep -c "BIND 198.18.2.2:0: bound failed: Operation not supported" <<<"$output"
	assert_output 1
}

@test "bind_probe: a failed second reply wakes the listener and accept() fails with ECONNABORTED" {
	ns_spawn proxy "$BATS_TEST_TMPDIR/refuser.out" "$PYTHON" -c "$REFUSER_PY" "$PROXY4" 1096 peerfail
	ns_wait_listen proxy tcp "$PROXY4" 1096 "$SPAWNED_PID"
	run -0 client_run "$SOCKSIFY" -p "socks5://$PROXY4:1096" -- "$SOCKSIFY_BIND_PROBE" aborted "$TARGET4" 7 103
	refute_output --partial FAIL
	assert_output --partial "ok getsockname() of the listener: the proxy's $PROXY_OUT4:4243"
	assert_output --partial "ok accept(): -1 errno 103"
}

@test "bind_probe with bind = never: the real local address, a local listener" {
	run -0 client_run env SOCKSIFY_BIND=never "$SOCKSIFY" -p "$(proxy_url sx)" -- \
		"$SOCKSIFY_BIND_PROBE" never "$TARGET4" 7 "$CLIENT4"
	refute_output --partial FAIL
}
