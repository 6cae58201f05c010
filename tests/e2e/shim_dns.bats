#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The shim's name lookups beyond getaddrinfo's IPv4 fake (issue 13): the IPv6
# twin of a fake address for AF_UNSPEC (AI_ADDRCONFIG, with and without IPv6 on
# the host), happy-eyeballs clients (curl, python asyncio and
# create_connection) making one proxied connection per name, and the
# nameserver setting: res_query/res_search/res_send sent over TCP through the
# proxy (probe.c resquery) and `host -t MX`, answered by the target's dnsmasq,
# which only the proxy can reach.
#
# Run (as root): meson test -C build shim-dns, or
#   SOCKSIFY_SERVER=build/cli/socksify-server SOCKSIFY=build/cli/socksify \
#   SOCKSIFY_SHIM=build/shim/libsocksify.so bats tests/e2e/shim_dns.bats

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
}

teardown() {
	local rc=0
	netns_teardown || rc=$?
	if [[ -n ${output:-} ]]; then
		echo "# --- the output of the last command run:"
		sed 's/^/#   /' <<<"$output" | tail -n 40
	fi
	echo "# --- this test's part of the logs (namespace prefix $NX):"
	local v
	for v in SX_LOG HTTP_LOG HTTP6_LOG TARGET_DNS_LOG DNS_LOG FAR_LOG; do
		[[ -n ${!v:-} ]] || continue
		log_since "$v" | sed "s/^/# $v: /" | tail -n 20
	done
	return "$rc"
}

# argv: NAME; one line per getaddrinfo call: "HINTS: ADDR ADDR ..."
PY_GAI='
import socket, sys
name = sys.argv[1]
def show(label, family, flags):
    try:
        res = socket.getaddrinfo(name, 80, family, socket.SOCK_STREAM, 0, flags)
        print(label + ":", " ".join(r[4][0] for r in res))
    except socket.gaierror as e:
        print(label + ": error", e)
show("unspec", socket.AF_UNSPEC, 0)
show("unspec addrconfig", socket.AF_UNSPEC, socket.AI_ADDRCONFIG)
show("inet6", socket.AF_INET6, 0)
show("inet", socket.AF_INET, 0)
'

