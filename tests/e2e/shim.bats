#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# End-to-end tests of libsocksify.so and the socksify launcher with real programs
# (curl, wget, python, tests/e2e/probe.c) in the namespaces of scripts/netns:
# the client can reach only the proxy, so every success went through it, and the
# target's access log must show the proxy's address as the client. Each test
# runs against socksify-server (no auth, and -u user:pass) and dante's sockd.
#
# Tests tagged [remote-dns] need the shim's fake-DNS pool (names sent to the
# proxy); [dns] tests check the local-DNS settings and the leak detector.
#
# Run (as root):
#   SOCKSIFY_SERVER=build/cli/socksify-server SOCKSIFY=build/cli/socksify \
#   SOCKSIFY_SHIM=build/shim/libsocksify.so bats tests/e2e/shim.bats
# (meson test --suite shim sets these, and SOCKSIFY_PROBE, SOCKSIFY_CTOR_LIB,
# SOCKSIFY_CTOR_MAIN and SOCKSIFY_STATIC_PROG, itself; without them the probe,
# tests/e2e/ctor.c + ctor_main.c and static_prog.c are compiled with cc into
# the run's temporary dir.) SOCKSIFY_TEST_PRELOAD (see netns.bash) runs every
# program under test with more libraries preloaded: scripts/test uses it for
# the ASan/UBSan pass.

# bats runs each test in a subshell and sets status/output/lines/stderr:
# shellcheck disable=SC2030,SC2031,SC2154,SC2001

bats_require_minimum_version 1.5.0

setup_file() {
	load helpers
	load netns
	netns_setup_file
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
}

teardown() {
	local rc=0
	netns_teardown || rc=$?
	# shown by bats only when the test failed
	if [[ -n ${output:-} ]]; then
		echo "# --- the output of the last command run:"
		sed 's/^/#   /' <<<"$output" | tail -n 40
	fi
	echo "# --- this test's part of the logs (namespace prefix $NX):"
	local v
	for v in SX_LOG SXAUTH_LOG SXDENY_LOG SX6_LOG DANTE_LOG HTTP_LOG HTTP6_LOG TRAP_LOG DNS_LOG; do
		[[ -n ${!v:-} ]] || continue
		log_since "$v" | sed "s/^/# $v: /" | tail -n 20
	done
	return "$rc"
}

# --- small tools ---------------------------------------------------------------------

assert_file_intact() { # FILE
	assert_equal "$(stat -c %s "$1")" 1048576
	assert_equal "$(sha256sum "$1" | cut -d' ' -f1)" "$FILE_SHA"
}

# sx_run KIND [h] -- CMD...: CMD under socksify through proxy KIND (see
# proxy_url in netns.bash), in the client namespace
sx_run() {
	socksify_client "$@"
}

# The python programs run under socksify in the client namespace.

# argv: URL; prints "LENGTH SHA256" of the body
PY_URLLIB='
import hashlib, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
data = opener.open(sys.argv[1], timeout=15).read()
print(len(data), hashlib.sha256(data).hexdigest())
'

# shared by the programs below: fetch(host, port, path) -> (status line, body, peer)
PY_FETCH='
import socket
def recv_all(s):
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)
def fetch_on(s, path):
    s.sendall(("GET %s HTTP/1.0\r\nHost: t\r\n\r\n" % path).encode())
    data = recv_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0].decode(errors="replace"), body
def fetch(host, port, path):
    s = socket.create_connection((host, port), timeout=20)
    try:
        peer = s.getpeername()[:2]
        status, body = fetch_on(s, path)
        return status, body, peer
    finally:
        s.close()
'

# argv: HOST PORT PATH; prints "want ADDR PORT" (getaddrinfo), "peer ADDR PORT",
# "status ...", "body ..."
PY_PEER="$PY_FETCH"'
import sys
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
want = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][:2]
status, body, peer = fetch(host, port, path)
print("want %s %d" % want)
print("peer %s %d" % peer)
print("status", status)
print("body", body.decode(errors="replace").strip())
'

# argv: HOST PORT PATH EXPECT N: N asyncio connections at once (non-blocking
# connects), each GET PATH-i; prints "ok K of N" and the distinct peers.
PY_ASYNC='
import asyncio, sys
host, port, path, expect, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].encode(), int(sys.argv[5])
async def one(i):
    r, w = await asyncio.wait_for(asyncio.open_connection(host, port), 20)
    peer = w.get_extra_info("peername")[:2]
    w.write(("GET %s-%d HTTP/1.0\r\nHost: t\r\n\r\n" % (path, i)).encode())
    data = await asyncio.wait_for(r.read(), 20)
    w.close()
    if not data.startswith(b"HTTP/1.0 200") or expect not in data:
        raise RuntimeError("connection %d: bad response %r" % (i, data[:80]))
    return "%s %d" % peer
async def main():
    res = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    bad = [r for r in res if isinstance(r, BaseException)]
    for b in bad:
        print("FAIL", repr(b))
    print("ok", n - len(bad), "of", n)
    for p in sorted(set(r for r in res if not isinstance(r, BaseException))):
        print("peer", p)
    return 1 if bad else 0
sys.exit(asyncio.run(main()))
'

# argv: HOST PORT PATH EXPECT N: N threads released together, each connects and
# GETs PATH-i; prints "ok K of N" and the distinct peers.
PY_THREADS="$PY_FETCH"'
import sys, threading
host, port, path, expect, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].encode(), int(sys.argv[5])
barrier = threading.Barrier(n)
results = [None] * n
def worker(i):
    try:
        barrier.wait(10)
        status, body, peer = fetch(host, port, "%s-%d" % (path, i))
        if status.endswith(" 200 OK") and expect in body:
            results[i] = "peer %s %d" % peer
        else:
            results[i] = "FAIL %d: %s %r" % (i, status, body[:60])
    except Exception as e:
        results[i] = "FAIL %d: %r" % (i, e)
threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
bad = [r for r in results if not r or r.startswith("FAIL")]
for b in bad:
    print(b)
print("ok", n - len(bad), "of", n)
for p in sorted(set(r for r in results if r and r.startswith("peer"))):
    print(p)
sys.exit(1 if bad else 0)
'

# argv: HOST PORT PATH EXPECT N: the parent fetches, connects one socket and
# forks N children; each child fetches by HOST, fetches by the address the
# parent resolved, and child 0 also uses the socket the parent connected.
# Then the parent fetches again. Prints one line per check.
PY_FORK="$PY_FETCH"'
import os, sys
host, port, path, expect, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].encode(), int(sys.argv[5])
def good(status, body):
    return status.endswith(" 200 OK") and expect in body
addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][:2]
status, body, peer = fetch(host, port, path + "-parent-before")
print("parent before fork:", "ok" if good(status, body) else "FAIL %s" % status, "peer %s %d" % peer)
inherited = socket.create_connection((host, port), timeout=20)
pids = []
for i in range(n):
    pid = os.fork()
    if pid == 0:
        rc = 0
        try:
            s, b, p = fetch(host, port, "%s-child%d-name" % (path, i))
            if not good(s, b) or p != peer:
                rc |= 1
            s, b, p = fetch(addr[0], addr[1], "%s-child%d-addr" % (path, i))
            if not good(s, b) or p != peer:
                rc |= 2
            if i == 0:
                s, b = fetch_on(inherited, "%s-child0-inherited" % path)
                if not good(s, b) or inherited.getpeername()[:2] != peer:
                    rc |= 4
        except Exception as e:
            print("child", i, "exception", repr(e))
            rc |= 8
        os._exit(rc)
    pids.append(pid)
inherited.close()
fails = 0
for i, pid in enumerate(pids):
    _, st = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(st)
    if code != 0:
        fails += 1
        print("FAIL child %d exit %d (1 by name, 2 by address, 4 inherited socket)" % (i, code))
print("children ok", n - fails, "of", n)
status, body, peer2 = fetch(host, port, path + "-parent-after")
print("parent after fork:", "ok" if good(status, body) and peer2 == peer else "FAIL %s" % status)
'

# argv: HOST PORT: sends 1 MiB to an echo server, half-closes, reads it back
PY_ECHO='
import os, socket, sys, threading
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
data = os.urandom(1 << 20)
def send():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send)
t.start()
got = bytearray()
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
t.join()
print("echoed", len(got), "same" if bytes(got) == data else "DIFFERENT")
'

# ---------------------------------------------------------------------------------
# the topology itself (no shim): what the other tests rely on
# ---------------------------------------------------------------------------------

