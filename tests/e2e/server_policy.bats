#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# socksify-server's destination policy (cli/server/acl.h): a server listening
# beyond loopback refuses this host and its link (127.0.0.0/8, 0.0.0.0, ::1,
# 169.254.0.0/16, ...) and its own listeners, for CONNECT (every resolved
# address), UDP ASSOCIATE datagrams and BIND peers, unless --allow-local or an
# --allow rule (first match wins) says otherwise; a loopback-only server
# reaches them all.
# One private network namespace for the file: lo, a veth interface with
# 198.18.9.1/24 (the exposed listeners' address) and 169.254.169.254/32 (the
# cloud metadata address, reachable in the namespace), an HTTP server on
# 0.0.0.0:8080 (so every one of those addresses answers), /etc/hosts and
# resolv.conf of its own (/etc/netns/NS: nothing reaches this machine's
# resolver). Needs root (CI runs as root).

# shellcheck disable=SC2030,SC2031,SC2034,SC2154

bats_require_minimum_version 1.5.0

ADDR=198.18.9.1
META=169.254.169.254

setup_file() {
	load helpers
	((EUID == 0)) || return 0
	make_www
	export NS=policy-$$
	mkdir -p "/etc/netns/$NS"
	printf '127.0.0.1 loop.test\n127.0.0.1 mixed.test\n%s mixed.test\n%s meta.test\n' \
		"$ADDR" "$META" >"/etc/netns/$NS/hosts"
	printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"/etc/netns/$NS/resolv.conf"
	ip netns add "$NS"
	ip -n "$NS" link set lo up
	# a veth pair inside the namespace (the dummy module may be missing)
	ip -n "$NS" link add pol0 type veth peer name pol1
	ip -n "$NS" addr add "$ADDR/24" dev pol0
	ip -n "$NS" addr add "$META/32" dev pol0
	ip -n "$NS" link set pol0 up
	ip -n "$NS" link set pol1 up
	IN_SETUP_FILE=1
	spawn "$BATS_FILE_TMPDIR/http.log" ip netns exec "$NS" \
		"$PYTHON" -m http.server --bind 0.0.0.0 --directory "$WWW" 8080
	IN_SETUP_FILE=0
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -n $(ip netns exec "$NS" ss -Hltn 'sport = :8080') ]] && return 0
		sleep 0.05
	done
	echo "the HTTP server did not start in $NS" >&2
	return 1
}

teardown_file() {
	load helpers
	kill_pids "$BATS_FILE_TMPDIR/pids"
	if [[ -n ${NS:-} ]]; then
		ip netns del "$NS" 2>/dev/null || true
		rm -rf "/etc/netns/$NS"
	fi
}

setup() {
	load helpers
	common_setup
	((EUID == 0)) || skip "needs root to create network namespaces (CI runs as root)"
	NSERVERS=0
}

teardown() {
	local rc=0 f
	common_teardown || rc=$?
	for f in "$BATS_TEST_TMPDIR"/server-*.log; do
		[[ -f $f && $f != "$SERVER_LOG" ]] || continue
		echo "# --- $f:"
		sed 's/^/# /' "$f"
		if grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$f"; then
			rc=1
		fi
	done
	return "$rc"
}

in_ns() {
	ip netns exec "$NS" "$@"
}

