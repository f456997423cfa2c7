#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The two export gates must agree: the SVQISO_API functions declared in the
# installed headers, the names in the version script, and the dynamic symbols
# the shared library defines are the same set; nothing outside svqiso_* is
# exported; every exported symbol carries a version node; and a program
# calling every declared function through <svqiso/svqiso.h> alone links and
# loads against the library.
#
# Usage: check-exports.sh LIBSVQISO_SO MAP HEADER...
# Environment (set by tests/meson.build): CC NM, and SAN_CFLAGS for a
# sanitized build.
set -eu

lib=$1
map=$2
shift 2

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail=0
die() {
	echo "check-exports: $*" >&2
	fail=1
}

# Headers as installed: <includedir>/svqiso/*.h and nothing else.
mkdir -p "$tmp/include/svqiso"
cp "$@" "$tmp/include/svqiso/"

# Each header stands alone.
for h in "$tmp"/include/svqiso/*.h; do
	echo "#include <svqiso/$(basename "$h")>" >"$tmp/one.c"
	# shellcheck disable=SC2086
	$CC -std=gnu11 -fsyntax-only -I"$tmp/include" "$tmp/one.c" 2>"$tmp/cc.log" ||
		{ die "svqiso/$(basename "$h") is not self-contained:"; cat "$tmp/cc.log" >&2; }
done

# Preprocess each header with SVQISO_API turned into a marker: comments,
# macros and conditionals are the compiler's business, not a regex's.
for h in "$tmp"/include/svqiso/*.h; do
	echo "#include <svqiso/$(basename "$h")>"
done >"$tmp/all.c"
# shellcheck disable=SC2086
$CC -E -P -DSVQISO_API=__svqiso_api__ -I"$tmp/include" "$tmp/all.c" >"$tmp/all.i"

# One "name nargs" line per SVQISO_API function.
tr '\n' ' ' <"$tmp/all.i" | tr ';' '\n' | awk '
/__svqiso_api__/ {
	s = substr($0, index($0, "__svqiso_api__"))
	p = index(s, "(")
	head = substr(s, 1, p - 1)
	sub(/[ \t]+$/, "", head)
	n = split(head, w, /[^A-Za-z0-9_]+/)
	name = w[n]
	depth = 0; commas = 0; params = ""
	for (i = p; i <= length(s); i++) {
		c = substr(s, i, 1)
		if (c == "(") depth++
		else if (c == ")") { if (--depth == 0) break }
		else if (c == "," && depth == 1) commas++
		if (depth >= 1 && i > p) params = params c
	}
	gsub(/[ \t]/, "", params)
	print name, (params == "" || params == "void") ? 0 : commas + 1
}' | sort -u >"$tmp/decls"
cut -d' ' -f1 "$tmp/decls" >"$tmp/header-names"

if [ ! -s "$tmp/header-names" ]; then
	die "no SVQISO_API functions found in $*"
	exit 1
fi

# Version script: names under "global:", every node. The preprocessor
# strips its C comments. A "}" stays on a line of its own: it ends a node's
# names, and the node it inherits from follows it.
$CC -E -P -x c "$map" | sed 's/}/\n}\n/g; s/[{;]/\n/g' | awk '
/^[ \t]*global:/ { g = 1; sub(/^[ \t]*global:/, "") }
/^[ \t]*local:/ { g = 0 }
/^[ \t]*}/ { g = 0 }
g { gsub(/[ \t]/, ""); if ($0 != "") print }' | sort -u >"$tmp/map-names"

# Dynamic symbols the library defines, minus version node definitions.
$NM -D --defined-only "$lib" | awk '
$2 == "A" && $3 ~ /^SVQISO_[0-9]/ { next }
{ print $3 }' | sort -u >"$tmp/nm-versioned"
sed 's/@.*//' "$tmp/nm-versioned" | sort -u >"$tmp/nm-names"

if ! diff -u "$tmp/header-names" "$tmp/map-names" >"$tmp/diff"; then
	die "headers (-) and $(basename "$map") (+) disagree:"
	cat "$tmp/diff" >&2
fi
if ! diff -u "$tmp/header-names" "$tmp/nm-names" >"$tmp/diff"; then
	die "headers (-) and the symbols $(basename "$lib") exports (+) disagree:"
	cat "$tmp/diff" >&2
fi
if grep -v '^svqiso_' "$tmp/nm-names" >"$tmp/leaks"; then
	die "exported outside the svqiso_ namespace:"
	cat "$tmp/leaks" >&2
fi
if grep -v '@@*SVQISO_[0-9]' "$tmp/nm-versioned" >"$tmp/unversioned"; then
	die "exported without a SVQISO_ version node:"
	cat "$tmp/unversioned" >&2
fi

# Call every declared function; the calls never run, they only need to
# compile from the umbrella header and link. -z now makes the loader bind
# every one of them when the program starts.
{
	cat <<'C'
#include <stdio.h>
#include <svqiso/svqiso.h>
int main(int argc, char **argv)
{
	(void)argv;
	if (argc < 0) {
C
	while read -r name nargs; do
		args=
		i=0
		while [ "$i" -lt "$nargs" ]; do
			args="${args:+$args, }0"
			i=$((i + 1))
		done
		echo "		(void)$name($args);"
	done <"$tmp/decls"
	cat <<'C'
	}
	printf("%s\n", svqiso_version());
	return 0;
}
C
} >"$tmp/calls.c"

# shellcheck disable=SC2086
if ! $CC -std=gnu11 -Werror=implicit-function-declaration \
	-Werror=int-conversion -I"$tmp/include" ${SAN_CFLAGS:-} \
	-o "$tmp/calls" "$tmp/calls.c" "$lib" -Wl,-z,now 2>"$tmp/cc.log"; then
	die "a program calling every declared function does not build:"
	cat "$tmp/cc.log" "$tmp/calls.c" >&2
elif ! LD_LIBRARY_PATH=$(dirname "$lib") "$tmp/calls" >/dev/null; then
	die "a program calling every declared function does not load"
fi

[ "$fail" = 0 ] || exit 1
echo "check-exports: $(wc -l <"$tmp/header-names") functions agree"
