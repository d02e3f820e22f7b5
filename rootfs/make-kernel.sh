#!/usr/bin/env bash
# The guest kernel and initramfs from Debian's own packages, for Firecracker
# and QEMU alike:
#   OUT/vmlinux      ELF kernel (both VMMs boot an uncompressed ELF; QEMU via PVH)
#   OUT/initrd.img   busybox initramfs: loads the virtio/console modules (vsock
#                    ones only for a vsock device: Firecracker), then
#                    switch_roots to root=, or without root= runs as a tiny
#                    initramfs-only guest (tests) under busybox init
#   OUT/kernel.json  what was built: package, version, modules
#
# Usage: rootfs/make-kernel.sh [OUT_DIR]        (default: runtime/)
# Env:   KERNEL_PACKAGE   the metapackage to follow (linux-image-cloud-amd64)
#        KERNEL_MODULES   module names to load at boot (space separated)
#        FORCE=1          rebuild even when OUT is current
#
# Needs: apt-get, dpkg-deb, busybox-static, cpio, gzip, lz4 (and xz/zstd
# when Debian compresses the kernel or modules that way). No root needed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../runtime}
package=${KERNEL_PACKAGE:-linux-image-cloud-amd64}
modules=${KERNEL_MODULES:-"virtio_mmio virtio_blk virtio_net virtio_console vmw_vsock_virtio_transport ext4 button evdev"}

die() { echo "make-kernel: error: $*" >&2; exit 1; }
say() { echo "make-kernel: $*" >&2; }

for t in apt-get apt-cache dpkg-deb cpio gzip; do
  command -v "$t" >/dev/null || die "$t is missing (apt-get install ${t/apt-*/apt})"
done
busybox=$(command -v busybox || true)
[ -n "$busybox" ] && file_is_static=$(LC_ALL=C od -An -c -N4 "$busybox" | tr -d ' ')
[ -n "$busybox" ] && [ "${file_is_static:-}" = '177ELF' ] || die "busybox is missing (apt-get install busybox-static)"
ldd "$busybox" >/dev/null 2>&1 && die "$busybox is dynamically linked; apt-get install busybox-static"

# The metapackage names the real image package: follow it.
real=$(apt-cache depends "$package" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
case $real in
  linux-image-*) ;;
  *) if apt-cache show "$package" >/dev/null 2>&1; then real=$package; else
       die "apt does not know $package; run apt-get update"; fi ;;
esac
version=$(apt-cache policy "$real" | awk '/Candidate:/ {print $2}')
[ -n "$version" ] && [ "$version" != "(none)" ] || die "no candidate version of $real; run apt-get update"
script_sum=$(sha256sum "$0" | cut -c1-16)
stamp="$real $version $script_sum $modules"

mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ "${FORCE:-0}" != 1 ] && [ -f "$out/vmlinux" ] && [ -f "$out/initrd.img" ] \
   && [ "$(cat "$out/.make-kernel.stamp" 2>/dev/null)" = "$stamp" ]; then
  say "$out is current ($real $version)"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/make-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT

say "downloading $real $version"
(cd "$work" && apt-get download -q "$real=$version" >/dev/null 2>"$work/apt.err") \
  || { cat "$work/apt.err" >&2; die "apt-get download $real failed"; }
dpkg-deb -x "$work"/*.deb "$work/pkg"
vmlinuz=$(ls "$work"/pkg/boot/vmlinuz-* | head -1)
kver=${vmlinuz##*/vmlinuz-}
moddir=$work/pkg/lib/modules/$kver
[ -d "$moddir" ] || die "$real has no /lib/modules/$kver"

# --- vmlinux: find the compressed payload inside the bzImage by its magic,
# as the kernel's scripts/extract-vmlinux does, and keep the first
# candidate that decompresses to an ELF.
is_elf() { [ "$(od -An -c -N4 "$1" 2>/dev/null | tr -d ' ')" = '177ELF' ]; }
try() { # MAGIC(grep -P) COMMAND...
  local gp=$1; shift
  local off
  for off in $(LC_ALL=C grep -obUaP "$gp" "$vmlinuz" 2>/dev/null | cut -d: -f1); do
    tail -c +$((off + 1)) "$vmlinuz" | "$@" >"$work/vmlinux" 2>/dev/null || true
    if is_elf "$work/vmlinux"; then say "vmlinux: ${*} payload at byte $off"; return 0; fi
  done
  return 1
}
is_elf "$vmlinuz" && cp "$vmlinuz" "$work/vmlinux" \
  || try '\x02\x21\x4c\x18' lz4 -dc \
  || try '\x1f\x8b\x08' gzip -dc \
  || try '\xfd7zXZ\x00' xz -dc \
  || try '\x28\xb5\x2f\xfd' zstd -dc \
  || try 'BZh' bzip2 -dc \
  || try '\x5d\x00\x00\x00' xz -dc --format=lzma \
  || die "no ELF found inside $vmlinuz (is lz4/xz/zstd installed?)"