# proxied_connects NAME:PORT: how many CONNECTs to NAME:PORT socksify-server
# (1080) logged during this test, after a moment for the last to be logged.
proxied_connects() {
	local re=${1//./\\.}
	sleep 0.3
	log_since SX_LOG | grep -cE " CONNECT ${re}[: ]" || true
}

FAKE4='(24[0-9]|25[0-5])(\.[0-9]+){3}'
FAKE6='100::[0-9a-f:]+'

@test "[remote-dns] getaddrinfo AF_UNSPEC: the IPv4 fake, then its IPv6 twin (same entry); AI_ADDRCONFIG keeps the twin (the client has fd00:5:1::2); AF_INET6 the twin only" {
	run -0 socksify_client sx h -- "$PYTHON" -c "$PY_GAI" target.test
	assert_line --regexp "^unspec: $FAKE4 $FAKE6\$"
	assert_line --regexp "^unspec addrconfig: $FAKE4 $FAKE6\$"
	assert_line --regexp "^inet6: $FAKE6\$"
	assert_line --regexp "^inet: $FAKE4\$"
	# the twin: the IPv4 fake's offset in 240.0.0.0/4 is the IPv6 one's in 100::/64
	local v4 v6
	read -r v4 v6 < <(sed -n 's/^unspec: //p' <<<"$output")
	run -0 "$PYTHON" -c 'import ipaddress as i, sys
print(int(i.ip_address(sys.argv[1])) - int(i.ip_address("240.0.0.0")),
      int(i.ip_address(sys.argv[2])) - int(i.ip_address("100::")))' "$v4" "$v6"
	local off4 off6
	read -r off4 off6 <<<"$output"
	assert_equal "$off6" "$off4"
	assert_no_dns_leak
}

@test "[remote-dns] getaddrinfo AI_ADDRCONFIG on a host without IPv6 (a namespace with only loopback): the IPv4 fake alone; without the flag both" {
	run -0 client_run unshare -n "$SOCKSIFY" -p "$(proxy_url sx h)" -- \
		"$PYTHON" -c "$PY_GAI" target.test
	assert_line --regexp "^unspec: $FAKE4 $FAKE6\$"
	assert_line --regexp "^unspec addrconfig: $FAKE4\$"
	assert_line --regexp "^inet6: $FAKE6\$"
}

@test "[remote-dns] curl http://target.test/ (happy eyeballs over the IPv4 fake and its twin): one proxied connection" {
	run -0 socksify_client sx h -- curl -sS --max-time 20 "http://target.test/small.txt?$TAG"
	assert_output "$SMALL_TEXT"
	assert_via_proxy "/small.txt?$TAG " 1
	assert_equal "$(proxied_connects target.test:80)" 1
	assert_no_dns_leak
}

@test "[remote-dns] python asyncio open_connection(happy_eyeballs_delay=0.25) and socket.create_connection to target.test: one proxied connection each" {
	local py='
import asyncio, socket, sys
path = sys.argv[1]
async def main():
    r, w = await asyncio.open_connection("target.test", 80, happy_eyeballs_delay=0.25)
    w.write(("GET %s-async HTTP/1.0\r\nHost: t\r\n\r\n" % path).encode())
    data = await r.read()
    w.close()
    print("async", w.get_extra_info("peername")[0], data.split(b"\r\n")[0].decode())
asyncio.run(main())
s = socket.create_connection(("target.test", 80), timeout=20)
s.sendall(("GET %s-sync HTTP/1.0\r\nHost: t\r\n\r\n" % path).encode())
data = s.makefile("rb").read()
print("sync", s.getpeername()[0], data.split(b"\r\n")[0].decode())
'
	run -0 socksify_client sx h -- "$PYTHON" -c "$py" "/small.txt?$TAG"
	assert_line --regexp "^async $FAKE4 HTTP/1.0 200"
	assert_line --regexp "^sync $FAKE4 HTTP/1.0 200"
	assert_via_proxy "/small.txt?$TAG-async " 1
	assert_via_proxy "/small.txt?$TAG-sync " 1
	assert_equal "$(proxied_connects target.test:80)" 2
	assert_no_dns_leak
}


# sx_conf [LINES...]: a configuration file for socksify-server (1080, names
# remote) with LINES after the proxy line; prints its path
sx_conf() {
	local conf=$BATS_TEST_TMPDIR/socksify.conf
	printf 'proxy = %s\n' "$(proxy_url sx h)" >"$conf"
	printf '%s\n' "$@" >>"$conf"
	echo "$conf"
}

@test "[remote-dns] nameserver = 198.18.2.2: res_query, res_search, res_querydomain, res_send, res_nquery and res_nsearch get mail.example.test's MX from the target's dnsmasq, over TCP through the proxy; NXDOMAIN is HOST_NOT_FOUND" {
	local conf
	conf=$(sx_conf "nameserver = $TARGET4")
	run -0 client_run "$SOCKSIFY" -c "$conf" -- "$(probe_bin)" resmx \
		"$DNS_EXAMPLE_MX_NAME" "$DNS_EXAMPLE_MX_HOST" "nosuch-$TAG.$DNS_EXAMPLE_NX"
	refute_line --partial FAIL
	assert_line "ok res_query: MX $DNS_EXAMPLE_MX_HOST"
	assert_line "ok res_nsearch: MX $DNS_EXAMPLE_MX_HOST"
	assert_line "ok res_query(NXNAME): -1, h_errno Unknown host"
	assert_dns_via_proxy "$DNS_EXAMPLE_MX_NAME"
	assert_dns_via_proxy "nosuch-$TAG.$DNS_EXAMPLE_NX"
	assert_proxy_connect sx "$TARGET4:53"
	assert_no_dns_leak
}

@test "[remote-dns] SOCKSIFY_NAMESERVER=[fd00:5:2::2]:53: res_query and friends through the proxy to the IPv6 address" {
	run -0 client_run env SOCKSIFY_NAMESERVER="[$TARGET6]:53" "$SOCKSIFY" -p "$(proxy_url sx h)" -- \
		"$(probe_bin)" resmx "$DNS_EXAMPLE_MX_NAME" "$DNS_EXAMPLE_MX_HOST" "nosuch-$TAG.$DNS_EXAMPLE_NX"
	refute_line --partial FAIL
	assert_dns_via_proxy "$DNS_EXAMPLE_MX_NAME"
	assert_proxy_connect sx "[$TARGET6]:53"
	assert_no_dns_leak
}

@test "[remote-dns] nameserver = 198.18.2.2: host -t MX mail.example.test (UDP to resolv.conf's nameserver, sent to 198.18.2.2 through the proxy), and host -T (TCP)" {
	local conf
	conf=$(sx_conf "nameserver = $TARGET4")
	run -0 client_run "$SOCKSIFY" -c "$conf" -- host -W 5 -t MX "$DNS_EXAMPLE_MX_NAME"
	assert_output "$DNS_EXAMPLE_MX_NAME mail is handled by 10 $DNS_EXAMPLE_MX_HOST."
	assert_dns_via_proxy "$DNS_EXAMPLE_MX_NAME"
	assert_proxy_udp sx
	assert_no_dns_leak
	run -0 client_run "$SOCKSIFY" -c "$conf" -- host -T -W 5 -t MX "$DNS_EXAMPLE_MX_NAME"
	assert_output "$DNS_EXAMPLE_MX_NAME mail is handled by 10 $DNS_EXAMPLE_MX_HOST."
	assert_proxy_connect sx "$TARGET4:53"
	assert_no_dns_leak
}

@test "[remote-dns] curl through a far proxy (300 ms towards the client, beyond curl's 200 ms happy-eyeballs delay): its attempt on the twin waits for the first handshake, one proxied connection" {
	local port
	port=$(free_port)
	far_proxy_start "$port" 300
	run -0 socksify_client "far:$port" h -- curl -sS -v --max-time 20 "http://target.test/small.txt?$TAG"
	assert_line "$SMALL_TEXT"
	# curl did try the twin: the test means something
	assert_line --regexp "Trying \\[$FAKE6\\]:80"
	assert_via_proxy "/small.txt?$TAG " 1
	assert_equal "$(proxied_connects target.test:80)" 1
}

@test "[remote-dns] through the far proxy: asyncio happy eyeballs (delay 0.25 s) makes one proxied connection; a program that opens both twins at once gets both, the second after the first" {
	local port
	port=$(free_port)
	far_proxy_start "$port" 300
	local py='
import asyncio, socket, sys, time
path = sys.argv[1]
async def get(host, family, tag, **kw):
    r, w = await asyncio.open_connection(host, 80, family=family, **kw)
    w.write(("GET %s-%s HTTP/1.0\r\nHost: t\r\n\r\n" % (path, tag)).encode())
    data = await r.read()
    w.close()
    return w.get_extra_info("peername")[0], data.split(b"\r\n")[0].decode()
async def main():
    print("he", *await get("target.test", 0, "he", happy_eyeballs_delay=0.25))
    v4 = socket.getaddrinfo("target.test", 80, socket.AF_INET)[0][4][0]
    v6 = socket.getaddrinfo("target.test", 80, socket.AF_INET6)[0][4][0]
    t0 = time.monotonic()
    for peer, status in await asyncio.gather(get(v4, socket.AF_INET, "both4"),
                                             get(v6, socket.AF_INET6, "both6")):
        print("both", peer, status)
    print("both took %.1f s" % (time.monotonic() - t0))
asyncio.run(main())
'
	run -0 socksify_client "far:$port" h -- "$PYTHON" -c "$py" "/small.txt?$TAG"
	assert_line --regexp "^he $FAKE4 HTTP/1.0 200"
	assert_line --regexp "^both $FAKE4 HTTP/1.0 200"
	assert_line --regexp "^both $FAKE6 HTTP/1.0 200"
	assert_via_proxy "/small.txt?$TAG-he " 1
	assert_via_proxy "/small.txt?$TAG-both4 " 1
	assert_via_proxy "/small.txt?$TAG-both6 " 1
	assert_equal "$(proxied_connects target.test:80)" 3
	echo "# $(grep '^both took' <<<"$output")" >&3
}

@test "[remote-dns] nameserver set, the proxy down: res_query and res_search fail (-1, TRY_AGAIN) with a log line; no query leaves" {
	local port conf
	port=$(free_port)
	conf=$BATS_TEST_TMPDIR/socksify.conf
	printf 'proxy = socks5h://%s:%s\nnameserver = %s\n' "$PROXY4" "$port" "$TARGET4" >"$conf"
	run -0 --separate-stderr client_run "$SOCKSIFY" -c "$conf" -- "$(probe_bin)" resquery "$DNS_EXAMPLE_MX_NAME"
	refute_line --partial FAIL
	assert_line "ok res_query($DNS_EXAMPLE_MX_NAME, C_IN, T_A) = -1 (h_errno 2)"
	assert_line "ok res_search($DNS_EXAMPLE_MX_NAME, C_IN, T_A) = -1 (h_errno 2)"
	[[ $stderr == *"res_query: nameserver: Connection refused"* ]] ||
		fail "expected the log line of the failed query, got: $stderr"
	assert_no_dns_leak
	[[ -z $(log_since TARGET_DNS_LOG) ]] || fail "the target's dnsmasq got a query"
}

@test "nameserver: a bad value is one line naming the source, exit 2" {
	printf 'nameserver = dns.example\n' >"$BATS_TEST_TMPDIR/bad.conf"
	run -2 "$SOCKSIFY" -c "$BATS_TEST_TMPDIR/bad.conf" -- true
	assert_output "socksify: $BATS_TEST_TMPDIR/bad.conf:1: bad value 'dns.example' for 'nameserver': bad IPv4 address"
	run -2 env SOCKSIFY_NAMESERVER='[2001:db8::1]:0' "$SOCKSIFY" -- true
	assert_output "socksify: SOCKSIFY_NAMESERVER: bad value '[2001:db8::1]:0' for 'nameserver': bad port (1-65535)"
}

@test "[remote-dns] probe twins through the far proxy: non-blocking connects to target.test's IPv4 fake and IPv6 twin at once; racing, the twin is closed unsent; kept, both are served" {
	local port
	port=$(free_port)
	far_proxy_start "$port" 300
	run -0 socksify_client "far:$port" h -- "$(probe_bin)" twins target.test 80 "/small.txt?$TAG" "$SMALL_TEXT"
	refute_line --partial FAIL
	assert_via_proxy "/small.txt?$TAG-race " 1
	assert_via_proxy "/small.txt?$TAG-4 " 1
	assert_via_proxy "/small.txt?$TAG-6 " 1
	assert_equal "$(proxied_connects target.test:80)" 3
}

# with_local_resolver LOG CMD...: CMD in the client namespace, where
# /etc/resolv.conf names 127.0.0.1 (a local resolver, as systemd-resolved's
# 127.0.0.53 or a local dnsmasq would be) and stub_dns.py answers there,
# logging every query to LOG
with_local_resolver() {
	local log=$1 conf=$BATS_TEST_TMPDIR/resolv-local.conf
	shift
	echo "nameserver 127.0.0.1" >"$conf"
	: >"$log"
	ns_spawn client "$BATS_TEST_TMPDIR/stub.out" python3 "$BATS_TEST_DIRNAME/stub_dns.py" 127.0.0.1 53 "$log"
	local i
	for ((i = 0; i < 100; i++)); do
		grep -q ready "$BATS_TEST_TMPDIR/stub.out" && break
		sleep 0.05
	done
	client_run unshare -m sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' "$conf" "$@"
}

@test "[remote-dns] no nameserver, resolv.conf names a local resolver: host's own query is refused (ECONNREFUSED, one line) instead of reaching it around the proxy; with nameserver set it goes through the proxy" {
	local conf qlog=$BATS_TEST_TMPDIR/local-queries.log
	conf=$(sx_conf)
	run with_local_resolver "$qlog" "$SOCKSIFY" -c "$conf" -- host -W 2 -t A leak1.example.test
	assert_failure
	assert_output --partial "a DNS query to a loopback nameserver of /etc/resolv.conf would go around the proxy"
	run cat "$qlog"
	assert_output ""
	conf=$(sx_conf "nameserver = $TARGET4")
	run with_local_resolver "$qlog" "$SOCKSIFY" -c "$conf" -- host -W 5 -t MX "$DNS_EXAMPLE_MX_NAME"
	assert_success
	assert_output --partial "$DNS_EXAMPLE_MX_NAME mail is handled by 10 $DNS_EXAMPLE_MX_HOST."
	run cat "$qlog"
	assert_output ""
	assert_no_dns_leak
}
