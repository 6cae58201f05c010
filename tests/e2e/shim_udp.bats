#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# End-to-end tests of UDP through libsocksify.so (UDP ASSOCIATE) with real
# programs in the namespaces of scripts/netns: tests/e2e/udp_prog.py (python
# sockets: sendto/recvfrom of 1 to 60000 bytes, connected sockets with
# os.write/os.read, sendmsg/recvmsg and recv_into, asyncio, non-blocking, by
# name), dig (UDP and +tcp) and socat. The client reaches only the proxy, so a
# reply proves the datagram went through it; the target's UDP echo server logs
# the source of every datagram, which must be the proxy's (assert_udp_via_proxy),
# and its dnsmasq logs the client address of every query (assert_dns_via_proxy).
# Each test runs against socksify-server (no auth; some with -u user:pass and
# on IPv6) and dante's sockd.
#
# Tests tagged [remote-dns] send the name to the proxy (socks5h://): only the
# proxy resolves target.test / target4.test, and nothing may reach the client's
# nameserver (the leak detector).
#
# Run (as root):
#   SOCKSIFY_SERVER=build/cli/socksify-server SOCKSIFY=build/cli/socksify \
#   SOCKSIFY_SHIM=build/shim/libsocksify.so bats tests/e2e/shim_udp.bats
# (meson test --suite shim sets these itself.) SOCKSIFY_TEST_PRELOAD (see
# netns.bash) runs every program under test with more libraries preloaded:
# scripts/test uses it for the ASan/UBSan pass.

# bats runs each test in a subshell and sets status/output/lines/stderr:
# shellcheck disable=SC2030,SC2031,SC2154,SC2001

bats_require_minimum_version 1.5.0

setup_file() {
	load helpers
	load netns
	netns_setup_file || return 1
	netns_udp_targets
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
	UDP_PROG=("$PYTHON" "$E2E_DIR/udp_prog.py")
}

teardown() {
	local rc=0
	if [[ -n ${FAKE_ROUTE:-} ]]; then
		client_run ip route del 240.0.0.0/4 || rc=$?
	fi
	netns_teardown || rc=$?
	# shown by bats only when the test failed
	if [[ -n ${output:-} ]]; then
		echo "# --- the output of the last command run:"
		sed 's/^/#   /' <<<"$output" | tail -n 40
	fi
	echo "# --- this test's part of the logs (namespace prefix $NX):"
	local v
	for v in SX_LOG SXAUTH_LOG SX6_LOG DANTE_LOG UDP_ECHO_LOG TARGET_DNS_LOG DNS_LOG; do
		[[ -n ${!v:-} ]] || continue
		log_since "$v" | sed "s/^/# $v: /" | tail -n 20
	done
	return "$rc"
}

# --- small tools ---------------------------------------------------------------------

# proxy_out_for HOST: the proxy's address on the target's link, of HOST's family
proxy_out_for() {
	if [[ $1 == *:* ]]; then
		echo "$PROXY_OUT6"
	else
		echo "$PROXY_OUT4"
	fi
}

# in_fake_pool ADDR: ADDR is in the shim's fake-DNS pools (240.0.0.0/4, 100::/64)
in_fake_pool() {
	"$PYTHON" -c '
import ipaddress, sys
a = ipaddress.ip_address(sys.argv[1])
sys.exit(0 if any(a in ipaddress.ip_network(n) for n in ("240.0.0.0/4", "100::/64")) else 1)
' "$1"
}

# --- the same programs through every proxy ----------------------------------------------

t_sizes() { # KIND HOST: one unconnected socket, sendto/recvfrom of 1, 1400, 8000, 60000 bytes
	require_proxy "$1"
	local kind=$1 host=$2 size
	run -0 socksify_client "$kind" -- "${UDP_PROG[@]}" sizes "$host" 7 1 1400 8000 60000
	for size in 1 1400 8000 60000; do
		assert_line "ok size $size from $host 7"
	done
	assert_udp_via_proxy 4 "$(proxy_out_for "$host")"
	assert_proxy_udp "$kind"
}

