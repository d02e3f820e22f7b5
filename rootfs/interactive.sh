#!/usr/bin/env bash
# A root shell inside an image's rootfs for manual changes:
#   sudo rootfs/interactive.sh ~/.local/share/banger/images/debian/rootfs.ext4
# The ext4 file is loop-mounted read-write; proc/sys/dev are mounted for
# the chroot and everything is unmounted when the shell exits, however it
# exits. Afterwards `banger-image verify NAME` reports the changed checksum.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
[ $# -ge 1 ] || { echo "usage: interactive.sh ROOTFS.ext4 [COMMAND..]" >&2; exit 2; }
img=$1; shift
[ "$(id -u)" = 0 ] || die "needs root (mount, chroot)"
[ -f "$img" ] || die "$img does not exist"
mnt=$(mktemp -d /tmp/banger-chroot.XXXXXX)
cleanup() { umount_tree "$mnt"; rmdir "$mnt"; }
trap cleanup EXIT
mount -o loop "$img" "$mnt"
mount_chroot "$mnt"
if [ $# -eq 0 ]; then set -- /bin/bash -l; fi
chroot "$mnt" /usr/bin/env TERM="${TERM:-xterm}" HOME=/root "$@"
