#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Pipelining under pipeline = auto (the default; shim/pipeline.h): the first
# CONNECT goes unpipelined and starts a probe (greeting and CONNECT 0.0.0.0:0
# in one write); once the proxy has refused that request the connections
# after it send greeting and request in one write. Against each server the
# suite runs: socksify-server (with and without -u user:pass) and dante's
# sockd read pipelined requests; microsocks takes each read() for one message
# and must be found out, with no connection hanging or failing. Then through
# far_proxy.py (200 ms towards the client): a far socksify-server is found to
# pipeline (a connection then takes one round trip instead of two), and so is
# a far microsocks (far_proxy.py passes one message at a time on: the chain
# can), and nothing fails. That a far proxy that drops pipelined requests is
# found out, its answers late, is tests/unit/test_pipeline.c's. Every program here makes N
# connections one after the other (PY_SEQ) with log_level = debug, which
# prints the probe's outcome and each connect's time. Last, TCP Fast Open to
# the proxy: used when its listener offers it, harmless when not.
#
# Run (as root):
#   SOCKSIFY_SERVER=build/cli/socksify-server SOCKSIFY=build/cli/socksify \
#   SOCKSIFY_SHIM=build/shim/libsocksify.so bats tests/e2e/shim_pipeline.bats
# (meson test --suite shim sets these itself.)

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
	if [[ -n ${output:-} ]]; then
		echo "# --- the output of the last command run:"
		sed 's/^/#   /' <<<"$output" | tail -n 40
	fi
	return "$rc"
}

# argv: HOST PORT PATH N GAP_MS: N connections one after the other, GAP_MS
# apart (so that the probe ends while the program runs), each GET PATH-i and
# read to the end; prints each connect's time and "ok K of N".
PY_SEQ='
import socket, sys, time
host, port, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
gap = int(sys.argv[5]) / 1000
ok = 0
for i in range(n):
    t = time.monotonic()
    s = socket.create_connection((host, port), timeout=20)
    ms = (time.monotonic() - t) * 1000
    s.sendall(("GET %s-%d HTTP/1.0\r\nHost: t\r\n\r\n" % (path, i)).encode())
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    ok += data.startswith(b"HTTP/1.0 200")
    print("connect %d %.0f ms" % (i, ms))
    sys.stdout.flush()
    time.sleep(gap)
print("ok %d of %d" % (ok, n))
'

# seq_run URL PIPELINE N [TIMEOUT]: PY_SEQ under socksify through URL with
# pipeline = PIPELINE, log_level = debug and connect_timeout = TIMEOUT (5 s),
# connections 100 ms apart; sets SEQ_SECS.
seq_run() {
	local conf=$BATS_TEST_TMPDIR/pipe.conf t0=$EPOCHREALTIME
	printf 'pipeline = %s\nlog_level = debug\nconnect_timeout = %s\n' "$2" "${4:-5}" >"$conf"
	run client_run "$SOCKSIFY" -c "$conf" -p "$1" -- \
		"$PYTHON" -c "$PY_SEQ" "$TARGET4" 80 "/small.txt?$TAG" "$3" 100
	SEQ_SECS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
}

# connect_ms I: the time PY_SEQ printed for connection I
connect_ms() {
	sed -n "s/^connect $1 \\([0-9]*\\) ms\$/\\1/p" <<<"$output"
}

start_microsocks() { # PORT
	command -v microsocks >/dev/null || fail "microsocks is not installed (scripts/deps installs it)"
	ns_spawn proxy "$BATS_TEST_TMPDIR/microsocks.log" microsocks -i "$PROXY4" -p "$1"
	ns_wait_listen proxy tcp "$PROXY4" "$1" "$SPAWNED_PID"
}

t_pipelines() { # KIND: the probe finds that it pipelines; every connection works
	require_proxy "$1"
	seq_run "$(proxy_url "$1")" auto 6
	assert_success
	assert_line "ok 6 of 6"
	assert_line --regexp "^socksify\\[[0-9]+\\]: proxy .* reads pipelined requests: pipelining\$"
	assert_via_proxy "/small.txt?$TAG-" 6
}

@test "pipeline = auto, socksify-server: the probe finds that it pipelines; 6 connections one after the other" {
	t_pipelines sx
}

@test "pipeline = auto, socksify-server -u user:pass: pipelines with RFC 1929 too" {
	t_pipelines auth
}

@test "pipeline = auto, dante: pipelines" {
	t_pipelines dante
}

