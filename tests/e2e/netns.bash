# SPDX-License-Identifier: MIT
# bats helpers for tests that run in the three-namespace topology of
# scripts/netns (client -> proxy -> target). Load after helpers.bash:
#
#   setup_file()    { load helpers; load netns; netns_setup_file; }
#   teardown_file() { load helpers; load netns; netns_teardown_file; }
#   setup()         { load helpers; load netns; netns_setup; }
#   teardown()      { netns_teardown; }
#
# netns_setup_file builds the topology under a unique prefix (NX) and starts,
# recording every PID for teardown:
#   target: HTTP on 198.18.2.2:80 and [fd00:5:2::2]:80 serving $WWW
#           (access logs $HTTP_LOG / $HTTP6_LOG), TCP echo on 198.18.2.2:7
#   proxy:  socksify-server  198.18.1.1:1080 --allow-open --allow-local (SX_LOG)
#           socksify-server  198.18.1.1:1081 -u user:pass        (SXAUTH_LOG)
#           socksify-server  198.18.1.1:1083 --allow-open --deny 198.18.2.0/24
#           socksify-server  [fd00:5:1::1]:1084 --allow-open    (SX6_LOG)
#           danted           198.18.1.1:1082, when /usr/sbin/danted exists (DANTE_LOG)
#           HTTP trap        198.18.1.1:8080 (the client can reach it directly;
#                            TRAP_LOG must stay empty when the proxy is down)
#           HTTP on 127.0.0.1:8081 (only the proxy's loopback; LOOP_LOG)
#   client: a DNS leak detector on 198.18.1.53:53 (UDP and TCP), the client's
#           only nameserver: every query it gets is a line in DNS_LOG.
# netns_udp_targets (call it from setup_file after netns_setup_file; shim.bats
# does not need it) adds, in the target namespace:
#   a UDP echo server on 198.18.2.2:7 and [fd00:5:2::2]:7: one line per datagram
#           in $UDP_ECHO_LOG, "SRC_IP SRC_PORT LEN", written before the echo
#   dnsmasq on 198.18.2.2:53 and [fd00:5:2::2]:53 (UDP and TCP) answering
#           www.example.test A 192.0.2.80 / AAAA 2001:db8::80 and
#           mail.example.test MX 10 mx1.example.test, NXDOMAIN for names
#           under nx.example.test (DNS_EXAMPLE_*) and REFUSED for the rest; every query is logged with its client address in
#           $TARGET_DNS_LOG ("N 198.18.2.1/PORT query[A] NAME from 198.18.2.1",
#           the same for UDP and TCP)
# and target4.test (TARGET_NAME4) -> 198.18.2.2 only, in the proxy's hosts file.
# far_proxy_start PORT DELAY_MS [UPSTREAM_PORT] (from setup_file or a test) adds
# a far proxy in the proxy namespace on 198.18.1.1:PORT: tests/e2e/far_proxy.py
# in front of the proxy on 198.18.1.1:UPSTREAM_PORT (default 1080, socksify-
# server; 1082 is dante), every chunk towards the client DELAY_MS late (UDP
# ASSOCIATE relayed and delayed too); proxy_url far:PORT names it; its log is
# FAR_LOG.
# The proxy namespace also has an `unreachable` route to 198.18.7.0/24 and a
# `prohibit` route to 198.18.8.0/24 (the server gets EHOSTUNREACH / EACCES).
# netns_teardown_file kills those PIDs and removes the namespaces, also when
# setup_file failed half-way.
# shellcheck shell=bash
# shellcheck disable=SC2034,SC2001

NETNS=${NETNS:-$REPO_ROOT/scripts/netns}
SOCKSIFY=${SOCKSIFY:-$REPO_ROOT/build/cli/socksify}
SOCKSIFY_SHIM=${SOCKSIFY_SHIM:-$REPO_ROOT/build/shim/libsocksify.so}
SOCKSIFY_PROBE=${SOCKSIFY_PROBE:-$REPO_ROOT/build/tests/e2e/probe}
DANTED=${DANTED:-/usr/sbin/danted}
DNSMASQ=${DNSMASQ:-/usr/sbin/dnsmasq}

# SOCKSIFY_TEST_PRELOAD: libraries (colon-separated) that the programs under
# test need preloaded; the sanitizer pass (scripts/test) sets it to libasan,
# which an ASan-built shim needs loaded in programs that are not. When it is
# set, netns_setup_file replaces $SOCKSIFY with a wrapper that puts it into
# LD_PRELOAD before the launcher runs (the launcher keeps it, after the shim),
# and the tests that preload the shim themselves use $SHIM_PRELOAD. Sanitizer
# reports then go to files (ASAN_OPTIONS/UBSAN_OPTIONS log_path), and any
# report fails the test during which it appeared (netns_teardown).
SOCKSIFY_TEST_PRELOAD=${SOCKSIFY_TEST_PRELOAD:-}
SHIM_PRELOAD=$SOCKSIFY_SHIM${SOCKSIFY_TEST_PRELOAD:+:$SOCKSIFY_TEST_PRELOAD}