# --- initramfs
root=$work/initramfs
mkdir -p "$root"/{bin,dev,proc,sys,newroot,etc/acpi/PWRF,lib/modules,run,tmp,var/log}
ln -s ../run "$root/var/run"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
ln -s bin "$root/sbin"

# Index the package's modules by name (file names may use - for _).
declare -A path_of
while IFS= read -r f; do
  name=${f##*/}; name=${name%%.ko*}; name=${name//-/_}
  path_of[$name]=$f
done < <(find "$moddir/kernel" -name '*.ko*')
builtin() { grep -q "/${1//_/[-_]}\.ko\$" "$moddir/modules.builtin" 2>/dev/null; }

declare -A done_mod
load_list=()
add_module() { # NAME: its dependencies first, then itself
  local m=${1//-/_}
  [ -n "${done_mod[$m]:-}" ] && return 0
  done_mod[$m]=1
  if [ -z "${path_of[$m]:-}" ]; then
    builtin "$m" && return 0
    die "module $m is neither built in nor shipped in $real"
  fi
  local src=${path_of[$m]} dst=$root/lib/modules/$m.ko
  case $src in
    *.ko.xz) xz -dc "$src" >"$dst" ;;
    *.ko.zst) zstd -qdc "$src" >"$dst" ;;
    *.ko.gz) gzip -dc "$src" >"$dst" ;;
    *) cp "$src" "$dst" ;;
  esac
  local deps d
  deps=$(tr '\0' '\n' <"$dst" | LC_ALL=C grep -a '^depends=' | head -1 | cut -d= -f2)
  for d in ${deps//,/ }; do add_module "$d"; done
  load_list+=("$m")
}
for m in $modules; do add_module "$m"; done
printf '%s\n' "${load_list[@]}" >"$root/lib/modules/load.list"

# busybox acpid runs /etc/acpi/PWRF/00000080 on the power button
# (QMP system_powerdown), so an initramfs-only guest powers off cleanly.
cat >"$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "banger-init: power button, powering off"
sync
poweroff -f
EOF
chmod 755 "$root/etc/acpi/PWRF/00000080"

cat >"$root/init" <<'EOF'
#!/bin/sh
# banger initramfs: load the virtio/vsock modules, apply ip= (address,
# route, hostname), then switch_root to root=; without root=, stay here as
# a tiny test guest under busybox init.
#
# For root=, it also does what would otherwise hold up the guest's boot:
# it writes ip='s hostname and DNS into the root's /etc and mounts the
# work disk at /root when the image's fstab asks for /dev/vdb there (the
# device exists as soon as virtio_blk is loaded; systemd would wait for
# udev's coldplug). /run is a tmpfs moved into the new root, carrying
# /run/banger/ipconfig.done, which tells the image's banger-ipconfig unit
# (for kernels booted without this initramfs) that there is nothing left
# to do.
export PATH=/bin
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
log() { echo "banger-init: $*"; }

# Each program run here is a fork (and often an exec) that costs tens of
# ms in an emulated guest: shell builtins wherever they do.