t_connected() { # KIND HOST
	require_proxy "$1"
	local kind=$1 host=$2
	run -0 socksify_client "$kind" -- "${UDP_PROG[@]}" connected "$host" 7
	assert_line "ok getpeername $host 7"
	assert_line "ok send/recv"
	assert_line "ok os.write/os.read"
	assert_line "ok sendmsg/recvmsg from $host 7"
	assert_line "ok recv_into"
	# send, os.write, sendmsg, send
	assert_udp_via_proxy 4 "$(proxy_out_for "$host")"
	assert_proxy_udp "$kind"
}

t_asyncio() { # KIND HOST: 20 datagrams on a remote_addr endpoint, 3 on a local_addr one
	require_proxy "$1"
	local kind=$1 host=$2
	run -0 socksify_client "$kind" -- "${UDP_PROG[@]}" asyncio "$host" 7 20
	assert_line "ok asyncio remote_addr 20 of 20"
	assert_line "ok asyncio local_addr sendto from $host 7"
	assert_udp_via_proxy 23 "$(proxy_out_for "$host")"
	assert_proxy_udp "$kind"
}

t_nonblock() { # KIND HOST
	require_proxy "$1"
	local kind=$1 host=$2
	run -0 socksify_client "$kind" -- "${UDP_PROG[@]}" nonblock "$host" 7
	assert_line "ok recvfrom before send: EAGAIN"
	assert_line "ok select readable"
	assert_line "ok recvfrom from $host 7"
	assert_line "ok recvfrom after the echo: EAGAIN"
	assert_udp_via_proxy 1 "$(proxy_out_for "$host")"
	assert_proxy_udp "$kind"
}

t_byname() { # KIND NAME: socks5h://, the name resolved by the proxy only
	require_proxy "$1"
	local kind=$1 name=$2 fake
	run -0 socksify_client "$kind" h -- "${UDP_PROG[@]}" byname "$name" 7
	fake=$(sed -n "s/^ok resolved $name to \\([^ ]*\\) 7\$/\\1/p" <<<"$output")
	[[ -n $fake ]] || fail "no 'ok resolved $name to ADDR 7' line"
	in_fake_pool "$fake" || fail "$name resolved to $fake, not a fake address: the client resolved it itself"
	# the reply came back from the same fake address
	assert_line "ok reply from $fake 7"
	assert_udp_via_proxy 1
	assert_proxy_udp "$kind"
	assert_no_dns_leak
}

t_dig() { # KIND [+tcp]: dig @198.18.2.2 www.example.test, answered by the target's dnsmasq
	require_proxy "$1"
	local kind=$1 tcp=${2:-}
	run -0 socksify_client "$kind" -- dig ${tcp:+"$tcp"} "@$TARGET4" "$DNS_EXAMPLE_NAME" \
		+short +time=2 +tries=1
	assert_output "$DNS_EXAMPLE_A"
	assert_dns_via_proxy "$DNS_EXAMPLE_NAME"
	if [[ -n $tcp ]]; then
		assert_proxy_connect "$kind" "$TARGET4:53"
	else
		assert_proxy_udp "$kind"
	fi
	assert_no_dns_leak
}

t_socat() { # KIND HOST: socat UDP: (connected) and UDP-SENDTO: (sendto/recvfrom)
	require_proxy "$1"
	local kind=$1 host=$2 addr=$2 mode
	[[ $host == *:* ]] && addr="[$host]"
	for mode in UDP UDP-SENDTO; do
		run -0 socksify_client "$kind" -- socat -t 2 - "$mode:$addr:7" <<<"socat $mode $TAG"
		assert_output "socat $mode $TAG"
	done
	assert_udp_via_proxy 2 "$(proxy_out_for "$host")"
	assert_proxy_udp "$kind"
}