# The addresses of scripts/netns.
CLIENT4=198.18.1.2
CLIENT6=fd00:5:1::2
PROXY4=198.18.1.1
PROXY6=fd00:5:1::1
PROXY_OUT4=198.18.2.1
PROXY_OUT6=fd00:5:2::1
TARGET4=198.18.2.2
TARGET6=fd00:5:2::2
NAMESERVER4=198.18.1.53
# what dnsmasq answers in the target namespace (netns_udp_targets)
DNS_EXAMPLE_NAME=www.example.test
DNS_EXAMPLE_A=192.0.2.80
DNS_EXAMPLE_AAAA=2001:db8::80
# and an MX record: mail.example.test MX 10 mx1.example.test
DNS_EXAMPLE_MX_NAME=mail.example.test
DNS_EXAMPLE_MX_HOST=mx1.example.test
# every name under it is NXDOMAIN (the rest REFUSED)
DNS_EXAMPLE_NX=nx.example.test
# a name only the proxy resolves, to 198.18.2.2 only (netns_udp_targets)
TARGET_NAME4=target4.test

# --- running things in the namespaces ----------------------------------------------

# ns_run ROLE CMD...: CMD in $NX-ROLE (client, proxy or target)
ns_run() {
	local role=$1
	shift
	"$NETNS" exec "$NX" "$role" "$@"
}

client_run() { ns_run client "$@"; }
proxy_run() { ns_run proxy "$@"; }
target_run() { ns_run target "$@"; }

# ns_spawn ROLE LOG CMD...: spawn (helpers.bash) inside the namespace; the
# recorded PID is CMD's own (scripts/netns and ip netns exec both exec).
ns_spawn() {
	local role=$1 log=$2
	shift 2
	spawn "$log" "$NETNS" exec "$NX" "$role" "$@"
}

# ns_wait_listen ROLE tcp|udp ADDR PORT [PID]: polls (max 5 s) until something
# in the namespace listens there; fails early when PID exits.
ns_wait_listen() {
	local role=$1 proto=$2 addr=$3 port=$4 pid=${5:-} i flag=-Hltn
	[[ $proto == udp ]] && flag=-Hlun
	[[ $addr == *:* ]] && addr="[$addr]"
	for ((i = 0; i < 100; i++)); do
		if [[ -n $(ns_run "$role" ss "$flag" "src $addr:$port" 2>/dev/null) ]]; then
			return 0
		fi
		if [[ -n $pid ]] && ! pid_alive "$pid"; then
			echo "process $pid exited before listening on $addr:$port in $NX-$role" >&2
			return 1
		fi
		sleep 0.05
	done
	echo "nothing listens on $proto $addr:$port in $NX-$role after 5 s" >&2
	return 1
}

# --- servers --------------------------------------------------------------------------

