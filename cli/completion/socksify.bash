# SPDX-License-Identifier: MIT
# bash completion for socksify and socksify-server, installed under both names
# (DATADIR/bash-completion/completions/). The options come from the command's
# own --help (read once per shell), so a new option completes without an edit
# here: every word of the text that looks like an option is one, and a line
# "  -p, --proxy URL   ..." says that -p and --proxy take a value (an
# upper-case word after the option).

# _socksify_help_opts CMD: sets _socksify_opts (all options) and
# _socksify_argopts (those taking a value), " "-separated, cached per CMD.
_socksify_help_opts()
{
	local cmd=$1 key
	key=_socksify_cache_$(printf '%s' "$cmd" | tr -c 'a-zA-Z0-9' _)
	if [[ -z ${!key-} ]]; then
		local out
		out=$(LC_ALL=C "$cmd" --help 2>/dev/null | awk '
			# every option the text shows (the usage lines, the table)
			{
				line = " " $0
				while (match(line, /[][ ,|(]--?[a-zA-Z][-a-zA-Z0-9]*/)) {
					o = substr(line, RSTART + 1, RLENGTH - 1)
					# --name or one letter (-v, -vv); not [-PORT]
					ok = o ~ /^(--[a-z][-a-z0-9]*|-[a-zA-Z][a-z]*)$/
					if (ok && !(o in seen))
						all = all " " o
					seen[o] = 1
					line = substr(line, RSTART + RLENGTH)
				}
			}
			# those of the table followed by an upper-case word take a value
			/^ +-/ {
				n = split($0, f, /  +/)
				for (i = 1; i <= n; i++) {
					if (f[i] !~ /^-/)
						continue
					m = split(f[i], w, /[ ,]+/)
					arg = 0
					for (j = 1; j <= m; j++)
						if (w[j] ~ /^[A-Z]/)
							arg = 1
					for (j = 1; j <= m; j++)
						if (arg && w[j] ~ /^-/)
							args = args " " w[j]
				}
			}
			END { print all " |" args " " }')
		printf -v "$key" '%s' "$out"
	fi
	_socksify_opts=${!key%%|*}
	_socksify_argopts=" ${!key#*|}"
}

# The value of an option: files, users, groups, a proxy URL, or nothing.
_socksify_value()
{
	local opt=$1 cur=$2
	case $opt in
	-c | --config | --users)
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		compopt -o filenames 2>/dev/null
		;;
	--user) mapfile -t COMPREPLY < <(compgen -u -- "$cur") ;;
	--group) mapfile -t COMPREPLY < <(compgen -g -- "$cur") ;;
	-p | --proxy)
		mapfile -t COMPREPLY < <(compgen -W \
			'socks5h://127.0.0.1:1080 socks5://127.0.0.1:1080' -- "$cur")
		compopt -o nospace 2>/dev/null
		;;
	*) COMPREPLY=() ;;
	esac
}

_socksify()
{
	local cmd=${COMP_WORDS[0]} cur=${COMP_WORDS[COMP_CWORD]} i word
	local _socksify_opts _socksify_argopts
	_socksify_help_opts "$cmd"
	COMPREPLY=()
	# socksify: the first word that is not an option (or after --) is the
	# program; from there on, complete as that command would.
	for ((i = 1; i < COMP_CWORD; i++)); do
		word=${COMP_WORDS[i]}
		if [[ $_socksify_argopts == *" $word "* ]]; then
			((i++))
			continue
		fi
		if [[ $cmd == *socksify && ($word == -- || $word != -*) ]]; then
			[[ $word == -- ]] && ((i++))
			if ((i < COMP_CWORD)) && declare -F _command_offset >/dev/null; then
				_command_offset "$i"
				return
			fi
			if ((i == COMP_CWORD)); then
				mapfile -t COMPREPLY < <(compgen -c -- "$cur" | sort -u)
			else
				mapfile -t COMPREPLY < <(compgen -f -- "$cur")
			fi
			return
		fi
	done
	local prev=${COMP_WORDS[COMP_CWORD - 1]}
	if ((COMP_CWORD > 1)) && [[ $_socksify_argopts == *" $prev "* ]]; then
		_socksify_value "$prev" "$cur"
		return
	fi
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$_socksify_opts" -- "$cur")
	elif [[ $cmd == *socksify ]]; then
		mapfile -t COMPREPLY < <(compgen -c -- "$cur" | sort -u)
	fi
}

complete -F _socksify socksify socksify-server