# ---------------------------------------------------------------------------------
# socksify-server, no authentication (198.18.1.1:1080)
# ---------------------------------------------------------------------------------

@test "socksify-server: python sendto/recvfrom of 1, 1400, 8000, 60000 bytes (IPv4); the target sees the proxy" {
	t_sizes sx "$TARGET4"
}
@test "socksify-server: python sendto/recvfrom of 1, 1400, 8000, 60000 bytes to [fd00:5:2::2]" {
	t_sizes sx "$TARGET6"
}
@test "socksify-server: python connected socket: send/recv, getpeername, os.write/os.read, sendmsg/recvmsg, recv_into" {
	t_connected sx "$TARGET4"
}
@test "socksify-server: python asyncio datagram endpoints (remote_addr, 20 datagrams; local_addr + sendto)" {
	t_asyncio sx "$TARGET4"
}
@test "socksify-server: python non-blocking socket: EAGAIN, select, recvfrom" {
	t_nonblock sx "$TARGET4"
}
@test "socksify-server [remote-dns]: python by name target.test via socks5h: the reply comes from the fake address, no DNS query leaks" {
	t_byname sx target.test
}
@test "socksify-server: dig @198.18.2.2 www.example.test over UDP; dnsmasq sees the proxy" {
	t_dig sx
}
@test "socksify-server: dig +tcp @198.18.2.2 www.example.test" {
	t_dig sx +tcp
}
@test "socksify-server: socat UDP: and UDP-SENDTO: echo a line" {
	t_socat sx "$TARGET4"
}

# ---------------------------------------------------------------------------------
# socksify-server -u user:pass (198.18.1.1:1081)
# ---------------------------------------------------------------------------------

@test "socksify-server -u user:pass: python sendto/recvfrom of 1, 1400, 8000, 60000 bytes (IPv4)" {
	t_sizes auth "$TARGET4"
}
@test "socksify-server -u user:pass: python connected socket" {
	t_connected auth "$TARGET4"
}
@test "socksify-server -u user:pass [remote-dns]: python by name target.test via socks5h" {
	t_byname auth target.test
}
@test "socksify-server -u user:pass: dig @198.18.2.2 www.example.test over UDP" {
	t_dig auth
}

# ---------------------------------------------------------------------------------
# socksify-server on IPv6 ([fd00:5:1::1]:1084): AF_INET6 sockets
# ---------------------------------------------------------------------------------

@test "socksify-server on IPv6 [fd00:5:1::1]: python sendto/recvfrom of 1, 1400, 8000, 60000 bytes to [fd00:5:2::2]" {
	t_sizes sx6 "$TARGET6"
}
@test "socksify-server on IPv6 [fd00:5:1::1]: python connected AF_INET6 socket" {
	t_connected sx6 "$TARGET6"
}
@test "socksify-server on IPv6 [fd00:5:1::1]: python asyncio datagram endpoints on AF_INET6" {
	t_asyncio sx6 "$TARGET6"
}
@test "socksify-server on IPv6 [fd00:5:1::1]: python non-blocking AF_INET6 socket" {
	t_nonblock sx6 "$TARGET6"
}
@test "socksify-server on IPv6 [fd00:5:1::1]: socat UDP: and UDP-SENDTO: to [fd00:5:2::2]" {
	t_socat sx6 "$TARGET6"
}

# ---------------------------------------------------------------------------------
# dante (198.18.1.1:1082)
# ---------------------------------------------------------------------------------