# An HTTP server: http.server's handler with a deep listen backlog (the default
# of 5 drops SYNs when 50 clients connect at once) and the default access log
# on stderr: 'CLIENT - - [date] "GET /path HTTP/1.1" 200 -'.
# argv: ADDR PORT DIR
NETNS_HTTP_PY='
import functools, socket, sys
from http.server import ThreadingHTTPServer, SimpleHTTPRequestHandler
addr, port, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class Server(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True
    address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET
class Handler(SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("%s - - [%s] %s\n" % (self.client_address[0],
                         self.log_date_time_string(), fmt % args))
        sys.stderr.flush()
Server((addr, port), functools.partial(Handler, directory=root)).serve_forever()
'

# The DNS leak detector: answers nothing but REFUSED (so a leaking lookup fails
# fast) and appends one line per query to the log: "udp|tcp SRC QNAME QTYPE".
# argv: ADDR PORT LOG
NETNS_DNS_PY='
import selectors, socket, struct, sys, threading
addr, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def qname(msg):
    try:
        i, labels = 12, []
        while msg[i]:
            n = msg[i]
            labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        return ".".join(labels) or ".", struct.unpack("!H", msg[i + 1:i + 3])[0]
    except Exception:
        return "?", 0
def record(proto, src, msg):
    name, qtype = qname(msg)
    with open(log, "a") as f:
        f.write("%s %s %s %d\n" % (proto, src, name, qtype))
def refused(msg):
    if len(msg) < 12:
        return b""
    flags = struct.unpack("!H", msg[2:4])[0]
    flags = 0x8000 | (flags & 0x7900) | 5   # QR, opcode and RD kept, RCODE=REFUSED
    return msg[:2] + struct.pack("!H", flags) + msg[4:6] + b"\0\0\0\0\0\0" + msg[12:]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((addr, port))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((addr, port))
t.listen(16)
def tcp_client(c, src):
    c.settimeout(5)
    try:
        while True:
            hdr = c.recv(2, socket.MSG_WAITALL)
            if len(hdr) < 2:
                break
            msg = c.recv(struct.unpack("!H", hdr)[0], socket.MSG_WAITALL)
            record("tcp", src, msg)
            r = refused(msg)
            c.sendall(struct.pack("!H", len(r)) + r)
    except OSError:
        pass
    c.close()
sel = selectors.DefaultSelector()
sel.register(u, selectors.EVENT_READ)
sel.register(t, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is u:
            msg, src = u.recvfrom(65535)
            record("udp", "%s:%d" % src, msg)
            r = refused(msg)
            if r:
                u.sendto(r, src)
        else:
            c, src = t.accept()
            threading.Thread(target=tcp_client, args=(c, "%s:%d" % src), daemon=True).start()
'

# The UDP echo target: echoes every datagram to its sender, after appending
# "SRC_IP SRC_PORT LEN" to the log (flushed, so the line is there before the
# sender can see the echo).
# argv: LOG PORT ADDR...
NETNS_UDP_ECHO_PY='
import selectors, socket, sys
log, port = sys.argv[1], int(sys.argv[2])
sel = selectors.DefaultSelector()
for addr in sys.argv[3:]:
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    sel.register(s, selectors.EVENT_READ)
with open(log, "a") as f:
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            data, src = s.recvfrom(65535)
            f.write("%s %d %d\n" % (src[0], src[1], len(data)))
            f.flush()
            try:
                s.sendto(data, src)
            except OSError as e:
                sys.stderr.write("echo to %s: %s\n" % (src, e))
'

# netns_http ROLE ADDR PORT LOG: starts the HTTP server above serving $WWW.
netns_http() {
	local role=$1 addr=$2 port=$3 log=$4
	ns_spawn "$role" "$log" "$PYTHON" -u -c "$NETNS_HTTP_PY" "$addr" "$port" "$WWW"
	ns_wait_listen "$role" tcp "$addr" "$port" "$SPAWNED_PID"
}

# netns_socksify_server PORT LOG ARGS...: socksify-server -v in the proxy
# namespace on 198.18.1.1:PORT (or [fd00:5:1::1]:PORT with PROXY_LISTEN6=1);
# sets SPAWNED_PID.
netns_socksify_server() {
	local port=$1 log=$2 addr=$PROXY4 listen=$PROXY4:$1
	shift 2
	if [[ ${PROXY_LISTEN6:-0} == 1 ]]; then
		addr=$PROXY6
		listen="[$PROXY6]:$port"
	fi
	ns_spawn proxy "$log" "$SOCKSIFY_SERVER" -v -l "$listen" "$@"
	if ! ns_wait_listen proxy tcp "$addr" "$port" "$SPAWNED_PID"; then
		cat "$log" >&2
		return 1
	fi
}

# netns_silent_proxy PORT: a listener on 198.18.1.1:PORT in the proxy namespace
# that accepts connections and never answers (a proxy that hangs).
netns_silent_proxy() {
	ns_spawn proxy "$BATS_TEST_TMPDIR/silent-$1.log" "$PYTHON" -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
held = []
while True:
    held.append(s.accept()[0])
' "$PROXY4" "$1"
	ns_wait_listen proxy tcp "$PROXY4" "$1" "$SPAWNED_PID"
}

# netns_dante: danted on 198.18.1.1:1082 (see DESIGN.md "Test topology" for its
# quirks: user.unprivileged and explicit socks pass rules are required).
netns_dante() {
	local conf=$BATS_FILE_TMPDIR/danted.conf
	DANTE_LOG=$BATS_FILE_TMPDIR/danted.log
	cat >"$conf" <<-EOF
		logoutput: $DANTE_LOG
		internal: $PROXY4 port = 1082
		external: $PROXY_OUT4
		external: $PROXY_OUT6
		socksmethod: none
		clientmethod: none
		user.privileged: root
		user.unprivileged: nobody
		client pass {
			from: 198.18.1.0/24 to: 0.0.0.0/0
			log: error connect disconnect
		}
		socks pass {
			from: 0.0.0.0/0 to: 0.0.0.0/0
			command: connect udpassociate bind bindreply udpreply
			log: error connect disconnect
		}
		socks pass {
			from: 0.0.0.0/0 to: ::/0
			command: connect udpassociate bind bindreply udpreply
			log: error connect disconnect
		}
		# a UDP reply (or BIND's peer, shim_bind.bats) from an IPv6 target to an
		# IPv4 client: from is the target
		socks pass {
			from: ::/0 to: 0.0.0.0/0
			command: udpreply bindreply
			log: error connect disconnect
		}
	EOF
	ns_spawn proxy "$BATS_FILE_TMPDIR/danted.out" \
		"$DANTED" -f "$conf" -p "$BATS_FILE_TMPDIR/danted.pid" -N 1
	DANTE_PID=$SPAWNED_PID
	if ! ns_wait_listen proxy tcp "$PROXY4" 1082 "$DANTE_PID"; then
		cat "$BATS_FILE_TMPDIR/danted.out" "$DANTE_LOG" >&2 2>/dev/null
		return 1
	fi
}

# far_proxy_start PORT DELAY_MS [UPSTREAM_PORT]: a far proxy (far_proxy.py) in
# the proxy namespace on 198.18.1.1:PORT, relaying to the proxy on
# 198.18.1.1:UPSTREAM_PORT (default 1080: socksify-server --allow-open; 1082 is
# dante) and delaying every chunk (and UDP ASSOCIATE datagram) towards the
# client by DELAY_MS. The proxy behind it sees the far proxy (198.18.1.1) as its
# client, and the target still sees the proxy. Sets FAR_LOG
# ($BATS_FILE_TMPDIR/far-PORT.log: "tcp CLIENT" per connection, "udp CLIENT
# relay ..." per association) and SPAWNED_PID; the PID is the file's from
# setup_file, the test's from a test, so teardown stops it.
far_proxy_start() {
	local port=$1 delay=$2 up=${3:-1080}
	FAR_LOG=$BATS_FILE_TMPDIR/far-$port.log
	ns_spawn proxy "$FAR_LOG" "$PYTHON" -u "$E2E_DIR/far_proxy.py" -d "$delay" \
		"$PROXY4:$port" "$PROXY4:$up"
	if ! ns_wait_listen proxy tcp "$PROXY4" "$port" "$SPAWNED_PID"; then
		cat "$FAR_LOG" >&2
		return 1
	fi
	export FAR_LOG
}

# netns_udp_targets: the UDP targets in the target namespace (see the top): the
# UDP echo server on port 7 and dnsmasq on port 53, both on 198.18.2.2 and
# fd00:5:2::2. For setup_file, after netns_setup_file; sets and exports
# UDP_ECHO_LOG and TARGET_DNS_LOG (log_since works on both).
netns_udp_targets() {
	IN_SETUP_FILE=1
	UDP_ECHO_LOG=$BATS_FILE_TMPDIR/udp-echo-target.log
	TARGET_DNS_LOG=$BATS_FILE_TMPDIR/dns-target.log
	: >"$UDP_ECHO_LOG"
	: >"$TARGET_DNS_LOG"
	export UDP_ECHO_LOG TARGET_DNS_LOG
	# an IPv4-only name for the target that only the proxy resolves: dante 1.4
	# cannot relay UDP to a name that resolves to IPv6 for an IPv4 client
	# ("could not bind udp address 198.18.2.1.0"), and target.test resolves
	# to fd00:5:2::2 first. scripts/netns down removes the file.
	printf '%s\t%s\n' "$TARGET4" "$TARGET_NAME4" >>"/etc/netns/$NX-proxy/hosts"

	ns_spawn target "$BATS_FILE_TMPDIR/udp-echo-target.out" \
		"$PYTHON" -u -c "$NETNS_UDP_ECHO_PY" "$UDP_ECHO_LOG" 7 "$TARGET4" "$TARGET6"
	ns_wait_listen target udp "$TARGET4" 7 "$SPAWNED_PID" || return 1
	ns_wait_listen target udp "$TARGET6" 7 "$SPAWNED_PID" || return 1

	[[ -x $DNSMASQ ]] || {
		echo "dnsmasq is not installed ($DNSMASQ; scripts/deps installs dnsmasq-base)" >&2
		return 1
	}
	# --no-daemon: stays in the foreground (its PID is the one recorded), keeps
	# root, handles TCP in the main process (no forked children), and writes no
	# pid file; -C /dev/null: no /etc/dnsmasq.conf; --no-resolv/--no-hosts: it
	# answers the --host-record and refuses everything else. Its stderr copy of
	# the log goes to dnsmasq.out.
	ns_spawn target "$BATS_FILE_TMPDIR/dnsmasq.out" \
		"$DNSMASQ" --no-daemon --conf-file=/dev/null --user=root --pid-file= \
		--no-resolv --no-hosts --bind-interfaces --port=53 \
		--listen-address="$TARGET4" --listen-address="$TARGET6" \
		--host-record="$DNS_EXAMPLE_NAME,$DNS_EXAMPLE_A,$DNS_EXAMPLE_AAAA" \
		--mx-host="$DNS_EXAMPLE_MX_NAME,$DNS_EXAMPLE_MX_HOST,10" \
		--address="/$DNS_EXAMPLE_NX/" \
		--log-queries=extra --log-facility="$TARGET_DNS_LOG"
	local pid=$SPAWNED_PID
	if ! { ns_wait_listen target udp "$TARGET4" 53 "$pid" &&
		ns_wait_listen target tcp "$TARGET4" 53 "$pid" &&
		ns_wait_listen target udp "$TARGET6" 53 "$pid" &&
		ns_wait_listen target tcp "$TARGET6" 53 "$pid"; }; then
		cat "$BATS_FILE_TMPDIR/dnsmasq.out" "$TARGET_DNS_LOG" >&2
		return 1
	fi
	IN_SETUP_FILE=0
}

have_dante() {
	[[ -n ${DANTE_PID:-} ]]
}

# --- files served ---------------------------------------------------------------------

# $WWW/file: 1 MiB of random bytes (FILE_SHA); $WWW/small.txt: SMALL_TEXT.
netns_make_www() {
	WWW=$BATS_FILE_TMPDIR/www
	mkdir -p "$WWW"
	head -c 1048576 /dev/urandom >"$WWW/file"
	FILE_SHA=$(sha256sum "$WWW/file" | cut -d' ' -f1)
	SMALL_TEXT="socksify netns small file $RANDOM$RANDOM"
	printf '%s\n' "$SMALL_TEXT" >"$WWW/small.txt"
	export WWW FILE_SHA SMALL_TEXT
}

# --- setup / teardown -----------------------------------------------------------------

netns_setup_file() {
	IN_SETUP_FILE=1
	if ((EUID != 0)); then
		echo "the netns suite needs root (network namespaces)" >&2
		return 1
	fi
	[[ -x $SOCKSIFY_SERVER ]] || {
		echo "socksify-server not built: $SOCKSIFY_SERVER" >&2
		return 1
	}
	netns_sweep_stale
	if [[ -n $SOCKSIFY_TEST_PRELOAD ]]; then
		netns_test_preload || return 1
	fi
	# sx<PID of this bats file run>r<random>: netns_sweep_stale recognises it
	NX=sx$$r$RANDOM
	export NX
	# record the prefix before building, so teardown_file removes a half-built one
	echo "$NX" >"$BATS_FILE_TMPDIR/netns.prefix"
	"$NETNS" up "$NX" || return 1

	proxy_run ip route add unreachable 198.18.7.0/24
	proxy_run ip route add prohibit 198.18.8.0/24

	netns_make_www
	HTTP_LOG=$BATS_FILE_TMPDIR/http-target.log
	HTTP6_LOG=$BATS_FILE_TMPDIR/http-target6.log
	TRAP_LOG=$BATS_FILE_TMPDIR/http-trap.log
	LOOP_LOG=$BATS_FILE_TMPDIR/http-proxy-loopback.log
	DNS_LOG=$BATS_FILE_TMPDIR/dns-leak.log
	SX_LOG=$BATS_FILE_TMPDIR/sx.log
	SXAUTH_LOG=$BATS_FILE_TMPDIR/sxauth.log
	SXDENY_LOG=$BATS_FILE_TMPDIR/sxdeny.log
	SX6_LOG=$BATS_FILE_TMPDIR/sx6.log
	ECHO_LOG=$BATS_FILE_TMPDIR/echo.log
	: >"$DNS_LOG"
	export HTTP_LOG HTTP6_LOG TRAP_LOG LOOP_LOG DNS_LOG SX_LOG SXAUTH_LOG SXDENY_LOG SX6_LOG ECHO_LOG

	# the leak detector first: nothing else may query DNS before it runs
	ns_spawn client "$BATS_FILE_TMPDIR/dns-detector.out" \
		"$PYTHON" -u -c "$NETNS_DNS_PY" "$NAMESERVER4" 53 "$DNS_LOG"
	ns_wait_listen client udp "$NAMESERVER4" 53 "$SPAWNED_PID" || return 1
	ns_wait_listen client tcp "$NAMESERVER4" 53 "$SPAWNED_PID" || return 1

	netns_http target "$TARGET4" 80 "$HTTP_LOG" || return 1
	netns_http target "$TARGET6" 80 "$HTTP6_LOG" || return 1
	# CLIENT (helpers.bash): socks5_client.py, which also serves echo
	# shellcheck disable=SC2153
	ns_spawn target "$ECHO_LOG" "${CLIENT[@]}" echo-server --listen "$TARGET4:7"
	ns_wait_listen target tcp "$TARGET4" 7 "$SPAWNED_PID" || return 1
	netns_http proxy "$PROXY4" 8080 "$TRAP_LOG" || return 1
	netns_http proxy 127.0.0.1 8081 "$LOOP_LOG" || return 1

	# --allow-local: shim.bats reaches the proxy's own loopback (127.0.0.1:8081)
	netns_socksify_server 1080 "$SX_LOG" --allow-open --allow-local || return 1
	netns_socksify_server 1081 "$SXAUTH_LOG" -u user:pass || return 1
	netns_socksify_server 1083 "$SXDENY_LOG" --allow-open --deny 198.18.2.0/24 || return 1
	PROXY_LISTEN6=1 netns_socksify_server 1084 "$SX6_LOG" --allow-open || return 1

	DANTE_PID=""
	if [[ -x $DANTED ]]; then
		netns_dante || return 1
	fi
	export DANTE_PID DANTE_LOG
	IN_SETUP_FILE=0
}

# netns_test_preload: the SOCKSIFY_TEST_PRELOAD set-up (see the top): the
# launcher wrapper, exported for the tests, and the sanitizer log files.
netns_test_preload() {
	local lib libs wrapper=$BATS_FILE_TMPDIR/socksify-test-preload
	IFS=: read -ra libs <<<"$SOCKSIFY_TEST_PRELOAD"
	for lib in "${libs[@]}"; do
		[[ -f $lib ]] || {
			echo "SOCKSIFY_TEST_PRELOAD names a missing file: $lib" >&2
			return 1
		}
	done
	{
		echo '#!/bin/bash'
		echo '# socksify with SOCKSIFY_TEST_PRELOAD in LD_PRELOAD (tests/e2e/netns.bash)'
		# shellcheck disable=SC2016
		printf 'LD_PRELOAD=%q${LD_PRELOAD:+:$LD_PRELOAD} exec %q "$@"\n' \
			"$SOCKSIFY_TEST_PRELOAD" "$SOCKSIFY"
	} >"$wrapper"
	chmod +x "$wrapper"
	SOCKSIFY=$wrapper
	SANITIZER_DIR=$BATS_FILE_TMPDIR/sanitizer
	mkdir -p "$SANITIZER_DIR/seen"
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$SANITIZER_DIR/asan
	UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:log_path=$SANITIZER_DIR/ubsan
	export SOCKSIFY SANITIZER_DIR ASAN_OPTIONS UBSAN_OPTIONS
}

# netns_sanitizer_reports: fails (printing them) when sanitizer reports appeared
# since the last call; they are moved aside, so each fails one test only.
netns_sanitizer_reports() {
	[[ -n ${SANITIZER_DIR:-} ]] || return 0
	local f found=0
	for f in "$SANITIZER_DIR"/asan.* "$SANITIZER_DIR"/ubsan.*; do
		[[ -e $f ]] || continue
		found=1
		echo "# sanitizer report $f:" >&2
		sed 's/^/# /' "$f" >&2
		mv "$f" "$SANITIZER_DIR/seen/"
	done
	((found == 0))
}

# netns_watch_run_output: wraps bats' run so that a sanitizer report in the
# output of any command a test runs is kept as a report file too (UBSan writes
# to stderr, not to its log_path, in a process that also has ASan).
netns_watch_run_output() {
	declare -F bats_run_unwatched >/dev/null && return 0
	eval "bats_run_unwatched() $(declare -f run | tail -n +2)"
	# shellcheck disable=SC2317  # called by the tests
	run() {
		local rc=0
		bats_run_unwatched "$@" || rc=$?
		if grep -Eq 'runtime error:|ERROR: [A-Za-z]+Sanitizer' <<<"${output:-}"$'\n'"${stderr:-}"; then
			printf '%s\n' "$*" "${output:-}" "${stderr:-}" \
				>>"$SANITIZER_DIR/ubsan.output.$BATS_TEST_NUMBER.$RANDOM"
		fi
		return "$rc"
	}
}

# netns_sweep_stale: removes the topologies of earlier runs of these helpers
# whose bats process is gone (killed by a test timeout before teardown_file).
netns_sweep_stale() {
	local f name pid
	for f in /run/netns/sx*r*-client; do
		[[ -e $f ]] || continue
		name=${f##*/}
		name=${name%-client}
		[[ $name =~ ^sx([0-9]+)r[0-9]+$ ]] || continue
		pid=${BASH_REMATCH[1]}
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "# removing the stale topology $name (its bats process $pid is gone)" >&3
			"$NETNS" down "$name" || true
		fi
	done
}

netns_teardown_file() {
	kill_pids "$BATS_FILE_TMPDIR/pids"
	local prefix
	prefix=$(cat "$BATS_FILE_TMPDIR/netns.prefix" 2>/dev/null) || prefix=${NX:-}
	if [[ -n $prefix ]]; then
		"$NETNS" down "$prefix"
	fi
}

netns_setup() {
	if ((EUID != 0)); then
		skip "needs root (network namespaces)"
	fi
	if [[ -n ${SANITIZER_DIR:-} ]]; then
		netns_watch_run_output
	fi
	SERVER_PID=""
	SERVER_LOG=""
	# where this test's lines start in each shared log
	local f
	for f in HTTP_LOG HTTP6_LOG TRAP_LOG LOOP_LOG DNS_LOG SX_LOG SXAUTH_LOG SXDENY_LOG SX6_LOG; do
		printf -v "${f}_START" '%s' "$(log_size "${!f}")"
	done
	# the logs of the optional servers (dante, netns_udp_targets)
	for f in DANTE_LOG UDP_ECHO_LOG TARGET_DNS_LOG; do
		[[ -n ${!f:-} ]] || continue
		printf -v "${f}_START" '%s' "$(log_size "${!f}")"
	done
}

netns_teardown() {
	kill_pids "$BATS_TEST_TMPDIR/pids"
	# a sanitizer report from one of the shared servers fails the test that
	# caused it; so does one from a program under test (SOCKSIFY_TEST_PRELOAD)
	netns_sanitizer_reports || return 1
	local f
	for f in "$SX_LOG" "$SXAUTH_LOG" "$SXDENY_LOG" "$SX6_LOG"; do
		if grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$f" 2>/dev/null; then
			echo "# sanitizer report in $f:" >&2
			sed 's/^/# /' "$f" >&2
			return 1
		fi
	done
	return 0
}

# --- logs -----------------------------------------------------------------------------

log_size() {
	stat -c %s "$1" 2>/dev/null || echo 0
}

# log_since NAME: what the log in $NAME (e.g. HTTP_LOG) got since this test began.
log_since() {
	local var=$1 start_var=${1}_START
	tail -c +"$((${!start_var:-0} + 1))" "${!var}" 2>/dev/null || true
}

# assert_no_dns_leak: the client's nameserver got no query during this test.
assert_no_dns_leak() {
	local leaked
	leaked=$(log_since DNS_LOG)
	if [[ -n $leaked ]]; then
		fail "DNS queries leaked to the client's nameserver: $leaked"
	fi
}

# assert_trap_untouched: the directly reachable trap server saw nothing.
assert_trap_untouched() {
	local got
	got=$(log_since TRAP_LOG)
	if [[ -n $got ]]; then
		fail "the trap server (198.18.1.1:8080, reachable directly) was reached: $got"
	fi
}

# target_log_since: this test's lines of both target access logs (IPv4, IPv6).
target_log_since() {
	log_since HTTP_LOG
	log_since HTTP6_LOG
}

# assert_via_proxy PREFIX [COUNT]: this test's requests whose path starts with
# PREFIX (include the unique tag of the test; end with a space to match one path
# exactly) reached the target, each one from the proxy's address (198.18.2.1 /
# fd00:5:2::1), none from anywhere else; with COUNT, exactly COUNT of them.
# Sets VIA_COUNT and VIA_LINES.
assert_via_proxy() {
	local prefix=$1 count=${2:-} bad
	VIA_LINES=$(target_log_since | grep -F "\"GET $prefix" || true)
	[[ -n $VIA_LINES ]] || fail "the target never saw GET $prefix"
	bad=$(grep -Ev "^($PROXY_OUT4|$PROXY_OUT6) - - " <<<"$VIA_LINES" || true)
	[[ -z $bad ]] || fail "GET $prefix reached the target from elsewhere than the proxy: $bad"
	VIA_COUNT=$(grep -c . <<<"$VIA_LINES")
	if [[ -n $count ]] && ((VIA_COUNT != count)); then
		fail "the target saw GET $prefix $VIA_COUNT times, expected $count: $VIA_LINES"
	fi
}

# assert_udp_via_proxy COUNT_MIN [ADDR]: the UDP echo target got at least
# COUNT_MIN datagrams during this test, every one from the proxy's address
# (198.18.2.1 / fd00:5:2::1; with ADDR, from that one), none from elsewhere.
# Sets UDP_VIA_COUNT and UDP_VIA_LINES.
assert_udp_via_proxy() {
	local min=${1:-1} want=${2:-} re bad
	if [[ -n $want ]]; then
		re="^${want//./\\.} "
	else
		re="^(${PROXY_OUT4//./\\.}|$PROXY_OUT6) "
	fi
	UDP_VIA_LINES=$(log_since UDP_ECHO_LOG)
	[[ -n $UDP_VIA_LINES ]] || fail "the UDP echo target got no datagram during this test"
	bad=$(grep -Ev "${re}[0-9]+ [0-9]+\$" <<<"$UDP_VIA_LINES" || true)
	[[ -z $bad ]] || fail "datagrams reached the UDP echo target from elsewhere than ${want:-the proxy}: $bad"
	UDP_VIA_COUNT=$(grep -c . <<<"$UDP_VIA_LINES")
	if ((UDP_VIA_COUNT < min)); then
		fail "the UDP echo target got $UDP_VIA_COUNT datagrams, expected at least $min: $UDP_VIA_LINES"
	fi
}

# assert_dns_via_proxy NAME: the target's dnsmasq got a query for NAME during
# this test (waits up to 3 s for its log line), and every query it got came from
# the proxy's address. dnsmasq's log (--log-queries=extra) does not say UDP or
# TCP: "N 198.18.2.1/PORT query[A] NAME from 198.18.2.1". Sets DNS_VIA_LINES.
assert_dns_via_proxy() {
	local name=$1 bad
	wait_log TARGET_DNS_LOG " query\\[[A-Z0-9]+\\] ${name//./\\.} from "
	DNS_VIA_LINES=$(log_since TARGET_DNS_LOG | grep -E " query\\[[A-Z0-9]+\\] " || true)
	bad=$(grep -Ev " from (${PROXY_OUT4//./\\.}|$PROXY_OUT6)\$" <<<"$DNS_VIA_LINES" || true)
	[[ -z $bad ]] || fail "DNS queries reached the target's dnsmasq from elsewhere than the proxy: $bad"
}

# wait_log VAR ERE [SECONDS]: waits (default 3 s) until this test's part of the
# log in $VAR has a line matching ERE (servers log a connection when it closes,
# which may be just after the client exits).
wait_log() {
	local var=$1 re=$2 secs=${3:-3} i
	for ((i = 0; i < secs * 20; i++)); do
		log_since "$var" | grep -Eq -- "$re" && return 0
		sleep 0.05
	done
	fail "no line matching /$re/ in ${!var} during this test; it got:
$(log_since "$var")"
}

# assert_proxy_connect KIND DEST: the proxy KIND logged a CONNECT from the
# client (198.18.1.2) to DEST (198.18.2.2:80, [fd00:5:2::2]:80, target.test:80).
assert_proxy_connect() {
	local kind=$1 dest=$2 re
	re=$(sed 's/[].[]/\\&/g' <<<"$dest")
	case $kind in
	sx | auth | deny | sx6)
		wait_log "$(proxy_log_var "$kind")" \
			"(198\.18\.1\.2|\[fd00:5:1::2\]):[0-9]+ CONNECT ${re}[: ]"
		;;
	dante)
		# dante writes ADDR.PORT: 198.18.1.2.41234 198.18.1.1.1082 -> ... 198.18.2.2.80
		# and logs the address it connected to, also for a name it resolved
		dest=$(tr -d '[]' <<<"$dest")
		if [[ ${dest%:*} =~ [a-z] && ${dest%:*} != *:* ]]; then
			dest="*.${dest##*:}"
		else
			dest="${dest%:*}.${dest##*:}"
		fi
		re=$(sed 's/[].[]/\\&/g; s/^\*/[0-9a-f:.]+/' <<<"$dest")
		wait_log DANTE_LOG "tcp/connect \\[: 198\.18\.1\.2\.[0-9]+ 198\.18\.1\.1\.1082 -> .* $re\$"
		;;
	esac
}

# assert_proxy_udp KIND: the proxy KIND logged a UDP association of the client
# (both log it when it ends: when the program closed it, or exited).
assert_proxy_udp() {
	case $1 in
	sx | auth | deny | sx6)
		wait_log "$(proxy_log_var "$1")" "(198\\.18\\.1\\.2|\\[fd00:5:1::2\\]):[0-9]+ UDP ASSOCIATE "
		;;
	dante)
		# at its end: "udp/udpassociate ]: 61431/3 -> 198.18.1.2.56211 198.18.1.1.39779 -> ..."
		wait_log DANTE_LOG "udp/udpassociate \\]: .* 198\\.18\\.1\\.2\\.[0-9]+ 198\\.18\\.1\\.1\\.[0-9]+ -> "
		;;
	esac
}

