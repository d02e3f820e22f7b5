# Sourced by bench-create.sh and bench-snapshot.sh: the world a benchmark
# runs in. Outside (INSIDE=0): check root and the test image, make a
# network namespace and private XDG dirs with a bundle naming the image's
# kernel, initrd (if any) and key, and run "$0" --inside ARGS there. Inside: set up
# banger-net and register the image as the default, `bench`.
#
# Needs: here (the checkout), VMM, ROOTFS, SEED, KERNEL, INITRD, KEY (empty
# for the test image under target/guest), die(), and BANGER_BIN found.

bench_world_enter() { # ARGS... (for "$0" --inside)
  local guest=$here/target/guest
  [ "$(id -u)" = 0 ] || die "run it as root (network namespace, TAPs, VMs)" 4
  for t in jq ip python3; do command -v $t >/dev/null || die "$t is missing" 4; done
  ROOTFS=${ROOTFS:-$guest/data/banger/images/debian/rootfs.ext4}
  SEED=${SEED:-$guest/data/banger/images/debian/work-seed.ext4}
  # banger's own kernel, no initramfs (as make runtime-local installs it);
  # --kernel/--initrd name another, e.g. the packaged one under
  # $guest/kernel/ with its initrd.img.
  KERNEL=${KERNEL:-$guest/kernel-built/vmlinux}
  INITRD=${INITRD:-}
  KEY=${KEY:-$guest/id_ed25519}
  for f in "$ROOTFS" "$SEED" "$KERNEL" "$KEY"; do
    [ -f "$f" ] || die "$f is missing: build the test image and kernel (make test-live), or name yours with --rootfs, --work-seed, --kernel, --initrd, --key" 4
  done
  # The world: XDG dirs, runtime dir, bundle; short (socket paths).
  world=$(mktemp -d /tmp/bgrb.XXXXXX)
  ns=bgr-bench-$$
  bench_world_cleanup() {
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$world"
  }
  trap bench_world_cleanup EXIT
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  mkdir -p "$world/runtime"
  # No initrd: a name this runtime dir does not have.
  jq --arg k "$KERNEL" --arg i "${INITRD:-initrd.img}" --arg s "$KEY" --arg v "$VMM" \
     --arg a "$here/target/x86_64-unknown-linux-gnu/agent/banger-vsock-agent" \
     '.kernel = $k | .initrd = $i | .ssh_key = $s | .vmm = $v | .agent_path = $a' \
     "$here/runtime/bundle.json" > "$world/runtime/bundle.json"
  set +e
  ip netns exec "$ns" env -u XDG_RUNTIME_DIR \
    XDG_CONFIG_HOME="$world/config" XDG_DATA_HOME="$world/data" \
    XDG_STATE_HOME="$world/state" XDG_RUNTIME_DIR="$world/run" \
    BANGER_RUNTIME="$world/runtime" WORLD="$world" "$0" --inside \
    --rootfs "$ROOTFS" --work-seed "$SEED" "$@"
  exit $?
}

bench_world_inside() {
  banger-net setup >/dev/null
  banger-image register --name bench --rootfs "$ROOTFS" --work-seed "$SEED" >/dev/null
  banger-image default bench >/dev/null
}
