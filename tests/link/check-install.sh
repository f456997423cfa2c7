#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Stage an install of the build tree, then build and run tests/link/hello.c
# against it using nothing but the installed svqiso.pc, the way a user would.
#
# Usage: check-install.sh HELLO_C
# Environment (set by tests/meson.build): MESON BUILD_ROOT PREFIX LIBDIR
# INCLUDEDIR VERSION CC, BINDIR and PROXY (1 when svqiso-proxy is built),
# and SAN_CFLAGS for a sanitized build (a sanitized
# libsvqiso needs the sanitizer runtime in the program that loads it).
set -eu

hello_c=$1
: "${MESON:?}" "${BUILD_ROOT:?}" "${PREFIX:?}" "${LIBDIR:?}" "${INCLUDEDIR:?}"
: "${VERSION:?}" "${CC:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

$MESON install -C "$BUILD_ROOT" --destdir "$tmp/root" --no-rebuild --quiet

# meson's libdir and includedir are relative to the prefix unless absolute.
under_prefix() {
	case $1 in
	/*) echo "$1" ;;
	*) echo "$PREFIX/$1" ;;
	esac
}
stage_libdir=$tmp/root$(under_prefix "$LIBDIR")
stage_incdir=$tmp/root$(under_prefix "$INCLUDEDIR")
stage_bindir=$tmp/root$(under_prefix "${BINDIR:-bin}")

for f in "$stage_libdir/pkgconfig/svqiso.pc" "$stage_libdir/libsvqiso.so" \
	 "$stage_libdir/libsvqiso.a" "$stage_incdir/svqiso/svqiso.h" \
	 "$stage_incdir/svqiso/version.h"; do
	if [ ! -e "$f" ]; then
		echo "not installed: ${f#"$tmp/root"}" >&2
		exit 1
	fi
done

# svqiso-proxy is installed, runs from there and answers --help and --version.
if [ "${PROXY:-0}" = 1 ]; then
	proxy=$stage_bindir/svqiso-proxy
	if [ ! -x "$proxy" ]; then
		echo "not installed: ${proxy#"$tmp/root"}" >&2
		exit 1
	fi
	"$proxy" --help | grep -q '^Usage: svqiso-proxy --socket PATH --backend PATH' || {
		echo "svqiso-proxy --help: no usage line" >&2
		exit 1
	}
	got=$("$proxy" --version)
	if [ "$got" != "svqiso-proxy $VERSION" ]; then
		echo "svqiso-proxy --version says '$got', want $VERSION" >&2
		exit 1
	fi
	if "$proxy" --socket "$tmp/s" >/dev/null 2>&1; then
		echo "svqiso-proxy without --backend did not fail" >&2
		exit 1
	fi
fi

export PKG_CONFIG_PATH="$stage_libdir/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"

got=$(pkg-config --modversion svqiso)
if [ "$got" != "$VERSION" ]; then
	echo "svqiso.pc says version $got, want $VERSION" >&2
	exit 1
fi

# shellcheck disable=SC2046,SC2086	# word splitting is wanted here
$CC -o "$tmp/hello" "$hello_c" $(pkg-config --cflags --libs svqiso) ${SAN_CFLAGS:-}

out=$(LD_LIBRARY_PATH="$stage_libdir" "$tmp/hello")
echo "$out"
case $out in
"libsvqiso $VERSION: mem ok, 2 regions, 2 segments") ;;
*)
	echo "unexpected output from hello" >&2
	exit 1
	;;
esac

# The program must have loaded the staged library, not another one.
if command -v ldd >/dev/null 2>&1; then
	LD_LIBRARY_PATH="$stage_libdir" ldd "$tmp/hello" | grep -q "$stage_libdir/libsvqiso.so.0" || {
		echo "hello did not resolve libsvqiso from the staged tree" >&2
		exit 1
	}
fi