# --- proxies --------------------------------------------------------------------------

# proxy_url KIND [h]: the URL of a proxy of the topology; with h, socks5h://.
#   sx     socksify-server, no authentication        198.18.1.1:1080
#   auth   socksify-server, -u user:pass             198.18.1.1:1081
#   dante  danted, no authentication                 198.18.1.1:1082
#   deny   socksify-server --deny 198.18.2.0/24      198.18.1.1:1083
#   sx6    socksify-server, no authentication        [fd00:5:1::1]:1084
#   far:PORT  a far proxy of far_proxy_start         198.18.1.1:PORT
proxy_url() {
	local scheme=socks5${2:-}
	case $1 in
	sx) echo "$scheme://$PROXY4:1080" ;;
	auth) echo "$scheme://user:pass@$PROXY4:1081" ;;
	dante) echo "$scheme://$PROXY4:1082" ;;
	deny) echo "$scheme://$PROXY4:1083" ;;
	sx6) echo "$scheme://[$PROXY6]:1084" ;;
	far:[0-9]*) echo "$scheme://$PROXY4:${1#far:}" ;;
	*) fail "unknown proxy kind $1" ;;
	esac
}

# require_proxy KIND: fails when the proxy of that kind cannot run (dante when
# dante-server is not installed: scripts/deps installs it).
require_proxy() {
	if [[ $1 == dante ]] && ! have_dante; then
		# a CI dependency (scripts/deps installs it): its absence fails
		fail "dante-server is not installed ($DANTED; scripts/deps installs it)"
	fi
	return 0
}