@test "topology: the client reaches the proxy, not the target; the proxy reaches both" {
	# no route from the client to the target network, v4 or v6
	run -7 client_run "${CURL[@]}" "http://$TARGET4/small.txt?$TAG-direct"
	run -7 client_run "${CURL[@]}" "http://[$TARGET6]/small.txt?$TAG-direct6"
	run ! client_run ip route get "$TARGET4"
	run ! client_run ip route get "$TARGET6"
	# the proxy's trap server is directly reachable from the client
	run -0 client_run "${CURL[@]}" "http://$PROXY4:8080/small.txt?$TAG-trap"
	assert_output "$SMALL_TEXT"
	run -0 grep -F "$CLIENT4 - - " "$TRAP_LOG"
	# the proxy reaches the target on both families
	run -0 proxy_run "${CURL[@]}" "http://$TARGET4/small.txt?$TAG-p4"
	assert_output "$SMALL_TEXT"
	run -0 proxy_run "${CURL[@]}" "http://[$TARGET6]/small.txt?$TAG-p6"
	assert_output "$SMALL_TEXT"
	assert_via_proxy "/small.txt?$TAG-p" 2
	# forwarding is off in the proxy namespace
	run -0 proxy_run sysctl -n net.ipv4.ip_forward
	assert_output 0
	run -0 proxy_run sysctl -n net.ipv6.conf.all.forwarding
	assert_output 0
}

@test "topology: only the proxy resolves target.test; a client lookup reaches the leak detector" {
	run -0 proxy_run getent ahosts target.test
	assert_output --partial "$TARGET4"
	assert_output --partial "$TARGET6"
	run ! client_run getent hosts target.test
	wait_log DNS_LOG " target\\.test "
}

# ---------------------------------------------------------------------------------
# the same programs through every proxy: socksify-server, with auth, dante
# ---------------------------------------------------------------------------------

t_curl_v4() { # KIND
	require_proxy "$1"
	local out=$BATS_TEST_TMPDIR/file
	run -0 sx_run "$1" -- "${CURL[@]}" -o "$out" "http://$TARGET4/file?$TAG"
	assert_file_intact "$out"
	assert_via_proxy "/file?$TAG " 1
	assert_proxy_connect "$1" "$TARGET4:80"
	assert_trap_untouched
}

t_curl_v6() { # KIND
	require_proxy "$1"
	local out=$BATS_TEST_TMPDIR/file
	run -0 sx_run "$1" -- "${CURL[@]}" -o "$out" "http://[$TARGET6]/file?$TAG"
	assert_file_intact "$out"
	assert_via_proxy "/file?$TAG " 1
	[[ $VIA_LINES == "$PROXY_OUT6 - - "* ]] || fail "not over IPv6: $VIA_LINES"
	assert_proxy_connect "$1" "[$TARGET6]:80"
}

t_curl_name() { # KIND
	require_proxy "$1"
	local out=$BATS_TEST_TMPDIR/file
	run -0 sx_run "$1" h -- "${CURL[@]}" -o "$out" "http://target.test/file?$TAG"
	assert_file_intact "$out"
	assert_via_proxy "/file?$TAG " 1
	assert_proxy_connect "$1" "target.test:80"
	assert_no_dns_leak
}

t_wget() { # KIND
	require_proxy "$1"
	local out=$BATS_TEST_TMPDIR/file
	run -0 sx_run "$1" -- wget -q --no-proxy -T 15 -t 1 -O "$out" "http://$TARGET4/file?$TAG"
	assert_file_intact "$out"
	assert_via_proxy "/file?$TAG " 1
}

t_urllib() { # KIND
	require_proxy "$1"
	run -0 sx_run "$1" -- "$PYTHON" -c "$PY_URLLIB" "http://$TARGET4/file?$TAG"
	assert_output "1048576 $FILE_SHA"
	assert_via_proxy "/file?$TAG " 1
}

t_peer() { # KIND
	require_proxy "$1"
	run -0 sx_run "$1" -- "$PYTHON" -c "$PY_PEER" "$TARGET4" 80 "/small.txt?$TAG-4"
	assert_line "peer $TARGET4 80"
	assert_line "status HTTP/1.0 200 OK"
	assert_line "body $SMALL_TEXT"
	run -0 sx_run "$1" -- "$PYTHON" -c "$PY_PEER" "$TARGET6" 80 "/small.txt?$TAG-6"
	assert_line "peer $TARGET6 80"
	assert_line "body $SMALL_TEXT"
	assert_via_proxy "/small.txt?$TAG-" 2
}

t_mapped() { # KIND: an AF_INET6 socket to ::ffff:198.18.2.2
	require_proxy "$1"
	run -0 sx_run "$1" -- "$PYTHON" -c "$PY_PEER" "::ffff:$TARGET4" 80 "/small.txt?$TAG"
	assert_line "peer ::ffff:$TARGET4 80"
	assert_line "body $SMALL_TEXT"
	assert_via_proxy "/small.txt?$TAG " 1
	assert_proxy_connect "$1" "$TARGET4:80"
}

t_asyncio() { # KIND [HOST [h]]
	require_proxy "$1"
	local host=${2:-$TARGET4}
	run -0 sx_run "$1" ${3:+"$3"} -- "$PYTHON" -c "$PY_ASYNC" "$host" 80 "/small.txt?$TAG" "$SMALL_TEXT" 20
	assert_line "ok 20 of 20"
	if [[ $host == "$TARGET4" ]]; then
		assert_line "peer $TARGET4 80"
	fi
	assert_via_proxy "/small.txt?$TAG-" 20
}

t_threads() { # KIND [HOST [h]]
	require_proxy "$1"
	local host=${2:-$TARGET4}
	run -0 sx_run "$1" ${3:+"$3"} -- "$PYTHON" -c "$PY_THREADS" "$host" 80 "/small.txt?$TAG" "$SMALL_TEXT" 50
	assert_line "ok 50 of 50"
	if [[ $host == "$TARGET4" ]]; then
		assert_line "peer $TARGET4 80"
	else
		# every thread saw the same (fake) address for the name
		[[ $(grep -c '^peer ' <<<"$output") == 1 ]] || fail "several peers: $output"
	fi
	assert_via_proxy "/small.txt?$TAG-" 50
}

t_fork() { # KIND [HOST [h]]
	require_proxy "$1"
	local host=${2:-$TARGET4}
	run -0 sx_run "$1" ${3:+"$3"} -- "$PYTHON" -c "$PY_FORK" "$host" 80 "/small.txt?$TAG" "$SMALL_TEXT" 8
	assert_line --regexp "^parent before fork: ok peer "
	assert_line "children ok 8 of 8"
	assert_line "parent after fork: ok"
	# 2 by the parent, 2 by each child, 1 on the inherited socket
	assert_via_proxy "/small.txt?$TAG-" 19
}

t_echo() { # KIND
	require_proxy "$1"
	run -0 sx_run "$1" -- "$PYTHON" -c "$PY_ECHO" "$TARGET4" 7
	assert_output "echoed 1048576 same"
}

@test "socksify-server: curl by IPv4 address fetches the 1 MiB file intact, the target sees the proxy" {
	t_curl_v4 sx
}
@test "socksify-server: curl by IPv6 address [fd00:5:2::2]" {
	t_curl_v6 sx
}
@test "socksify-server [remote-dns]: curl http://target.test/ via socks5h, no DNS query leaks" {
	t_curl_name sx
}
@test "socksify-server: wget by address" {
	t_wget sx
}
@test "socksify-server: python urllib by address" {
	t_urllib sx
}
@test "socksify-server: python create_connection + getpeername is the target (IPv4, IPv6)" {
	t_peer sx
}
@test "socksify-server: python asyncio, 20 non-blocking connections at once" {
	t_asyncio sx
}
@test "socksify-server: python, 50 threads connect and fetch at once" {
	t_threads sx
}
@test "socksify-server: python os.fork: children connect, fetch, use an inherited socket" {
	t_fork sx
}
@test "socksify-server: 1 MiB echoed both ways with a half-close" {
	t_echo sx
}

@test "socksify-server: a v4-mapped destination ::ffff:198.18.2.2 on an AF_INET6 socket" {
	t_mapped sx
}

@test "socksify-server on IPv6 [fd00:5:1::1]: curl by IPv6 address works, AF_INET6 getpeername too" {
	run -0 sx_run sx6 -- "${CURL[@]}" -o "$BATS_TEST_TMPDIR/file" "http://[$TARGET6]/file?$TAG-6"
	assert_file_intact "$BATS_TEST_TMPDIR/file"
	assert_via_proxy "/file?$TAG-6 " 1
	assert_proxy_connect sx6 "[$TARGET6]:80"
	run -0 sx_run sx6 -- "$PYTHON" -c "$PY_PEER" "$TARGET6" 80 "/small.txt?$TAG-p"
	assert_line "peer $TARGET6 80"
	assert_line "body $SMALL_TEXT"
}

