#!/bin/sh
# Prints the Debian archive this machine's apt uses for the suite given
# (default bookworm): the first URIs (deb822) or `deb URL SUITE` line in
# /etc/apt/sources.list{,.d} naming that suite. The examples build from it,
# so that no mirror is written into them; KILN_DEBIAN_MIRROR overrides it.
#
#   examples/lib/apt-mirror.sh [SUITE]
set -eu
suite=${1:-bookworm}
if [ -n "${KILN_DEBIAN_MIRROR:-}" ]; then
	echo "$KILN_DEBIAN_MIRROR"
	exit 0
fi
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
	[ -r "$f" ] || continue
	case $f in
	*.sources)
		# deb822: paragraphs of Types/URIs/Suites; blank lines separate them.
		url=$(awk -v s="$suite" '
			/^[ \t]*$/ { if (deb && uri != "" && hit) { print uri; exit } deb = 0; uri = ""; hit = 0; next }
			tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
			tolower($1) == "uris:" { uri = $2 }
			tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == s) hit = 1 }
			END { if (deb && uri != "" && hit) print uri }' "$f" | head -n1)
		;;
	*)
		# One-line style: deb [options] URL SUITE COMPONENT...
		url=$(awk -v s="$suite" '
			$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
			              if ($(i + 1) == s) { print $i; exit } }' "$f")
		;;
	esac
	if [ -n "$url" ]; then
		echo "${url%/}"
		exit 0
	fi
done
echo "apt-mirror.sh: no apt source for suite $suite in /etc/apt/sources.list{,.d}; set KILN_DEBIAN_MIRROR" >&2
exit 1