# proxy_log_var KIND: the name of the variable holding that proxy's log
proxy_log_var() {
	case $1 in
	sx) echo SX_LOG ;;
	auth) echo SXAUTH_LOG ;;
	dante) echo DANTE_LOG ;;
	deny) echo SXDENY_LOG ;;
	sx6) echo SX6_LOG ;;
	esac
}

require_socksify() {
	[[ -x $SOCKSIFY ]] || fail "socksify not built: $SOCKSIFY"
	[[ -f $SOCKSIFY_SHIM ]] || fail "libsocksify.so not built: $SOCKSIFY_SHIM"
}

# socksify_client KIND [h] -- CMD...: CMD under socksify in the client namespace,
# through the proxy KIND.
socksify_client() {
	local url h=""
	[[ ${2:-} == h ]] && h=h
	url=$(proxy_url "$1" "$h")
	shift
	[[ $1 == h ]] && shift
	[[ $1 == -- ]] && shift
	client_run "$SOCKSIFY" -p "$url" -- "$@"
}

# probe_bin: the C probe (tests/e2e/probe.c): $SOCKSIFY_PROBE when built by meson,
# else compiled here once per file run.
probe_bin() {
	built_or_cc "${SOCKSIFY_PROBE:-}" probe
}

# udp_probe_bin: the UDP probe (tests/e2e/udp_probe.c), the same way.
udp_probe_bin() {
	built_or_cc "${SOCKSIFY_UDP_PROBE:-}" udp_probe
}

