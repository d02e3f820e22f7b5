#!/usr/bin/env bash
# bench-create.sh [-n RUNS] [--vmm auto|firecracker|qemu] [--image NAME]
#
# `make bench-create`: creates and deletes RUNS VMs (default 5) one after
# the other and prints one JSON line per run with its phase timings in ms
# (image, disks, tap, vmm_start, dns, nat, healthy, ssh, total) and the
# times of the rest of its life (stop, start, restart, delete), then one
# summary line per phase {"phase","min","median","max"}, then a bare VMM
# boot of the same kernel and disks without banger (QEMU started by hand,
# timed to the console's login prompt) and {"banger_total_median_ms",
# "bare_boot_ms","ratio"}. Like verify.sh it runs inside a network
# namespace it makes and removes. Root only.
set -euo pipefail
RUNS=5 VMM=${BANGER_VMM:-} IMAGE= INSIDE=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n) RUNS=$2; shift ;;
    --vmm) VMM=$2; shift ;;
    --image) IMAGE=$2; shift ;;
    --inside) INSIDE=1 ;;
    *) echo "bench-create.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
here=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${BANGER_BIN:-}" ]; then
  for d in "$here/target/release" "$here/target/debug"; do
    [ -x "$d/banger-vm" ] && { BANGER_BIN=$d; break; }
  done
fi
[ -n "${BANGER_BIN:-}" ] && export PATH="$BANGER_BIN:$PATH"
export BANGER_BIN

if [ "$INSIDE" = 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "bench-create.sh: run it as root" >&2; exit 4; }
  ns=bv-bench-$$
  ip netns add "$ns"
  trap 'for p in $(ip netns pids '"$ns"' 2>/dev/null); do kill -9 $p 2>/dev/null; done; ip netns del '"$ns"'' EXIT
  ip -n "$ns" link set lo up
  args=(--inside -n "$RUNS")
  [ -n "$VMM" ] && args+=(--vmm "$VMM")
  [ -n "$IMAGE" ] && args+=(--image "$IMAGE")
  ip netns exec "$ns" "$0" "${args[@]}"
  exit $?
fi

banger-net setup >/dev/null
trap 'banger-net dns stop >/dev/null 2>&1; banger-net teardown >/dev/null 2>&1' EXIT
create_args=(--timings)
[ -n "$VMM" ] && create_args+=(--vmm "$VMM")
[ -n "$IMAGE" ] && create_args+=(--image "$IMAGE")
runs=$(mktemp)
first=
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# Milliseconds a command takes (its output discarded).
timed() { local t0; t0=$(now_ms); "$@" >/dev/null; echo $(( $(now_ms) - t0 )); }
for i in $(seq 1 "$RUNS"); do
  name=bench-$$-$i
  rec=$(banger-vm create --name "$name" "${create_args[@]}")
  [ -z "$first" ] && first=$rec
  # The rest of a VM's life: a clean stop, a start to ssh, a restart, a delete.
  stop=$(timed banger-vm stop "$name")
  start=$(timed banger-vm start "$name")
  restart=$(timed banger-vm restart "$name")
  delete=$(timed banger-vm delete "$name")
  echo "$rec" | jq -c --argjson run "$i" --argjson stop "$stop" --argjson start "$start" \
    --argjson restart "$restart" --argjson delete "$delete" \
    '{run: $run, vmm} + .timings_ms + {stop: $stop, start: $start, restart: $restart, delete: $delete}' \
    | tee -a "$runs"
done
jq -s -c '
  (.[0] | keys_unsorted | map(select(. != "run" and . != "vmm"))) as $phases
  | . as $all
  | $phases[]
  | . as $p
  | [$all[][$p]] | sort
  | {phase: $p, min: .[0], median: .[(length / 2 | floor)], max: .[-1]}' "$runs"
median_total=$(jq -s '[.[].total] | sort | .[(length / 2 | floor)]' "$runs")
rm -f "$runs"

# The same boot by hand: QEMU with the same kernel, initrd and disks, no
# banger, no network; timed from spawn to the login prompt on the console.
vmm=$(echo "$first" | jq -r .vmm)
if [ "$vmm" != qemu ]; then
  echo "{\"banger_total_median_ms\": $median_total, \"bare_boot_ms\": null, \"note\": \"bare boot is measured for qemu only\"}"
  exit 0
fi
img=$(banger-image show "$(echo "$first" | jq -r .image)")
tmp=$(mktemp -d)
cp --reflink=auto --sparse=always "$(echo "$img" | jq -r .rootfs)" "$tmp/rootfs.ext4"
if [ "$(echo "$img" | jq -r '.work_seed // empty')" != "" ]; then
  cp --reflink=auto --sparse=always "$(echo "$img" | jq -r .work_seed)" "$tmp/work.ext4"
else
  truncate -s 64M "$tmp/work.ext4" && mkfs.ext4 -q -F "$tmp/work.ext4"
fi
accel=tcg
grep -qw -e vmx -e svm /proc/cpuinfo && [ ! -e /sys/module/kvm_pvm ] && [ -w /dev/kvm ] && accel=kvm
initrd=$(echo "$first" | jq -r '.initrd // empty')
start=$(date +%s%N)
qemu-system-x86_64 -M microvm -accel "$accel" -m "$(echo "$first" | jq .memory_mib)" \
  -smp "$(echo "$first" | jq .vcpus)" -nodefaults -no-user-config -nographic \
  -kernel "$(echo "$first" | jq -r .kernel)" ${initrd:+-initrd "$initrd"} \
  -append "console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rw" \
  -drive id=root,file="$tmp/rootfs.ext4",format=raw,if=none -device virtio-blk-device,drive=root \
  -drive id=work,file="$tmp/work.ext4",format=raw,if=none -device virtio-blk-device,drive=work \
  -serial "file:$tmp/console.log" -display none &
qpid=$!
bare=null
for _ in $(seq 1 1800); do
  if grep -q "login:" "$tmp/console.log" 2>/dev/null; then
    bare=$(( ($(date +%s%N) - start) / 1000000 )); break
  fi
  sleep 0.1
done
kill "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null || true
rm -rf "$tmp"
jq -n -c --argjson b "$median_total" --argjson bare "$bare" \
  '{banger_total_median_ms: $b, bare_boot_ms: $bare, ratio: (if $bare then ($b / $bare * 100 | round / 100) else null end)}'