@test "dante: python sendto/recvfrom of 1, 1400, 8000, 60000 bytes (IPv4); the target sees the proxy" {
	t_sizes dante "$TARGET4"
}
@test "dante: python sendto/recvfrom of 1, 1400, 8000, 60000 bytes to [fd00:5:2::2]" {
	t_sizes dante "$TARGET6"
}
@test "dante: python connected socket" {
	t_connected dante "$TARGET4"
}
@test "dante: python asyncio datagram endpoints" {
	t_asyncio dante "$TARGET4"
}
@test "dante: python non-blocking socket" {
	t_nonblock dante "$TARGET4"
}
@test "dante [remote-dns]: python by name target4.test via socks5h (dante relays UDP to names that resolve to IPv4 only)" {
	t_byname dante "$TARGET_NAME4"
}
@test "dante: dig @198.18.2.2 www.example.test over UDP" {
	t_dig dante
}
@test "dante: dig +tcp @198.18.2.2 www.example.test" {
	t_dig dante +tcp
}
@test "dante: socat UDP: and UDP-SENDTO: echo a line" {
	t_socat dante "$TARGET4"
}

# ---------------------------------------------------------------------------------
# the C probe (tests/e2e/udp_probe.c): the socket semantics a program relies on
# ---------------------------------------------------------------------------------

t_probe() { # KIND SUBCOMMAND HOST... : every check "ok", none "FAIL"
	require_proxy "$1"
	local kind=$1 sub=$2 probe
	shift 2
	probe=$(udp_probe_bin)
	run socksify_client "$kind" -- "$probe" "$sub" "$@" 7
	refute_line --partial FAIL
	assert_success
	[[ $(grep -c '^ok ' <<<"$output") -ge 5 ]] || fail "fewer than 5 checks ran"
	assert_udp_via_proxy 1
	assert_proxy_udp "$kind"
}

@test "socksify-server: C probe: sendmmsg/recvmmsg with and without names (MSG_WAITFORONE)" {
	t_probe sx mmsg "$TARGET4"
}
@test "socksify-server: C probe: MSG_PEEK, MSG_TRUNC, msg_flags, a short address buffer" {
	t_probe sx peek "$TARGET4"
}
@test "socksify-server: C probe: a datagram to an IPv4 address named AF_UNSPEC (sendto, sendmsg, sendmmsg) goes through the proxy, as the kernel would send it to AF_INET" {
	run socksify_client sx -- "$(udp_probe_bin)" unspec "$TARGET4" 7
	refute_line --partial FAIL
	assert_success
	[[ $(grep -c '^ok ' <<<"$output") -eq 3 ]] || fail "not the 3 checks: $output"
	assert_udp_via_proxy 3 "$PROXY_OUT4"
}
@test "socksify-server: C probe: O_NONBLOCK, MSG_DONTWAIT, read() EAGAIN, poll readiness" {
	t_probe sx nonblock "$TARGET4"
}
@test "socksify-server: C probe: connected socket: write/writev/read/readv/send/recv, getpeername, AF_UNSPEC disconnect" {
	t_probe sx connected "$TARGET4"
}
@test "socksify-server: C probe: dup, fork, dup2, F_DUPFD: every copy works; the last close leaves no descriptor" {
	t_probe sx dupfork "$TARGET4"
}
@test "socksify-server: C probe: the program cannot close the control connection; dup2 over it moves it" {
	t_probe sx control "$TARGET4"
}
@test "socksify-server: C probe: one AF_INET6 socket, IPv6 and IPv4 targets in turn (header lengths 22/10), no byte lost" {
	t_probe sx mixed "$TARGET6" "$TARGET4"
}
@test "socksify-server: C probe built with _FORTIFY_SOURCE: __recvfrom_chk, __recv_chk, __read_chk strip the header too" {
	local bin sym
	bin=$(udp_probe_fortify_bin)
	for sym in __recvfrom_chk __recv_chk __read_chk; do
		nm -D "$bin" | grep -q " U $sym@" || fail "$bin does not call $sym (not fortified?)"
	done
	run socksify_client sx -- "$bin" fortify "$TARGET4" 7
	refute_line --partial FAIL
	assert_success
	assert_line --partial "ok recvfrom (__recvfrom_chk when fortified): 41 bytes from $TARGET4:7"
	assert_line "ok recv (__recv_chk): 41 bytes"
	assert_line "ok read (__read_chk): 41 bytes"
	assert_udp_via_proxy 3 "$PROXY_OUT4"
}
@test "socksify-server: C probe hardening: siglongjmp out of recv, MSG_FASTOPEN, 24-byte sockaddr_in6, closes behind the shim's back, close during recv; MSG_MORE/UDP_SEGMENT/raw refused" {
	t_probe sx hardening "$TARGET6" "$TARGET4"
	assert_line --partial "ok after a siglongjmp out of recv, a new socket's round trip"
	assert_line --partial "ok sendto(MSG_FASTOPEN) on UDP goes through the proxy"
	assert_line --partial "ok sendto with a 24-byte sockaddr_in6"
	assert_line --partial "ok syscall(SYS_close), the number reused: round trip"
	assert_line --partial "ok MSG_MORE: EOPNOTSUPP"
	assert_line --partial "ok UDP_SEGMENT: EOPNOTSUPP"
	assert_line --partial "ok a raw socket is refused"
}
@test "socksify-server on IPv6: C probe: IPv6 and IPv4 targets in turn" {
	t_probe sx6 mixed "$TARGET6" "$TARGET4"
}
@test "socksify-server -u user:pass: C probe: sendmmsg/recvmmsg" {
	t_probe auth mmsg "$TARGET4"
}
@test "dante: C probe: sendmmsg/recvmmsg (dante's own client sends these directly)" {
	t_probe dante mmsg "$TARGET4"
}
@test "dante: C probe: MSG_PEEK, MSG_TRUNC" {
	t_probe dante peek "$TARGET4"
}
@test "dante: C probe: connected socket" {
	t_probe dante connected "$TARGET4"
}
@test "dante: C probe: dup, fork, close: no control connection left open after the last close" {
	t_probe dante dupfork "$TARGET4"
}
@test "dante: C probe: one AF_INET6 socket, IPv6 and IPv4 targets in turn" {
	t_probe dante mixed "$TARGET6" "$TARGET4"
}

