#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Wrapped programs (issue 10): a dynamically linked program under socksify
# (sh, python, tests/e2e/exec_probe.c) that execs a statically linked one
# (tests/e2e/static_prog.c): the shim's exec hooks hand it to the launcher,
# which runs it under the supervisor, keeping the pid, argv (argv[0] too),
# the environment and the exit status; or the exec fails with EACCES and one
# line. It never runs unsupervised. Each fetch is checked at the target: it
# came from the proxy's address, and the proxy logged the CONNECT.
#
# Run (as root): meson test --suite shim (SOCKSIFY_EXEC_PROBE and
# SOCKSIFY_STATIC_PROG are set there; without them both are compiled with cc).

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
	static_prog_bin || skip "$STATIC_PROG_WHY"
	EXEC_PROBE=$(exec_probe_bin) || fail "cannot build tests/e2e/exec_probe.c"
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
	for v in SX_LOG HTTP_LOG TRAP_LOG; do
		log_since "$v" | sed "s/^/# $v: /" | tail -n 20
	done
	return "$rc"
}

# sx CMD...: CMD under socksify (socksify-server, no auth) in the client namespace
sx() {
	client_run "$SOCKSIFY" -p "$(proxy_url sx)" -- "$@"
}

@test "sh -c execs a static program: it runs supervised, its connect goes through the proxy" {
	run -0 --separate-stderr sx sh -c "'$STATIC_PROG' $TARGET4 80 'small.txt?$TAG-sh'"
	assert_output --partial " 200 "
	assert_equal "$stderr" ""
	assert_via_proxy "/small.txt?$TAG-sh" 1
	assert_proxy_connect sx "$TARGET4:80"
	# the same with the proxy down: refused, never direct
	run -1 client_run "$SOCKSIFY" -p "socks5h://$PROXY4:1" -- \
		sh -c "'$STATIC_PROG' $PROXY4 8080 'exec-trap'"
	assert_output --partial "connect: Connection refused"
	assert_trap_untouched
}

@test "python subprocess.run() of a static program (vfork + execve): through the proxy, status kept" {
	# shellcheck disable=SC2016
	local py='import subprocess, sys
r = subprocess.run(sys.argv[1:])
print("returncode", r.returncode)'
	run -0 sx "$PYTHON" -c "$py" "$STATIC_PROG" "$TARGET4" 80 "small.txt?$TAG-py"
	assert_line --partial " 200 "
	assert_line "returncode 0"
	assert_via_proxy "/small.txt?$TAG-py" 1
	run -0 sx "$PYTHON" -c "$py" "$STATIC_PROG" exit 9
	assert_output "returncode 9"
}

@test "the exit status, a death by signal, argv[0] and the environment are kept" {
	run -7 sx sh -c "'$STATIC_PROG' exit 7"
	# SIGTERM: the launcher dies of it too; sh reports 128 + 15 (and says so)
	run -0 sx sh -c "'$STATIC_PROG' kill 15; echo status \$?"
	assert_line "status 143"
	run -0 sx bash -c "exec -a custom-argv0 '$STATIC_PROG' argv0"
	assert_output "custom-argv0"
	run -0 sx env EXEC_PROBE_ARGV0=probe-argv0 \
		"$EXEC_PROBE" execve "$STATIC_PROG" argv0
	assert_output "probe-argv0"
	run -0 sx sh -c "SX_EXEC_VAR='a b' '$STATIC_PROG' env SX_EXEC_VAR"
	assert_output "SX_EXEC_VAR=a b"
	# LD_PRELOAD as the shell had it (the launcher ran without the shim);
	# the hand-off variable gone
	run -0 sx sh -c "echo \"LD_PRELOAD=\$LD_PRELOAD\"; '$STATIC_PROG' env LD_PRELOAD"
	assert_equal "${lines[1]}" "${lines[0]}"
	[[ ${lines[0]} == *libsocksify.so* ]] || fail "no shim in the shell's LD_PRELOAD: ${lines[0]}"
	run -0 sx sh -c "'$STATIC_PROG' env SOCKSIFY_LD_PRELOAD"
	assert_output "SOCKSIFY_LD_PRELOAD unset"
}

@test "each way to exec (exec*, fexecve, execveat, vfork, posix_spawn*): through the proxy" {
	local way bindir
	bindir=$(dirname "$STATIC_PROG")
	for way in execve execv execvp execvpe execl execle execlp fexecve fexecve-opath \
		execveat execveat-empty vfork posix_spawn posix_spawnp; do
		run -0 sx "$EXEC_PROBE" "$way" "$STATIC_PROG" "$TARGET4" 80 "small.txt?$TAG-$way"
		assert_output --partial " 200 "
		assert_via_proxy "/small.txt?$TAG-$way " 1
	done
	# the $PATH search of execvp, execlp and posix_spawnp, by name
	for way in execvp execlp posix_spawnp; do
		run -0 sx env PATH="/nonexistent:$bindir:/usr/bin:/bin" \
			"$EXEC_PROBE" "$way" "$(basename "$STATIC_PROG")" "$TARGET4" 80 "small.txt?$TAG-path-$way"
		assert_via_proxy "/small.txt?$TAG-path-$way " 1
	done
	# the descriptor fexecve and execveat pass to the launcher is not the program's
	run -0 sx "$EXEC_PROBE" execve "$STATIC_PROG" fds
	local want=$output
	for way in fexecve fexecve-opath execveat execveat-empty; do
		run -0 sx "$EXEC_PROBE" "$way" "$STATIC_PROG" fds
		assert_output "$want"
	done
}

