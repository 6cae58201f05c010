#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# socksify --check (the doctor, cli/check*.c) and the proxy from ALL_PROXY /
# NO_PROXY, in the namespaces of scripts/netns: the doctor in the client
# namespace against socksify-server (open on 198.18.1.1:1080, user:pass on
# 1081), a port nothing listens on, an address nobody answers (connect_timeout
# 1), a proxy that accepts and never answers, a wrong password, microsocks
# (no UDP ASSOCIATE), a name only the proxy could resolve and one nobody can
# (the proxy namespace's resolv.conf points at its own loopback, where nothing
# answers: this machine's resolver is never asked); --check PROGRAM for a
# dynamic, a static, a Go and a setuid program, and without seccomp (noseccomp).
# Each line is compared whole (times as patterns); exit 0 only when all worked.
#
# Run (as root): meson test --suite shim, or
#   SOCKSIFY_SERVER=build/cli/socksify-server SOCKSIFY=build/cli/socksify \
#   SOCKSIFY_SHIM=build/shim/libsocksify.so SOCKSIFY_BUILD=build \
#   bats tests/e2e/shim_check.bats

# shellcheck disable=SC2030,SC2031,SC2154,SC2001,SC2016

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
	# a time as the doctor prints it
	T='[0-9]+(\.[0-9]+)? (ms|s)'
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