# ---------------------------------------------------------------------------------
# limits, failures and the association's life
# ---------------------------------------------------------------------------------

@test "socksify-server: a datagram that no longer fits with the header fails with EMSGSIZE; the largest that fits goes" {
	run -0 socksify_client sx -- "$PYTHON" -c '
import errno, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
dst = (sys.argv[1], 7)
s.sendto(b"x" * 65497, dst)          # + 10 header bytes = 65507, the IPv4 maximum
data, src = s.recvfrom(65535)
print("echo", len(data), src[0])
try:
    s.sendto(b"x" * 65498, dst)
    print("SENT 65498")
except OSError as e:
    print("65498", errno.errorcode[e.errno])
' "$TARGET4"
	assert_line "echo 65497 $TARGET4"
	assert_line "65498 EMSGSIZE"
	assert_udp_via_proxy 1 "$PROXY_OUT4"
	[[ $UDP_VIA_COUNT == 1 ]] || fail "the target got $UDP_VIA_COUNT datagrams, expected 1"
}

@test "the association ends (proxy idle timeout): the next datagram associates again, with one log line" {
	local log=$BATS_TEST_TMPDIR/sx-idle.log
	netns_socksify_server 1085 "$log" --allow-open --idle-timeout 1
	run -0 client_run "$SOCKSIFY" -v -p "socks5://$PROXY4:1085" -- "$PYTHON" -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
for i in range(2):
    s.sendto(b"round %d" % i, (sys.argv[1], 7))
    print("echo", s.recvfrom(100)[0].decode())
    if i == 0:
        time.sleep(2.5)   # the server ends the idle association after 1 s
' "$TARGET4"
	assert_line "echo round 0"
	assert_line "echo round 1"
	run -0 grep -c "the proxy closed the association; associating again" <<<"$output"
	assert_output 1
	run -0 grep -c " UDP ASSOCIATE " "$log"
	assert_output 2
	assert_udp_via_proxy 2 "$PROXY_OUT4"
}

