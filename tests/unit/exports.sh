#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# TAP: libsocksify.so exports exactly the hooks listed in shim/hooks.def, and
# the version script generated from it (shim/mkhooks.sh map) lists the same names.
#   exports.sh LIBSOCKSIFY.SO HOOKS.DEF BUILD/shim/libsocksify.map
set -euo pipefail
lib=$1 def=$2 map=$3
n=0 failed=0
check() { # DESCRIPTION EXPECTED ACTUAL
	n=$((n + 1))
	if [[ $2 == "$3" ]]; then
		echo "ok $n - $1"
	else
		echo "not ok $n - $1"
		diff <(echo "$2") <(echo "$3") | sed 's/^/# /'
		failed=1
	fi
}
hooks=$(sed -n 's/^HOOK([^,]*, *\([A-Za-z_0-9]*\),.*/\1/p' "$def" | LC_ALL=C sort)
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TWiV]$/ { sub(/@.*/, "", $3); print $3 }' |
	LC_ALL=C sort -u)
mapped=$(sed -n 's/^\t\([A-Za-z_0-9]*\);$/\1/p' "$map" | LC_ALL=C sort)
check "hooks.def names at least 30 hooks" yes "$( (($(wc -l <<<"$hooks") >= 30)) && echo yes || echo no)"
check "the library exports exactly the hooks of hooks.def" "$hooks" "$exported"
check "the generated libsocksify.map lists exactly the hooks of hooks.def" "$hooks" "$mapped"
echo "1..$n"
exit $failed