@test "socksify-server on IPv6 only: an AF_INET socket fails closed with one clear line (the socket is never swapped)" {
	run ! sx_run sx6 -- "${CURL[@]}" -o "$BATS_TEST_TMPDIR/file" "http://$TARGET4/file?$TAG-4"
	assert_output --partial "has only IPv6 addresses and this socket is IPv4"
	run -0 grep -c "has only IPv6 addresses" <<<"$output"
	assert_output 1
	[[ -z $(log_since HTTP_LOG) ]] || fail "the target was reached: $(log_since HTTP_LOG)"
	assert_trap_untouched
}

@test "socksify-server -u user:pass: curl by IPv4 address" {
	t_curl_v4 auth
}
@test "socksify-server -u user:pass: curl by IPv6 address" {
	t_curl_v6 auth
}
@test "socksify-server -u user:pass [remote-dns]: curl http://target.test/ via socks5h" {
	t_curl_name auth
}
@test "socksify-server -u user:pass: wget" {
	t_wget auth
}
@test "socksify-server -u user:pass: python urllib" {
	t_urllib auth
}
@test "socksify-server -u user:pass: create_connection + getpeername" {
	t_peer auth
}
@test "socksify-server -u user:pass: asyncio, 20 at once" {
	t_asyncio auth
}
@test "socksify-server -u user:pass: 50 threads" {
	t_threads auth
}
@test "socksify-server -u user:pass: os.fork" {
	t_fork auth
}

@test "dante: curl by IPv4 address" {
	t_curl_v4 dante
}
@test "dante: curl by IPv6 address" {
	t_curl_v6 dante
}
@test "dante [remote-dns]: curl http://target.test/ via socks5h" {
	t_curl_name dante
}
@test "dante: wget" {
	t_wget dante
}
@test "dante: python urllib" {
	t_urllib dante
}
@test "dante: create_connection + getpeername" {
	t_peer dante
}
@test "dante: asyncio, 20 at once" {
	t_asyncio dante
}
@test "dante: 50 threads" {
	t_threads dante
}
@test "dante: os.fork" {
	t_fork dante
}
@test "dante: 1 MiB echoed both ways with a half-close" {
	t_echo dante
}

# ---------------------------------------------------------------------------------
# names sent to the proxy (remote DNS)
# ---------------------------------------------------------------------------------

@test "[remote-dns] wget http://target.test/ via socks5h" {
	run -0 sx_run sx h -- wget -q --no-proxy -T 15 -t 1 -O "$BATS_TEST_TMPDIR/file" \
		"http://target.test/file?$TAG"
	assert_file_intact "$BATS_TEST_TMPDIR/file"
	assert_via_proxy "/file?$TAG " 1
	assert_no_dns_leak
}

@test "[remote-dns] python urllib and create_connection by name: getpeername is the address the program resolved" {
	run -0 sx_run sx h -- "$PYTHON" -c "$PY_URLLIB" "http://target.test/file?$TAG-u"
	assert_output "1048576 $FILE_SHA"
	run -0 sx_run sx h -- "$PYTHON" -c "$PY_PEER" target.test 80 "/small.txt?$TAG-p"
	assert_line "body $SMALL_TEXT"
	local want peer
	want=$(grep '^want ' <<<"$output" | cut -d' ' -f2-)
	peer=$(grep '^peer ' <<<"$output" | cut -d' ' -f2-)
	assert_equal "$peer" "$want"
	# a fake address, not one of the target's
	[[ $peer != "$TARGET4 80" && $peer != "$TARGET6 80" ]] || fail "the client resolved target.test itself: $peer"
	assert_via_proxy "/file?$TAG-u " 1
	assert_via_proxy "/small.txt?$TAG-p " 1
	assert_no_dns_leak
}

@test "[remote-dns] python asyncio by name, 20 at once" {
	t_asyncio sx target.test h
	assert_no_dns_leak
}

@test "[remote-dns] python, 50 threads resolve and connect by name at once" {
	t_threads sx target.test h
	assert_no_dns_leak
}

@test "[remote-dns] python os.fork by name: children resolve, and use the parent's fake address" {
	t_fork sx target.test h
	assert_no_dns_leak
}

@test "[remote-dns] dante: 50 threads by name" {
	t_threads dante target.test h
	assert_no_dns_leak
}

@test "[dns] socks5:// resolves names locally: target.test fails, the query went to the local nameserver" {
	run -6 sx_run sx -- "${CURL[@]}" "http://target.test/small.txt?$TAG"
	wait_log DNS_LOG " target\\.test "
	[[ -z $(target_log_since) ]] || fail "the target was reached: $(target_log_since)"
}

@test "[dns] SOCKSIFY_DNS=local overrides socks5h://" {
	run -6 client_run env SOCKSIFY_DNS=local "$SOCKSIFY" -p "$(proxy_url sx h)" -- \
		"${CURL[@]}" "http://target.test/small.txt?$TAG"
	wait_log DNS_LOG " target\\.test "
}

# ---------------------------------------------------------------------------------
# without the launcher
# ---------------------------------------------------------------------------------

@test "LD_PRELOAD + SOCKSIFY_PROXY without the launcher: curl fetches through the proxy" {
	run -0 client_run env LD_PRELOAD="$SHIM_PRELOAD" SOCKSIFY_PROXY="$(proxy_url sx)" \
		"${CURL[@]}" -o "$BATS_TEST_TMPDIR/file" "http://$TARGET4/file?$TAG"
	assert_file_intact "$BATS_TEST_TMPDIR/file"
	assert_via_proxy "/file?$TAG " 1
	assert_proxy_connect sx "$TARGET4:80"
}

@test "[remote-dns] LD_PRELOAD + SOCKSIFY_PROXY=socks5h:// without the launcher: by name" {
	run -0 client_run env LD_PRELOAD="$SHIM_PRELOAD" SOCKSIFY_PROXY="$(proxy_url sx h)" \
		"${CURL[@]}" -o "$BATS_TEST_TMPDIR/file" "http://target.test/file?$TAG"
	assert_file_intact "$BATS_TEST_TMPDIR/file"
	assert_via_proxy "/file?$TAG " 1
	assert_no_dns_leak
}

@test "SOCKSIFY_CONF: a configuration file with proxy = ... is used" {
	local conf=$BATS_TEST_TMPDIR/socksify.conf
	printf '# test\nproxy = %s\n' "$(proxy_url auth)" >"$conf"
	chmod 600 "$conf" # a password in a file others may read draws a warning
	run -0 client_run env SOCKSIFY_CONF="$conf" LD_PRELOAD="$SHIM_PRELOAD" \
		"${CURL[@]}" "http://$TARGET4/small.txt?$TAG-env"
	assert_output "$SMALL_TEXT"
	run -0 client_run "$SOCKSIFY" -c "$conf" -- "${CURL[@]}" "http://$TARGET4/small.txt?$TAG-c"
	assert_output "$SMALL_TEXT"
	assert_via_proxy "/small.txt?$TAG-" 2
	assert_proxy_connect auth "$TARGET4:80"
}

# ---------------------------------------------------------------------------------
# fail closed: never a direct connection
# ---------------------------------------------------------------------------------

@test "fail closed: nothing listens at the proxy's port: curl fails, the directly reachable trap stays untouched" {
	local url=socks5://$PROXY4:1099
	run -7 client_run "$SOCKSIFY" -p "$url" -- "${CURL[@]}" "http://$TARGET4/small.txt?$TAG"
	run -7 client_run "$SOCKSIFY" -p "$url" -- "${CURL[@]}" "http://$PROXY4:8080/small.txt?$TAG"
	run -7 client_run "$SOCKSIFY" -p "$url" -- "${CURL[@]}" "http://[fd00:5:1::1]:8080/small.txt?$TAG"
	assert_trap_untouched
	[[ -z $(target_log_since) ]] || fail "the target was reached: $(target_log_since)"
}

@test "fail closed: probe connect to the trap with the proxy down gives ECONNREFUSED (blocking and non-blocking)" {
	local probe
	probe=$(probe_bin)
	run -0 client_run env LD_PRELOAD="$SHIM_PRELOAD" SOCKSIFY_PROXY="socks5://$PROXY4:1099" \
		"$probe" connect-err "$PROXY4" 8080 ECONNREFUSED
	refute_line --partial FAIL
	assert_trap_untouched
}