@test "microsocks refuses UDP ASSOCIATE: sendto and connect fail with EOPNOTSUPP, one log line, nothing is sent directly" {
	command -v microsocks >/dev/null || fail "microsocks is not installed (scripts/deps installs it)"
	ns_spawn proxy "$BATS_TEST_TMPDIR/microsocks.log" microsocks -i "$PROXY4" -p 1086
	ns_wait_listen proxy tcp "$PROXY4" 1086 "$SPAWNED_PID"
	run -0 client_run "$SOCKSIFY" -p "socks5://$PROXY4:1086" -- "$(udp_probe_bin)" refused "$TARGET4" 7 EOPNOTSUPP
	refute_line --partial FAIL
	run -0 grep -c "does not carry UDP" <<<"$output"
	assert_output 1
	[[ -z $(log_since UDP_ECHO_LOG) ]] || fail "a datagram reached the target: $(log_since UDP_ECHO_LOG)"
}

@test "the proxy is down: sendto fails with ECONNREFUSED and one line, nothing goes directly" {
	run -0 client_run "$SOCKSIFY" -p "socks5://$PROXY4:1099" -- "$(udp_probe_bin)" refused "$TARGET4" 7 ECONNREFUSED
	refute_line --partial FAIL
	assert_line --partial "UDP ASSOCIATE via $PROXY4:1099: Connection refused"
	[[ -z $(log_since UDP_ECHO_LOG) ]] || fail "a datagram reached the target: $(log_since UDP_ECHO_LOG)"
	[[ -z $(log_since TRAP_LOG) ]] || fail "the trap saw traffic"
}

@test "a broken configuration fails UDP closed too (ECONNREFUSED), nothing goes directly" {
	run -0 client_run env LD_PRELOAD="$SHIM_PRELOAD" SOCKSIFY_PROXY="socks4://$PROXY4:1080" \
		"$(udp_probe_bin)" refused "$TARGET4" 7 ECONNREFUSED
	refute_line --partial FAIL
	run -0 grep -c "bad proxy URL 'socks4://" <<<"$output"
	assert_output 1
	[[ -z $(log_since UDP_ECHO_LOG) ]] || fail "a datagram reached the target: $(log_since UDP_ECHO_LOG)"
}

@test "loopback UDP stays direct (no association), while the target's goes through the proxy" {
	run -0 socksify_client sx -- "$PYTHON" -c '
import socket, sys
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a.bind(("127.0.0.1", 0))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b.settimeout(3)
b.sendto(b"local", a.getsockname())
data, src = a.recvfrom(100)
print("loopback", data.decode(), src[0])
a.sendto(b"back", src)
print("loopback reply", b.recvfrom(100)[0].decode())
' 
	assert_line "loopback local 127.0.0.1"
	assert_line "loopback reply back"
	[[ -z $(log_since SX_LOG | grep "UDP ASSOCIATE") ]] || fail "loopback UDP went through the proxy"
}

@test "valgrind: the UDP probe under the shim (dupfork, peek), no memory errors or definite leaks" {
	[[ -z ${SOCKSIFY_TEST_PRELOAD:-} ]] || skip "valgrind cannot run with the ASan shim (this is the ASan pass)"
	command -v valgrind >/dev/null || fail "valgrind is not installed (scripts/deps installs it)"
	local sub
	# valgrind's tool is static: the shim's exec hook runs it supervised
	# (through the launcher named here), and the preload's datagrams to the
	# proxy's UDP relay pass the supervisor
	for sub in peek dupfork; do
		run -0 client_run env LD_PRELOAD="$SHIM_PRELOAD" SOCKSIFY_LAUNCHER="$SOCKSIFY" SOCKSIFY_PROXY="$(proxy_url sx)" \
			valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
			--trace-children=no "$(udp_probe_bin)" "$sub" "$TARGET4" 7
		refute_line --partial FAIL
	done
	assert_udp_via_proxy 1 "$PROXY_OUT4"
}