# exec_probe_bin: the exec probe (tests/e2e/exec_probe.c), the same way.
exec_probe_bin() {
	built_or_cc "${SOCKSIFY_EXEC_PROBE:-}" exec_probe
}

# udp_probe_fortify_bin: udp_probe.c built with _FORTIFY_SOURCE=2 (-O2).
udp_probe_fortify_bin() {
	if [[ -x ${SOCKSIFY_UDP_PROBE_FORTIFY:-} ]]; then
		echo "$SOCKSIFY_UDP_PROBE_FORTIFY"
		return 0
	fi
	local bin=$BATS_FILE_TMPDIR/udp_probe_fortify
	if [[ ! -x $bin ]]; then
		cc -std=gnu11 -O2 -D_FORTIFY_SOURCE=2 -Wall -Wextra -pthread -o "$bin" "$E2E_DIR/udp_probe.c" >&2 ||
			return 1
	fi
	echo "$bin"
}

# built_or_cc PATH NAME: PATH when meson built it, else $E2E_DIR/NAME.c compiled
# with cc once per file run.
built_or_cc() {
	if [[ -x $1 ]]; then
		echo "$1"
		return 0
	fi
	local bin=$BATS_FILE_TMPDIR/$2
	if [[ ! -x $bin ]]; then
		cc -std=gnu11 -O1 -g -Wall -Wextra -pthread -o "$bin" "$E2E_DIR/$2.c" >&2 || return 1
	fi
	echo "$bin"
}