@test "microsocks: pipeline = yes breaks it (the rig), pipeline = auto finds it out: 6 connections, none hangs" {
	start_microsocks 1086
	# what auto protects from: microsocks drops the pipelined request
	seq_run "socks5://$PROXY4:1086" yes 1 1
	assert_failure
	refute_line "ok 1 of 1"
	seq_run "socks5://$PROXY4:1086" auto 6
	assert_success
	assert_line "ok 6 of 6"
	assert_line --regexp "^socksify\\[[0-9]+\\]: proxy .* drops pipelined requests: not pipelining\$"
	assert_via_proxy "/small.txt?$TAG-" 6
	# connect_timeout is 5 s: no connection waited for it (6 x 100 ms apart)
	awk -v s="$SEQ_SECS" 'BEGIN { exit !(s < 4) }' || fail "took $SEQ_SECS s"
}

@test "far proxy (200 ms) in front of socksify-server: found to pipeline, a connection then takes one round trip instead of two" {
	far_proxy_start 1097 200 1080
	seq_run "socks5://$PROXY4:1097" auto 4
	assert_success
	assert_line "ok 4 of 4"
	assert_line --regexp "proxy .* reads pipelined requests: pipelining\$"
	local first last
	first=$(connect_ms 0) last=$(connect_ms 3)
	echo "# far socksify-server: connect 0 $first ms (unpipelined), connect 3 $last ms" >&3
	((first >= 380)) || fail "the first connect took $first ms, not two round trips"
	((last < 380)) || fail "connect 3 took $last ms: not pipelined"
	assert_via_proxy "/small.txt?$TAG-" 4
}

@test "far proxy (200 ms) in front of microsocks: the chain reads pipelined requests (far_proxy.py hands on one message at a time), the probe finds that, every connection works" {
	# far_proxy.py waits for the method reply before it passes the request
	# on: microsocks behind it never sees two messages in one read. The
	# probe judges the chain by what it does, not by the server's name.
	start_microsocks 1086
	far_proxy_start 1098 200 1086
	seq_run "socks5://$PROXY4:1098" auto 4
	assert_success
	assert_line "ok 4 of 4"
	assert_line --regexp "proxy .* reads pipelined requests: pipelining\$"
	local last
	last=$(connect_ms 3)
	echo "# far microsocks: connect 3 $last ms, all in $SEQ_SECS s" >&3
	((last < 380)) || fail "connect 3 took $last ms: not pipelined"
	assert_via_proxy "/small.txt?$TAG-" 4
}

# tfo_active: the client namespace's count of connections that sent data in
# their SYN (TCP Fast Open)
tfo_active() {
	client_run nstat -az TcpExtTCPFastOpenActive | awk '/TcpExtTCPFastOpenActive/ { print $2 }'
}

@test "TCP Fast Open: a proxy whose listener offers it gets the greeting in the SYN; every connection works" {
	local log=$BATS_TEST_TMPDIR/sx-tfo.log was before after
	# server TFO on in the proxy namespace: 0x400 makes a listener made now
	# offer it even without asking, 2 must stay on while it serves
	was=$(proxy_run sysctl -n net.ipv4.tcp_fastopen)
	proxy_run sysctl -q -w net.ipv4.tcp_fastopen=0x403
	netns_socksify_server 1089 "$log" --allow-open
	proxy_run sysctl -q -w net.ipv4.tcp_fastopen=3
	before=$(tfo_active)
	seq_run "socks5://$PROXY4:1089" auto 6
	after=$(tfo_active)
	proxy_run sysctl -q -w net.ipv4.tcp_fastopen="$was"
	assert_success
	assert_line "ok 6 of 6"
	assert_via_proxy "/small.txt?$TAG-" 6
	# the first connection and the probe ask for the cookie; the others use it
	echo "# $((after - before)) of 6 connections and the probe sent their first bytes in the SYN" >&3
	((after - before >= 5)) || fail "TcpExtTCPFastOpenActive went from $before to $after"
}

@test "TCP Fast Open: a proxy that does not offer it (server TFO off in the proxy namespace, as by default): no data in a SYN, every connection works" {
	local before after
	before=$(tfo_active)
	seq_run "$(proxy_url sx)" auto 3
	after=$(tfo_active)
	assert_success
	assert_line "ok 3 of 3"
	((after == before)) || fail "TcpExtTCPFastOpenActive went from $before to $after"
}