@test "a proxy that names its relay 0.0.0.0 means its own address: the datagrams go there" {
	# a minimal SOCKS5 server: no authentication, UDP ASSOCIATE answered with
	# BND.ADDR 0.0.0.0 and the port of a UDP relay on the proxy's address,
	# which carries IPv4 datagrams to the target and back
	ns_spawn proxy "$BATS_TEST_TMPDIR/zero-relay.log" "$PYTHON" -u -c '
import select, socket, struct, sys
host = sys.argv[1]
lst = socket.socket(); lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind((host, 1088)); lst.listen(8)
relay = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); relay.bind((host, 0))
out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ctl, _ = lst.accept()
ctl.recv(16); ctl.sendall(b"\x05\x00")
ctl.recv(300)
ctl.sendall(b"\x05\x00\x00\x01\x00\x00\x00\x00" + struct.pack("!H", relay.getsockname()[1]))
print("answered with 0.0.0.0:%d" % relay.getsockname()[1], flush=True)
client = None
while True:
    r, _, _ = select.select([relay, out, ctl], [], [])
    if ctl in r and not ctl.recv(1):
        break
    if relay in r:
        data, client = relay.recvfrom(65535)
        dst = socket.inet_ntoa(data[4:8]), struct.unpack("!H", data[8:10])[0]
        print("relayed to %s:%d" % dst, flush=True)
        out.sendto(data[10:], dst)
    if out in r:
        data, src = out.recvfrom(65535)
        hdr = b"\x00\x00\x00\x01" + socket.inet_aton(src[0]) + struct.pack("!H", src[1])
        relay.sendto(hdr + data, client)
' "$PROXY4"
	ns_wait_listen proxy tcp "$PROXY4" 1088 "$SPAWNED_PID"
	run -0 client_run "$SOCKSIFY" -v -p "socks5://$PROXY4:1088" -- "$PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(b"zero relay", (sys.argv[1], 7))
data, src = s.recvfrom(100)
print("echo", data.decode(), src[0])
' "$TARGET4"
	assert_line "echo zero relay $TARGET4"
	assert_line --regexp "udp associate via $PROXY4:1088: relay 0\\.0\\.0\\.0:[0-9]+"
	run -0 cat "$BATS_TEST_TMPDIR/zero-relay.log"
	assert_line --regexp '^answered with 0\.0\.0\.0:[0-9]+$'
	assert_line "relayed to $TARGET4:7"
	assert_udp_via_proxy 1 "$PROXY_OUT4"
}

@test "fork() while another thread is in the handshake with a silent proxy: the child is not stuck on the shim's lock" {
	netns_silent_proxy 1096
	local conf=$BATS_TEST_TMPDIR/socksify.conf
	printf 'proxy = socks5://%s:1096\nconnect_timeout = 2\n' "$PROXY4" >"$conf"
	run -0 client_run "$SOCKSIFY" -c "$conf" -- "$(udp_probe_bin)" forkhandshake "$TARGET4" 7
	refute_line --partial FAIL
	assert_line "ok the child's recv() timed out as asked (exited)"
	assert_line --partial "ok the parent's sendto failed against the silent proxy"
	[[ -z $(log_since UDP_ECHO_LOG) ]] || fail "a datagram reached the target: $(log_since UDP_ECHO_LOG)"
}

# ---------------------------------------------------------------------------------
# QUIC: ngtcp2's example client and server (issue 12)
# ---------------------------------------------------------------------------------

