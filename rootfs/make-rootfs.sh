#!/usr/bin/env bash
# Build a banger guest image: a minbase Debian made with debootstrap from
# this machine's apt mirror, customized in a chroot (rootfs/customize.sh),
# packed with `mkfs.ext4 -d` (no loop mount) into rootfs.ext4 plus a
# work-seed.ext4 holding /root. `banger-image build` runs this; it also
# works alone:
#
#   sudo rootfs/make-rootfs.sh --out /tmp/img --pubkey ~/.ssh/id_ed25519.pub \
#        --agent target/x86_64-unknown-linux-gnu/agent/banger-vsock-agent
#
# Stages print `==> [N/T] NAME` on stderr. Any failure unmounts what it
# mounted and removes everything it made under --out.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

usage() {
  cat >&2 <<'USAGE'
usage: make-rootfs.sh --out DIR --pubkey FILE --agent FILE [--suite bookworm]
       [--size 2G] [--work-size 1G] [--packages a,b] [--customize SCRIPT]
       [--profile default|dev] [--mirror URL] [--agent-unit FILE]
USAGE
  exit 2
}

out= suite=bookworm size=2G work_size=1G packages= customize= profile=default
mirror= pubkey= agent= agent_unit=
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --suite) suite=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --work-size) work_size=$2; shift 2 ;;
    --packages) packages=$2; shift 2 ;;
    --customize) customize=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    --pubkey) pubkey=$2; shift 2 ;;
    --agent) agent=$2; shift 2 ;;
    --agent-unit) agent_unit=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "make-rootfs.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$out" ] && [ -n "$pubkey" ] && [ -n "$agent" ] || usage
case $profile in default|dev) ;; *) die "unknown profile $profile (default or dev)" ;; esac
STAGE_TOTAL=5
[ "$profile" = dev ] && STAGE_TOTAL=6

stage check
[ "$(id -u)" = 0 ] || die "building an image needs root (debootstrap, chroot)"
for t in debootstrap mkfs.ext4 debugfs chroot curl; do
  command -v "$t" >/dev/null || die "$t is missing; install it: apt-get install $(
    case $t in debootstrap) echo debootstrap ;; mkfs.ext4|debugfs) echo e2fsprogs ;; curl) echo curl ;; *) echo coreutils ;; esac)"
done
[ -f "$pubkey" ] || die "public key $pubkey does not exist"
grep -q '^ssh-' "$pubkey" || die "$pubkey is not an OpenSSH public key"
[ -f "$agent" ] || die "agent binary $agent does not exist (build it with: make agent)"
[ -z "$customize" ] || [ -f "$customize" ] || die "customize script $customize does not exist"
[ -z "$agent_unit" ] || [ -f "$agent_unit" ] || die "agent unit $agent_unit does not exist"
if [ -n "$packages" ] && ! [[ $packages =~ ^[a-z0-9][a-z0-9+.,-]*$ ]]; then
  die "--packages must be Debian package names separated by commas: $packages"
fi
if [ -z "$mirror" ]; then
  mirror=$(apt_mirror "$suite") || die "no apt mirror for $suite in /etc/apt/sources.list{,.d}; pass --mirror URL"
fi
curl -fsS -o /dev/null --max-time 20 "$mirror/dists/$suite/Release" ||
  die "mirror unreachable: $mirror/dists/$suite/Release"
if [ "$profile" = dev ]; then
  # The dev extras come from registries; refuse early, before minutes of
  # debootstrap, when one cannot be reached.
  . "$here/profile-dev.sh"
  dev_check
fi

mkdir -p "$out"
tree="$out/tree"
made=()
cleanup() {
  local rc=$?
  remove_tree "$tree"
  if [ $rc -ne 0 ]; then
    for f in "${made[@]}"; do rm -f "$f"; done
    echo "${0##*/}: failed (exit $rc); removed the half-made image under $out" >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
[ ! -e "$tree" ] || remove_tree "$tree"
mkdir "$tree"

base="systemd,systemd-sysv,udev,openssh-server,iproute2,iputils-ping,bash,tmux"
base+=",ca-certificates,less,curl,procps,kmod,netbase"
# acpid: the power button powers the guest off (customize.sh says why).
base+=",acpid"
[ "$profile" = dev ] && base+=",nodejs,npm,git"
stage "debootstrap $suite from $mirror"
debootstrap --variant=minbase --include="$base${packages:+,$packages}" \
  "$suite" "$tree" "$mirror"

stage customize
install -d -m 0700 "$tree/tmp/banger"
install -m 0644 "$pubkey" "$tree/tmp/banger/authorized_keys"
install -m 0755 "$agent" "$tree/tmp/banger/banger-vsock-agent"
[ -n "$agent_unit" ] || agent_unit="$here/banger-vsock-agent.service"
if [ -f "$agent_unit" ]; then
  install -m 0644 "$agent_unit" "$tree/tmp/banger/banger-vsock-agent.service"
fi
install -m 0755 "$here/customize.sh" "$here/banger-ipconfig" "$tree/tmp/banger/"
[ -z "$customize" ] || install -m 0755 "$customize" "$tree/tmp/banger/user-customize"
mount_chroot "$tree"
chroot "$tree" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 /bin/bash /tmp/banger/customize.sh
if [ "$profile" = dev ]; then
  stage "dev profile"
  dev_install "$tree"
fi
if [ -n "$customize" ]; then
  chroot "$tree" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 /tmp/banger/user-customize
fi
umount_tree "$tree"
rm -rf "$tree/tmp/banger" "$tree/var/cache/apt/archives/"*.deb "$tree/var/lib/apt/lists/"*_Packages

stage "rootfs.ext4 ($size)"
made+=("$out/rootfs.ext4")
rm -f "$out/rootfs.ext4"
mkfs.ext4 -q -F -L banger-root -d "$tree" "$out/rootfs.ext4" "$size"

stage "work-seed.ext4 ($work_size)"
made+=("$out/work-seed.ext4")
rm -f "$out/work-seed.ext4"
mkfs.ext4 -q -F -L banger-work -d "$tree/root" "$out/work-seed.ext4" "$work_size"
# mkfs -d leaves the filesystem's top dir 0755; it becomes /root.
debugfs -w -R 'set_inode_field / mode 040700' "$out/work-seed.ext4" 2>/dev/null
echo "${0##*/}: built $out/rootfs.ext4 and $out/work-seed.ext4" >&2
