#!/usr/bin/env bash
# EXPERIMENTAL: a lean Void Linux guest (runit, musl) bootstrapped with
# xbps-static from a Void mirror: boot, sshd, the agent, bash as root's
# shell (leaving /bin/sh alone), and a work seed. Void's mirrors are not
# reachable from every machine (not from banger's CI): the script checks
# first and fails with "mirror unreachable" before it makes anything.
#
#   sudo rootfs/make-rootfs-void.sh --out DIR --pubkey FILE --agent FILE [--size 1G]
#   sudo rootfs/make-rootfs-void.sh --verify DIR/rootfs.ext4
# Env: VOID_MIRROR (default https://repo-default.voidlinux.org)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
mirror=${VOID_MIRROR:-https://repo-default.voidlinux.org}
out= pubkey= agent= size=1G work_size=1G verify=
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --pubkey) pubkey=$2; shift 2 ;;
    --agent) agent=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --verify) verify=$2; shift 2 ;;
    *) echo "usage: make-rootfs-void.sh --out DIR --pubkey FILE --agent FILE [--size S] | --verify ROOTFS" >&2; exit 2 ;;
  esac
done

# --verify: check a built Void rootfs without mounting it.
if [ -n "$verify" ]; then
  [ -f "$verify" ] || die "$verify does not exist (build it with: make rootfs-void)"
  fail=0
  for p in /usr/bin/bash /usr/bin/sshd /usr/local/bin/banger-vsock-agent \
           /etc/sv/banger-vsock-agent/run /etc/ssh/sshd_config.d/banger.conf /etc/fstab; do
    debugfs -R "stat $p" "$verify" 2>&1 | grep -q "Inode:" || { echo "missing $p" >&2; fail=1; }
  done
  debugfs -R 'cat /etc/passwd' "$verify" 2>/dev/null | grep -q '^root:.*:/bin/bash$' ||
    { echo "root's shell is not bash" >&2; fail=1; }
  [ $fail = 0 ] || die "$verify is not a complete banger Void image"
  echo "make-rootfs-void.sh: $verify looks complete" >&2
  exit 0
fi

STAGE_TOTAL=5
stage check
xbps_url="$mirror/static/xbps-static-latest.x86_64-musl.tar.xz"
curl -fsS -o /dev/null --max-time 15 -I "$xbps_url" 2>/dev/null ||
  die "mirror unreachable: $xbps_url (set VOID_MIRROR to a Void mirror this machine can reach)"
[ -n "$out" ] && [ -n "$pubkey" ] && [ -n "$agent" ] || die "--out, --pubkey and --agent are required"
[ "$(id -u)" = 0 ] || die "building an image needs root (chroot)"
[ -f "$pubkey" ] || die "public key $pubkey does not exist"
[ -f "$agent" ] || die "agent binary $agent does not exist (build it with: make agent)"

mkdir -p "$out"
tree="$out/void-tree" xbps="$out/xbps-static"
cleanup() {
  local rc=$?
  remove_tree "$tree"
  rm -rf "$xbps"
  [ $rc = 0 ] || rm -f "$out/rootfs.ext4" "$out/work-seed.ext4"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

stage "xbps-static"
mkdir -p "$xbps" "$tree"
curl -fsSL "$xbps_url" | tar -xJ -C "$xbps"
stage "bootstrap"
XBPS_ARCH=x86_64-musl "$xbps/usr/bin/xbps-install.static" -S -y -r "$tree" \
  -R "$mirror/current/musl" base-minimal bash openssh iproute2 tmux curl less ca-certificates

stage customize
install -m 0755 "$agent" "$tree/usr/local/bin/banger-vsock-agent"
mount_chroot "$tree"
chroot "$tree" /bin/sh -e <<CHROOT
# bash for root only: /bin/sh stays Void's (dash).
sed -i 's|^root:\(.*\):[^:]*$|root:\1:/bin/bash|' /etc/passwd
passwd -l root >/dev/null
install -d -m 0700 /root/.ssh
mkdir -p /etc/ssh/sshd_config.d /etc/ssh/authorized_keys
grep -q '^Include /etc/ssh/sshd_config.d' /etc/ssh/sshd_config || sed -i '1i Include /etc/ssh/sshd_config.d/*.conf' /etc/ssh/sshd_config
printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nAuthorizedKeysFile .ssh/authorized_keys /etc/ssh/authorized_keys/%%u\n' > /etc/ssh/sshd_config.d/banger.conf
mkdir -p /etc/sv/banger-vsock-agent
printf '#!/bin/sh\nmodprobe vmw_vsock_virtio_transport 2>/dev/null\nexec /usr/local/bin/banger-vsock-agent\n' > /etc/sv/banger-vsock-agent/run
chmod 0755 /etc/sv/banger-vsock-agent/run
ln -sf /etc/sv/sshd /etc/runit/runsvdir/default/sshd
ln -sf /etc/sv/banger-vsock-agent /etc/runit/runsvdir/default/banger-vsock-agent
ln -sf /etc/sv/agetty-ttyS0 /etc/runit/runsvdir/default/agetty-ttyS0
printf '/dev/vda / ext4 defaults 0 0\n/dev/vdb /root ext4 defaults,nofail 0 0\n' > /etc/fstab
CHROOT
install -m 0600 "$pubkey" "$tree/root/.ssh/authorized_keys"
install -m 0644 "$pubkey" "$tree/etc/ssh/authorized_keys/root"
# ip= from the kernel command line, and the nested /root repair, at boot.
install -D -m 0755 "$here/banger-ipconfig" "$tree/usr/local/sbin/banger-ipconfig"
cat >> "$tree/etc/rc.local" <<'RC'
/usr/local/sbin/banger-ipconfig
if [ -d /root/root ]; then (cd /root/root && for e in .[!.]* *; do [ -e "$e" ] && [ ! -e "/root/$e" ] && mv "$e" /root/; done); rmdir /root/root 2>/dev/null; fi
RC
umount_tree "$tree"

stage "rootfs.ext4 ($size)"
mkfs.ext4 -q -F -L banger-root -d "$tree" "$out/rootfs.ext4" "$size"
stage "work-seed.ext4"
mkfs.ext4 -q -F -L banger-work -d "$tree/root" "$out/work-seed.ext4" "$work_size"
debugfs -w -R 'set_inode_field / mode 040700' "$out/work-seed.ext4" 2>/dev/null
echo "make-rootfs-void.sh: built $out/rootfs.ext4 and $out/work-seed.ext4" >&2
