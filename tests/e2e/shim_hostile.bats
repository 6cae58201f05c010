#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The shim against hostile and broken proxies (issue 12), with real programs in
# the namespaces of scripts/netns: tests/e2e/hostile_proxy.py in the proxy
# namespace misbehaves in one way per port (its --list is the table: TCP
# wrong versions, methods and reply codes, floods, truncations, RST,
# half-close and silence at each step, byte-by-byte replies, 255-byte and IPv6
# BND; UDP ASSOCIATE relay addresses, malformed and spoofed datagrams, the
# control connection ending). For each behaviour, under socksify with
# connect_timeout = 1 and pipeline = no:
#   - tests/e2e/hostile_client.py: blocking and non-blocking connects (UDP:
#     sends) see the expected errno, or succeed for the valid odd ones; each
#     attempt ends in bounded time; as many descriptors at the end as at the
#     start;
#   - curl (TCP): fetches the file, or fails with a status that is not a
#     signal, in bounded time;
#   - the proxy saw every attempt (accepts counted), and nothing went around
#     it: the failing cases ask for the trap 198.18.1.1:8080, which the client
#     could reach directly (its log must stay empty), and the client reaches
#     nothing else (the target, 198.18.2.2, saw the proxy only).
# Then the proxy down in each way (refused, unreachable, no route,
# black-holed by a neighbour entry that leads nowhere, a full backlog), and
# socksify-server SIGKILLed under a transfer and restarted.
# The cases run concurrently (HOSTILE_JOBS, default 12); HOSTILE_ONLY=ERE runs
# only the behaviours whose names match (then the counts are not checked).

# shellcheck disable=SC2030,SC2031,SC2154,SC2034,SC2001

bats_require_minimum_version 1.5.0

HOSTILE_BASE=20000
BLACKHOLE4=198.18.1.99 # a neighbour entry with a MAC nobody has
UNREACH4=198.18.6.1    # an `unreachable` route in the client's namespace
NOROUTE4=203.0.113.1   # no route at all from the client
SPOOF4=198.18.1.77     # a second address of the proxy's
# a program still running after this many seconds hung: killed (status 137),
# which fails its case instead of the whole file's time limit
CASE_KILL=30
# what curl's wall time may take beyond its connect's bound: the start of the
# launcher and of curl
CURL_START_MS=3500

setup_file() {
	load helpers
	load netns
	netns_setup_file || return 1
	IN_SETUP_FILE=1
	client_run ip route add unreachable 198.18.6.0/24 || return 1
	client_run ip neigh replace "$BLACKHOLE4" lladdr 02:00:00:5e:10:99 dev vc0 nud permanent ||
		return 1
	proxy_run ip addr add "$SPOOF4/32" dev vp0 || return 1
	HOSTILE_LOG=$BATS_FILE_TMPDIR/hostile.log
	export HOSTILE_LOG
	local names
	mapfile -t names < <("$PYTHON" "$E2E_DIR/hostile_proxy.py" --list | awk '{ print $2 }')
	ns_spawn proxy "$HOSTILE_LOG" env HOSTILE_SPOOF_ADDR="$SPOOF4" \
		"$PYTHON" -u "$E2E_DIR/hostile_proxy.py" "$PROXY4" "$HOSTILE_BASE" "${names[@]}"
	local i
	for ((i = 0; i < 100; i++)); do
		grep -qx listening "$HOSTILE_LOG" && break
		pid_alive "$SPAWNED_PID" || break
		sleep 0.05
	done
	grep -qx listening "$HOSTILE_LOG" || {
		cat "$HOSTILE_LOG" >&2
		return 1
	}
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
	netns_setup
	require_socksify
	HOSTILE_LOG_START=$(log_size "$HOSTILE_LOG")
}

teardown() {
	local rc=0
	netns_teardown || rc=$?
	if [[ -n ${output:-} ]]; then
		echo "# --- the output of the last command run:"
		sed 's/^/#   /' <<<"$output" | tail -n 60
	fi
	return "$rc"
}

# --- running one case ----------------------------------------------------------------

# hostile_conf FILE URL: a configuration with connect_timeout = 1, pipeline = no
# (mode 600: the launcher warns about a password others may read)
hostile_conf() {
	(umask 077 && printf 'proxy = %s\nconnect_timeout = 1\npipeline = no\n' "$2" >"$1")
}

# elapsed_ms T0: milliseconds since $EPOCHREALTIME was T0
elapsed_ms() {
	awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }'
}