@test "a file the kernel would not run as it is: execvp runs it with /bin/sh (glibc), whose exec goes supervised" {
	local script=$BATS_TEST_TMPDIR/no-shebang
	printf "'%s' %s 80 'small.txt?%s-script'\n" "$STATIC_PROG" "$TARGET4" "$TAG" >"$script"
	chmod +x "$script"
	run -0 sx "$EXEC_PROBE" execvp "$script"
	assert_output --partial " 200 "
	assert_via_proxy "/small.txt?$TAG-script" 1
}

@test "supervise = never in a preloaded shell: its exec is left alone (and reaches the trap directly)" {
	run -0 client_run env SOCKSIFY_SUPERVISE=never "$SOCKSIFY" -p "$(proxy_url sx)" -- \
		sh -c "'$STATIC_PROG' $PROXY4 8080 'never-$TAG'; '$STATIC_PROG' env SOCKSIFY_SUPERVISED"
	assert_line --partial "HTTP/1.0 "
	assert_line "SOCKSIFY_SUPERVISED unset"
	[[ $(log_since TRAP_LOG) == *"$CLIENT4 - - "*"GET /never-$TAG "* ]] ||
		fail "the trap did not see the direct fetch"
}

@test "an already supervised tree does not nest launchers: one socksify among the ancestors" {
	run -0 client_run "$SOCKSIFY" --supervise -p "$(proxy_url sx)" -- \
		sh -c "'$STATIC_PROG' tree; '$STATIC_PROG' $TARGET4 80 'small.txt?$TAG-nest'"
	assert_equal "$(grep -c '^socksify$' <<<"$output")" 1
	assert_line --partial " 200 "
	assert_via_proxy "/small.txt?$TAG-nest" 1
	# not supervised from the start: the shell's exec starts the one launcher
	run -0 sx sh -c "'$STATIC_PROG' tree"
	assert_equal "$(grep -c '^socksify$' <<<"$output")" 1
}

@test "the launcher run from a preloaded shell (socksify --env): its child's exec is not handed off again" {
	# shellcheck disable=SC2016
	run -0 --separate-stderr client_run sh -c 'eval "$("$1" -p "$2" --env)"; "$1" -p "$2" -- "$3" tree; "$1" -p "$2" -- "$3" "$4" 80 "$5"' \
		sh "$SOCKSIFY" "$(proxy_url sx)" "$STATIC_PROG" "$TARGET4" "small.txt?$TAG-env"
	assert_equal "$(grep -c '^socksify$' <<<"$output")" 1
	assert_line --partial " 200 "
	assert_equal "$stderr" ""
	assert_via_proxy "/small.txt?$TAG-env" 1
}

@test "no launcher to run: the exec fails with EACCES and one line, the program never runs" {
	run --separate-stderr sx sh -c \
		"SOCKSIFY_LAUNCHER=/nonexistent/socksify '$STATIC_PROG' $PROXY4 8080 'nolauncher-$TAG'; echo status \$?"
	assert_output "status 126"
	[[ $stderr == *"socksify["*"]: cannot supervise $STATIC_PROG: cannot run the launcher /nonexistent/socksify: No such file or directory"* ]] ||
		fail "unexpected stderr: $stderr"
	assert_equal "$(grep -c 'cannot supervise' <<<"$stderr")" 1
	# posix_spawn answers EACCES as well (the launcher exported its own path:
	# env sets the missing one for the probe)
	run --separate-stderr sx env SOCKSIFY_LAUNCHER=/nonexistent/socksify \
		"$EXEC_PROBE" posix_spawn "$STATIC_PROG" "$PROXY4" 8080 "nolauncher-$TAG"
	assert_output "posix_spawn: Permission denied"
	assert_trap_untouched
}

@test "a setuid static program is left to the exec (the launcher would refuse it)" {
	local prog=$BATS_TEST_TMPDIR/static-setuid
	cp "$STATIC_PROG" "$prog"
	chmod u+s "$prog"
	run -0 sx sh -c "'$prog' env SOCKSIFY_SUPERVISED"
	assert_output "SOCKSIFY_SUPERVISED unset"
}

@test "a set-user-ID program of another owner, exec'd by a preloaded shell, runs without socksify and says so in one line; one of this user's says nothing" {
	local prog=$BATS_TEST_TMPDIR/env-setuid-nobody mine=$BATS_TEST_TMPDIR/env-setuid-mine
	cp /usr/bin/env "$prog"
	cp /usr/bin/env "$mine"
	chown nobody "$prog"
	chmod u+s "$prog" "$mine"
	run -0 --separate-stderr sx sh -c "'$prog' echo ran"
	assert_output "ran"
	[[ $stderr == *"socksify["*"]: $prog is set-user-ID or set-group-ID: it runs without socksify"* ]] ||
		fail "unexpected stderr: $stderr"
	assert_equal "$(grep -c 'set-user-ID' <<<"$stderr")" 1
	run -0 --separate-stderr sx sh -c "'$mine' true"
	assert_equal "$stderr" ""
}