# lines_match PATTERN...: the output has exactly these lines, each matching
# its extended regular expression whole.
lines_match() {
	local i=0 p
	for p in "$@"; do
		[[ ${lines[i]:-} =~ ^$p$ ]] || fail "line $((i + 1)): '${lines[i]:-}' does not match '$p'"
		i=$((i + 1))
	done
	((${#lines[@]} == $#)) || fail "expected $# lines, got ${#lines[@]}"
}

# an exact text as a pattern
q() {
	printf '%s' "$1" | sed 's/[][\.*^$(){}?+|/]/\\&/g'
}

@test "check: every step works through socksify-server with a password: exit 0, one line each, by name" {
	run -0 client_run "$SOCKSIFY" -p "socks5h://user:pass@$PROXY4:1081" --check target.test:80
	lines_match \
		"$(q "ok      config: proxy socks5h://user:***@$PROXY4:1081 (from -p)")" \
		"$(q "ok      proxy $PROXY4:1081: reached in ")$T" \
		"$(q "ok      method: username/password")" \
		"$(q 'ok      auth: user "user" accepted ')$T" \
		"$(q "ok      CONNECT target.test:80 (by name) ")$T" \
		"$(q "ok      UDP ASSOCIATE: granted, relay $PROXY4:")[0-9]+ $T"
	[[ $output != *pass@* ]] || fail "the password is in the output"
	wait_log SXAUTH_LOG "CONNECT target\\.test:80"
	assert_no_dns_leak
}

@test "check: the credentials a program tree would use: the password from the inherited SOCKSIFY_SECRET_FD" {
	run -0 client_run "$SOCKSIFY" -p "socks5h://user:pass@$PROXY4:1081" -- "$SOCKSIFY" --check target.test:80
	lines_match \
		"$(q "ok      config: proxy socks5h://user:***@$PROXY4:1081 (from SOCKSIFY_PROXY; its password from SOCKSIFY_SECRET_FD)")" \
		"ok      proxy .*" "ok      method: username/password" \
		"$(q 'ok      auth: user "user" accepted ')$T" \
		"ok      CONNECT target.test:80 \(by name\) .*" "ok      UDP ASSOCIATE: granted, .*"
}

@test "check: by address through a socks5:// proxy without credentials; without HOST:PORT only the proxy" {
	run -0 client_run "$SOCKSIFY" -p "socks5://$PROXY4:1080" --check "$TARGET4:80"
	lines_match \
		"$(q "ok      config: proxy socks5://$PROXY4:1080 (from -p)")" \
		"$(q "ok      proxy $PROXY4:1080: reached in ")$T" \
		"$(q "ok      method: no authentication")" \
		"$(q "ok      CONNECT $TARGET4:80 ($TARGET4:80) ")$T" \
		"ok      UDP ASSOCIATE: granted, relay .*"
	run -0 client_run env SOCKSIFY_PROXY="socks5h://$PROXY4:1080" "$SOCKSIFY" --check
	lines_match \
		"$(q "ok      config: proxy socks5h://$PROXY4:1080 (from SOCKSIFY_PROXY)")" \
		"$(q "ok      proxy $PROXY4:1080: reached in ")$T" \
		"$(q "ok      method: no authentication")"
}

@test "check: a dead proxy (nothing listens): one line, exit 1" {
	run -1 client_run "$SOCKSIFY" -p "socks5h://$PROXY4:1999" --check target.test:80
	lines_match \
		"$(q "ok      config: proxy socks5h://$PROXY4:1999 (from -p)")" \
		"$(q "failed  proxy $PROXY4:1999: connection refused (nothing listens there: is the proxy running?) ")$T"
}

@test "check: a black-holed proxy gives up after connect_timeout (1 s, from -c FILE)" {
	local conf=$BATS_TEST_TMPDIR/c.conf
	# 198.18.1.77: on the client's link, but nobody answers its ARP
	printf 'proxy = socks5://198.18.1.77:1080\nconnect_timeout = 1\n' >"$conf"
	local t0=$SECONDS
	run -1 client_run "$SOCKSIFY" -c "$conf" --check
	lines_match \
		"$(q "ok      config: proxy socks5://198.18.1.77:1080 (from $conf, -c)")" \
		"$(q "ok      config: connect_timeout 1 s (from $conf, -c)")" \
		"$(q "failed  proxy 198.18.1.77:1080: no answer (connect_timeout): the proxy's host is down or a firewall drops the packets ")1\.[0-9] s|10[0-9][0-9] ms"
	((SECONDS - t0 <= 3)) || fail "took $((SECONDS - t0)) s"
}

@test "check: a proxy that accepts and never answers: no answer to the greeting within connect_timeout" {
	local conf=$BATS_TEST_TMPDIR/c.conf port
	port=$(free_port)
	netns_silent_proxy "$port"
	printf 'connect_timeout = 1\n' >"$conf"
	run -1 client_run "$SOCKSIFY" -c "$conf" -p "socks5h://$PROXY4:$port" --check
	lines_match \
		"$(q "ok      config: proxy socks5h://$PROXY4:$port (from -p)")" \
		"$(q "ok      config: connect_timeout 1 s (from $conf, -c)")" \
		"$(q "ok      proxy $PROXY4:$port: reached in ")$T" \
		"$(q "failed  method: no answer to the greeting within 1.0 s (connect_timeout)")"
}

@test "check: several proxies (-p twice): each is checked, one line set each; a dead one fails the whole" {
	run -1 client_run "$SOCKSIFY" -p "socks5h://$PROXY4:1080" -p "socks5://user:pass@$PROXY4:1999" \
		-p "socks5://user:pass@$PROXY4:1081" --check "$TARGET4:80"
	lines_match \
		"$(q "ok      config: proxy socks5h://$PROXY4:1080, socks5://user:***@$PROXY4:1999, socks5://user:***@$PROXY4:1081 (from -p)")" \
		"$(q "ok      proxy $PROXY4:1080: reached in ")$T" "ok      method: no authentication" \
		"ok      CONNECT $TARGET4:80 .*" "ok      UDP ASSOCIATE: granted, .*" \
		"$(q "failed  proxy $PROXY4:1999: connection refused (nothing listens there: is the proxy running?) ")$T" \
		"$(q "ok      proxy $PROXY4:1081: reached in ")$T" "ok      method: username/password" \
		"ok      auth: user \"user\" accepted .*" \
		"ok      CONNECT $TARGET4:80 .*" "ok      UDP ASSOCIATE: granted, .*"
}

@test "check: a wrong password, and no credentials for a proxy that wants them" {
	run -1 client_run "$SOCKSIFY" -p "socks5h://user:wrong@$PROXY4:1081" --check target.test:80
	lines_match \
		"$(q "ok      config: proxy socks5h://user:***@$PROXY4:1081 (from -p)")" \
		"$(q "ok      proxy $PROXY4:1081: reached in ")$T" \
		"$(q "ok      method: username/password")" \
		"$(q 'failed  auth: the proxy refused user "user" (wrong password?) ')$T"
	run -1 client_run "$SOCKSIFY" -p "socks5h://$PROXY4:1081" --check
	lines_match \
		"ok      config: .*" "ok      proxy .*" \
		"$(q "failed  method: the proxy wants credentials (socks5://USER:PASSWORD@HOST:PORT)")"
}

@test "check: a proxy that refuses UDP ASSOCIATE (microsocks): that line fails, exit 1" {
	command -v microsocks >/dev/null || fail "microsocks is not installed (scripts/deps installs it)"
	local port
	port=$(free_port)
	ns_spawn proxy "$BATS_TEST_TMPDIR/microsocks.log" microsocks -i "$PROXY4" -p "$port"
	ns_wait_listen proxy tcp "$PROXY4" "$port" "$SPAWNED_PID"
	run -1 client_run "$SOCKSIFY" -p "socks5://$PROXY4:$port" --check "$TARGET4:80"
	lines_match \
		"ok      config: .*" "ok      proxy .*" "ok      method: no authentication" \
		"$(q "ok      CONNECT $TARGET4:80 ($TARGET4:80) ")$T" \
		"$(q "failed  UDP ASSOCIATE: refused by the proxy (reply 7: command not supported: it does not relay UDP) ")$T"
}

@test "check: a name the proxy cannot resolve: the CONNECT line says so, resolved on the proxy side only" {
	run -1 client_run "$SOCKSIFY" -p "socks5h://$PROXY4:1080" --check "nosuch-$TAG.test:80"
	lines_match \
		"ok      config: .*" "ok      proxy .*" "ok      method: no authentication" \
		"$(q "failed  CONNECT nosuch-$TAG.test:80 (by name): refused by the proxy (reply 4: host unreachable: the proxy could not resolve the name or reach the host) ")$T" \
		"ok      UDP ASSOCIATE: granted, relay .*"
	wait_log SX_LOG "nosuch-$TAG\\.test"
	assert_no_dns_leak
}

@test "check: bad usage and a bad configuration" {
	run -2 client_run "$SOCKSIFY" --check host:80 extra
	[[ $output == "socksify: --check takes one HOST:PORT (see --help)" ]] || fail "got: $output"
	run -2 client_run "$SOCKSIFY" --check --env
	run -2 client_run "$SOCKSIFY" --check host:0
	[[ $output == "socksify: --check: 'host:0' is neither HOST:PORT (a port 1-65535, IPv6 in brackets) nor a program" ]] ||
		fail "got: $output"
	run -2 client_run "$SOCKSIFY" --check ::1:80
	run -1 client_run "$SOCKSIFY" -p "socks5://$PROXY4" --check
	[[ $output == "failed  config: SOCKSIFY_PROXY: bad proxy URL 'socks5://$PROXY4': missing port" ]] ||
		fail "got: $output"
}

# --- --check PROGRAM ------------------------------------------------------------------

@test "check PROGRAM: dynamic (preload), static and Go (supervised), setuid and no seccomp (cannot be proxied)" {
	run -0 client_run "$SOCKSIFY" -p "socks5h://$PROXY4:1080" --check true
	lines_match "ok      config: .*" \
		"$(q "ok      program true: dynamically linked: runs with the preload (LD_PRELOAD)")"
	static_prog_bin || skip "$STATIC_PROG_WHY"
	run -0 client_run "$SOCKSIFY" --check "$STATIC_PROG" arg
	lines_match "ok      config: .*" \
		"$(q "ok      program $STATIC_PROG: statically linked: LD_PRELOAD cannot reach it, runs supervised (seccomp user notification)")"
	run -1 client_run "$SOCKSIFY" --no-supervise --check "$STATIC_PROG"
	lines_match "ok      config: .*" \
		"$(q "ok      config: supervise never (from --supervise/--no-supervise)")" \
		"$(q "failed  program $STATIC_PROG: statically linked: cannot be proxied (supervise = never); socksify refuses to run it (--allow-direct runs it unproxied)")"
	# inside a supervised tree the outer supervisor serves it
	run -0 client_run "$SOCKSIFY" --supervise -- "$SOCKSIFY" --check "$STATIC_PROG"
	lines_match "ok      config: .*" \
		"$(q "ok      config: supervise always (from SOCKSIFY_SUPERVISE)")" \
		"$(q "ok      program $STATIC_PROG: supervised by the supervisor this launcher already runs under")"
	local noseccomp=${SOCKSIFY_NOSECCOMP:-$SOCKSIFY_BUILD/tests/e2e/noseccomp}
	[[ -x $noseccomp ]] || fail "noseccomp not built ($noseccomp)"
	run -1 client_run "$noseccomp" "$SOCKSIFY" --check "$STATIC_PROG"
	lines_match "ok      config: .*" \
		"$(q "failed  program $STATIC_PROG: statically linked: cannot be proxied: seccomp user notification is not available (Function not implemented; Linux 5.9 or later is needed); socksify refuses to run it")"
	local prog=$BATS_TEST_TMPDIR/true-setuid
	cp /bin/true "$prog"
	chmod u+s "$prog"
	run -1 client_run "$SOCKSIFY" --check "$prog"
	lines_match "ok      config: .*" \
		"$(q "failed  program $prog: setuid/setgid: cannot be proxied (the loader ignores LD_PRELOAD for it); socksify runs it unproxied, with a warning")"
	run -1 client_run "$SOCKSIFY" --check "nosuch-$TAG"
	lines_match "ok      config: .*" "$(q "failed  program nosuch-$TAG: command not found")"
}

@test "check PROGRAM: a Go program is supervised" {
	local go=${SOCKSIFY_GOGET_STATIC:-}
	[[ -x $go ]] || skip "goget-static not built (SOCKSIFY_GOGET_STATIC: needs golang-go)"
	run -0 client_run "$SOCKSIFY" --check "$go"
	lines_match "ok      config: .*" \
		"$(q "ok      program $go: a Go program: LD_PRELOAD cannot reach it, runs supervised (seccomp user notification)")"
}

# --- ALL_PROXY, NO_PROXY --------------------------------------------------------------

@test "ALL_PROXY: the proxy when nothing else names one; -v says so; --check shows it" {
	run -0 --separate-stderr client_run env ALL_PROXY="socks5h://$PROXY4:1080" \
		"$SOCKSIFY" -v -- curl -sS --noproxy '*' -o /dev/null "http://target.test/small.txt?$TAG"
	[[ ${stderr_lines[0]} == "socksify: the proxy $PROXY4:1080 comes from ALL_PROXY (as curl reads them)" ]] ||
		fail "stderr: $stderr"
	assert_via_proxy "/small.txt?$TAG " 1
	assert_no_dns_leak
	run -0 client_run env all_proxy="socks5h://$PROXY4:1080" NO_PROXY=.corp.test,10.0.0.0/8 "$SOCKSIFY" --check
	lines_match \
		"$(q "ok      config: proxy socks5h://$PROXY4:1080 (from all_proxy)")" \
		"$(q "ok      config: exclude corp.test, 10.0.0.0/8 (from NO_PROXY)")" \
		"ok      proxy .*" "ok      method: no authentication"
}

@test "ALL_PROXY: an http:// one is ignored (-v says why), and -p wins over a SOCKS5 one" {
	run -0 --separate-stderr client_run env ALL_PROXY="http://$PROXY4:3128" \
		"$SOCKSIFY" -v -p "socks5h://$PROXY4:1080" -- true
	[[ ${stderr_lines[0]} == "socksify: ALL_PROXY ignored: socksify's own configuration names the proxy" ]] ||
		fail "stderr: $stderr"
	run -0 --separate-stderr client_run env ALL_PROXY="http://$PROXY4:3128" "$SOCKSIFY" -v -- true
	[[ ${stderr_lines[0]} == "socksify: ALL_PROXY ignored: not a socks5:// or socks5h:// URL (it is for other tools)" ]] ||
		fail "stderr: $stderr"
	# -p wins: the doctor reaches the -p proxy, not ALL_PROXY's dead one
	run -0 client_run env ALL_PROXY="socks5://$PROXY4:1999" "$SOCKSIFY" -p "socks5h://$PROXY4:1080" --check
	lines_match \
		"$(q "ok      config: proxy socks5h://$PROXY4:1080 (from -p)")" \
		"$(q "ok      config: ALL_PROXY ignored: the proxy is set by socksify's own configuration")" \
		"$(q "ok      proxy $PROXY4:1080: reached in ")$T" "ok      method: no authentication"
}

@test "NO_PROXY: an excluded destination goes direct, the rest through the ALL_PROXY proxy" {
	# the client's own loopback HTTP server, and the proxy's (LOOP_LOG) on the
	# same address and port: with proxy_loopback, 127.0.0.1 goes to the proxy's
	local log=$BATS_TEST_TMPDIR/client-loop.log
	netns_http client 127.0.0.1 8081 "$log"
	run -0 client_run env ALL_PROXY="socks5h://$PROXY4:1080" SOCKSIFY_PROXY_LOOPBACK=1 \
		"$SOCKSIFY" -- curl -sS --noproxy '*' -o /dev/null "http://127.0.0.1:8081/small.txt?$TAG-a"
	[[ $(log_since LOOP_LOG) == *"small.txt?$TAG-a"* ]] || fail "the proxy's loopback server did not see it"
	[[ $(cat "$log") != *"$TAG-a"* ]] || fail "it went direct without NO_PROXY"
	run -0 client_run env ALL_PROXY="socks5h://$PROXY4:1080" SOCKSIFY_PROXY_LOOPBACK=1 \
		NO_PROXY="localhost, 127.0.0.1" \
		"$SOCKSIFY" -- curl -sS --noproxy '*' -o /dev/null "http://127.0.0.1:8081/small.txt?$TAG-b"
	grep -q "small.txt?$TAG-b" "$log" || fail "NO_PROXY=127.0.0.1 did not go direct: $(cat "$log")"
	[[ $(log_since LOOP_LOG) != *"$TAG-b"* ]] || fail "NO_PROXY=127.0.0.1 went through the proxy"
	# and a bad entry stops the launcher, exit 2
	run -2 client_run env ALL_PROXY="socks5h://$PROXY4:1080" NO_PROXY="bad!name" "$SOCKSIFY" -- true
	[[ $output == "socksify: NO_PROXY: bad entry 'bad!name': invalid character '!' in host name" ]] ||
		fail "got: $output"
}