# A virtio device of type 19 (vsock): Firecracker's agent channel. QEMU's
# is a virtio-serial port, and its guests need no vsock modules.
has_vsock() {
  for d in /sys/bus/virtio/devices/*/device; do
    [ -r "$d" ] && read -r id <"$d" && [ "$id" = 0x0013 ] && return 0
  done
  return 1
}
while read -r m; do
  case $m in
    vsock|vmw_vsock_*) has_vsock || continue ;;
  esac
  insmod "/lib/modules/$m.ko" 2>/dev/null || log "insmod $m failed"
done </lib/modules/load.list

root= fstype=ext4 mode=ro init=/sbin/init ip= hostname=
read -r cmdline </proc/cmdline
for arg in $cmdline; do
  case $arg in
    root=*) root=${arg#root=} ;;
    rootfstype=*) fstype=${arg#rootfstype=} ;;
    rw) mode=rw ;;
    ro) mode=ro ;;
    init=*) init=${arg#init=} ;;
    ip=*) ip=${arg#ip=} ;;
  esac
done

# ip=GUEST::GW:MASK:HOST:IFACE:off[:DNS0[:DNS1]], the kernel's nfsroot form.
addr= gw= mask= hostname= iface= dns0= dns1=
if [ -n "$ip" ]; then
  IFS=: read -r addr _ gw mask hostname iface _ dns0 dns1 <<IP
$ip
IP
  iface=${iface:-eth0}
  [ -n "$hostname" ] && echo "$hostname" >/proc/sys/kernel/hostname
  ip link set lo up
  case $mask in
    *.*) bits=0
         ifs=$IFS; IFS=.; set -- $mask; IFS=$ifs
         for o in "$@"; do
           while [ "$o" -gt 0 ]; do bits=$((bits + (o & 1))); o=$((o >> 1)); done
         done ;;
    '') bits=24 ;;
    *) bits=$mask ;;
  esac
  # The address before the link comes up, and arp_notify: the kernel then
  # announces it (gratuitous ARP) as the link comes up. banger reuses a
  # released address for a VM with another MAC, and without the
  # announcement the host keeps sending to the old MAC until its ARP entry
  # ages out (~10-20 s of lost SYNs to sshd).
  echo 1 >"/proc/sys/net/ipv4/conf/$iface/arp_notify" 2>/dev/null
  [ -n "$addr" ] && ip addr add "$addr/$bits" dev "$iface"
  ip link set "$iface" up || log "no network device $iface"
  [ -n "$gw" ] && ip route add default via "$gw"
  log "$iface $addr/$bits gw ${gw:--} host ${hostname:--} dns ${dns0:--}"
fi

# The root's /etc as ip= says: hostname, its hosts line, resolv.conf. Only
# on a root mounted rw; otherwise banger-ipconfig does it later.
etc_from_ip() {
  e=/newroot/etc
  [ -n "$ip" ] && [ "$mode" = rw ] && [ -d "$e" ] || return 1
  if [ -n "$hostname" ]; then
    echo "$hostname" >"$e/hostname"
    # hosts without its 127.0.1.1 line, then this guest's.
    hosts=
    if [ -f "$e/hosts" ]; then
      while IFS= read -r line || [ -n "$line" ]; do
        case $line in
          127.0.1.1[[:space:]]*) ;;
          *) hosts="$hosts$line
" ;;
        esac
      done <"$e/hosts"
    fi
    printf '%s127.0.1.1 %s\n' "$hosts" "$hostname" >"$e/hosts"
  fi
  if [ -n "$dns0$dns1" ]; then
    # A link (systemd-resolved's) is replaced, not written through.
    [ -L "$e/resolv.conf" ] && rm -f "$e/resolv.conf"
    for d in $dns0 $dns1; do echo "nameserver $d"; done >"$e/resolv.conf"
  fi
}

if [ -n "$root" ]; then
  case $root in
    UUID=*|LABEL=*) dev= ;;
    *) dev=$root ;;
  esac
  i=0
  while :; do
    [ -z "$dev" ] && dev=$(findfs "$root" 2>/dev/null)
    [ -n "$dev" ] && [ -b "$dev" ] && break
    i=$((i + 1))
    [ $i -ge 300 ] && { log "root device $root did not appear"; exec sh; }
    case $root in UUID=*|LABEL=*) dev= ;; esac
    sleep 0.1
  done
  mount -t "$fstype" -o "$mode" "$dev" /newroot || { log "mounting $dev failed"; exec sh; }
  mkdir -p /run/banger
  etc_from_ip && echo "$ip" >/run/banger/ipconfig.done
  # The work disk, where the image's fstab puts it (it says nofail: a
  # guest without one still boots).
  work=
  if [ -b /dev/vdb ] && [ -r /newroot/etc/fstab ]; then
    while read -r fdev fdir _; do
      [ "$fdev" = /dev/vdb ] && [ "$fdir" = /root ] && work=1
    done </newroot/etc/fstab
  fi
  if [ -n "$work" ]; then
    mount -t ext4 /dev/vdb /newroot/root && log "/dev/vdb on /root" || log "mounting /dev/vdb on /root failed"
  fi
  mount --move /dev /newroot/dev 2>/dev/null || umount /dev
  mount --move /run /newroot/run 2>/dev/null || umount /run
  umount /proc /sys
  exec switch_root /newroot "$init"
fi

acpid -c /etc/acpi -l /var/log/acpid.log
# From here busybox init is pid 1, not this script: a shell as pid 1
# ignores the signals that busybox init takes as poweroff (SIGUSR2) and
# reboot (SIGTERM), which the guest agent's POST /shutdown and /reboot send.
{
  [ -x /bin/banger-vsock-agent ] && echo "::respawn:/bin/banger-vsock-agent"
  echo "::respawn:/bin/cttyhack /bin/sh"
  echo "::shutdown:/bin/sync"
} >/etc/inittab
log "initramfs guest ready"
exec init
EOF
chmod 755 "$root/init"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -9 >"$work/initrd.img"

kernel_json=$(printf '{"package":"%s","version":"%s","kernel_release":"%s","modules":"%s"}' \
  "$real" "$version" "$kver" "${load_list[*]}")
# Install atomically enough: stamp last, so a half-done run is redone.
rm -f "$out/.make-kernel.stamp" "$out/.build-kernel.stamp"
mv "$work/vmlinux" "$out/vmlinux"
mv "$work/initrd.img" "$out/initrd.img"
echo "$kernel_json" >"$out/kernel.json"
echo "$stamp" >"$out/.make-kernel.stamp"
say "wrote $out/vmlinux and $out/initrd.img ($kver)"
echo "$kernel_json"
