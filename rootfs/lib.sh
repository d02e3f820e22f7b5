# Shared by the rootfs scripts: stage lines, the apt mirror, chroot mounts.
# Sourced, not run.

# `==> [N/T] NAME` on stderr: banger-image reads these lines to draw its
# progress; run alone they tell a person where the build is.
stage() {
  STAGE_N=$((${STAGE_N:-0} + 1))
  echo "==> [${STAGE_N}/${STAGE_TOTAL:-?}] $*" >&2
}

die() {
  echo "${0##*/}: error: $*" >&2
  exit 1
}

# The Debian mirror this machine's apt already uses (deb822 .sources files
# first, then one-line .list files), so a build needs no other network.
# BANGER_MIRROR overrides it.
apt_mirror() {
  local suite=$1 f
  if [ -n "${BANGER_MIRROR:-}" ]; then
    echo "$BANGER_MIRROR"
    return
  fi
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # Paragraphs separated by blank lines; take the first whose Suites has
    # the plain suite (not -security / -updates).
    awk -v suite="$suite" '
      BEGIN { RS = ""; FS = "\n" }
      {
        uris = ""; ok = 0; deb = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, u, /[ \t]+/); uris = u[1] }
          if ($i ~ /^Types:/ && $i ~ /(^|[ \t])deb([ \t]|$)/) deb = 1
          if ($i ~ /^Suites:/) { n = split($i, s, /[ \t]+/); for (j = 2; j <= n; j++) if (s[j] == suite) ok = 1 }
        }
        if (deb && ok && uris != "") { print uris; exit }
      }' "$f"
  done | head -n1 | grep . && return
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk -v suite="$suite" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }' | grep . && return
  return 1
}

# Mount what a chroot needs; umount_tree undoes it (and anything else left
# mounted below the tree, e.g. by a failed debootstrap).
mount_chroot() {
  local t=$1
  mount -t proc proc "$t/proc"
  mount -t sysfs sysfs "$t/sys"
  mount --bind /dev "$t/dev"
  mount -t devpts -o newinstance,ptmxmode=0666 devpts "$t/dev/pts" 2>/dev/null || true
}

umount_tree() {
  local t=$1 m
  [ -d "$t" ] || return 0
  t=$(cd "$t" && pwd -P)
  # Deepest first.
  for m in $(awk -v t="$t" '$2 == t || index($2, t "/") == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

# Remove a build tree: unmount first and never cross into another
# filesystem, so a mount that refused to go never takes /dev with it.
remove_tree() {
  local t=$1
  [ -e "$t" ] || return 0
  umount_tree "$t"
  rm -rf --one-file-system "$t"
}
