#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# End-to-end tests of the launcher's seccomp supervisor (cli/supervise/): the
# programs LD_PRELOAD cannot reach, in the namespaces of scripts/netns, where
# the client reaches only the proxy's host (the proxies and the directly
# reachable HTTP trap on 198.18.1.1:8080) and its only nameserver is a leak
# detector. The programs:
#   goget-static   a Go HTTP client built with CGO_ENABLED=0 (tests/e2e/goget.go):
#                  raw system calls, and the pure-Go resolver sends DNS itself
#   goget-dynamic  the same with CGO_ENABLED=1, linked against libc (the shim is
#                  loaded, but Go's connect() and DNS never call into it)
#   rawconnect     a dynamic C program that connects with the system call
#                  instruction (tests/e2e/rawconnect.c); not a Go program, so
#                  supervised only with --supervise
# Every check looks at what the servers saw: the target's access log must show
# the proxy's address, the proxy's log the CONNECT, the trap's log and the leak
# detector's must stay empty, and a UDP trap in the proxy namespace
# (198.18.1.1:9 and :53) must get no datagram.
#
# Tests tagged [exec] go through the shim's exec hooks (a Go program started
# by a preloaded shell or python is handed to the launcher; shim_exec.bats
# tests the hooks themselves with a static C program).
#
# Run (as root):
#   SOCKSIFY_SERVER=build/cli/socksify-server SOCKSIFY=build/cli/socksify \
#   SOCKSIFY_SHIM=build/shim/libsocksify.so bats tests/e2e/supervise.bats
# (meson test --suite supervise sets these and SOCKSIFY_RAWCONNECT,
# SOCKSIFY_GOGET_STATIC and SOCKSIFY_GOGET_DYNAMIC itself; without them
# rawconnect.c is compiled with cc, and goget.go with go when it is installed,
# into the run's temporary dir; without go the Go tests fail, saying why
# (scripts/deps installs golang-go).)
# SOCKSIFY_TEST_PRELOAD (see netns.bash) runs every program under test with
# more libraries preloaded: scripts/test uses it for the ASan/UBSan pass.

# bats runs each test in a subshell and sets status/output/lines/stderr:
# shellcheck disable=SC2030,SC2031,SC2154,SC2034,SC2016,SC2001

bats_require_minimum_version 1.5.0

setup_file() {
	load helpers
	load netns
	netns_setup_file || return 1
	netns_udp_targets || return 1
	IN_SETUP_FILE=1
	# the UDP trap: anything sent there from the client came around the
	# supervisor ("SRC_IP SRC_PORT LEN" per datagram)
	UDPTRAP_LOG=$BATS_FILE_TMPDIR/udp-trap.log
	: >"$UDPTRAP_LOG"
	local port
	for port in 9 53; do
		ns_spawn proxy "$BATS_FILE_TMPDIR/udp-trap-$port.out" \
			"$PYTHON" -u -c "$NETNS_UDP_ECHO_PY" "$UDPTRAP_LOG" "$port" "$PROXY4"
		ns_wait_listen proxy udp "$PROXY4" "$port" "$SPAWNED_PID" || return 1
	done
	IN_SETUP_FILE=0
	export UDPTRAP_LOG
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
	UDPTRAP_LOG_START=$(log_size "$UDPTRAP_LOG")
	RAWCONNECT=$(built_or_cc "${SOCKSIFY_RAWCONNECT:-}" rawconnect)
	GOGET_STATIC=""
	GOGET_DYNAMIC=""
	GOGET_WHY=""
	goget_bins || true
}

teardown() {
	local rc=0
	netns_teardown || rc=$?
	# shown by bats only when the test failed
	if [[ -n ${output:-} ]]; then
		echo "# --- the output of the last command run:"
		sed 's/^/#   /' <<<"$output" | tail -n 40
	fi
	if [[ -n ${stderr:-} ]]; then
		echo "# --- its stderr:"
		sed 's/^/#   /' <<<"$stderr" | tail -n 20
	fi
	echo "# --- this test's part of the logs (namespace prefix $NX):"
	local v
	for v in SX_LOG SXAUTH_LOG DANTE_LOG HTTP_LOG HTTP6_LOG TRAP_LOG DNS_LOG UDPTRAP_LOG; do
		[[ -n ${!v:-} ]] || continue
		log_since "$v" | sed "s/^/# $v: /" | tail -n 20
	done
	return "$rc"
}

# --- small tools ---------------------------------------------------------------------