@test "fail closed: the proxy stops while the program runs: later connects fail, nothing goes direct" {
	local go=$BATS_TEST_TMPDIR/go ready=$BATS_TEST_TMPDIR/ready
	netns_socksify_server 1090 "$BATS_TEST_TMPDIR/server.log" --allow-open
	local server=$SPAWNED_PID
	# (the server was recorded in this test's pid file: teardown kills it)
	local py="$PY_FETCH"'
import os, sys, time
ready, go, target, trap = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
status, body, peer = fetch(target, 80, "/small.txt?'"$TAG"'-before")
print("before:", status)
open(ready, "w").close()
for _ in range(200):
    if os.path.exists(go):
        break
    time.sleep(0.05)
for host, port in ((target, 80), (trap, 8080)):
    try:
        fetch(host, port, "/small.txt?'"$TAG"'-after")
        print("after: %s:%d reached" % (host, port))
    except OSError as e:
        print("after: %s:%d %s" % (host, port, type(e).__name__))
'
	spawn "$BATS_TEST_TMPDIR/py.out" client_run "$SOCKSIFY" -p "socks5://$PROXY4:1090" -- \
		"$PYTHON" -c "$py" "$ready" "$go" "$TARGET4" "$PROXY4"
	local py_pid=$SPAWNED_PID i
	for ((i = 0; i < 200; i++)); do
		[[ -e $ready ]] && break
		pid_alive "$py_pid" || break
		sleep 0.05
	done
	[[ -e $ready ]] || fail "the program did not get through the proxy: $(cat "$BATS_TEST_TMPDIR/py.out")"
	kill -TERM "$server"
	wait_exit "$server" 5 || fail "socksify-server did not stop"
	touch "$go"
	wait_exit "$py_pid" 10 || fail "the program did not finish"
	run cat "$BATS_TEST_TMPDIR/py.out"
	assert_line "before: HTTP/1.0 200 OK"
	assert_line "after: $TARGET4:80 ConnectionRefusedError"
	assert_line "after: $PROXY4:8080 ConnectionRefusedError"
	assert_trap_untouched
	assert_via_proxy "/small.txt?$TAG-before " 1
	run -1 grep -F "$TAG-after" "$HTTP_LOG" "$HTTP6_LOG"
}

@test "fail closed: a wrong password: the connection fails, nothing goes direct" {
	run ! client_run "$SOCKSIFY" -p "socks5://user:wr0ngpw@$PROXY4:1081" -- \
		"${CURL[@]}" "http://$PROXY4:8080/small.txt?$TAG"
	run ! client_run "$SOCKSIFY" -p "socks5://user:wr0ngpw@$PROXY4:1081" -- \
		"${CURL[@]}" "http://$TARGET4/small.txt?$TAG"
	assert_trap_untouched
	[[ -z $(target_log_since) ]] || fail "the target was reached: $(target_log_since)"
	# the server saw the attempts (and logged no password)
	wait_log SXAUTH_LOG "198\\.18\\.1\\.2:[0-9]+"
	run -1 grep -F wr0ngpw "$SXAUTH_LOG"
}

@test "fail closed: a proxy name that does not resolve: curl fails, nothing goes direct" {
	run ! client_run "$SOCKSIFY" -p "socks5://proxy.invalid:1080" -- \
		"${CURL[@]}" "http://$PROXY4:8080/small.txt?$TAG"
	assert_trap_untouched
}

@test "[remote-dns] fail closed: proxy down, a name lookup still sends no DNS query" {
	run ! client_run "$SOCKSIFY" -p "socks5h://$PROXY4:1099" -- \
		"${CURL[@]}" "http://target.test/small.txt?$TAG"
	assert_no_dns_leak
	assert_trap_untouched
}

# ---------------------------------------------------------------------------------
# exclusions and loopback
# ---------------------------------------------------------------------------------

@test "SOCKSIFY_EXCLUDE: an excluded network goes direct, the rest through the proxy" {
	run -0 client_run env SOCKSIFY_EXCLUDE=198.18.1.0/24 "$SOCKSIFY" -p "$(proxy_url sx)" -- \
		"${CURL[@]}" "http://$PROXY4:8080/small.txt?$TAG-ex"
	assert_output "$SMALL_TEXT"
	run -0 grep -F "\"GET /small.txt?$TAG-ex " "$TRAP_LOG"
	assert_output --regexp "^$CLIENT4 - - "
	run -0 client_run env SOCKSIFY_EXCLUDE=198.18.1.0/24 "$SOCKSIFY" -p "$(proxy_url sx)" -- \
		"${CURL[@]}" "http://$TARGET4/small.txt?$TAG-in"
	assert_via_proxy "/small.txt?$TAG-in " 1
	# with a port: only that port goes direct
	run -0 client_run env SOCKSIFY_EXCLUDE=198.18.1.1:8080 "$SOCKSIFY" -p "$(proxy_url sx)" -- \
		"${CURL[@]}" "http://$PROXY4:8080/small.txt?$TAG-port"
	run -0 grep -F "\"GET /small.txt?$TAG-port " "$TRAP_LOG"
	assert_output --regexp "^$CLIENT4 - - "
}

@test "loopback goes direct by default; SOCKSIFY_PROXY_LOOPBACK=1 sends it through the proxy" {
	ns_spawn client "$BATS_TEST_TMPDIR/loop.log" "$PYTHON" -u -c "$NETNS_HTTP_PY" 127.0.0.1 8082 "$WWW"
	ns_wait_listen client tcp 127.0.0.1 8082 "$SPAWNED_PID"
	# direct: the client's own loopback server answers
	run -0 sx_run sx -- "${CURL[@]}" "http://127.0.0.1:8082/small.txt?$TAG-direct"
	assert_output "$SMALL_TEXT"
	run -0 grep -F "$TAG-direct" "$BATS_TEST_TMPDIR/loop.log"
	# 8081 listens only on the proxy's loopback
	run -7 sx_run sx -- "${CURL[@]}" "http://127.0.0.1:8081/small.txt?$TAG-no"
	run -0 client_run env SOCKSIFY_PROXY_LOOPBACK=1 "$SOCKSIFY" -p "$(proxy_url sx)" -- \
		"${CURL[@]}" "http://127.0.0.1:8081/small.txt?$TAG-proxied"
	assert_output "$SMALL_TEXT"
	wait_log LOOP_LOG "^127\\.0\\.0\\.1 - - .*$TAG-proxied"
	assert_proxy_connect sx "127.0.0.1:8081"
}

# ---------------------------------------------------------------------------------
# the launcher: exit statuses, errors, --env, -v
# ---------------------------------------------------------------------------------

