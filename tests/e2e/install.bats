#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# `meson install` (issue 13): a --destdir install of the build ($SOCKSIFY_BUILD)
# has every file where the build's options put it; moved elsewhere, its
# socksify finds its own shim and proxies curl through its own socksify-server
# (loopback); every manual page renders without a warning and names every
# option of its command's --help, every key of the sample socksify.conf, every
# hook of shim/hooks.def and every SOCKSIFY_* variable of the code; the bash
# completion completes both commands.
#
# A new option, key, hook or variable fails here until its page names it: one
# .TP entry in docs/man/ (the message says which page lacks what).
#
#   SOCKSIFY_BUILD=$PWD/build bats tests/e2e/install.bats
# shellcheck disable=SC2034

load helpers

setup_file() {
	common_setup_file
	BUILD=${SOCKSIFY_BUILD:-$REPO_ROOT/build}
	export BUILD
	local dest=$BATS_FILE_TMPDIR/dest
	meson install -C "$BUILD" --no-rebuild --quiet --destdir "$dest" >"$BATS_FILE_TMPDIR/install.log" 2>&1 || {
		cat "$BATS_FILE_TMPDIR/install.log" >&2
		return 1
	}
	# the build's install paths, relative to the prefix unless absolute
	read -r PREFIX BINDIR LIBDIR SYSCONFDIR MANDIR DATADIR < <(meson introspect "$BUILD" --buildoptions |
		"$PYTHON" -c 'import json, os, sys
d = {o["name"]: o["value"] for o in json.load(sys.stdin)}
p = d["prefix"]
print(p, *(os.path.join(p, d[k]) for k in ("bindir", "libdir", "sysconfdir", "mandir", "datadir")))')
	export PREFIX BINDIR LIBDIR SYSCONFDIR MANDIR DATADIR
	# moved: nothing of the tree is where the build put it
	ROOT=$BATS_FILE_TMPDIR/moved/elsewhere
	mkdir -p "$(dirname "$ROOT")"
	mv "$dest" "$ROOT"
	ROOT=$(readlink -f "$ROOT") # as the launcher sees its own path
	export ROOT
}

teardown_file() {
	common_teardown_file
}

setup() {
	common_setup
}

teardown() {
	common_teardown
}

# --- the tree ---------------------------------------------------------------------

@test "install: every file where the build's options put it, and nothing else" {
	local expected actual
	expected=$(printf '%s\n' \
		"$BINDIR/socksify" "$BINDIR/socksify-server" \
		"$LIBDIR/socksify/libsocksify.so" \
		"$SYSCONFDIR/socksify.conf" \
		"$MANDIR/man1/socksify.1" "$MANDIR/man1/socksify-server.1" \
		"$MANDIR/man5/socksify.conf.5" "$MANDIR/man7/libsocksify.7" \
		"$DATADIR/bash-completion/completions/socksify" \
		"$DATADIR/bash-completion/completions/socksify-server" \
		"$PREFIX/lib/systemd/system/socksify-server.service" | LC_ALL=C sort)
	actual=$(cd "$ROOT" && find . -type f -printf '/%P\n' | LC_ALL=C sort)
	assert_equal "$actual" "$expected"
	[[ -x $ROOT$BINDIR/socksify && -x $ROOT$BINDIR/socksify-server ]] || fail "not executable"
	cmp "$ROOT$SYSCONFDIR/socksify.conf" "$REPO_ROOT/socksify.conf" || fail "socksify.conf is not the sample"
	# nothing named after the build tree (the pages carry the install paths)
	if grep -rl "$BUILD" "$ROOT$MANDIR" "$ROOT$DATADIR"; then
		fail "the build directory is named in the files above"
	fi
	grep -q "$LIBDIR/socksify/libsocksify.so" "$ROOT$MANDIR/man7/libsocksify.7" ||
		fail "libsocksify(7) does not name the shim's install path"
}

@test "install: the moved tree's socksify uses its own shim and proxies curl through its own socksify-server" {
	local bin=$ROOT$BINDIR shim=$ROOT$LIBDIR/socksify/libsocksify.so out
	[[ ! -e $LIBDIR/socksify/libsocksify.so ]] ||
		echo "# note: $LIBDIR/socksify/libsocksify.so exists on this machine; the LD_PRELOAD check below tells them apart"
	run "$bin/socksify" --env
	assert_success
	assert_line --index 0 "export LD_PRELOAD='$shim'"
	assert_line --index 1 "export SOCKSIFY_LAUNCHER='$bin/socksify'"

	SOCKSIFY_SERVER=$bin/socksify-server start_server -v
	# the program maps the moved shim, and its connection to 127.0.0.1 goes
	# through the proxy (loopback goes direct unless SOCKSIFY_PROXY_LOOPBACK)
	out=$(SOCKSIFY_PROXY_LOOPBACK=1 "$bin/socksify" -p "socks5h://$PROXY" \
		sh -c 'grep -o "/[^ ]*libsocksify.so" /proc/$$/maps | head -n 1; exec "$@"' sh \
		"${CURL[@]}" "http://127.0.0.1:$HTTP_PORT/index.html")
	[[ $(head -n 1 <<<"$out") -ef $shim ]] || fail "the program mapped $(head -n 1 <<<"$out"), not $shim"
	[[ $out == *"socksify e2e index"* ]] || fail "curl got: $out"
	grep -q "127.0.0.1:$HTTP_PORT" "$SERVER_LOG" || fail "the server did not carry the connection"
}

@test "install: a moved tree without its shim says where it looked (exit status 126)" {
	local copy=$BATS_TEST_TMPDIR/noshim
	mkdir -p "$copy/bin"
	cp "$ROOT$BINDIR/socksify" "$copy/bin/"
	[[ ! -e $LIBDIR/socksify/libsocksify.so ]] || skip "the shim is installed at $LIBDIR/socksify on this machine"
	run "$copy/bin/socksify" true
	assert_failure 126
	assert_output --partial "cannot find libsocksify.so"
	assert_output --partial "relative to $copy/bin/socksify"
}

# --- manual pages -----------------------------------------------------------------

# page NAME.SECTION: the installed page's path
page() {
	echo "$ROOT$MANDIR/man${1##*.}/$1"
}

# render PAGE: the page as plain text on one very long line per paragraph
# (no line breaks, so no hyphenation splits a word)
render() {
	MANWIDTH=1000 LC_ALL=C man -E ascii -l "$1" 2>/dev/null
}

# covers PAGE WORD...: prints "PAGE lacks WORD" for each WORD the rendered page
# does not contain as a whole word (an option: "-v" is not in "-vv")
covers() {
	local p=$1 text w
	shift
	text=$(render "$(page "$p")")
	for w in "$@"; do
		grep -qE -- "(^|[^-_a-zA-Z0-9])${w}([^-_a-zA-Z0-9]|\$)" <<<"$text" ||
			echo "$p lacks $w"
	done
}

# help_options COMMAND: every option its --help shows, one a line: --name,
# or one letter (-v, -vv), not a placeholder ([-PORT])
help_options() {
	"$1" --help | grep -oE -- '(^|[][ ,|(])--?[a-zA-Z][-a-zA-Z0-9]*' | sed 's/^[][ ,|(]//' |
		grep -E -- '^(--[a-z][-a-z0-9]*|-[a-zA-Z][a-z]*)$' | sort -u
}

@test "man: every page renders without a warning (groff -ww, man --warnings)" {
	local p err
	for p in socksify.1 socksify-server.1 socksify.conf.5 libsocksify.7; do
		[[ -f $(page "$p") ]] || fail "no $(page "$p")"
		err=$(groff -mandoc -ww -z "$(page "$p")" 2>&1)
		[[ -z $err ]] || fail "groff warns about $p: $err"
		err=$(LC_ALL=C man --warnings -E ascii -l "$(page "$p")" 2>&1 >/dev/null)
		[[ -z $err ]] || fail "man warns about $p: $err"
		render "$(page "$p")" | grep -q '^NAME' || fail "$p has no NAME section"
		if grep -n '@[A-Z_]*@' "$(page "$p")"; then
			fail "$p has an unfilled @VARIABLE@"
		fi
	done
}

@test "man: socksify(1) names every option of socksify --help" {
	local opts
	mapfile -t opts < <(help_options "$ROOT$BINDIR/socksify")
	((${#opts[@]} >= 10)) || fail "only ${#opts[@]} options found in --help: ${opts[*]}"
	run covers socksify.1 "${opts[@]}"
	assert_output ""
}

@test "man: socksify-server(1) names every option of socksify-server --help" {
	local opts
	mapfile -t opts < <(help_options "$ROOT$BINDIR/socksify-server")
	((${#opts[@]} >= 15)) || fail "only ${#opts[@]} options found in --help: ${opts[*]}"
	run covers socksify-server.1 "${opts[@]}"
	assert_output ""
}

@test "man: socksify.conf(5) has an entry for every key of the sample socksify.conf" {
	local keys text k missing=()
	mapfile -t keys < <(sed -nE 's/^#? *([a-z][a-z0-9_]*) = .*/\1/p' "$REPO_ROOT/socksify.conf" | sort -u)
	((${#keys[@]} >= 10)) || fail "only ${#keys[@]} keys found in socksify.conf: ${keys[*]}"
	# an entry: a tag line "       KEY = ..." of the OPTIONS section
	text=$(render "$(page socksify.conf.5)")
	for k in "${keys[@]}"; do
		grep -qE "^ {7}$k = " <<<"$text" || missing+=("$k")
	done
	((${#missing[@]} == 0)) || fail "socksify.conf.5 has no entry for: ${missing[*]}"
}

@test "man: libsocksify(7) names every hook of shim/hooks.def and every SOCKSIFY_* variable" {
	local hooks vars
	mapfile -t hooks < <(sed -nE 's/^HOOK\([^,]*, *([a-z_0-9]+),.*/\1/p' "$REPO_ROOT/shim/hooks.def")
	((${#hooks[@]} >= 50)) || fail "only ${#hooks[@]} hooks found in shim/hooks.def"
	mapfile -t vars < <(cat "$REPO_ROOT"/shim/*.[ch] "$REPO_ROOT"/shim/common/*.[ch] "$REPO_ROOT"/cli/*.c |
		grep -oE '"SOCKSIFY_[A-Z0-9_]+"' | tr -d '"' | sort -u)
	((${#vars[@]} >= 8)) || fail "only ${#vars[@]} variables found in the code"
	run covers libsocksify.7 "${hooks[@]}" "${vars[@]}"
	assert_output ""
	# and man(1) finds the installed pages by name under the tree's mandir
	run env MANWIDTH=80 man -M "$ROOT$MANDIR" -E ascii socksify.conf
	assert_success
	assert_output --partial "proxy_loopback"
}

# --- bash completion -----------------------------------------------------------

# complete_words WORD...: the completions bash offers for the last WORD, in a
# shell that sourced the installed completion, with the moved bin/ in PATH
complete_words() {
	PATH=$ROOT$BINDIR:$PATH bash --norc -c '
		source "$1/socksify"
		shift
		COMP_WORDS=("$@")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		_socksify
		printf "%s\n" "${COMPREPLY[@]}"' bash "$ROOT$DATADIR/bash-completion/completions" "$@"
}

@test "completion: both commands are registered and complete options and their values" {
	local dir=$ROOT$DATADIR/bash-completion/completions c
	run bash --norc -c "source '$dir/socksify' && complete -p socksify && source '$dir/socksify-server' && complete -p socksify-server"
	assert_success
	assert_line "complete -F _socksify socksify"
	assert_line "complete -F _socksify socksify-server"

	run complete_words socksify --no
	assert_output "--no-supervise"
	run complete_words socksify-server --gr
	assert_output "--group"
	run complete_words socksify -p ''
	assert_line "socks5h://127.0.0.1:1080"
	run complete_words socksify-server --user roo
	assert_line "root"
	run complete_words socksify -c /etc/passw
	assert_line "/etc/passwd"
	# after the options, the program, then its own arguments
	run complete_words socksify -p socks5h://127.0.0.1:1 -v socksify-serv
	assert_line "socksify-server"
	# a value is not a command: -c's argument, then the program
	run complete_words socksify -c /dev/null --all
	assert_output "--allow-direct"
	# every option of --help is offered after "-"
	for c in socksify socksify-server; do
		run complete_words "$c" -
		assert_success
		diff <(help_options "$ROOT$BINDIR/$c") <(printf '%s\n' "${lines[@]}" | sort -u) ||
			fail "$c: the completion offers other options than --help shows"
	done
}