# goget_bins: sets GOGET_STATIC and GOGET_DYNAMIC (tests/e2e/goget.go): the
# meson-built ones, else built here with go once per file run (offline, GOPATH
# mode); returns 1 with the reason in GOGET_WHY when go is missing.
goget_bins() {
	if [[ -x ${SOCKSIFY_GOGET_STATIC:-} && -x ${SOCKSIFY_GOGET_DYNAMIC:-} ]]; then
		GOGET_STATIC=$SOCKSIFY_GOGET_STATIC
		GOGET_DYNAMIC=$SOCKSIFY_GOGET_DYNAMIC
		return 0
	fi
	local dir=$BATS_FILE_TMPDIR/go cgo err
	GOGET_STATIC=$dir/goget-static
	GOGET_DYNAMIC=$dir/goget-dynamic
	[[ -x $GOGET_STATIC && -x $GOGET_DYNAMIC ]] && return 0
	if ! command -v go >/dev/null; then
		GOGET_STATIC=""
		GOGET_DYNAMIC=""
		GOGET_WHY="go is not installed (scripts/deps installs golang-go): no Go program to supervise"
		return 1
	fi
	mkdir -p "$dir"
	for cgo in 0 1; do
		local out=$GOGET_STATIC
		((cgo == 1)) && out=$GOGET_DYNAMIC
		if ! err=$(cd "$dir" && env GOCACHE="$dir/cache" GOPATH="$dir/path" HOME="$dir" \
			GOFLAGS=-buildvcs=false GO111MODULE=off GOPROXY=off CGO_ENABLED=$cgo \
			go build -o "$out" "$E2E_DIR/goget.go" 2>&1); then
			GOGET_STATIC=""
			GOGET_DYNAMIC=""
			GOGET_WHY="go build of tests/e2e/goget.go failed: $(head -n 3 <<<"$err")"
			return 1
		fi
	done
}

# go is a CI dependency (scripts/deps installs golang-go): its absence fails
require_go() {
	[[ -n $GOGET_STATIC ]] || fail "$GOGET_WHY"
}

# goget_bin static|dynamic: the path of that build
goget_bin() {
	case $1 in
	static) echo "$GOGET_STATIC" ;;
	dynamic) echo "$GOGET_DYNAMIC" ;;
	*) fail "goget_bin: $1" ;;
	esac
}

