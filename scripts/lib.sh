# SPDX-License-Identifier: MIT
# Shared by scripts/test, scripts/demo and scripts/bench; sourced, not run.

# Everything the build, the tests, the demo and the benchmarks need
# (qemu-system-common brings qemu-storage-daemon, dpdk-dev DPDK's testpmd).
packages=(meson ninja-build gcc libc6-dev pkg-config check liburing-dev
	  binutils valgrind qemu-system-common dpdk-dev)
# The fuzz targets (tests/fuzz): clang and its libFuzzer runtime.
fuzz_packages=(clang libclang-rt-14-dev)

# install_packages NAME [PACKAGE...]: apt-get install whatever of the
# packages (default: all of the above) is missing. Needs root to install.
install_packages() {
	local who=$1 missing=() p

	shift
	[ $# -gt 0 ] || set -- "${packages[@]}"
	if ! command -v dpkg-query >/dev/null; then
		echo "$who: not Debian; assuming $* are present"
		return
	fi
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		     grep -q 'install ok installed'; then
			missing+=("$p")
		fi
	done
	[ ${#missing[@]} -eq 0 ] && return
	if [ "$(id -u)" -ne 0 ]; then
		echo "$who: missing packages: ${missing[*]}" >&2
		echo "$who: install them (apt-get install ${missing[*]}) or run as root" >&2
		exit 1
	fi
	echo "$who: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Another apt may hold the locks for a while: wait rather than fail.
	apt-get -o DPkg::Lock::Timeout=600 update
	apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
		"${missing[@]}"
}

# guest_kernel: the newest /boot/vmlinuz-VERSION whose modules are in
# /lib/modules/VERSION (linux-image-amd64), for suite "qemu"'s guests.
guest_kernel() {
	local k best=

	for k in $(ls /boot/vmlinuz-* 2>/dev/null | sort -V); do
		[ -f "/lib/modules/${k#/boot/vmlinuz-}/modules.dep" ] && best=$k
	done
	echo "$best"
}

# meson_setup DIR OPTION...: configure DIR, or reconfigure it with OPTION...
meson_setup() {
	local dir=$1

	shift
	if [ -f "$dir/meson-private/coredata.dat" ]; then
		meson setup --reconfigure "$dir" "$@"
	else
		meson setup "$dir" "$@"
	fi
}

# fuzz_setup DIR: configure DIR for the fuzz targets: clang, libFuzzer's
# coverage over every object, AddressSanitizer and UndefinedBehaviorSanitizer.
fuzz_setup() {
	CC=clang meson_setup "$1" -Dfuzz=enabled -Dtests=disabled \
		-Dbench=disabled -Db_sanitize=address,undefined -Db_lundef=false
}

# qsd_start DIR IMAGE-OPTS...: start qemu-storage-daemon exporting a
# vhost-user-blk device on DIR/vhost.sock; sets qsd_pid and qsd_sock.
# IMAGE-OPTS are the --blockdev arguments for node "file0".
qsd_start() {
	local dir=$1 i

	shift
	qsd_sock=$dir/vhost.sock
	qemu-storage-daemon --blockdev "$1" \
		--blockdev "driver=raw,node-name=disk0,file=file0${2:-}" \
		--export "type=vhost-user-blk,id=exp0,addr.type=unix,addr.path=$qsd_sock,node-name=disk0,writable=on,num-queues=2" \
		>"$dir/qsd.log" 2>&1 &
	qsd_pid=$!
	for i in $(seq 1000); do
		[ -S "$qsd_sock" ] && return 0
		kill -0 "$qsd_pid" 2>/dev/null || break
		sleep 0.01
	done
	echo "qemu-storage-daemon did not start:" >&2
	cat "$dir/qsd.log" >&2
	return 1
}

# qsd_stop: stop the daemon qsd_start started, by pid.
qsd_stop() {
	[ -n "${qsd_pid:-}" ] || return 0
	kill "$qsd_pid" 2>/dev/null || true
	wait "$qsd_pid" 2>/dev/null || true
	qsd_pid=
}