# t_quic KIND: gtlsclient (ngtcp2-client) under socksify, socks5h://, fetches a
# 200 KB file over HTTP/3 from gtlsserver (ngtcp2-server) on the target, named
# target4.test (only the proxy resolves it); the file must arrive intact.
t_quic() {
	require_proxy "$1"
	local kind=$1 d=$BATS_TEST_TMPDIR/quic port=4433 fake
	command -v gtlsclient >/dev/null || fail "gtlsclient is not installed (scripts/deps: ngtcp2-client)"
	[[ -x /usr/sbin/gtlsserver ]] || fail "gtlsserver is not installed (scripts/deps: ngtcp2-server)"
	mkdir -p "$d/htdocs" "$d/dl"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout "$d/key.pem" -out "$d/cert.pem" -subj "/CN=$TARGET_NAME4" \
		-addext "subjectAltName=DNS:$TARGET_NAME4" 2>"$d/openssl.log" ||
		fail "openssl could not make a certificate: $(cat "$d/openssl.log")"
	head -c 200000 /dev/urandom >"$d/htdocs/file"
	ns_spawn target "$d/server.log" /usr/sbin/gtlsserver -q -d "$d/htdocs" "$TARGET4" "$port" \
		"$d/key.pem" "$d/cert.pem"
	ns_wait_listen target udp "$TARGET4" "$port" "$SPAWNED_PID"
	# gtlsclient asks the kernel (rtnetlink RTM_GETROUTE) for its source address
	# towards the server, the fake address here, and gives up without a route:
	# the client namespace has only its link, a real client a default route.
	# Datagrams that went that way would reach the proxy's namespace and stop.
	client_run ip route add 240.0.0.0/4 via "$PROXY4"
	FAKE_ROUTE=1
	run -0 socksify_client "$kind" h -- timeout 20 gtlsclient -q --exit-on-all-streams-close \
		--download "$d/dl" "$TARGET_NAME4" "$port" "https://$TARGET_NAME4:$port/file"
	cmp "$d/htdocs/file" "$d/dl/file" || fail "the file fetched over QUIC differs from the one served"
	assert_proxy_udp "$kind"
	# 200 KB came down through the relay: well over 100 datagrams
	wait_log "$(proxy_log_var "$kind")" "UDP ASSOCIATE .*down [1-9][0-9]{2,} datagrams"
	assert_no_dns_leak
}

@test "socksify-server [remote-dns]: QUIC, ngtcp2's gtlsclient fetches 200 KB by name over HTTP/3" {
	t_quic sx
}
@test "socksify-server on IPv6 only: an IPv4 socket bound to 198.18.1.2 gets an IPv4 relay (control over IPv6), 3 datagrams echo" {
	run -0 socksify_client sx6 -- "$PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
s.settimeout(3)
for n in (1, 1400, 8000):
    s.sendto(b"x" * n, (sys.argv[2], 7))
    data, src = s.recvfrom(9000)
    print("echo", len(data), src[0], src[1])
' "$CLIENT4" "$TARGET4"
	assert_line "echo 1 $TARGET4 7"
	assert_line "echo 1400 $TARGET4 7"
	assert_line "echo 8000 $TARGET4 7"
	assert_udp_via_proxy 3 "$PROXY_OUT4"
	# the control connection over IPv6, the request naming the IPv4 socket
	wait_log SX6_LOG "\\[$CLIENT6\\]:[0-9]+ UDP ASSOCIATE ${CLIENT4//./\\.}:[1-9][0-9]*: .*up 3 datagrams"
}
@test "socksify-server on IPv6 only: an unbound IPv4 socket gets an IPv4 relay (0.0.0.0 over IPv6: the server's IPv4 address on that link), 3 datagrams echo" {
	run -0 socksify_client sx6 -- "$PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
for n in (1, 1400, 8000):
    s.sendto(b"x" * n, (sys.argv[1], 7))
    data, src = s.recvfrom(9000)
    print("echo", len(data), src[0], src[1])
' "$TARGET4"
	assert_line "echo 1 $TARGET4 7"
	assert_line "echo 1400 $TARGET4 7"
	assert_line "echo 8000 $TARGET4 7"
	assert_udp_via_proxy 3 "$PROXY_OUT4"
	# the control connection over IPv6, the request 0.0.0.0 with the socket's port
	wait_log SX6_LOG "\\[$CLIENT6\\]:[0-9]+ UDP ASSOCIATE 0\\.0\\.0\\.0:[1-9][0-9]*: .*up 3 datagrams"
}
