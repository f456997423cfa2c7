#!/bin/sh
# SPDX-License-Identifier: MIT
#
# A bench program that stops at a usage error must leave the results of an
# earlier run in its output directory as they were.
#   check-keep.sh PROGRAM DIR NAME   (NAME: the program's result file stem)
set -eu
exe=$1 dir=$2 name=$3
mkdir -p "$dir"
printf 'earlier\n' >"$dir/$name.md"
printf '{"earlier":true}\n' >"$dir/$name.jsonl"
if "$exe" --out "$dir" --no-such-option >/dev/null 2>&1; then
	echo "$exe accepted --no-such-option"
	exit 1
fi
for f in "$dir/$name.md" "$dir/$name.jsonl"; do
	if ! grep -q earlier "$f"; then
		echo "$f was overwritten by a run that stopped at its options"
		exit 1
	fi
done
