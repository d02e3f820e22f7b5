#!/usr/bin/env bash
# banger's own guest kernel, built from Debian's linux-source package with
# rootfs/guest-kernel.config: virtio-mmio, block, net, console, vsock,
# ext4 and the kernel's ip= handling built in, so a guest boots with no
# initramfs (Firecracker and QEMU alike; QEMU enters the ELF through PVH).
#   OUT/vmlinux      ELF kernel
#   OUT/kernel.json  what was built: source package, version, release,
#                    config hash
# A packaged kernel's initrd.img left in OUT by make-kernel.sh is removed:
# the bundle boots whatever initrd.img it finds beside its kernel.
#
# Usage: rootfs/build-kernel.sh [OUT_DIR]        (default: runtime/)
# Env:   KERNEL_SOURCE_PACKAGE  Debian's source package (linux-source-6.1)
#        KERNEL_BUILD_DIR  where the source is unpacked and built, and kept
#                          for the next build (default: OUT/.kernel-build)
#        JOBS              parallel make jobs (default: nproc)
#        FORCE=1           rebuild even when OUT is current
#
# Needs: apt-get, dpkg-deb, xz, make, gcc, flex, bison, bc and libelf-dev
# (objtool). No root needed. About 10 minutes on two cores.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../runtime}
package=${KERNEL_SOURCE_PACKAGE:-linux-source-6.1}
config=$here/guest-kernel.config
jobs=${JOBS:-$(nproc)}

die() { echo "build-kernel: error: $*" >&2; exit 1; }
say() { echo "build-kernel: $*" >&2; }

for t in apt-get apt-cache dpkg-deb xz make gcc flex bison bc; do
  command -v "$t" >/dev/null || die "$t is missing (apt-get install build-essential flex bison bc xz-utils)"
done
[ -f /usr/include/gelf.h ] || die "libelf's headers are missing (apt-get install libelf-dev)"
[ -f "$config" ] || die "$config is missing"

version=$(apt-cache policy "$package" 2>/dev/null | awk '/Candidate:/ {print $2}')
[ -n "$version" ] && [ "$version" != "(none)" ] || die "no candidate version of $package; run apt-get update"
config_sum=$(sha256sum "$config" | cut -c1-16)
stamp="$package $version $config_sum $(sha256sum "$0" | cut -c1-16)"

mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ "${FORCE:-0}" != 1 ] && [ -f "$out/vmlinux" ] \
   && [ "$(cat "$out/.build-kernel.stamp" 2>/dev/null)" = "$stamp" ]; then
  say "$out is current ($package $version)"
  exit 0
fi
build=${KERNEL_BUILD_DIR:-$out/.kernel-build}
mkdir -p "$build"
build=$(cd "$build" && pwd)
src=$build/linux

# The source tree is kept between builds of the same package version: a
# config change then rebuilds only what it touches.
if [ "$(cat "$build/source.version" 2>/dev/null)" != "$package $version" ]; then
  rm -rf "$src" "$build/source.version" "$build/deb"
  tarball=/usr/src/$package.tar.xz
  installed=$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null || true)
  if [ "$installed" != "$version" ] || [ ! -f "$tarball" ]; then
    say "downloading $package $version"
    mkdir -p "$build/deb"
    (cd "$build/deb" && apt-get download -q "$package=$version" >/dev/null 2>"$build/apt.err") \
      || { cat "$build/apt.err" >&2; die "apt-get download $package failed"; }
    dpkg-deb -x "$build"/deb/*.deb "$build/deb/root"
    tarball=$(ls "$build"/deb/root/usr/src/linux-source-*.tar.xz | head -1)
  fi
  say "unpacking $tarball"
  mkdir -p "$src"
  tar -xJf "$tarball" -C "$src" --strip-components=1
  rm -rf "$build/deb"
  echo "$package $version" >"$build/source.version"
fi

cd "$src"
# The config is made beside .config and replaces it only when it differs:
# a rewritten .config, even an identical one, makes make rebuild it all.
# tinyconfig's steps are spelled out: its tiny.config step merges onto
# .config whatever KCONFIG_CONFIG says, so in a fresh tree it would start
# from an empty file and the result would be all defaults.
export KCONFIG_CONFIG=.config.next
rm -f .config.next
merge() {
  scripts/kconfig/merge_config.sh -m .config.next "$@" >"$build/merge.log" 2>&1 \
    || { cat "$build/merge.log" >&2; die "merging $* failed"; }
  make -s olddefconfig >/dev/null 2>&1 || die "make olddefconfig failed"
}
KCONFIG_ALLCONFIG=kernel/configs/tiny-base.config make -s allnoconfig >/dev/null 2>&1 \
  || die "make allnoconfig failed"
merge kernel/configs/tiny.config arch/x86/configs/tiny.config
merge "$config"
unset KCONFIG_CONFIG
if cmp -s .config.next .config; then rm -f .config.next; else mv .config.next .config; fi
rm -f .config.next.old
# Every option asked for must be what olddefconfig kept: a renamed option
# or an unmet dependency would otherwise drop it without a word.
bad=
while IFS= read -r line; do
  case $line in CONFIG_*=*) ;; *) continue ;; esac
  key=${line%%=*} want=${line#*=}
  got=$(grep "^$key=" .config | cut -d= -f2- || true)
  if [ "$want" = n ]; then
    [ -z "$got" ] || bad="$bad $key=$got(want n)"
  elif [ "$got" != "$want" ]; then
    bad="$bad $key=${got:-unset}(want $want)"
  fi
done <"$config"
[ -z "$bad" ] || die "the kernel's config did not take:$bad"

say "building vmlinux with $jobs jobs (about 10 minutes on two cores)"
make -j"$jobs" vmlinux >"$build/make.log" 2>&1 \
  || { tail -40 "$build/make.log" >&2; die "make vmlinux failed (log: $build/make.log)"; }
release=$(make -s kernelrelease)

kernel_json=$(printf '{"package":"%s","version":"%s","kernel_release":"%s","config":"%s","initrd":null}' \
  "$package" "$version" "$release" "$config_sum")
# Stamp last, so a half-done install is redone. A packaged kernel's
# initramfs would be booted with this kernel: it goes, with its stamp.
rm -f "$out/.build-kernel.stamp" "$out/.make-kernel.stamp"
[ ! -f "$out/initrd.img" ] || { rm -f "$out/initrd.img"; say "removed the packaged kernel's $out/initrd.img"; }
cp vmlinux "$out/vmlinux.tmp"
mv "$out/vmlinux.tmp" "$out/vmlinux"
echo "$kernel_json" >"$out/kernel.json"
echo "$stamp" >"$out/.build-kernel.stamp"
say "wrote $out/vmlinux ($release)"
echo "$kernel_json"