# assert_one_line_error: stderr (run --separate-stderr) is one line "socksify: ..."
assert_one_line_error() {
	[[ ${#stderr_lines[@]} == 1 ]] || fail "expected one line on stderr, got ${#stderr_lines[@]}: $stderr"
	[[ ${stderr_lines[0]} == "socksify: "* ]] || fail "the error does not start with 'socksify: ': $stderr"
}

@test "socksify: a program that does not exist: status 127, one line naming it" {
	run -127 --separate-stderr client_run "$SOCKSIFY" -p "$(proxy_url sx)" -- no-such-program-sx
	assert_one_line_error
	[[ $stderr == *no-such-program-sx* ]] || fail "does not name the program: $stderr"
	run -127 --separate-stderr client_run "$SOCKSIFY" -p "$(proxy_url sx)" -- "$BATS_TEST_TMPDIR/missing"
	assert_one_line_error
}

@test "socksify: a program that cannot be run: status 126, one line naming it" {
	local f=$BATS_TEST_TMPDIR/not-executable
	printf '#!/bin/sh\necho ran\n' >"$f"
	chmod 0644 "$f"
	run -126 --separate-stderr client_run "$SOCKSIFY" -p "$(proxy_url sx)" -- "$f"
	assert_one_line_error
	[[ $stderr == *"$f"* ]] || fail "does not name the program: $stderr"
	assert_equal "$output" ""
	run -126 --separate-stderr client_run "$SOCKSIFY" -p "$(proxy_url sx)" -- "$BATS_TEST_TMPDIR"
	assert_one_line_error
}

@test "socksify: bad proxy URLs: status 2, one line naming the problem, the program never runs" {
	local ran=$BATS_TEST_TMPDIR/ran
	run -2 --separate-stderr client_run "$SOCKSIFY" -p socks4://x:1 -- touch "$ran"
	assert_one_line_error
	[[ $stderr == *socks4://x:1* ]] || fail "does not name the URL: $stderr"
	run -2 --separate-stderr client_run "$SOCKSIFY" -p "socks5://$PROXY4" -- touch "$ran"
	assert_one_line_error
	[[ $stderr == *port* ]] || fail "does not say the port is missing: $stderr"
	# the password never appears in an error
	run -2 --separate-stderr client_run "$SOCKSIFY" -p "socks5://user:s3cr3t@$PROXY4" -- touch "$ran"
	assert_one_line_error
	[[ $stderr != *s3cr3t* ]] || fail "the password is in the error: $stderr"
	# the same from the environment names the variable
	run -2 --separate-stderr client_run env SOCKSIFY_PROXY=socks4://x:1 "$SOCKSIFY" -- touch "$ran"
	assert_one_line_error
	[[ $stderr == *SOCKSIFY_PROXY* ]] || fail "does not name SOCKSIFY_PROXY: $stderr"
	[[ ! -e $ran ]] || fail "the program ran despite the bad configuration"
}

@test "socksify: a configuration file with an unknown option: status 2, FILE:LINE in one line" {
	local conf=$BATS_TEST_TMPDIR/bad.conf ran=$BATS_TEST_TMPDIR/ran
	printf '# a comment\n\nfrobnicate = yes\n' >"$conf"
	run -2 --separate-stderr client_run "$SOCKSIFY" -c "$conf" -- touch "$ran"
	assert_one_line_error
	[[ $stderr == *"$conf:3:"* ]] || fail "does not name $conf:3: $stderr"
	[[ $stderr == *frobnicate* ]] || fail "does not name the option: $stderr"
	run -2 --separate-stderr client_run "$SOCKSIFY" -c "$BATS_TEST_TMPDIR/nonexistent.conf" -- touch "$ran"
	assert_one_line_error
	[[ $stderr == *nonexistent.conf* ]] || fail "does not name the file: $stderr"
	[[ ! -e $ran ]] || fail "the program ran despite the bad configuration"
	# no program at all
	run -2 --separate-stderr client_run "$SOCKSIFY" -p "$(proxy_url sx)"
	assert_one_line_error
}

@test "socksify --env: the export lines socksify a bash -c" {
	run -0 --separate-stderr client_run "$SOCKSIFY" -p "$(proxy_url auth)" --env
	assert_line --regexp "^export LD_PRELOAD='[^':]*libsocksify\\.so${SOCKSIFY_TEST_PRELOAD:+:$SOCKSIFY_TEST_PRELOAD}'\$"
	assert_line "export SOCKSIFY_PROXY='$(proxy_url auth)'"
	# the shim named there exists
	local shim
	shim=$(sed -n "s/^export LD_PRELOAD='\\([^':]*\\)[':].*/\\1/p" <<<"$output")
	[[ -f $shim ]] || fail "LD_PRELOAD names a missing file: $shim"
	# shellcheck disable=SC2016
	run -0 --separate-stderr client_run bash -c 'eval "$("$0" -p "$1" --env)" && exec "${@:2}"' \
		"$SOCKSIFY" "$(proxy_url auth)" "${CURL[@]}" "http://$TARGET4/small.txt?$TAG"
	assert_output "$SMALL_TEXT"
	# the password is in the shell's environment now: said once
	assert_equal "$stderr" "socksify: warning: --env puts the proxy password into the shell's environment (a configuration file that only you can read keeps it out)"
	assert_via_proxy "/small.txt?$TAG " 1
	assert_proxy_connect auth "$TARGET4:80"
}

@test "socksify -v: one log line per proxied connection on stderr, stdout clean" {
	run -0 --separate-stderr client_run "$SOCKSIFY" -v -p "$(proxy_url sx)" -- \
		"${CURL[@]}" "http://$TARGET4/small.txt?$TAG-a" "http://[$TARGET6]/small.txt?$TAG-b"
	assert_equal "$output" "$SMALL_TEXT"$'\n'"$SMALL_TEXT"
	[[ ${#stderr_lines[@]} == 2 ]] || fail "expected 2 log lines, got: $stderr"
	[[ ${stderr_lines[0]} =~ ^socksify\[[0-9]+\]:\ connect\ 198\.18\.2\.2:80\ via\ 198\.18\.1\.1:1080:\ ok,\ [0-9]+\ us$ ]] ||
		fail "unexpected log line: ${stderr_lines[0]}"
	[[ ${stderr_lines[1]} =~ ^socksify\[[0-9]+\]:\ connect\ \[fd00:5:2::2\]:80\ via\ 198\.18\.1\.1:1080:\ ok,\ [0-9]+\ us$ ]] ||
		fail "unexpected log line: ${stderr_lines[1]}"
	# quiet without -v
	run -0 --separate-stderr client_run "$SOCKSIFY" -p "$(proxy_url sx)" -- \
		"${CURL[@]}" "http://$TARGET4/small.txt?$TAG-c"
	assert_equal "$stderr" ""
	# SOCKSIFY_LOG_LEVEL=info without the launcher: the same line
	run -0 --separate-stderr client_run env LD_PRELOAD="$SHIM_PRELOAD" \
		SOCKSIFY_PROXY="$(proxy_url sx)" SOCKSIFY_LOG_LEVEL=info \
		"${CURL[@]}" "http://$TARGET4/small.txt?$TAG-d"
	[[ ${#stderr_lines[@]} == 1 && ${stderr_lines[0]} =~ ^socksify\[[0-9]+\]:\ connect\ 198\.18\.2\.2:80\ via ]] ||
		fail "unexpected log: $stderr"
}

@test "[remote-dns] socksify -v: the log line names the host name" {
	run -0 --separate-stderr client_run "$SOCKSIFY" -v -p "$(proxy_url sx h)" -- \
		"${CURL[@]}" "http://target.test/small.txt?$TAG"
	assert_equal "$output" "$SMALL_TEXT"
	[[ ${stderr_lines[*]} =~ socksify\[[0-9]+\]:\ connect\ target\.test:80\ via\ 198\.18\.1\.1:1080:\ ok,\ [0-9]+\ us ]] ||
		fail "no log line for target.test:80: $stderr"
	assert_no_dns_leak
}

# ---------------------------------------------------------------------------------
# probe.c: socket semantics from C
# ---------------------------------------------------------------------------------

# probe_run KIND [h] -- SUBCOMMAND ARGS...: the probe under socksify in the client
probe_run() {
	local args=() probe
	probe=$(probe_bin) || fail "cannot build the probe"
	while [[ $1 != -- ]]; do
		args+=("$1")
		shift
	done
	shift
	sx_run "${args[@]}" -- "$probe" "$@"
}

@test "probe sockopts: SO_KEEPALIVE, TCP_NODELAY, TCP_KEEPIDLE, FD_CLOEXEC and a prior bind() survive connect (IPv4)" {
	run -0 probe_run sx -- sockopts "$TARGET4" 80 "/small.txt?$TAG" "$SMALL_TEXT" 45001
	refute_line --partial FAIL
	assert_line "ok getsockname after connect: the bound port 45001 ($CLIENT4:45001)"
	assert_via_proxy "/small.txt?$TAG " 1
}

@test "probe sockopts: the same on an AF_INET6 socket to [fd00:5:2::2] (IPv4 proxy)" {
	run -0 probe_run sx -- sockopts "$TARGET6" 80 "/small.txt?$TAG" "$SMALL_TEXT" 45002
	refute_line --partial FAIL
	assert_line --regexp "^ok getsockname after connect: the bound port 45002 "
	assert_via_proxy "/small.txt?$TAG " 1
}

@test "probe epoll: registered before and after a non-blocking connect, both get EPOLLOUT, then data flows (IPv4)" {
	run -0 probe_run sx -- epoll "$TARGET4" 80 "/small.txt?$TAG" "$SMALL_TEXT"
	refute_line --partial FAIL
	assert_via_proxy "/small.txt?$TAG " 2
}

@test "probe epoll: the same on AF_INET6 sockets" {
	run -0 probe_run sx -- epoll "$TARGET6" 80 "/small.txt?$TAG" "$SMALL_TEXT"
	refute_line --partial FAIL
	assert_via_proxy "/small.txt?$TAG " 2
}

@test "probe epoll: through dante" {
	require_proxy dante
	run -0 probe_run dante -- epoll "$TARGET4" 80 "/small.txt?$TAG" "$SMALL_TEXT"
	refute_line --partial FAIL
	assert_via_proxy "/small.txt?$TAG " 2
}

@test "probe sockopts: an AF_INET6 socket through an IPv6 proxy [fd00:5:1::1] keeps its options, bound port and family" {
	run -0 probe_run sx6 -- sockopts "$TARGET6" 80 "/small.txt?$TAG" "$SMALL_TEXT" 45003
	refute_line --partial FAIL
	assert_line --regexp "^ok getsockname after connect: the bound port 45003 "
	assert_via_proxy "/small.txt?$TAG " 1
	assert_proxy_connect sx6 "[$TARGET6]:80"
}

@test "probe epoll: AF_INET6 sockets through an IPv6 proxy (registered before connect must survive)" {
	run -0 probe_run sx6 -- epoll "$TARGET6" 80 "/small.txt?$TAG" "$SMALL_TEXT"
	refute_line --partial FAIL
	assert_via_proxy "/small.txt?$TAG " 2
}

@test "probe dup2: through an IPv6 proxy" {
	run -0 probe_run sx6 -- dup2 "$TARGET6" 80 "/small.txt?$TAG" "$SMALL_TEXT"
	refute_line --partial FAIL
	assert_via_proxy "/small.txt?$TAG " 1
}

@test "probe dup2: getpeername after dup2/dup/F_DUPFD_CLOEXEC/dup3, data on the copy; a new socket on the fd is unconnected" {
	run -0 probe_run sx -- dup2 "$TARGET4" 80 "/small.txt?$TAG" "$SMALL_TEXT"
	refute_line --partial FAIL
	assert_via_proxy "/small.txt?$TAG " 1
}

@test "probe close_range: the fd number is reused and connects again (torsocks: EISCONN)" {
	run -0 probe_run sx -- closerange "$TARGET4" 80 "/small.txt?$TAG" "$SMALL_TEXT"
	refute_line --partial FAIL
	assert_via_proxy "/small.txt?$TAG " 2
}

@test "probe closefrom: the fd number is reused and connects again" {
	run -0 probe_run sx -- closerange "$TARGET4" 80 "/small.txt?$TAG" "$SMALL_TEXT" closefrom
	refute_line --partial FAIL
	assert_via_proxy "/small.txt?$TAG " 2
}

@test "[remote-dns] probe forkdns: a name resolved in a forked child connects in the parent" {
	run -0 probe_run sx h -- forkdns target.test 80 "/small.txt?$TAG" "$SMALL_TEXT"
	refute_line --partial FAIL
	assert_via_proxy "/small.txt?$TAG " 1
	assert_no_dns_leak
}

@test "[remote-dns] probe gai: getaddrinfo target.test with NULL, AF_INET6 and AF_INET hints; each connects" {
	run -0 probe_run sx h -- gai target.test 80 "/small.txt?$TAG" "$SMALL_TEXT"
	refute_line --partial FAIL
	assert_line --regexp "^ok AF_INET6 hints: connect \\["
	assert_via_proxy "/small.txt?$TAG " 3
	assert_no_dns_leak
}

@test "[remote-dns] probe nameinfo: getnameinfo/gethostbyaddr of a fake address give the name back" {
	run -0 probe_run sx h -- nameinfo target.test
	refute_line --partial FAIL
	assert_no_dns_leak
}

@test "probe connect-err: reply 2 (--deny 198.18.2.0/24) -> EACCES, blocking and non-blocking" {
	run -0 probe_run deny -- connect-err "$TARGET4" 80 EACCES
	refute_line --partial FAIL
	wait_log SXDENY_LOG "CONNECT 198\\.18\\.2\\.2:80: reply 2"
}

@test "probe connect-err: reply 5 (closed port 198.18.2.2:81) -> ECONNREFUSED" {
	run -0 probe_run sx -- connect-err "$TARGET4" 81 ECONNREFUSED
	refute_line --partial FAIL
	wait_log SX_LOG "CONNECT 198\\.18\\.2\\.2:81: reply 5"
}

@test "probe connect-err: reply 5 from dante -> ECONNREFUSED" {
	require_proxy dante
	run -0 probe_run dante -- connect-err "$TARGET4" 81 ECONNREFUSED
	refute_line --partial FAIL
}

@test "probe connect-err: reply 3 (no route at the proxy) -> ENETUNREACH" {
	run -0 probe_run sx -- connect-err 198.18.9.9 80 ENETUNREACH
	refute_line --partial FAIL
	wait_log SX_LOG "CONNECT 198\\.18\\.9\\.9:80: reply 3"
}

@test "probe connect-err: reply 4 (unreachable route at the proxy) -> EHOSTUNREACH" {
	run -0 probe_run sx -- connect-err 198.18.7.1 80 EHOSTUNREACH
	refute_line --partial FAIL
	wait_log SX_LOG "CONNECT 198\\.18\\.7\\.1:80: reply 4"
}

@test "probe connect-err: reply 2 (prohibit route at the proxy) -> EACCES" {
	run -0 probe_run sx -- connect-err 198.18.8.1 80 EACCES
	refute_line --partial FAIL
	wait_log SX_LOG "CONNECT 198\\.18\\.8\\.1:80: reply 2"
}

@test "probe connect-err: after a failed connect the fd is not left connected to the proxy (getpeername ENOTCONN, send fails)" {
	run -0 probe_run sx -- connect-err "$TARGET4" 81 ECONNREFUSED state
	refute_line --partial FAIL
}

# The handshake runs inside connect(), also for non-blocking sockets (see
# docs/design.md): a silent proxy holds connect() for connect_timeout, never longer.
@test "probe longjmp-connect: a connect abandoned with alarm() + siglongjmp leaves the shim working: the next connect still goes to the proxy" {
	netns_silent_proxy 1097
	local conf=$BATS_TEST_TMPDIR/socksify.conf
	printf 'proxy = socks5://%s:1097\nconnect_timeout = 2\n' "$PROXY4" >"$conf"
	run -0 client_run "$SOCKSIFY" -c "$conf" -- "$(probe_bin)" longjmp-connect "$TARGET4" 80
	refute_line --partial FAIL
	assert_line "ok the alarm jumped out of the first connect"
	assert_line "ok the next connect still went to the proxy (ETIMEDOUT)"
}

@test "probe slow-proxy: a proxy that never answers: connect gives up after connect_timeout = 1 (EINPROGRESS, then SO_ERROR ETIMEDOUT; blocking: ETIMEDOUT)" {
	netns_silent_proxy 1095
	local conf=$BATS_TEST_TMPDIR/socksify.conf probe
	probe=$(probe_bin)
	printf 'proxy = socks5://%s:1095\nconnect_timeout = 1\n' "$PROXY4" >"$conf"
	run -0 client_run "$SOCKSIFY" -c "$conf" -- "$probe" slow-proxy "$TARGET4" 80 3000 ETIMEDOUT
	refute_line --partial FAIL
	# the blocking connect gave up after about connect_timeout
	local ms
	ms=$(sed -n 's/^ok blocking connect .* after \([0-9]*\) ms$/\1/p' <<<"$output")
	[[ -n $ms ]] && ((ms >= 800 && ms <= 3000)) || fail "the blocking connect took ${ms:-?} ms, expected about 1000"
	assert_trap_untouched
}

@test "bg_probe error: a proxy that never answers: a background handshake gives up after connect_timeout = 1 (SO_ERROR ETIMEDOUT, epoll reports it)" {
	netns_silent_proxy 1097
	local conf=$BATS_TEST_TMPDIR/socksify.conf
	printf 'proxy = socks5://%s:1097\nconnect_timeout = 1\n' "$PROXY4" >"$conf"
	local t0=$EPOCHREALTIME
	run -0 client_run "$SOCKSIFY" -c "$conf" -- "$SOCKSIFY_BG_PROBE" error "$TARGET4" 80 ETIMEDOUT
	refute_line --partial FAIL
	assert_line "ok SO_ERROR ETIMEDOUT (Connection timed out)"
	awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { exit !(b - a >= 0.8 && b - a <= 3) }' ||
		fail "it took $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }') s, expected about 1"
	assert_trap_untouched
}

@test "[remote-dns] probe connect-err: a name the proxy cannot resolve -> reply 4 -> EHOSTUNREACH" {
	run -0 probe_run sx h -- connect-err nonexistent.test 80 EHOSTUNREACH
	refute_line --partial FAIL
	assert_no_dns_leak
	wait_log SX_LOG "CONNECT nonexistent\\.test:80: reply 4"
}

@test "probe tfo: sendto and sendmsg with MSG_FASTOPEN on a fresh socket connect through the proxy" {
	run -0 probe_run sx -- tfo "$TARGET4" 80 "/small.txt?$TAG" "$SMALL_TEXT"
	refute_line --partial FAIL
	assert_line --regexp "^ok sendto\\(fd [0-9]+, MSG_FASTOPEN, $TARGET4:80\\): [0-9]+ bytes sent\$"
	assert_line --regexp "^ok sendmsg\\(fd [0-9]+, MSG_FASTOPEN, $TARGET4:80\\): [0-9]+ bytes sent\$"
	assert_via_proxy "/small.txt?$TAG-sendto " 1
	assert_via_proxy "/small.txt?$TAG-sendmsg " 1
	assert_proxy_connect sx "$TARGET4:80"
	assert_trap_untouched
}

@test "[remote-dns] probe tfo: MSG_FASTOPEN to the fake address of target.test sends the name to the proxy" {
	run -0 probe_run sx h -- tfo target.test 80 "/small.txt?$TAG" "$SMALL_TEXT"
	refute_line --partial FAIL
	assert_via_proxy "/small.txt?$TAG-send" 2
	assert_proxy_connect sx "target.test:80"
	assert_no_dns_leak
}

@test "[remote-dns] probe resquery: res_query and res_search fail (-1), one log line names res_query, no query leaves" {
	run -0 --separate-stderr probe_run sx h -- resquery target.test
	refute_line --partial FAIL
	assert_equal "${#lines[@]}" 3
	[[ ${#stderr_lines[@]} == 1 ]] || fail "expected one log line on stderr, got: $stderr"
	[[ ${stderr_lines[0]} =~ ^socksify\[[0-9]+\]:\ res_query\(target\.test\)\ refused ]] ||
		fail "unexpected log line: ${stderr_lines[0]}"
	assert_no_dns_leak
	# the control: with names resolved here (socks5://) the same calls do reach the
	# leak detector, so its silence above means something
	run -0 --separate-stderr probe_run sx -- resquery target.test
	assert_equal "$stderr" ""
	wait_log DNS_LOG " target\\.test 1\$"
}

@test "[remote-dns] probe hostent: gethostbyname{,2}{,_r} give fake addresses, gethostbyaddr the name, NI_NAMEREQD of 198.18.2.2 is EAI_NONAME; no query leaks" {
	run -0 probe_run sx h -- hostent target.test 80 "/small.txt?$TAG" "$SMALL_TEXT" "$TARGET4"
	refute_line --partial FAIL
	assert_line --regexp "^ok gethostbyname = (24[0-9]|25[0-5])\\.[0-9.]+ \\(h_name target\\.test\\)\$"
	assert_line --regexp "^ok gethostbyname2\\(AF_INET6\\) = 100::[0-9a-f:]+ \\(h_name target\\.test\\)\$"
	assert_line "ok gethostbyaddr(fake IPv4) = target.test"
	assert_line "ok gethostbyaddr(fake IPv6) = target.test"
	assert_line "ok getnameinfo($TARGET4, NI_NAMEREQD): EAI_NONAME"
	assert_line --partial "ok gethostbyaddr(non-fake): no answer"
	assert_via_proxy "/small.txt?$TAG-v4 " 1
	assert_via_proxy "/small.txt?$TAG-v6 " 1
	assert_proxy_connect sx "target.test:80"
	assert_no_dns_leak
}

# ---------------------------------------------------------------------------------
# hooks called before the shim's constructor
# ---------------------------------------------------------------------------------

# ctor_main needs libsxctor.so (DT_NEEDED); glibc initialises it before the
# preloaded shim (LD_DEBUG=libs prints "calling init: ..." in that order,
# checked here), so the constructor's getaddrinfo() and connect() are the first
# calls into the shim, which must initialise itself on the spot.
@test "[remote-dns] a library constructor that runs before the shim's resolves target.test remotely and fetches through the proxy" {
	ctor_bins
	run -0 --separate-stderr client_run env LD_DEBUG=libs SXCTOR_HOST=target.test \
		SXCTOR_PATH="/small.txt?$TAG-ctor" SXCTOR_EXPECT="$SMALL_TEXT" \
		"$SOCKSIFY" -p "$(proxy_url sx h)" -- "$CTOR_MAIN"
	refute_line --partial FAIL
	assert_line --regexp "^ctor: ok getaddrinfo target\\.test = (24[0-9]|25[0-5])\\.[0-9.]+:80\$"
	assert_line --regexp "^ctor: ok connect "
	assert_line "ctor: ok GET /small.txt?$TAG-ctor: 200 with the expected body"
	assert_line "main: the constructor's status is 0"
	# the order of the two constructors
	local inits
	inits=$(grep -oE 'calling init: .*/(libsxctor|libsocksify)\.so$' <<<"$stderr" |
		sed 's|.*/||') || true
	assert_equal "$inits" $'libsxctor.so\nlibsocksify.so'
	assert_via_proxy "/small.txt?$TAG-ctor " 1
	assert_proxy_connect sx "target.test:80"
	assert_no_dns_leak
}

# ---------------------------------------------------------------------------------
# the launcher: programs it cannot socksify, LD_PRELOAD, --env across exec
# ---------------------------------------------------------------------------------

@test "socksify: a statically linked program runs supervised: its raw connect() goes through the proxy" {
	static_prog_bin || skip "$STATIC_PROG_WHY"
	run -0 --separate-stderr client_run "$SOCKSIFY" -p "$(proxy_url sx)" -- "$STATIC_PROG"
	assert_output "static program ran"
	assert_equal "$stderr" ""
	run -0 client_run "$SOCKSIFY" -p "$(proxy_url sx)" -- "$STATIC_PROG" "$TARGET4" 80 "small.txt?$TAG-static"
	assert_output --partial "200"
	assert_via_proxy "/small.txt?$TAG-static" 1
	assert_proxy_connect sx "$TARGET4:80"
	# the proxy down: the trap next to it, reachable directly, sees nothing
	run -1 --separate-stderr client_run "$SOCKSIFY" -p "socks5h://$PROXY4:1" -- "$STATIC_PROG" "$PROXY4" 8080 "static-trap"
	assert_output "connect: Connection refused"
	[[ $stderr == *"supervisor: connect $PROXY4:8080 via $PROXY4:1"*"Connection refused"* ]] ||
		fail "no log line for the refused connect: $stderr"
	assert_trap_untouched
	# a dynamically linked program gets no warning
	run -0 --separate-stderr client_run "$SOCKSIFY" -p "$(proxy_url sx)" -- /bin/true
	assert_equal "$stderr" ""
}

@test "socksify: --no-supervise refuses a statically linked program in one line; --allow-direct runs it with a warning" {
	static_prog_bin || skip "$STATIC_PROG_WHY"
	run -126 --separate-stderr client_run "$SOCKSIFY" --no-supervise -p "$(proxy_url sx)" -- "$STATIC_PROG"
	assert_output ""
	[[ ${#stderr_lines[@]} == 1 ]] || fail "expected one line on stderr, got: $stderr"
	[[ ${stderr_lines[0]} == "socksify: $STATIC_PROG is statically linked"*"refused"* ]] ||
		fail "unexpected message: $stderr"
	run -0 --separate-stderr client_run "$SOCKSIFY" --no-supervise --allow-direct -p "$(proxy_url sx)" -- "$STATIC_PROG"
	assert_output "static program ran"
	[[ ${#stderr_lines[@]} == 1 ]] || fail "expected one line on stderr, got: $stderr"
	[[ ${stderr_lines[0]} == "socksify: warning: $STATIC_PROG is statically linked"* ]] ||
		fail "unexpected warning: $stderr"
}

@test "socksify: where seccomp user notification is missing, a static program is refused in one line; --allow-direct runs it unproxied" {
	static_prog_bin || skip "$STATIC_PROG_WHY"
	local noseccomp=${SOCKSIFY_NOSECCOMP:-$SOCKSIFY_BUILD/tests/e2e/noseccomp}
	[[ -x $noseccomp ]] || skip "noseccomp not built ($noseccomp)"
	run -126 --separate-stderr client_run "$noseccomp" "$SOCKSIFY" -p "$(proxy_url sx)" -- \
		"$STATIC_PROG" "$PROXY4" 8080 "noseccomp-trap"
	assert_output ""
	[[ ${#stderr_lines[@]} == 1 ]] || fail "expected one line on stderr, got: $stderr"
	[[ ${stderr_lines[0]} == "socksify: cannot supervise $STATIC_PROG: seccomp user notification is not available"* ]] ||
		fail "unexpected message: $stderr"
	assert_trap_untouched
	run -0 --separate-stderr client_run "$noseccomp" "$SOCKSIFY" --allow-direct -p "$(proxy_url sx)" -- \
		"$STATIC_PROG"
	assert_output "static program ran"
	[[ ${stderr_lines[0]} == *"--allow-direct: it runs unproxied"* ]] || fail "unexpected message: $stderr"
}

@test "socksify: a setuid (and a setgid) program: one warning line naming it, the program still runs" {
	local prog=$BATS_TEST_TMPDIR/true-setuid
	cp /bin/true "$prog"
	chmod u+s "$prog"
	run -0 --separate-stderr client_run "$SOCKSIFY" -p "$(proxy_url sx)" -- "$prog"
	[[ ${#stderr_lines[@]} == 1 ]] || fail "expected one line on stderr, got: $stderr"
	[[ ${stderr_lines[0]} == "socksify: warning: $prog is setuid"* ]] ||
		fail "unexpected warning: $stderr"
	chmod u-s,g+s "$prog"
	run -0 --separate-stderr client_run "$SOCKSIFY" -p "$(proxy_url sx)" -- "$prog"
	[[ ${#stderr_lines[@]} == 1 && ${stderr_lines[0]} == "socksify: warning: $prog is setuid/setgid"* ]] ||
		fail "unexpected warning for a setgid program: $stderr"
	# the same file without the bits: no warning
	chmod g-s "$prog"
	run -0 --separate-stderr client_run "$SOCKSIFY" -p "$(proxy_url sx)" -- "$prog"
	assert_equal "$stderr" ""
}

@test "socksify: an LD_PRELOAD already set is kept after the shim, both are loaded, connections still go through the proxy" {
	ctor_bins
	local shim want
	shim=$(readlink -f "$SOCKSIFY_SHIM")
	want="$shim:${SOCKSIFY_TEST_PRELOAD:+$SOCKSIFY_TEST_PRELOAD:}$CTOR_LIB"
	# shellcheck disable=SC2016
	run -0 --separate-stderr client_run env LD_PRELOAD="$CTOR_LIB" \
		"$SOCKSIFY" -p "$(proxy_url sx)" -- sh -c 'tr "\000" "\n" </proc/$$/environ'
	assert_line "LD_PRELOAD=$want"
	# shellcheck disable=SC2016
	run -0 --separate-stderr client_run env LD_PRELOAD="$CTOR_LIB" \
		"$SOCKSIFY" -p "$(proxy_url sx)" -- sh -c 'cat /proc/$$/maps'
	assert_output --partial "$shim"
	assert_output --partial "$CTOR_LIB"
	run -0 --separate-stderr client_run env LD_PRELOAD="$CTOR_LIB" "$SOCKSIFY" -p "$(proxy_url sx)" --env
	assert_line "export LD_PRELOAD='$want'"
	run -0 client_run env LD_PRELOAD="$CTOR_LIB" "$SOCKSIFY" -p "$(proxy_url sx)" -- \
		"${CURL[@]}" "http://$TARGET4/small.txt?$TAG"
	assert_output "$SMALL_TEXT"
	assert_via_proxy "/small.txt?$TAG " 1
}

# argv: NAME PATH (the first run) or child ADDR NAME PATH PARENT-PID (after
# exec): the parent resolves NAME and execs itself; the new image connects to
# the address the parent got and fetches PATH.
PY_REEXEC="$PY_FETCH"'
import os, sys
if sys.argv[1] != "child":
    name, path = sys.argv[1], sys.argv[2]
    addr = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)[0][4][0]
    print("parent pid %d resolved %s %s, SOCKSIFY_FAKEDNS_FD=%s" % (os.getpid(), name, addr, os.environ.get("SOCKSIFY_FAKEDNS_FD")))
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, sys.argv[0], "child", addr, name, path, str(os.getpid())])
_, addr, name, path, ppid = sys.argv[1:]
print("child is the same process:", int(ppid) == os.getpid())
# connect before any lookup here: a fresh pool would hand out the same address
status, body, peer = fetch(addr, 80, path)
print("child status", status)
print("child body", body.decode(errors="replace").strip())
print("child peer %s %d" % peer)
again = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)[0][4][0]
print("child resolves %s again: %s" % (name, "the same address" if again == addr else "a different address " + again))
'

@test "[remote-dns] socksify --env in bash -c: python resolves a name, execs itself, the new image connects to the fake address" {
	local script=$BATS_TEST_TMPDIR/reexec.py
	printf '%s\n' "$PY_REEXEC" >"$script"
	# shellcheck disable=SC2016
	run -0 client_run bash -c 'eval "$("$0" -p "$1" --env)" && "${@:2}"' \
		"$SOCKSIFY" "$(proxy_url sx h)" "$PYTHON" "$script" target.test "/small.txt?$TAG"
	assert_line --regexp "^parent pid [0-9]+ resolved target\\.test (24[0-9]|25[0-5])\\.[0-9.]+, SOCKSIFY_FAKEDNS_FD=[0-9]+\$"
	assert_line "child is the same process: True"
	assert_line "child resolves target.test again: the same address"
	assert_line "child status HTTP/1.0 200 OK"
	assert_line "child body $SMALL_TEXT"
	local addr
	addr=$(sed -n 's/^parent pid [0-9]* resolved target\.test \([0-9.]*\),.*/\1/p' <<<"$output")
	assert_line "child peer $addr 80"
	assert_via_proxy "/small.txt?$TAG " 1
	assert_proxy_connect sx "target.test:80"
	assert_no_dns_leak
}

# ---------------------------------------------------------------------------------
# configuration corners: pipelining, a proxy by name, a broken configuration
# ---------------------------------------------------------------------------------

@test "pipeline = yes: greeting, auth and CONNECT in one write work with socksify-server (no auth, auth) and dante" {
	local kind conf
	for kind in sx auth dante; do
		require_proxy "$kind"
		conf=$BATS_TEST_TMPDIR/$kind.conf
		printf 'proxy = %s\npipeline = yes\n' "$(proxy_url "$kind")" >"$conf"
		chmod 600 "$conf" # a password in a file others may read draws a warning
		run -0 client_run "$SOCKSIFY" -c "$conf" -- "${CURL[@]}" "http://$TARGET4/small.txt?$TAG-$kind"
		assert_output "$SMALL_TEXT"
		assert_proxy_connect "$kind" "$TARGET4:80"
	done
	assert_via_proxy "/small.txt?$TAG-" 3
}

@test "the proxy given by host name (resolved locally, in the client namespace)" {
	# only this test uses the name; the file goes with the topology
	echo "$PROXY4 socks-proxy.test" >>"/etc/netns/$NX-client/hosts"
	run -0 client_run "$SOCKSIFY" -p "socks5://socks-proxy.test:1080" -- \
		"${CURL[@]}" "http://$TARGET4/small.txt?$TAG"
	assert_output "$SMALL_TEXT"
	assert_via_proxy "/small.txt?$TAG " 1
	assert_no_dns_leak
}

@test "the proxy's own address goes direct: curl --socks5 to the proxy under socksify still works" {
	run -0 sx_run sx -- "${CURL[@]}" --socks5 "$PROXY4:1080" "http://$TARGET4/small.txt?$TAG"
	assert_output "$SMALL_TEXT"
	assert_via_proxy "/small.txt?$TAG " 1
	# one CONNECT to the target, none to the proxy itself
	assert_proxy_connect sx "$TARGET4:80"
	local log
	log=$(log_since "$(proxy_log_var sx)")
	[[ $log != *"CONNECT $PROXY4:1080"* ]] || fail "the connection to the proxy was proxied: $log"
}

@test "a shim loaded without the launcher and a bad SOCKSIFY_PROXY: one line, every connection fails, nothing goes direct" {
	run client_run env LD_PRELOAD="$SHIM_PRELOAD" SOCKSIFY_PROXY="socks4://$PROXY4:1080" \
		"$PYTHON" -c '
import socket, sys
for host, port in ((sys.argv[1], 80), (sys.argv[2], 8080)):
    try:
        socket.create_connection((host, port), timeout=5).close()
        print("connected", host)
    except OSError as e:
        print("refused", host, e.errno)
' "$TARGET4" "$PROXY4"
	assert_line "refused $TARGET4 111"
	assert_line "refused $PROXY4 111"
	refute_line --partial connected
	run -0 grep -c "bad proxy URL 'socks4://" <<<"$output"
	assert_output 1
	assert_trap_untouched
	[[ -z $(target_log_since) ]] || fail "the target was reached: $(target_log_since)"
}

@test "valgrind: curl under the shim by name, no memory errors or definite leaks" {
	[[ -z ${SOCKSIFY_TEST_PRELOAD:-} ]] || skip "valgrind cannot run with the ASan shim (this is the ASan pass)"
	command -v valgrind >/dev/null || fail "valgrind is not installed (scripts/deps installs it)"
	# valgrind's tool is static: the shim's exec hook runs it supervised,
	# through the launcher named here (LD_PRELOAD is set without one)
	run -0 client_run env LD_PRELOAD="$SHIM_PRELOAD" SOCKSIFY_LAUNCHER="$SOCKSIFY" SOCKSIFY_PROXY="$(proxy_url sx h)" \
		valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
		--show-possibly-lost=no \
		"${CURL[@]}" "http://target.test/small.txt?$TAG"
	assert_output "$SMALL_TEXT"
	assert_via_proxy "/small.txt?$TAG " 1
}

@test "[remote-dns] /etc/hosts names and excluded names resolve locally; other names get fake addresses without a query" {
	echo "$PROXY4 hosts-name.test" >>"/etc/netns/$NX-client/hosts"
	run -0 client_run env SOCKSIFY_EXCLUDE=excluded.test "$SOCKSIFY" -p "$(proxy_url sx h)" -- \
		"$PYTHON" -c '
import socket
for name in ("hosts-name.test", "some.other.test"):
    print(name, socket.getaddrinfo(name, 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
try:
    socket.getaddrinfo("x.excluded.test", 80, socket.AF_INET, socket.SOCK_STREAM)
    print("x.excluded.test resolved")
except socket.gaierror as e:
    print("x.excluded.test not found")
'
	assert_line "hosts-name.test $PROXY4"
	assert_line --regexp '^some\.other\.test 24[0-9]\.[0-9]+\.[0-9]+\.[0-9]+$'
	assert_line "x.excluded.test not found"
	# the excluded name was asked of the local nameserver, and only it
	wait_log DNS_LOG " x\\.excluded\\.test "
	local dns
	dns=$(log_since DNS_LOG)
	[[ $dns != *other.test* && $dns != *hosts-name* ]] || fail "a query left for a proxied name: $dns"
}
