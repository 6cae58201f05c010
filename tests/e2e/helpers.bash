# SPDX-License-Identifier: MIT
# Shared helpers for the socksify end-to-end bats tests.
# shellcheck shell=bash
# Variables set here are used by the tests that load this file:
# shellcheck disable=SC2034
#
# Every background process is started through `spawn`, which records its PID in
# a pid file ($BATS_TEST_TMPDIR/pids for a test, $BATS_FILE_TMPDIR/pids from
# setup_file); teardown kills exactly those PIDs, also when a test fails.

BATS_LIB=${BATS_LIB:-/usr/lib/bats}
for lib in bats-support bats-assert; do
	if [[ ! -f $BATS_LIB/$lib/load.bash ]]; then
		echo "missing $BATS_LIB/$lib (apt-get install $lib, or run scripts/deps)" >&2
		exit 1
	fi
	load "$BATS_LIB/$lib/load"
done

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$E2E_DIR/../.." && pwd)
SOCKSIFY_SERVER=${SOCKSIFY_SERVER:-$REPO_ROOT/build/cli/socksify-server}
# The system python starts fastest; any python3 >= 3.7 works.
if [[ -z ${PYTHON:-} ]]; then
	if [[ -x /usr/bin/python3 ]]; then
		PYTHON=/usr/bin/python3
	else
		PYTHON=python3
	fi
fi
CLIENT=("$PYTHON" "$E2E_DIR/socks5_client.py")
# curl never waits long, and never uses a proxy from the environment.
CURL=(curl --silent --show-error --fail --max-time 15 --noproxy '')
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy no_proxy NO_PROXY

# --- processes --------------------------------------------------------------------

pidfile() {
	if [[ -n ${BATS_TEST_TMPDIR:-} && ${IN_SETUP_FILE:-0} == 0 ]]; then
		echo "$BATS_TEST_TMPDIR/pids"
	else
		echo "$BATS_FILE_TMPDIR/pids"
	fi
}

# spawn LOG CMD...: runs CMD in the background (stdout+stderr to LOG), records the
# PID, sets SPAWNED_PID. fd 3 is closed so bats does not wait for the process.
spawn() {
	local log=$1
	shift
	: >"$log" # exists before the background job opens it: callers read it at once
	"$@" >"$log" 2>&1 3>&- &
	SPAWNED_PID=$!
	echo "$SPAWNED_PID" >>"$(pidfile)"
}

# pid_alive PID: running (not exited, not a zombie waiting to be reaped)
pid_alive() {
	local state
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z && $state != X ]]
}

# wait_exit PID SECONDS: waits until PID has exited; 1 if still running after.
wait_exit() {
	local pid=$1 i
	for ((i = 0; i < $2 * 20; i++)); do
		pid_alive "$pid" || return 0
		sleep 0.05
	done
	! pid_alive "$pid"
}