# ctor_bins: sets CTOR_LIB and CTOR_MAIN (tests/e2e/ctor.c, ctor_main.c): the
# meson-built ones ($SOCKSIFY_CTOR_LIB, $SOCKSIFY_CTOR_MAIN), else compiled here
# once per file run.
ctor_bins() {
	if [[ -f ${SOCKSIFY_CTOR_LIB:-} && -x ${SOCKSIFY_CTOR_MAIN:-} ]]; then
		CTOR_LIB=$SOCKSIFY_CTOR_LIB
		CTOR_MAIN=$SOCKSIFY_CTOR_MAIN
		return 0
	fi
	local dir=$BATS_FILE_TMPDIR/ctor
	CTOR_LIB=$dir/libsxctor.so
	CTOR_MAIN=$dir/ctor_main
	if [[ ! -x $CTOR_MAIN ]]; then
		mkdir -p "$dir"
		if ! cc -std=gnu11 -O1 -g -Wall -Wextra -fPIC -shared -o "$CTOR_LIB" \
			"$E2E_DIR/ctor.c" >&2 ||
			! cc -std=gnu11 -O1 -g -Wall -Wextra -o "$CTOR_MAIN" "$E2E_DIR/ctor_main.c" \
				-L"$dir" -lsxctor -Wl,-rpath,"$dir" >&2; then
			fail "cannot build tests/e2e/ctor.c, ctor_main.c"
		fi
	fi
}

# static_prog_bin: sets STATIC_PROG to a statically linked program
# (tests/e2e/static_prog.c): $SOCKSIFY_STATIC_PROG when meson built it, else
# compiled here with cc -static; returns 1 with the reason in STATIC_PROG_WHY
# when no static libc is available.
static_prog_bin() {
	if [[ -x ${SOCKSIFY_STATIC_PROG:-} ]]; then
		STATIC_PROG=$SOCKSIFY_STATIC_PROG
		return 0
	fi
	STATIC_PROG=$BATS_FILE_TMPDIR/static_prog
	[[ -x $STATIC_PROG ]] && return 0
	local err
	if ! err=$(cc -static -O1 -o "$STATIC_PROG" "$E2E_DIR/static_prog.c" 2>&1); then
		STATIC_PROG_WHY="cannot link statically (no static libc?): $(head -n 1 <<<"$err")"
		return 1
	fi
}