# sv KIND [h] [LAUNCHER-OPTIONS...] -- CMD...: CMD under socksify -p (the URL
# of the proxy KIND, see proxy_url; h: socks5h://) in the client namespace.
sv() {
	local url h="" opts=()
	[[ ${2:-} == h ]] && h=h
	url=$(proxy_url "$1" "$h")
	shift
	[[ ${1:-} == h ]] && shift
	while (($# > 0)) && [[ $1 != -- ]]; do
		opts+=("$1")
		shift
	done
	shift
	client_run "$SOCKSIFY" -p "$url" "${opts[@]}" -- "$@"
}

# A URL on the proxy's host that nothing listens at: the proxy is down.
DOWN_URL_PORT=1099

# assert_udptrap_untouched: no datagram reached the UDP trap during this test.
assert_udptrap_untouched() {
	local got
	got=$(log_since UDPTRAP_LOG)
	[[ -z $got ]] || fail "datagrams reached the UDP trap on $PROXY4 (sent directly): $got"
}

# assert_target_untouched TAG-PART: no request with TAG-PART reached the target.
assert_target_untouched() {
	local got
	got=$(target_log_since | grep -F -- "$1" || true)
	[[ -z $got ]] || fail "the target was reached: $got"
}

# assert_trap_via_proxy PATH: the trap got PATH, only from the proxy's own
# address (198.18.1.1, the proxy connecting to its own host), never from the
# client (198.18.1.2, a direct connection).
assert_trap_via_proxy() {
	local lines bad
	lines=$(log_since TRAP_LOG | grep -F "\"GET $1" || true)
	[[ -n $lines ]] || fail "the trap never saw GET $1 (through the proxy)"
	bad=$(grep -v "^$PROXY4 - - " <<<"$lines" || true)
	[[ -z $bad ]] || fail "GET $1 reached the trap from elsewhere than the proxy: $bad"
}

# one_log_line: $stderr (run --separate-stderr) is exactly one line, starting
# "socksify: " (the launcher's) or "socksify[PID]: " (the shim's log, which the
# supervisor shares).
one_log_line() {
	[[ ${#stderr_lines[@]} == 1 ]] || fail "expected one line on stderr, got ${#stderr_lines[@]}: $stderr"
	[[ ${stderr_lines[0]} =~ ^socksify(\[[0-9]+\])?:\  ]] ||
		fail "the line does not start with 'socksify: ' or 'socksify[PID]: ': $stderr"
}

# ---------------------------------------------------------------------------------
# the programs themselves, without the launcher: what they do unsupervised
# ---------------------------------------------------------------------------------

@test "unsupervised: goget-static and goget-dynamic are what they claim (static / dynamic), and reach the trap directly" {
	require_go
	run -0 file -L "$GOGET_STATIC"
	assert_output --partial "statically linked"
	run -0 file -L "$GOGET_DYNAMIC"
	assert_output --partial "dynamically linked"
	run -0 ldd "$GOGET_DYNAMIC"
	assert_output --partial "libc.so"
	local b
	for b in static dynamic; do
		run -0 client_run "$(goget_bin "$b")" "http://$PROXY4:8080/small.txt?$TAG-$b"
		assert_line --regexp "^ok http://$PROXY4:8080/small.txt\\?$TAG-$b 200 [0-9]+\$"
	done
	# the trap saw the client itself: without the supervisor, they go direct
	run -0 grep -cF "$CLIENT4 - - [" <<<"$(log_since TRAP_LOG)"
	assert_output 2
}

@test "unsupervised: goget-static's pure-Go resolver queries the client's nameserver itself (what the stub must stop)" {
	require_go
	run -1 client_run "$GOGET_STATIC" "http://target.test/small.txt?$TAG"
	assert_line --partial "fail http://target.test/small.txt?$TAG "
	wait_log DNS_LOG " target\\.test 1\$"
}

@test "unsupervised: rawconnect connects with the system call instruction, around the shim: LD_PRELOAD cannot stop it" {
	run -0 client_run env LD_PRELOAD="$SHIM_PRELOAD" SOCKSIFY_PROXY="socks5://$PROXY4:$DOWN_URL_PORT" \
		"$RAWCONNECT" "$PROXY4" 8080 "/small.txt?$TAG"
	assert_output "HTTP/1.0 200 OK"
	run -0 grep -F "$CLIENT4 - - " <<<"$(log_since TRAP_LOG)"
	run -1 client_run "$RAWCONNECT" "$TARGET4" 80 "/small.txt?$TAG-t"
	assert_output "connect: ENETUNREACH"
}

# ---------------------------------------------------------------------------------
# Go programs under socksify (supervise = auto): by name and by address, through
# socksify-server with RFC 1929 authentication and through dante
# ---------------------------------------------------------------------------------

# t_go_name KIND static|dynamic: fetches the 1 MiB file by a name only the
# proxy resolves, in socks5h mode
t_go_name() {
	require_proxy "$1"
	require_go
	local bin url="http://target.test/file?$TAG"
	bin=$(goget_bin "$2")
	run -0 sv "$1" h -- "$bin" "$url"
	assert_line "ok $url 200 1048576"
	assert_via_proxy "/file?$TAG " 1
	assert_proxy_connect "$1" "target.test:80"
	assert_no_dns_leak
	assert_trap_untouched
	assert_udptrap_untouched
}

# t_go_addr KIND static|dynamic: the same by IPv4 address (socks5h mode too:
# an address is an address)
t_go_addr() {
	require_proxy "$1"
	require_go
	local bin url="http://$TARGET4/file?$TAG"
	bin=$(goget_bin "$2")
	run -0 sv "$1" h -- "$bin" "$url"
	assert_line "ok $url 200 1048576"
	assert_via_proxy "/file?$TAG " 1
	[[ $VIA_LINES == "$PROXY_OUT4 - - "* ]] || fail "not from $PROXY_OUT4: $VIA_LINES"
	assert_proxy_connect "$1" "$TARGET4:80"
	assert_no_dns_leak
	assert_trap_untouched
}

@test "socksify-server -u user:pass: goget-static by a name only the proxy resolves; no DNS query leaves the client" {
	t_go_name auth static
}
@test "socksify-server -u user:pass: goget-static by address" {
	t_go_addr auth static
}
@test "socksify-server -u user:pass: goget-dynamic by a name only the proxy resolves; no DNS query leaves the client" {
	t_go_name auth dynamic
}
@test "socksify-server -u user:pass: goget-dynamic by address" {
	t_go_addr auth dynamic
}
@test "dante: goget-static by a name only the proxy resolves; no DNS query leaves the client" {
	t_go_name dante static
}
@test "dante: goget-static by address" {
	t_go_addr dante static
}
@test "dante: goget-dynamic by a name only the proxy resolves; no DNS query leaves the client" {
	t_go_name dante dynamic
}
@test "dante: goget-dynamic by address" {
	t_go_addr dante dynamic
}

@test "goget-static by IPv6 address [fd00:5:2::2] through socksify-server" {
	require_go
	local url="http://[$TARGET6]/small.txt?$TAG"
	run -0 sv sx h -- "$GOGET_STATIC" "$url"
	assert_line --regexp "^ok http://\\[$TARGET6\\]/small.txt\\?$TAG 200 [0-9]+\$"
	assert_via_proxy "/small.txt?$TAG " 1
	[[ $VIA_LINES == "$PROXY_OUT6 - - "* ]] || fail "not from $PROXY_OUT6: $VIA_LINES"
	assert_proxy_connect sx "[$TARGET6]:80"
}

@test "goget-dynamic with the cgo resolver (GODEBUG=netdns=cgo: libc's getaddrinfo, the shim's fake address, Go's own connect)" {
	require_go
	local url="http://target.test/small.txt?$TAG"
	# GODEBUG set for the launcher: "socksify env GODEBUG=... goget" would run
	# env, a dynamic C program, and goget only by exec (the [exec] tests)
	run -0 client_run env GODEBUG=netdns=cgo "$SOCKSIFY" -p "$(proxy_url auth h)" -- "$GOGET_DYNAMIC" "$url"
	assert_line --regexp "^ok http://target.test/small.txt\\?$TAG 200 [0-9]+\$"
	assert_via_proxy "/small.txt?$TAG " 1
	assert_proxy_connect auth "target.test:80"
	assert_no_dns_leak
}

@test "goget-static to the trap's address goes through the proxy too: the trap sees the proxy, never the client" {
	require_go
	run -0 sv sx h -- "$GOGET_STATIC" "http://$PROXY4:8080/small.txt?$TAG"
	assert_trap_via_proxy "/small.txt?$TAG "
	assert_proxy_connect sx "$PROXY4:8080"
}

@test "goget-static and goget-dynamic: 50 goroutines connect at once by name, all get through" {
	require_go
	local b
	for b in static dynamic; do
		run -0 sv auth h -- "$(goget_bin "$b")" -n 50 "http://target.test/small.txt?$TAG-$b"
		assert_line "ok 50/50"
		refute_line --partial fail
		assert_via_proxy "/small.txt?$TAG-$b " 50
	done
	assert_no_dns_leak
	assert_trap_untouched
}

@test "dante: goget-static, 50 goroutines connect at once by name" {
	require_proxy dante
	require_go
	run -0 sv dante h -- "$GOGET_STATIC" -n 50 "http://target.test/small.txt?$TAG"
	assert_line "ok 50/50"
	assert_via_proxy "/small.txt?$TAG " 50
	assert_no_dns_leak
}

# ---------------------------------------------------------------------------------
# DNS and UDP under the supervisor
# ---------------------------------------------------------------------------------

@test "[dns] socks5:// (local DNS): goget-static's query goes to the nameserver as configured; by address it still goes through the proxy" {
	require_go
	run -1 sv auth -- "$GOGET_STATIC" "http://target.test/small.txt?$TAG-name"
	assert_line --partial "fail http://target.test/small.txt?$TAG-name "
	wait_log DNS_LOG " target\\.test 1\$"
	run -0 sv auth -- "$GOGET_STATIC" "http://$TARGET4/small.txt?$TAG-addr"
	assert_via_proxy "/small.txt?$TAG-addr " 1
	assert_target_untouched "$TAG-name"
}

@test "[dns] the stub: libc's resolver (python without the shim, --supervise) gets one fake A address, no AAAA; connecting to it is a CONNECT by name" {
	local py='
import socket, sys
host = sys.argv[1]
a = sorted({ai[4][0] for ai in socket.getaddrinfo(host, 80, socket.AF_INET, socket.SOCK_STREAM)})
print("A", " ".join(a))
try:
    aaaa = sorted({ai[4][0] for ai in socket.getaddrinfo(host, 80, socket.AF_INET6, socket.SOCK_STREAM)})
    print("AAAA", " ".join(aaaa))
except socket.gaierror as e:
    print("AAAA none")
s = socket.create_connection((a[0], 80), timeout=15)
s.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (sys.argv[2], host)).encode())
print(s.recv(4096).split(b"\r\n", 1)[0].decode())
'
	run -0 sv auth h --supervise -- env -u LD_PRELOAD "$PYTHON" -c "$py" target.test "/small.txt?$TAG"
	assert_line --regexp '^A 2(4[0-9]|5[0-5])\.[0-9]+\.[0-9]+\.[0-9]+$'
	assert_line "AAAA none"
	assert_line "HTTP/1.0 200 OK"
	assert_via_proxy "/small.txt?$TAG " 1
	assert_proxy_connect auth "target.test:80"
	assert_no_dns_leak
}

@test "UDP other than DNS to the nameserver is refused (EPERM) with one log line, never sent: goget-static and goget-dynamic to 198.18.1.1:9 and :53" {
	require_go
	local b dst
	for b in static dynamic; do
		for dst in "$PROXY4:9" "$PROXY4:53"; do
			run -1 --separate-stderr sv sx h -- "$(goget_bin "$b")" -udp "$dst"
			assert_output --regexp "^udp fail $dst .*operation not permitted"
			one_log_line
		done
	done
	sleep 0.2
	assert_udptrap_untouched
	assert_no_dns_leak
}

@test "io_uring_setup fails with ENOSYS under the supervisor (it would bypass it)" {
	local py='
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
r = libc.syscall(425, 4, params)
print("io_uring_setup", "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()])
'
	run -0 client_run "$PYTHON" -c "$py"
	[[ $output == "io_uring_setup ok" ]] || skip "io_uring is not available here without the supervisor: $output"
	run -0 sv sx -- "$PYTHON" -c "$py"
	assert_output "io_uring_setup ok"
	run -0 sv sx --supervise -- "$PYTHON" -c "$py"
	assert_output "io_uring_setup ENOSYS"
}

# ---------------------------------------------------------------------------------
# a C program LD_PRELOAD cannot reach: auto leaves it alone, --supervise proxies it
# ---------------------------------------------------------------------------------

@test "rawconnect under auto is not supervised: it reaches the trap directly, and not the target" {
	run -0 sv sx h -- "$RAWCONNECT" "$PROXY4" 8080 "/small.txt?$TAG-trap"
	assert_output "HTTP/1.0 200 OK"
	run -0 grep -F "$CLIENT4 - - " <<<"$(log_since TRAP_LOG)"
	run -1 sv sx h -- "$RAWCONNECT" "$TARGET4" 80 "/small.txt?$TAG-target"
	assert_output "connect: ENETUNREACH"
	assert_target_untouched "$TAG-target"
}

@test "rawconnect --supervise reaches the target through the proxy; the trap stays untouched" {
	run -0 sv auth h --supervise -- "$RAWCONNECT" "$TARGET4" 80 "/small.txt?$TAG"
	assert_output "HTTP/1.0 200 OK"
	assert_via_proxy "/small.txt?$TAG " 1
	assert_proxy_connect auth "$TARGET4:80"
	assert_trap_untouched
}

@test "rawconnect --supervise to the trap's address: through the proxy, the trap sees the proxy, never the client" {
	run -0 sv sx h --supervise -- "$RAWCONNECT" "$PROXY4" 8080 "/small.txt?$TAG"
	assert_output "HTTP/1.0 200 OK"
	assert_trap_via_proxy "/small.txt?$TAG "
}

@test "rawconnect --supervise, TCP Fast Open: sendto and sendmsg with MSG_FASTOPEN (connect and send in one call) go through the proxy, never direct" {
	local m
	for m in tfo-sendto tfo-sendmsg; do
		run -0 sv sx --supervise -- "$RAWCONNECT" -m "$m" "$TARGET4" 80 "/small.txt?$TAG-$m"
		assert_output "HTTP/1.0 200 OK"
		run sv sx --supervise -- "$RAWCONNECT" -m "$m" "$PROXY4" 8080 "/small.txt?$TAG-trap-$m"
	done
	assert_via_proxy "/small.txt?$TAG-tfo-" 2
	run -1 grep -F "$CLIENT4 - - " <<<"$(log_since TRAP_LOG)"
}

@test "rawconnect --supervise, the i386 ABI (int \$0x80 in a 64-bit process): its connect cannot go around the supervisor" {
	[[ $(uname -m) == x86_64 ]] || skip "the i386 ABI is x86-64's"
	run client_run "$RAWCONNECT" -m i386 "$PROXY4" 8080 "/small.txt?$TAG-unsupervised"
	[[ $output == "HTTP/1.0 200 OK" ]] || skip "int \$0x80 does not work here without the supervisor: $output"
	run -1 sv sx --supervise -- "$RAWCONNECT" -m i386 "$PROXY4" 8080 "/small.txt?$TAG-supervised"
	assert_output --regexp '^(socket|connect): E[A-Z]+$'
	run -1 grep -F "$TAG-supervised" <<<"$(log_since TRAP_LOG)"
}

@test "rawconnect --supervise: UDP by sendto, sendmsg, sendmmsg and connect+write to 198.18.1.1:9 is refused (EPERM), one log line each, nothing sent" {
	local m step
	for m in udp-sendto udp-sendmsg udp-sendmmsg udp-connect; do
		step=${m#udp-}
		run -1 --separate-stderr sv sx h --supervise -- "$RAWCONNECT" -m "$m" "$PROXY4" 9
		assert_output "$step: EPERM"
		one_log_line
	done
	sleep 0.2
	assert_udptrap_untouched
}

@test "rawconnect --supervise, a check-then-use race: another thread flips the port between the proxy's (direct by design) and the trap's; no connect reaches the trap directly" {
	# without the supervisor the flips land on the trap as often as the
	# flipping thread gets a core (none at all on a loaded machine): shown,
	# not required
	run client_run "$RAWCONNECT" -m race "$PROXY4" 1080 8080 100 "/small.txt?$TAG-base"
	echo "# unsupervised: $output" >&3
	# supervised: the address the supervisor decided on must be the one used
	run sv sx --supervise -- "$RAWCONNECT" -m race "$PROXY4" 1080 8080 300 "/small.txt?$TAG-sv"
	local out=$output
	run -1 grep -F "$CLIENT4 - - [" <<<"$(log_since TRAP_LOG | grep -F "$TAG-sv")"
	output=$out
	assert_output "direct 0 of 300"
}

@test "SOCKSIFY_SUPERVISE=always and 'supervise = always' in the configuration supervise rawconnect like --supervise" {
	run -0 client_run env SOCKSIFY_SUPERVISE=always "$SOCKSIFY" -p "$(proxy_url sx)" -- \
		"$RAWCONNECT" "$TARGET4" 80 "/small.txt?$TAG-env"
	assert_output "HTTP/1.0 200 OK"
	local conf=$BATS_TEST_TMPDIR/socksify.conf
	printf 'proxy = %s\nsupervise = always\n' "$(proxy_url sx)" >"$conf"
	run -0 client_run "$SOCKSIFY" -c "$conf" -- "$RAWCONNECT" "$TARGET4" 80 "/small.txt?$TAG-conf"
	assert_output "HTTP/1.0 200 OK"
	assert_via_proxy "/small.txt?$TAG-" 2
	assert_trap_untouched
}

@test "--supervise with a preloaded program (curl): the shim and the supervisor together, by name and by address" {
	run -0 sv auth h --supervise -- "${CURL[@]}" "http://target.test/small.txt?$TAG-name"
	assert_output "$SMALL_TEXT"
	run -0 sv auth h --supervise -- "${CURL[@]}" "http://$TARGET4/small.txt?$TAG-addr"
	assert_output "$SMALL_TEXT"
	assert_via_proxy "/small.txt?$TAG-" 2
	assert_no_dns_leak
	assert_trap_untouched
}

# ---------------------------------------------------------------------------------
# fail closed: never direct
# ---------------------------------------------------------------------------------

# t_down CMD...: CMD under socksify with the proxy down (socks5h://, nothing
# listens at 198.18.1.1:1099) must fail, the trap, the target, the UDP trap and
# the leak detector seeing nothing.
t_down() {
	run ! client_run "$SOCKSIFY" -p "socks5h://$PROXY4:$DOWN_URL_PORT" "$@"
	refute_line --regexp "^ok http"
	assert_trap_untouched
	assert_target_untouched "$TAG"
	assert_no_dns_leak
	assert_udptrap_untouched
}

@test "fail closed: proxy down: goget-static to the trap, the target by address and by name fails, nothing goes direct" {
	require_go
	t_down -- "$GOGET_STATIC" -t 5s "http://$PROXY4:8080/small.txt?$TAG-trap" \
		"http://$TARGET4/small.txt?$TAG-addr" "http://target.test/small.txt?$TAG-name"
	assert_line --partial "fail http://$PROXY4:8080/small.txt?$TAG-trap "
	assert_line --partial "fail http://target.test/small.txt?$TAG-name "
}

@test "fail closed: proxy down: goget-dynamic the same" {
	require_go
	t_down -- "$GOGET_DYNAMIC" -t 5s "http://$PROXY4:8080/small.txt?$TAG-trap" \
		"http://$TARGET4/small.txt?$TAG-addr" "http://target.test/small.txt?$TAG-name"
	assert_line --partial "fail http://$PROXY4:8080/small.txt?$TAG-trap "
}

@test "fail closed: proxy down: rawconnect --supervise to the trap fails with a connect error" {
	t_down --supervise -- "$RAWCONNECT" "$PROXY4" 8080 "/small.txt?$TAG-trap"
	assert_line --regexp '^connect: E[A-Z]+$'
}

@test "fail closed: proxy down: goget-static -n 50 at the trap, none gets through" {
	require_go
	t_down -- "$GOGET_STATIC" -t 5s -n 50 "http://$PROXY4:8080/small.txt?$TAG-trap"
	assert_line "ok 0/50"
}

# t_kill static|dynamic: the launcher (the supervisor; the program is its child)
# killed with SIGKILL while the program runs: its next connections fail, by
# address and by name, and none goes direct.
t_kill() {
	require_go
	local bin ready=$BATS_TEST_TMPDIR/ready go=$BATS_TEST_TMPDIR/go
	local out=$BATS_TEST_TMPDIR/goget.out launcher prog parent i
	bin=$(goget_bin "$1")
	# ns_spawn: the recorded PID is the launcher's own
	ns_spawn client "$out" "$SOCKSIFY" -p "$(proxy_url auth h)" -- "$bin" -t 5s \
		-pre "http://target.test/small.txt?$TAG-before" \
		-sh "echo \$PPID >'$ready.tmp' && mv '$ready.tmp' '$ready'; while [ ! -e '$go' ]; do sleep 0.05; done" \
		"http://$PROXY4:8080/small.txt?$TAG-after-trap" \
		"http://$TARGET4/small.txt?$TAG-after-addr" \
		"http://target.test/small.txt?$TAG-after-name"
	launcher=$SPAWNED_PID
	for ((i = 0; i < 400; i++)); do
		[[ -e $ready ]] && break
		pid_alive "$launcher" || break
		sleep 0.05
	done
	[[ -e $ready ]] || fail "goget did not get to its -sh command: $(cat "$out")"
	prog=$(cat "$ready")
	echo "$prog" >>"$(pidfile)"
	grep -q "^ok http://target.test/small.txt?$TAG-before 200 " "$out" ||
		fail "the first fetch did not succeed: $(cat "$out")"
	parent=$(awk '{ print $4 }' "/proc/$prog/stat")
	[[ $prog != "$launcher" ]] || fail "goget ($prog) is the launcher's process itself: nothing supervises it"
	[[ $parent == "$launcher" ]] || fail "goget ($prog) is not the launcher's ($launcher) child: its parent is $parent"
	kill -KILL "$launcher"
	wait_exit "$launcher" 5 || fail "the launcher survived SIGKILL"
	touch "$go"
	wait_exit "$prog" 30 || fail "goget did not finish after the supervisor was killed: $(cat "$out")"
	run cat "$out"
	assert_line --partial "fail http://$PROXY4:8080/small.txt?$TAG-after-trap "
	assert_line --partial "fail http://$TARGET4/small.txt?$TAG-after-addr "
	assert_line --partial "fail http://target.test/small.txt?$TAG-after-name "
	refute_line --regexp "^ok .*$TAG-after"
	# ENOSYS from the kernel once the listener is gone
	assert_line --regexp "^fail http://$PROXY4:8080/small.txt\\?$TAG-after-trap .*function not implemented"
	assert_via_proxy "/small.txt?$TAG-before " 1
	assert_target_untouched "$TAG-after"
	assert_trap_untouched
	assert_no_dns_leak
}

@test "fail closed: the supervisor killed with SIGKILL mid-run: goget-static's next connects fail (ENOSYS), nothing goes direct" {
	t_kill static
}

@test "fail closed: the supervisor killed with SIGKILL mid-run: goget-dynamic the same" {
	t_kill dynamic
}

# ---------------------------------------------------------------------------------
# --no-supervise: a program that would go around the proxy is refused
# ---------------------------------------------------------------------------------

@test "--no-supervise: goget-static is refused with one line and never runs; --allow-direct runs it (directly: the trap sees the client)" {
	require_go
	run ! --separate-stderr sv sx h --no-supervise -- "$GOGET_STATIC" "http://$PROXY4:8080/small.txt?$TAG-refused"
	one_log_line
	assert_output ""
	run ! --separate-stderr client_run env SOCKSIFY_SUPERVISE=never "$SOCKSIFY" -p "$(proxy_url sx h)" -- \
		"$GOGET_STATIC" "http://$PROXY4:8080/small.txt?$TAG-refused-env"
	one_log_line
	assert_output ""
	assert_trap_untouched
	run -0 sv sx h --no-supervise --allow-direct -- "$GOGET_STATIC" "http://$PROXY4:8080/small.txt?$TAG-direct"
	assert_line --regexp "^ok http://$PROXY4:8080/small.txt\\?$TAG-direct 200 "
	run -0 grep -F "$CLIENT4 - - [" <<<"$(log_since TRAP_LOG)"
	run -1 grep -F "$TAG-refused" <<<"$(log_since TRAP_LOG)"
}

@test "--no-supervise: goget-dynamic (a Go program: the shim is loaded but never called) is refused too" {
	require_go
	run ! --separate-stderr sv sx h --no-supervise -- "$GOGET_DYNAMIC" "http://$PROXY4:8080/small.txt?$TAG"
	one_log_line
	assert_output ""
	assert_trap_untouched
}

# ---------------------------------------------------------------------------------
# children and exec
# ---------------------------------------------------------------------------------

@test "children of a supervised program are supervised: goget-static -sh runs curl (preloaded), curl without LD_PRELOAD, and rawconnect" {
	require_go
	run -0 sv auth h -- "$GOGET_STATIC" -sh "$(printf '%q ' "${CURL[@]}") http://target.test/small.txt?$TAG-curl"
	assert_line "$SMALL_TEXT"
	run -0 sv auth h -- "$GOGET_STATIC" -sh "env -u LD_PRELOAD $(printf '%q ' "${CURL[@]}") http://target.test/small.txt?$TAG-nopreload"
	assert_line "$SMALL_TEXT"
	run -0 sv auth h -- "$GOGET_STATIC" -sh "'$RAWCONNECT' $TARGET4 80 '/small.txt?$TAG-raw'"
	assert_line "HTTP/1.0 200 OK"
	assert_via_proxy "/small.txt?$TAG-" 3
	assert_no_dns_leak
	assert_trap_untouched
}

@test "[exec] socksify sh -c 'goget-static URL': a Go program exec'd by a preloaded shell goes through the proxy" {
	require_go
	run -0 sv auth h -- sh -c "'$GOGET_STATIC' 'http://target.test/small.txt?$TAG-name' 'http://$TARGET4/small.txt?$TAG-addr'"
	assert_line --regexp "^ok http://target.test/small.txt\\?$TAG-name 200 "
	assert_via_proxy "/small.txt?$TAG-" 2
	assert_no_dns_leak
	assert_trap_untouched
}

@test "[exec] socksify sh -c 'goget-dynamic URL' the same" {
	require_go
	run -0 sv auth h -- sh -c "'$GOGET_DYNAMIC' 'http://target.test/small.txt?$TAG-name' 'http://$TARGET4/small.txt?$TAG-addr'"
	assert_via_proxy "/small.txt?$TAG-" 2
	assert_no_dns_leak
}

@test "[exec] python subprocess.run of goget-static goes through the proxy" {
	require_go
	run -0 sv auth h -- "$PYTHON" -c '
import subprocess, sys
sys.exit(subprocess.run(sys.argv[1:]).returncode)
' "$GOGET_STATIC" "http://target.test/small.txt?$TAG"
	assert_line --regexp "^ok http://target.test/small.txt\\?$TAG 200 "
	assert_via_proxy "/small.txt?$TAG " 1
	assert_no_dns_leak
}

@test "[exec] socksify sh -c 'goget-static URL' at the trap: never direct" {
	require_go
	run sv sx h -- sh -c "'$GOGET_STATIC' 'http://$PROXY4:8080/small.txt?$TAG'"
	run -1 grep -F "$CLIENT4 - - " <<<"$(log_since TRAP_LOG)"
}

# ---------------------------------------------------------------------------------
# exit statuses and signals
# ---------------------------------------------------------------------------------

@test "exit status: socksify --supervise sh -c 'exit 7' exits 7, also after a supervised connect" {
	run -7 sv sx --supervise -- sh -c 'exit 7'
	run -7 sv sx --supervise -- sh -c "'$RAWCONNECT' $TARGET4 80 '/small.txt?$TAG' && exit 7"
	assert_output "HTTP/1.0 200 OK"
	assert_via_proxy "/small.txt?$TAG " 1
}

@test "exit status: a program killed by a signal: 128+N, as the shell reports it" {
	run -143 sv sx --supervise -- sh -c 'kill -TERM $$'
	run -137 sv sx --supervise -- sh -c 'kill -KILL $$'
	run -138 sv sx --supervise -- sh -c 'kill -USR1 $$'
}

@test "exit status: goget-static's own status (auto), and a Go program killed by SIGTERM: 143" {
	require_go
	run -5 sv sx -- "$GOGET_STATIC" -sh 'exit 5'
	run -143 sv sx -- "$GOGET_STATIC" -sh 'kill -TERM $PPID; sleep 1'
}

@test "signals sent to the launcher reach the supervised program (SIGTERM, SIGHUP)" {
	local sig want
	for sig in TERM HUP; do
		local ready=$BATS_TEST_TMPDIR/ready-$sig out=$BATS_TEST_TMPDIR/out-$sig launcher rc=0 i
		want=42
		ns_spawn client "$out" "$SOCKSIFY" -p "$(proxy_url sx)" --supervise -- sh -c \
			"trap 'echo got $sig; kill \$! 2>/dev/null; exit $want' $sig; sleep 30 & echo > '$ready'; wait \$!"
		launcher=$SPAWNED_PID
		for ((i = 0; i < 200; i++)); do
			[[ -e $ready ]] && break
			pid_alive "$launcher" || break
			sleep 0.05
		done
		[[ -e $ready ]] || fail "the program did not start: $(cat "$out")"
		kill "-$sig" "$launcher"
		wait_exit "$launcher" 10 || fail "the launcher did not exit after SIG$sig"
		wait "$launcher" || rc=$?
		run cat "$out"
		assert_line "got $sig"
		((rc == want)) || fail "the launcher exited $rc after SIG$sig, expected the program's $want"
	done
}

# ---------------------------------------------------------------------------------
# a far proxy: only the calling goroutine's thread waits for the handshake
# ---------------------------------------------------------------------------------

@test "far proxy (200 ms towards the client): goget-static, 50 goroutines by name at once, all through in under 2 s" {
	require_go
	far_proxy_start 1095 200
	local t0=$EPOCHREALTIME secs
	run -0 client_run "$SOCKSIFY" -p "$(proxy_url far:1095 h)" -- \
		"$GOGET_STATIC" -n 50 "http://target.test/small.txt?$TAG-far"
	secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	echo "# goget-static 50 goroutines through the far proxy: $secs s" >&3
	assert_line "ok 50/50"
	assert_via_proxy "/small.txt?$TAG-far " 50
	# the 50 and the pipelining probe (shim/pipeline.h)
	[[ $(grep -c "^tcp " "$FAR_LOG") == 51 ]] || fail "the far proxy did not carry the 50 and the probe: $(cat "$FAR_LOG")"
	assert_no_dns_leak
	awk -v s="$secs" 'BEGIN { exit !(s <= 2.0) }' ||
		fail "took $secs s: the supervised connects did not overlap (one handshake is 0.6 s)"
}

@test "the launcher waits for a background child that outlives the program; a SIGTERM then ends the wait with the program's status" {
	local t0=$EPOCHREALTIME secs
	run -5 client_run "$SOCKSIFY" --supervise -p "$(proxy_url sx)" -- sh -c 'sleep 1 & exit 5'
	secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	awk -v s="$secs" 'BEGIN { exit !(s >= 0.9) }' || fail "did not wait for the background child ($secs s)"
	local out=$BATS_TEST_TMPDIR/out pid
	# a simple command, so that $! is the launcher (scripts/netns and ip exec)
	"$NETNS" exec "$NX" client "$SOCKSIFY" --supervise -p "$(proxy_url sx)" -- \
		sh -c 'sleep 30 & exit 5' >"$out" 2>&1 &
	pid=$!
	sleep 0.5
	kill -TERM "$pid"
	t0=$EPOCHREALTIME
	local rc=0
	wait "$pid" || rc=$?
	assert_equal "$rc" 5
	secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	awk -v s="$secs" 'BEGIN { exit !(s < 5) }' || fail "SIGTERM did not end the wait ($secs s)"
}

@test "--supervise on a preloaded python: its UDP still goes through UDP ASSOCIATE (the preload's datagrams to the relay pass the supervisor)" {
	run -0 client_run "$SOCKSIFY" --supervise -p "$(proxy_url sx)" -- \
		"$PYTHON" "$E2E_DIR/udp_prog.py" connected "$TARGET4" 7
	assert_line --partial "ok"
	run -0 client_run "$SOCKSIFY" --supervise -p "$(proxy_url sx)" -- \
		"$PYTHON" "$E2E_DIR/udp_prog.py" sizes "$TARGET4" 7 1 1000
	local seen
	seen=$(log_since UDP_ECHO_LOG)
	[[ -n $seen ]] || fail "the echo server saw nothing"
	run -1 grep -v "^$PROXY_OUT4 " <<<"$seen"
	assert_udptrap_untouched
}

@test "socksify run inside a supervised tree starts no second supervisor (the kernel takes one listener): the outer one serves" {
	static_prog_bin || skip "$STATIC_PROG_WHY"
	run -0 --separate-stderr client_run "$SOCKSIFY" --supervise -p "$(proxy_url sx)" -- \
		"$SOCKSIFY" -p "$(proxy_url sx)" -- "$STATIC_PROG" "$TARGET4" 80 "small.txt?$TAG-nested"
	assert_output --partial "200"
	assert_equal "$stderr" ""
	assert_via_proxy "/small.txt?$TAG-nested" 1
}

@test "[dns] remote DNS: a TCP connect to the nameserver's port 53 (a resolver's fallback) is refused with one line, never direct, never through the proxy" {
	run -1 --separate-stderr client_run "$SOCKSIFY" -p "$(proxy_url sx h)" --supervise -- \
		"$RAWCONNECT" "$NAMESERVER4" 53 "/dns-over-tcp-$TAG"
	[[ $stderr == *"DNS over TCP"*"refused"* ]] || fail "no log line: $stderr"
	assert_no_dns_leak
}