# tcp_case KIND NAME AUTH EXPECT INDEX DIR: one TCP behaviour; writes
# DIR/NAME.out and, when a check failed, DIR/NAME.fail (one line per problem).
tcp_case() {
	local name=$2 auth=$3 expect=$4 index=$5 dir=$6
	local port=$((HOSTILE_BASE + index)) conf=$dir/$name.conf out=$dir/$name.out
	local cred="" host=$PROXY4 dport=8080 n=2 maxms=2500 t0 rc=0 ms
	((auth)) && cred=user:pass@
	hostile_conf "$conf" "socks5://$cred$PROXY4:$port"
	if [[ $expect == ok || $expect == data ]]; then
		host=$TARGET4 dport=80 maxms=6000
	fi
	# python and curl at the same time (the proxy counts both)
	{
		client_run timeout -s KILL "$CASE_KILL" env SMALL_TEXT="$SMALL_TEXT" "$SOCKSIFY" -c "$conf" -- \
			"$PYTHON" "$E2E_DIR/hostile_client.py" tcp "$host" "$dport" "$expect" "$n" "$maxms" 2>&1 ||
			rc=$?
		((rc == 0)) || echo "FAIL hostile_client.py exited $rc"
	} >"$out" 2>&1 &
	local py=$!
	{
		t0=$EPOCHREALTIME
		local body
		rc=0
		body=$(client_run timeout -s KILL "$CASE_KILL" "$SOCKSIFY" -c "$conf" -- curl -sS --max-time 10 --noproxy '' \
			"http://$host:$dport/small.txt" 2>&1) || rc=$?
		ms=$(elapsed_ms "$t0")
		if [[ $expect == ok ]]; then
			[[ $rc == 0 && $body == "$SMALL_TEXT" ]] && echo "ok curl: the file in $ms ms" ||
				echo "FAIL curl: status $rc, expected the file: ${body:0:200}"
		elif ((rc == 0 || rc >= 128)); then
			echo "FAIL curl: status $rc (0: succeeded; 128 and above: a signal) after $ms ms"
		else
			echo "ok curl: status $rc after $ms ms: $(head -n 1 <<<"$body")"
		fi
		# curl's time includes starting the launcher and curl (seconds
		# under ASan on a loaded machine); the attempts' own bound is
		# hostile_client.py's
		((ms <= maxms + CURL_START_MS)) || echo "FAIL curl took $ms ms (max $((maxms + CURL_START_MS)))"
	} >"$out.curl" 2>&1
	wait "$py" || true
	cat "$out.curl" >>"$out"
	grep '^FAIL' "$out" >"$dir/$name.fail" || rm -f "$dir/$name.fail"
	return 0
}

# udp_case KIND NAME AUTH EXPECT INDEX DIR: one UDP behaviour, the same way.
udp_case() {
	local name=$2 expect=$4 index=$5 dir=$6
	local port=$((HOSTILE_BASE + index)) conf=$dir/$name.conf out=$dir/$name.out rc=0
	hostile_conf "$conf" "socks5://$PROXY4:$port"
	{
		client_run timeout -s KILL "$CASE_KILL" "$SOCKSIFY" -c "$conf" -- \
			"$PYTHON" "$E2E_DIR/hostile_client.py" udp "$TARGET4" 7 "$expect" 2 4000 2>&1 ||
			rc=$?
		((rc == 0)) || echo "FAIL hostile_client.py exited $rc"
	} >"$out" 2>&1
	grep '^FAIL' "$out" >"$dir/$name.fail" || rm -f "$dir/$name.fail"
	return 0
}

# run_cases KIND: every behaviour of that kind (tcp, udp), HOSTILE_JOBS at a
# time; sets CASES (their lines of --list) and CASE_DIR.
run_cases() {
	local kind=$1 jobs=${HOSTILE_JOBS:-12} k name auth expect index running=0 pids=()
	CASE_DIR=$BATS_TEST_TMPDIR/cases
	mkdir -p "$CASE_DIR"
	CASES=()
	# INDEX (the port's offset: the place in the table) first; the cases that
	# wait for connect_timeout start first
	while read -r index k name auth expect; do
		if [[ $k == "$kind" && $name =~ ${HOSTILE_ONLY:-.} ]]; then
			CASES+=("$k $name $auth $expect")
			"${kind}_case" "$k" "$name" "$auth" "$expect" "$index" "$CASE_DIR" 3>&- &
			pids+=($!)
			running=$((running + 1))
			if ((running >= jobs)); then
				wait -n || true
				running=$((running - 1))
			fi
		fi
	done < <("$PYTHON" "$E2E_DIR/hostile_proxy.py" --list |
		awk '{ print ($4 == "ETIMEDOUT" || $4 == "timeout" ? 0 : 1), NR - 1, $0 }' |
		sort -n -s -k1,1 | cut -d' ' -f2-)
	wait "${pids[@]}"
}