# policy_server ADDR:PORT ARGS...: socksify-server in the namespace; sets
# PX (ADDR:PORT), SERVER_LOG and SERVER_PID for the latest one.
policy_server() {
	local listen=$1 port=${1##*:} i
	shift
	NSERVERS=$((NSERVERS + 1))
	SERVER_LOG=$BATS_TEST_TMPDIR/server-$NSERVERS.log
	PX=$listen
	ip netns exec "$NS" "$SOCKSIFY_SERVER" -l "$listen" "$@" 2>"$SERVER_LOG" 3>&- &
	SERVER_PID=$!
	echo "$SERVER_PID" >>"$(pidfile)"
	for ((i = 0; i < 100; i++)); do
		[[ -n $(in_ns ss -Hltn "sport = :$port") ]] && return 0
		pid_alive "$SERVER_PID" || break
		sleep 0.05
	done
	cat "$SERVER_LOG" >&2
	fail "socksify-server -l $listen $* did not listen in $NS"
}

# port K: a port for the K-th listener of this test (the namespace is ours)
port() {
	echo $((20000 + BATS_TEST_NUMBER * 10 + $1))
}

# sx_connect TARGET REP [ARGS...]: the raw client's CONNECT through $PX as user:pass
sx_connect() {
	local target=$1 rep=$2
	shift 2
	in_ns "${CLIENT[@]}" connect --proxy "$PX" --user user --pass pass \
		--target "$target" --expect-rep "$rep" "$@"
}

# sx_curl ARGS...: curl through $PX as user:pass, inside the namespace
sx_curl() {
	in_ns "${CURL[@]}" --proxy-user user:pass "$@"
}

@test "exposed (-u, -l $ADDR): 127.0.0.1, 0.0.0.0, $META, [::1], fe80:: and the listener itself -> reply 2, one log line each" {
	policy_server "$ADDR:$(port 1)" -u user:pass
	# the server works, and the HTTP server answers on the namespace's address
	run -0 sx_curl --socks5 "$PX" "http://$ADDR:8080/index.html"
	assert_output --partial 'socksify e2e index'
	run -97 sx_curl --socks5 "$PX" "http://127.0.0.1:8080/index.html"
	local t
	for t in 127.0.0.1:8080 127.9.9.9:8080 0.0.0.0:8080 "$META:8080" "[::1]:8080" \
		"[::ffff:127.0.0.1]:8080" "[fe80::1]:8080" "$PX"; do
		run -0 sx_connect "$t" 2
		assert_line "closed=yes"
	done
	run -0 sx_connect 0.0.0.0:8080 2 --atyp domain
	# one line per refusal, naming the client, the destination and the rule
	run -0 grep -c 'denied by' "$SERVER_LOG"
	assert_output 10
	run -0 grep -E "^socksify-server: $ADDR:[0-9]+ CONNECT 127\\.0\\.0\\.1:8080: refused, denied by 127\\.0\\.0\\.0/8 \\(built in" "$SERVER_LOG"
	run -0 grep -F "CONNECT 0.0.0.0:8080: refused, denied by 127.0.0.0/8" "$SERVER_LOG"
	run -0 grep -F "CONNECT $META:8080: refused, denied by 169.254.0.0/16" "$SERVER_LOG"
	run -0 grep -F "CONNECT [::1]:8080: refused, denied by ::1" "$SERVER_LOG"
	run -0 grep -F "CONNECT [fe80::1]:8080: refused, denied by fe80::/10" "$SERVER_LOG"
	run -0 grep -F "CONNECT $PX: refused, denied by a listener of this server" "$SERVER_LOG"
}

@test "exposed: a name resolving to 127.0.0.1 is refused; a name with 127.0.0.1 and $ADDR skips the first" {
	policy_server "$ADDR:$(port 1)" -u user:pass -v
	run -97 sx_curl --socks5-hostname "$PX" "http://loop.test:8080/index.html"
	run -0 sx_connect loop.test:8080 2
	run -0 grep -F "CONNECT loop.test:8080 (127.0.0.1:8080): refused, denied by 127.0.0.0/8" \
		"$SERVER_LOG"
	run -0 grep -F "CONNECT loop.test:8080: reply 2, connection not allowed by ruleset (127.0.0.0/8" \
		"$SERVER_LOG"
	run -97 sx_curl --socks5-hostname "$PX" "http://meta.test:8080/index.html"
	# getaddrinfo orders 127.0.0.1 (smaller scope) first: skipped, then $ADDR
	run -0 sx_curl --socks5-hostname "$PX" "http://mixed.test:8080/index.html"
	assert_output --partial 'socksify e2e index'
	run -0 grep -F "CONNECT mixed.test:8080 (127.0.0.1:8080): address skipped, denied by 127.0.0.0/8" \
		"$SERVER_LOG"
	run -0 grep -F "CONNECT mixed.test:8080 ($ADDR:8080): succeeded" "$SERVER_LOG"
}

@test "exposed with --allow-local: 127.0.0.1, 0.0.0.0, $META, loop.test and the listener itself are reached" {
	policy_server "$ADDR:$(port 1)" -u user:pass --allow-local
	local url
	for url in "http://127.0.0.1:8080/index.html" "http://0.0.0.0:8080/index.html" \
		"http://$META:8080/index.html"; do
		run -0 sx_curl --socks5 "$PX" "$url"
		assert_output --partial 'socksify e2e index'
	done
	run -0 sx_curl --socks5-hostname "$PX" "http://loop.test:8080/index.html"
	assert_output --partial 'socksify e2e index'
	# a CONNECT to itself: relayed (to its own listener, which waits for a greeting)
	run -0 sx_connect "$PX" 0 --expect-open-for 0.3
	run ! grep -F 'denied' "$SERVER_LOG"
}

@test "a loopback-only server (no -u) reaches 127.0.0.1, $META and loop.test" {
	policy_server "127.0.0.1:$(port 1)"
	run -0 in_ns "${CURL[@]}" --socks5 "$PX" "http://127.0.0.1:8080/index.html"
	assert_output --partial 'socksify e2e index'
	run -0 in_ns "${CURL[@]}" --socks5 "$PX" "http://$META:8080/index.html"
	run -0 in_ns "${CURL[@]}" --socks5-hostname "$PX" "http://loop.test:8080/index.html"
	run ! grep -F 'denied' "$SERVER_LOG"
}

@test "a wildcard listener (-l 0.0.0.0:P) refuses port P on each local address, not other ports" {
	policy_server "0.0.0.0:$(port 1)" -u user:pass
	PX=$ADDR:$(port 1)
	run -0 sx_connect "$ADDR:$(port 1)" 2
	run -0 grep -F "CONNECT $ADDR:$(port 1): refused, denied by a listener of this server" \
		"$SERVER_LOG"
	run -0 sx_curl --socks5 "$PX" "http://$ADDR:8080/index.html"
	assert_output --partial 'socksify e2e index'
	# a port nothing listens on, on a local address: allowed, so refused by the host
	run -0 sx_connect "$ADDR:$(port 2)" 5
}

@test "--allow before --deny: the first rule that matches decides, ports included" {
	policy_server "$ADDR:$(port 1)" -u user:pass --allow 127.0.0.1:8080 --deny "$ADDR/32:8080"
	run -0 sx_curl --socks5 "$PX" "http://127.0.0.1:8080/index.html"
	assert_output --partial 'socksify e2e index'
	run -0 sx_connect 127.0.0.1:8081 2 # the built-in list after the rules
	run -0 sx_connect "$ADDR:8080" 2
	run -0 grep -F "CONNECT $ADDR:8080: refused, denied by --deny $ADDR/32:8080" "$SERVER_LOG"
	# the other order: the --deny matches first
	policy_server "$ADDR:$(port 2)" -u user:pass --deny 127.0.0.0/8 --allow 127.0.0.1:8080
	run -0 sx_connect 127.0.0.1:8080 2
	run -0 grep -F "CONNECT 127.0.0.1:8080: refused, denied by --deny 127.0.0.0/8" "$SERVER_LOG"
	# an IPv6 rule with a port, in brackets
	policy_server "$ADDR:$(port 3)" -u user:pass --allow-local --deny '[::1]/128:8080'
	run -0 sx_connect "[::1]:8080" 2
	run -0 grep -F "denied by --deny [::1]/128:8080" "$SERVER_LOG"
}

@test "UDP ASSOCIATE (exposed): datagrams to 127.0.0.1 are dropped (one log line), $ADDR echoes; --allow-local lets them through" {
	local ulog=$BATS_TEST_TMPDIR/udp-echo.log uport i
	spawn "$ulog" ip netns exec "$NS" "${CLIENT[@]}" udp-echo-server --host 127.0.0.1 --host "$ADDR"
	for ((i = 0; i < 100; i++)); do
		uport=$(sed -n 's/^port=//p' "$ulog")
		[[ -n $uport ]] && break
		sleep 0.05
	done
	[[ -n $uport ]] || fail "the UDP echo target did not start: $(cat "$ulog")"
	policy_server "$ADDR:$(port 1)" -u user:pass -v
	run -0 in_ns "${CLIENT[@]}" udp --proxy "$PX" --user user --pass pass --quiet 0.3 \
		--target "$ADDR:$uport" --echo 100 --no-reply "100@127.0.0.1:$uport" \
		--no-reply "100@127.0.0.1:$uport" --no-reply "100@loop.test:$((uport + 1))" --echo 100
	assert_line "echoed=2"
	run ! grep -F "to=127.0.0.1:$uport" "$ulog"
	run -0 grep -c "UDP 127.0.0.1:$uport: datagrams dropped, denied by 127.0.0.0/8" "$SERVER_LOG"
	assert_output 1
	run -0 grep -F "UDP loop.test:$((uport + 1)) (127.0.0.1:$((uport + 1))): datagrams dropped, denied by 127.0.0.0/8" \
		"$SERVER_LOG"
	run -0 grep -E 'UDP ASSOCIATE .*dropped 3 \(3 denied\)' "$SERVER_LOG"
	policy_server "$ADDR:$(port 2)" -u user:pass --allow-local
	run -0 in_ns "${CLIENT[@]}" udp --proxy "$PX" --user user --pass pass \
		--target "127.0.0.1:$uport" --echo 100
	assert_line "echoed=1"
	run -0 grep -F "to=127.0.0.1:$uport" "$ulog"
}

@test "BIND (exposed): a request naming 127.0.0.1 -> reply 2; a peer from 127.0.0.1 is closed, one from $ADDR served" {
	policy_server "$ADDR:$(port 1)" -u user:pass
	run -1 in_ns "$PYTHON" "$E2E_DIR/bind_client.py" "$ADDR" "$(port 1)" --user user \
		--password pass --expect 127.0.0.1
	assert_line --regexp '^first rep=2 '
	run -0 grep -F "BIND 127.0.0.1:0: refused, denied by 127.0.0.0/8" "$SERVER_LOG"
	run -0 in_ns "$PYTHON" "$E2E_DIR/bind_client.py" "$ADDR" "$(port 1)" --user user \
		--password pass --peer-from 127.0.0.1 --peer-from "$ADDR"
	assert_line "peer 127.0.0.1: closed"
	assert_line "relayed both ways"
	run -0 grep -E "BIND 127\\.0\\.0\\.1:[0-9]+: peer closed, denied by 127\\.0\\.0\\.0/8" "$SERVER_LOG"
	policy_server "$ADDR:$(port 2)" -u user:pass --allow-local
	run -0 in_ns "$PYTHON" "$E2E_DIR/bind_client.py" "$ADDR" "$(port 2)" --user user \
		--password pass --expect 127.0.0.1 --peer-from 127.0.0.1
	assert_line "relayed both ways"
}

@test "bad --allow/--deny rules: exit 2, one line" {
	local r
	for r in "--allow notacidr" "--deny 10.0.0.0/8:0" "--deny 10.0.0.0/8:70000" \
		"--allow [::1]x" "--allow [::1]:" "--deny 1.2.3.4:90-80" "--allow"; do
		# shellcheck disable=SC2086
		run -2 --separate-stderr "$SOCKSIFY_SERVER" -l 127.0.0.1:0 $r
		[[ ${#stderr_lines[@]} == 1 ]] || fail "$r: ${#stderr_lines[@]} lines: $stderr"
		[[ $stderr == socksify-server:* ]] || fail "$r: $stderr"
	done
}