# kill_pids FILE: SIGTERM every recorded PID, then SIGKILL what is left.
kill_pids() {
	local file=$1 pid
	[[ -f $file ]] || return 0
	while read -r pid; do
		pid_alive "$pid" && kill -TERM "$pid" 2>/dev/null
	done <"$file"
	while read -r pid; do
		if ! wait_exit "$pid" 3; then
			echo "# pid $pid ignored SIGTERM, killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done <"$file"
	rm -f "$file"
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
	"$PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# wait_listen PORT [PID]: polls (max 5 s) until something listens on TCP PORT;
# fails early if PID has exited.
wait_listen() {
	local port=$1 pid=${2:-} i
	for ((i = 0; i < 100; i++)); do
		if [[ -n $("${LISTEN_WRAP[@]}" ss -Hltn "sport = :$port" 2>/dev/null) ]]; then
			return 0
		fi
		if [[ -n $pid ]] && ! pid_alive "$pid"; then
			echo "process $pid exited before listening on port $port" >&2
			return 1
		fi
		sleep 0.05
	done
	echo "nothing listens on port $port after 5 s" >&2
	return 1
}

# hostport_port ADDR:PORT / [V6]:PORT -> PORT
hostport_port() {
	echo "${1##*:}"
}

# --- socksify-server --------------------------------------------------------------

# start_server [ARGS...]: starts $SOCKSIFY_SERVER; adds -l 127.0.0.1:<free port>
# unless ARGS has -l. Waits until every listener accepts connections. Sets
# SERVER_PID, SERVER_LOG (its stderr), PROXY (the first listener, ADDR:PORT) and
# PROXY_PORT. SERVER_WRAP (an array) may prefix the command (e.g. unshare).
start_server() {
	local args=("$@") listeners=() i
	for ((i = 0; i < ${#args[@]}; i++)); do
		if [[ ${args[i]} == -l ]]; then
			listeners+=("${args[i + 1]}")
		fi
	done
	if ((${#listeners[@]} == 0)); then
		listeners=("127.0.0.1:$(free_port)")
		args=(-l "${listeners[0]}" "${args[@]}")
	fi
	PROXY=${listeners[0]}
	PROXY_PORT=$(hostport_port "$PROXY")
	SERVER_LOG=$BATS_TEST_TMPDIR/server.log
	[[ -x $SOCKSIFY_SERVER ]] || fail "no server binary at $SOCKSIFY_SERVER"
	"${SERVER_WRAP[@]}" "$SOCKSIFY_SERVER" "${args[@]}" \
		>"$BATS_TEST_TMPDIR/server.stdout" 2>"$SERVER_LOG" 3>&- &
	SERVER_PID=$!
	echo "$SERVER_PID" >>"$(pidfile)"
	for i in "${listeners[@]}"; do
		if ! wait_listen "$(hostport_port "$i")" "$SERVER_PID"; then
			cat "$SERVER_LOG" >&2
			fail "socksify-server ${args[*]} is not listening on $i"
		fi
	done
}
SERVER_WRAP=()
# LISTEN_WRAP (an array) prefixes wait_listen's ss (e.g. ip netns exec NS).
LISTEN_WRAP=()

# --- a namespace whose name lookups end at a stub -----------------------------------

# stubdns_setup [nxdomain|silent]: a network namespace of this test's own,
# DNSNS (sxdns<bats PID>r<random>), with nothing but loopback (no route out, so
# no packet can leave it), whose files (/etc/netns/$DNSNS/, bind-mounted over
# /etc by ip netns exec) send every name lookup to a stub: resolv.conf names
# 127.0.0.1, hosts knows localhost only, nsswitch.conf is this machine's with
# "hosts: files dns" (no nss module that reaches a resolver some other way).
# The stub (stub_dns.py, 127.0.0.1:53 UDP and TCP) logs each query in
# STUB_DNS_LOG ("udp|tcp QNAME QTYPE") and answers NXDOMAIN, or nothing with
# silent. common_teardown removes it all. Skips, saying why, unless root.
stubdns_setup() {
	((EUID == 0)) || skip "needs root (a network namespace for the server's name lookups)"
	stubdns_sweep_stale
	DNSNS=sxdns$$r$RANDOM
	echo "$DNSNS" >"$BATS_TEST_TMPDIR/dnsns"
	ip netns add "$DNSNS" || fail "ip netns add $DNSNS failed"
	ip -n "$DNSNS" link set lo up || fail "cannot bring up lo in $DNSNS"
	local etc=/etc/netns/$DNSNS
	[[ -d /etc/netns ]] || : >"$BATS_TEST_TMPDIR/dnsns.made-etc-netns"
	mkdir -p "$etc"
	printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$etc/resolv.conf"
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$etc/hosts"
	{
		grep -v '^hosts:' /etc/nsswitch.conf 2>/dev/null || true
		echo 'hosts: files dns'
	} >"$etc/nsswitch.conf"
	STUB_DNS_LOG=$BATS_TEST_TMPDIR/stub-dns.log
	: >"$STUB_DNS_LOG"
	spawn "$BATS_TEST_TMPDIR/stub-dns.out" ip netns exec "$DNSNS" \
		"$PYTHON" -u "$E2E_DIR/stub_dns.py" 127.0.0.1 53 "$STUB_DNS_LOG" "${1:-nxdomain}"
	local i
	for ((i = 0; i < 100; i++)); do
		grep -q '^ready' "$BATS_TEST_TMPDIR/stub-dns.out" && return 0
		pid_alive "$SPAWNED_PID" || break
		sleep 0.05
	done
	cat "$BATS_TEST_TMPDIR/stub-dns.out" >&2
	fail "the stub name server did not start in $DNSNS"
}

# dns_run CMD...: CMD in $DNSNS (stubdns_setup).
dns_run() {
	ip netns exec "$DNSNS" "$@"
}

# stubdns_teardown: removes stubdns_setup's namespace and files (its processes
# are gone by then: kill_pids).
stubdns_teardown() {
	local ns
	ns=$(cat "$BATS_TEST_TMPDIR/dnsns" 2>/dev/null) || return 0
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "/etc/netns/$ns" "$BATS_TEST_TMPDIR/dnsns"
	# /etc/netns too when this test made it and nobody else uses it now
	if [[ -e $BATS_TEST_TMPDIR/dnsns.made-etc-netns ]]; then
		rmdir /etc/netns 2>/dev/null || true
		rm -f "$BATS_TEST_TMPDIR/dnsns.made-etc-netns"
	fi
}

# stubdns_sweep_stale: the namespaces of earlier runs whose bats process is gone
# (killed by a test timeout before its teardown).
stubdns_sweep_stale() {
	local f name
	for f in /run/netns/sxdns*r*; do
		[[ -e $f ]] || continue
		name=${f##*/}
		[[ $name =~ ^sxdns([0-9]+)r[0-9]+$ ]] || continue
		kill -0 "${BASH_REMATCH[1]}" 2>/dev/null && continue
		ip netns del "$name" 2>/dev/null || true
		rm -rf "/etc/netns/$name"
	done
}

# start_server_stubdns [ARGS...]: stubdns_setup, then in $DNSNS an HTTP server
# on 127.0.0.1 serving $WWW (sets HTTP_PORT, for this test) and start_server
# there. The test talks to both through dns_run.
start_server_stubdns() {
	stubdns_setup nxdomain
	HTTP_PORT=8080
	spawn "$BATS_TEST_TMPDIR/http-dnsns.log" ip netns exec "$DNSNS" \
		"$PYTHON" -m http.server --bind 127.0.0.1 --directory "$WWW" "$HTTP_PORT"
	LISTEN_WRAP=(ip netns exec "$DNSNS")
	wait_listen "$HTTP_PORT" "$SPAWNED_PID" || fail "no HTTP server in $DNSNS"
	SERVER_WRAP=(ip netns exec "$DNSNS")
	start_server -l 127.0.0.1:1080 "$@"
	SERVER_WRAP=()
	LISTEN_WRAP=()
}

# assert_stub_lookups NAME: the stub got queries during this test, every one of
# them for NAME (or NAME followed by a search domain), and $DNSNS still has
# nothing but loopback: no lookup went anywhere else.
assert_stub_lookups() {
	local name=$1 got bad links routes
	got=$(cat "$STUB_DNS_LOG")
	[[ -n $got ]] || fail "the stub name server got no query for $name"
	bad=$(grep -Ev "^(udp|tcp) ${name//./\\.}(\.[^ ]*)? [0-9]+\$" <<<"$got" || true)
	[[ -z $bad ]] || fail "the stub got queries for other names than $name: $bad"
	links=$(ip -n "$DNSNS" -o link show | awk -F': ' '{ print $2 }')
	[[ $links == lo ]] || fail "$DNSNS has other links than lo: $links"
	routes=$(ip -n "$DNSNS" route show table all | grep -v ' dev lo ' || true)
	[[ -z $routes ]] || fail "$DNSNS has routes off loopback: $routes"
	echo "# the stub got $(grep -c . <<<"$got") queries, all for $name" >&3
}

# stop_server [SIGNAL]: signals the server (default TERM), waits (max 5 s) and
# sets SERVER_STATUS to its exit status.
stop_server() {
	kill "-${1:-TERM}" "$SERVER_PID"
	if ! wait_exit "$SERVER_PID" 5; then
		kill -KILL "$SERVER_PID" 2>/dev/null || true
		fail "socksify-server did not exit within 5 s of SIG${1:-TERM}"
	fi
	SERVER_STATUS=0
	wait "$SERVER_PID" || SERVER_STATUS=$?
}

# log_lines: the server's log without the "listening on" lines.
log_lines() {
	grep -v 'listening on' "$SERVER_LOG" || true
}

# --- targets ----------------------------------------------------------------------

# start_http: python3 http.server on 127.0.0.1 serving $WWW (see make_www); sets
# HTTP_PORT. start_http6: the same on ::1, sets HTTP6_PORT, skips without ::1.
make_www() {
	WWW=$BATS_FILE_TMPDIR/www
	mkdir -p "$WWW"
	head -c 1048576 /dev/urandom >"$WWW/big.bin"
	BIG_SHA=$(sha256sum "$WWW/big.bin" | cut -d' ' -f1)
	printf '<html><body>socksify e2e index</body></html>\n' >"$WWW/index.html"
	export WWW BIG_SHA
}

start_http() {
	HTTP_PORT=$(free_port)
	spawn "$BATS_FILE_TMPDIR/http.log" \
		"$PYTHON" -m http.server --bind 127.0.0.1 --directory "$WWW" "$HTTP_PORT"
	wait_listen "$HTTP_PORT" "$SPAWNED_PID" || return 1
	export HTTP_PORT
}

ipv6_loopback_error() {
	"$PYTHON" -c 'import socket
s = socket.socket(socket.AF_INET6)
s.bind(("::1", 0))' 2>&1 | tail -n 1
}

start_http6() {
	HTTP6_PORT=""
	if [[ -n $(ipv6_loopback_error) ]]; then
		export HTTP6_PORT
		return 0
	fi
	HTTP6_PORT=$(free_port)
	spawn "$BATS_FILE_TMPDIR/http6.log" \
		"$PYTHON" -m http.server --bind ::1 --directory "$WWW" "$HTTP6_PORT"
	wait_listen "$HTTP6_PORT" "$SPAWNED_PID" || return 1
	export HTTP6_PORT
}

require_ipv6() {
	local err
	err=$(ipv6_loopback_error)
	[[ -z $err ]] || skip "no IPv6 loopback: $err"
	[[ -n ${HTTP6_PORT:-} ]] || skip "no IPv6 loopback: the ::1 HTTP server did not start"
}

# start_target KIND [ARGS...]: a socks5_client.py target server (echo-server,
# peer-server, eof-server) on 127.0.0.1 (or TARGET_HOST); sets TARGET (ADDR:PORT).
start_target() {
	local kind=$1 host=${TARGET_HOST:-127.0.0.1} port
	shift
	port=$(free_port)
	if [[ $host == *:* ]]; then
		TARGET="[$host]:$port"
	else
		TARGET="$host:$port"
	fi
	spawn "$BATS_TEST_TMPDIR/$kind.log" "${CLIENT[@]}" "$kind" --listen "$TARGET" "$@"
	wait_listen "$port" "$SPAWNED_PID" || fail "$kind did not start"
}

# --- setup / teardown -----------------------------------------------------------------

common_setup_file() {
	IN_SETUP_FILE=1
	[[ -x $SOCKSIFY_SERVER ]] || {
		echo "socksify-server not built: $SOCKSIFY_SERVER" >&2
		return 1
	}
	make_www
	start_http
	start_http6
	IN_SETUP_FILE=0
}

common_teardown_file() {
	kill_pids "$BATS_FILE_TMPDIR/pids"
}

common_setup() {
	SERVER_PID=""
	SERVER_LOG=""
}

# Kills every process the test started and fails the test when the server's log
# shows a sanitizer report (the ASan build runs this suite too).
common_teardown() {
	kill_pids "$BATS_TEST_TMPDIR/pids"
	stubdns_teardown
	if [[ -n $SERVER_LOG && -s $SERVER_LOG ]]; then
		echo "# --- server log ($SERVER_LOG):"
		sed 's/^/# /' "$SERVER_LOG"
		if grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$SERVER_LOG"; then
			echo "# sanitizer report in the server log" >&2
			return 1
		fi
	fi
	return 0
}