# hostile_lines NAME: this test's lines of the hostile proxy's log about NAME
hostile_lines() {
	tail -c +"$((HOSTILE_LOG_START + 1))" "$HOSTILE_LOG" | grep -E "^$1[ :]" || true
}

# report_cases: fails with every failed case's lines; the count to the TAP
# output (fd 3).
report_cases() {
	local bad
	bad=$(cd "$CASE_DIR" && for f in *.fail; do
		if [[ -e $f ]]; then sed "s/^/${f%.fail}: /" "$f"; fi
	done)
	local slowest
	slowest=$(cat "$CASE_DIR"/*.out | sed -n 's/.* after \([0-9]*\) ms.*/\1/p' | sort -n | tail -n 1)
	echo "# ${#CASES[@]} behaviours, $(find "$CASE_DIR" -name '*.fail' | wc -l) failed; the slowest attempt ${slowest:-?} ms" >&3
	[[ -z $bad ]] || fail "$bad"
}

# --- the tests -----------------------------------------------------------------------

@test "hostile TCP proxies: every behaviour gives its errno (or works), in bounded time, no fd leaked, nothing direct" {
	run_cases tcp
	local c k name auth expect accepts want n
	for c in "${CASES[@]}"; do
		read -r k name auth expect <<<"$c"
		# the proxy saw every attempt: python's 2 rounds of 2 and curl's one
		want=5
		accepts=$(hostile_lines "$name" | grep -c " accept$")
		((accepts == want)) ||
			echo "connections at the proxy: $accepts, expected $want" >>"$CASE_DIR/$name.fail"
		[[ -s $CASE_DIR/$name.out ]] || echo "no output" >>"$CASE_DIR/$name.fail"
	done
	report_cases
	[[ -n ${HOSTILE_ONLY:-} ]] || ((${#CASES[@]} >= 56)) || fail "only ${#CASES[@]} TCP behaviours"
	assert_trap_untouched
	local bad
	bad=$(target_log_since | grep -Ev "^$PROXY_OUT4 - - " || true)
	[[ -z $bad ]] || fail "the target was reached from elsewhere than the proxy: $bad"
}

@test "hostile UDP ASSOCIATE replies and relays: every behaviour gives its errno, drops the bad datagrams, or re-associates; no fd leaked" {
	run_cases udp
	local c k name auth expect lines
	for c in "${CASES[@]}"; do
		read -r k name auth expect <<<"$c"
		lines=$(hostile_lines "$name")
		grep -q " associate cmd 3$" <<<"$lines" ||
			echo "the proxy got no UDP ASSOCIATE" >>"$CASE_DIR/$name.fail"
		case $name in
		udp-spoof-*)
			grep -q " spoofed from " <<<"$lines" ||
				echo "the proxy sent no spoofed datagram" >>"$CASE_DIR/$name.fail"
			;;
		udp-ctl-*)
			(($(grep -c " associate cmd 3$" <<<"$lines") >= 6)) ||
				echo "expected two associations per socket: $lines" >>"$CASE_DIR/$name.fail"
			;;
		esac
	done
	report_cases
	[[ -n ${HOSTILE_ONLY:-} ]] || ((${#CASES[@]} >= 22)) || fail "only ${#CASES[@]} UDP behaviours"
	assert_trap_untouched
}

# A listener in the proxy's namespace whose backlog is full and that never
# accepts: SYNs to it are dropped (prints "full" once its queue is full).
PY_FULL_BACKLOG='
import socket, sys, time
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port))
s.listen(0)
held = []
for i in range(4):
    c = socket.socket()
    c.setblocking(False)
    c.connect_ex((addr, port))
    held.append(c)
time.sleep(0.3)
print("full", flush=True)
time.sleep(3600)
'

@test "the proxy down: refused, unreachable, no route, black-holed, a full backlog: each errno within connect_timeout, TCP and UDP, nothing direct" {
	ns_spawn proxy "$BATS_TEST_TMPDIR/backlog.log" "$PYTHON" -u -c "$PY_FULL_BACKLOG" "$PROXY4" 1098
	local i
	for ((i = 0; i < 40; i++)); do
		grep -q full "$BATS_TEST_TMPDIR/backlog.log" && break
		sleep 0.05
	done
	grep -q full "$BATS_TEST_TMPDIR/backlog.log" || fail "the full-backlog listener did not start"
	local -a downs=(
		"refused $PROXY4:1099 ECONNREFUSED"
		"unreachable $UNREACH4:1080 EHOSTUNREACH"
		"no-route $NOROUTE4:1080 ENETUNREACH"
		"black-hole $BLACKHOLE4:1080 ETIMEDOUT"
		"full-backlog $PROXY4:1098 ETIMEDOUT"
	)
	local d name hp expect conf dir=$BATS_TEST_TMPDIR/down pids=()
	mkdir -p "$dir"
	for d in "${downs[@]}"; do
		read -r name hp expect <<<"$d"
		conf=$dir/$name.conf
		hostile_conf "$conf" "socks5://$hp"
		(
			rc=0
			client_run timeout -s KILL "$CASE_KILL" "$SOCKSIFY" -c "$conf" -- "$PYTHON" "$E2E_DIR/hostile_client.py" \
				tcp "$PROXY4" 8080 "$expect" 2 2500 >"$dir/$name.tcp" 2>&1 || rc=$?
			((rc == 0)) || echo "FAIL tcp: hostile_client.py exited $rc" >>"$dir/$name.tcp"
		) 3>&- &
		pids+=($!)
		(
			rc=0
			client_run timeout -s KILL "$CASE_KILL" "$SOCKSIFY" -c "$conf" -- "$PYTHON" "$E2E_DIR/hostile_client.py" \
				udp "$TARGET4" 7 "$expect" 2 3000 >"$dir/$name.udp" 2>&1 || rc=$?
			((rc == 0)) || echo "FAIL udp: hostile_client.py exited $rc" >>"$dir/$name.udp"
		) 3>&- &
		pids+=($!)
		(
			t0=$EPOCHREALTIME rc=0
			client_run timeout -s KILL "$CASE_KILL" "$SOCKSIFY" -c "$conf" -- curl -sS --max-time 10 --noproxy '' \
				"http://$PROXY4:8080/small.txt" >"$dir/$name.curl" 2>&1 || rc=$?
			ms=$(elapsed_ms "$t0")
			if ((rc == 0 || rc >= 128 || ms > 2500 + CURL_START_MS)); then
				echo "FAIL curl: status $rc after $ms ms" >>"$dir/$name.curl"
			fi
		) 3>&- &
		pids+=($!)
	done
	wait "${pids[@]}"
	local bad
	bad=$(grep -H FAIL "$dir"/*.tcp "$dir"/*.udp "$dir"/*.curl || true)
	[[ -z $bad ]] || fail "$(for f in "$dir"/*.tcp "$dir"/*.udp "$dir"/*.curl; do sed "s|^|${f##*/}: |" "$f"; done)"
	echo "# ${#downs[@]} ways down, each through TCP (python, curl) and UDP" >&3
	assert_trap_untouched
}

# A slow HTTP target: any request gets Content-Length: 10 MB and then 8 KB
# every 50 ms, so that no more than that is ever under way (a kill of the proxy
# leaves nothing in its buffers for the client). argv: ADDR PORT
PY_SLOW_HTTP='
import socket, sys, threading, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
def serve(c):
    try:
        c.recv(65536)
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 10485760\r\n\r\n")
        while True:
            c.sendall(b"x" * 8192)
            time.sleep(0.05)
    except OSError:
        c.close()
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
'

# argv: HOST PORT STOPFILE: every 100 ms a new connection and GET /small.txt;
# one line each ("ok", or "err ERRNO"), until STOPFILE exists; then the
# descriptors after the first success and at the end (but for the shim's pool
# of eventfds, at 700 and above: see hostile_client.py).
PY_LOOP='
import errno, os, socket, sys, time
host, port, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def nfds():
    n = 0
    for f in os.listdir("/proc/self/fd"):
        try:
            pooled = int(f) >= 700 and os.readlink("/proc/self/fd/" + f) == "anon_inode:[eventfd]"
        except OSError:
            continue
        n += not pooled
    return n
first = None
while not os.path.exists(stop):
    try:
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(b"GET /small.txt HTTP/1.0\r\nHost: t\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        print("ok" if os.environ["SMALL_TEXT"].encode() in data else "bad answer", flush=True)
        if first is None:
            first = nfds()
    except OSError as e:
        print("err", errno.errorcode.get(e.errno, e.errno), flush=True)
    time.sleep(0.1)
print("fds", first, nfds(), flush=True)
'

@test "socksify-server SIGKILLed under a download: curl fails at once; restarted on the same port, a new curl and a program that kept running both work again" {
	local port=1185 slog=$BATS_TEST_TMPDIR/server.log conf=$BATS_TEST_TMPDIR/s.conf
	local stop=$BATS_TEST_TMPDIR/stop loop=$BATS_TEST_TMPDIR/loop.out
	netns_socksify_server "$port" "$slog" --allow-open
	local server=$SPAWNED_PID
	hostile_conf "$conf" "socks5://$PROXY4:$port"
	# a program that keeps connecting, through the kill and the restart
	client_run env SMALL_TEXT="$SMALL_TEXT" "$SOCKSIFY" -c "$conf" -- \
		"$PYTHON" -u -c "$PY_LOOP" "$TARGET4" 80 "$stop" >"$loop" 2>&1 3>&- &
	local looper=$!
	echo "$looper" >>"$BATS_TEST_TMPDIR/pids"
	# a download under way when the server dies: a slow target (160 KB/s)
	ns_spawn target "$BATS_TEST_TMPDIR/slow.log" "$PYTHON" -c "$PY_SLOW_HTTP" "$TARGET4" 8090
	ns_wait_listen target tcp "$TARGET4" 8090 "$SPAWNED_PID"
	client_run "$SOCKSIFY" -c "$conf" -- curl -sS --max-time 20 --noproxy '' \
		-o "$BATS_TEST_TMPDIR/partial" "http://$TARGET4:8090/big" >"$BATS_TEST_TMPDIR/curl.out" 2>&1 3>&- &
	local curl=$!
	echo "$curl" >>"$BATS_TEST_TMPDIR/pids"
	sleep 0.6
	pid_alive "$curl" || fail "curl ended before the kill: $(cat "$BATS_TEST_TMPDIR/curl.out")"
	grep -q '^ok$' "$loop" || fail "the looping program got nothing through before the kill: $(cat "$loop")"
	kill -KILL "$server"
	local t0=$EPOCHREALTIME rc=0
	wait "$curl" || rc=$?
	local ms
	ms=$(elapsed_ms "$t0")
	((rc != 0 && rc < 128)) || fail "curl: status $rc after the kill (0: succeeded; 128 and above: a signal)"
	((ms < 3000)) || fail "curl took $ms ms to fail after the kill"
	echo "# curl failed $ms ms after the kill: status $rc, $(head -n 1 "$BATS_TEST_TMPDIR/curl.out")" >&3
	local mark
	sleep 0.5 # the looping program meets the dead port
	mark=$(wc -l <"$loop")
	netns_socksify_server "$port" "$BATS_TEST_TMPDIR/server2.log" --allow-open
	run -0 client_run "$SOCKSIFY" -c "$conf" -- curl -sS --max-time 20 --noproxy '' \
		-o "$BATS_TEST_TMPDIR/after" "http://$TARGET4/file"
	[[ $(sha256sum <"$BATS_TEST_TMPDIR/after" | cut -d' ' -f1) == "$FILE_SHA" ]] ||
		fail "the download after the restart is not the file"
	local i
	for ((i = 0; i < 60; i++)); do
		(($(tail -n +"$((mark + 1))" "$loop" | grep -c '^ok$') >= 3)) && break
		sleep 0.1
	done
	touch "$stop"
	wait_exit "$looper" 5 || fail "the looping program did not stop"
	wait "$looper" || fail "the looping program exited $?: $(cat "$loop")"
	run cat "$loop"
	(($(tail -n +"$((mark + 1))" "$loop" | grep -c '^ok$') >= 3)) ||
		fail "the looping program got nothing through after the restart"
	grep -Eq '^err (ECONNREFUSED|ECONNRESET)$' "$loop" ||
		fail "the looping program never met the dead proxy"
	refute_line --regexp '^(bad answer|err (ENETUNREACH|EHOSTUNREACH))'
	local fds
	fds=$(sed -n 's/^fds //p' "$loop")
	[[ -n $fds && ${fds% *} -ge ${fds#* } ]] || fail "the looping program's descriptors: $fds (after the first success, at the end)"
	echo "# the looping program: $(grep -c '^ok$' "$loop") ok, $(grep -c '^err' "$loop") errors, descriptors $fds" >&3
	assert_via_proxy "/file" 1
}
