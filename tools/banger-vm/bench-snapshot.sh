#!/usr/bin/env bash
# bench-snapshot.sh [-n RUNS] [--vmm qemu|firecracker] [--rootfs R --work-seed W
#                   --kernel K --initrd I --key KEY]
#
# `make bench-snapshot`: creates one VM (its cold create, to ssh, is the
# baseline), then RUNS times suspends it and resumes it, and prints one
# JSON line per run {"run","suspend_ms","state_bytes","resume_to_agent_ms",
# "ssh_after_resume_ms"}; then takes a golden snapshot of it
# {"snapshot_ms","paused_ms","state_bytes","disk_bytes"} and RUNS times
# makes a clone from it (create --from, to ssh) and deletes it
# {"run","clone_create_ms","clone_timings_ms"}; a summary line per measure
# {"measure","min","median","max"}, and {"cold_create_ms",
# "clone_vs_cold"} (median clone over cold). Root only. It runs in a world
# of its own, as bench-create.sh does (bench-world.sh): a network
# namespace and private XDG dirs, with the test image and kernel under
# target/guest unless named.
set -euo pipefail
RUNS=5 VMM=qemu INSIDE=0
ROOTFS= SEED= KERNEL= INITRD= KEY=
while [ $# -gt 0 ]; do
  case "$1" in
    -n) RUNS=$2; shift ;;
    --vmm) VMM=$2; shift ;;
    --rootfs) ROOTFS=$2; shift ;;
    --work-seed) SEED=$2; shift ;;
    --kernel) KERNEL=$2; shift ;;
    --initrd) INITRD=$2; shift ;;
    --key) KEY=$2; shift ;;
    --inside) INSIDE=1 ;;
    *) echo "bench-snapshot.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
die() { echo "bench-snapshot.sh: error: $*" >&2; exit "${2:-1}"; }
here=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${BANGER_BIN:-}" ]; then
  for d in "$here/target/release" "$here/target/debug"; do
    [ -x "$d/banger-vm" ] && { BANGER_BIN=$d; break; }
  done
fi
[ -n "${BANGER_BIN:-}" ] || die "no banger build: make build (or set BANGER_BIN)" 4
export BANGER_BIN PATH="$BANGER_BIN:$PATH"
. "$here/tools/banger-vm/bench-world.sh"
[ "$INSIDE" = 0 ] && bench_world_enter -n "$RUNS" --vmm "$VMM"

name=snapb-$$
bench_world_inside
gold=$name-gold clone=
trap 'banger-vm delete "$name" $clone >/dev/null 2>&1; banger-vm snapshots rm "$gold" >/dev/null 2>&1; banger-net dns stop >/dev/null 2>&1; banger-net teardown >/dev/null 2>&1' EXIT
create_args=(--timings --vmm "$VMM")
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
rec=$(banger-vm create --name "$name" "${create_args[@]}")
cold=$(echo "$rec" | jq '.timings_ms.total')
runs=$(mktemp)
for i in $(seq 1 "$RUNS"); do
  t0=$(now_ms)
  out=$(banger-vm suspend "$name")
  t1=$(now_ms)
  echo "$out" | jq -e '.ok' >/dev/null || { echo "suspend failed: $out" >&2; exit 1; }
  bytes=$(echo "$out" | jq '.bytes')
  banger-vm resume "$name" >/dev/null
  t2=$(now_ms)
  banger-vm ssh "$name" -- true
  t3=$(now_ms)
  jq -n -c --argjson run "$i" --argjson s $((t1 - t0)) --argjson b "$bytes" \
    --argjson r $((t2 - t1)) --argjson ssh $((t3 - t2)) \
    '{run: $run, suspend_ms: $s, state_bytes: $b, resume_to_agent_ms: $r, ssh_after_resume_ms: $ssh}' \
    | tee -a "$runs"
done
t0=$(now_ms)
snap=$(banger-vm snapshot "$name" --as "$gold")
t1=$(now_ms)
echo "$snap" | jq -c --argjson ms $((t1 - t0)) \
  '{snapshot_ms: $ms, paused_ms: .paused_ms, state_bytes: .bytes, disk_bytes: .disk_bytes}'
clones=$(mktemp)
for i in $(seq 1 "$RUNS"); do
  clone=$name-c$i
  out=$(banger-vm create --name "$clone" --from "$gold" --timings)
  echo "$out" | jq -c --argjson run "$i" \
    '{run: $run, clone_create_ms: .timings_ms.total, clone_timings_ms: .timings_ms}' | tee -a "$clones"
  banger-vm delete "$clone" >/dev/null
  clone=
done
cat "$clones" >> "$runs"
jq -s -c '
  . as $all
  | ["suspend_ms", "state_bytes", "resume_to_agent_ms", "ssh_after_resume_ms", "clone_create_ms"][]
  | . as $m
  | [$all[][$m]] | sort
  | map(select(. != null))
  | {measure: $m, min: .[0], median: .[(length / 2 | floor)], max: .[-1]}' "$runs"
median_clone=$(jq -s '[.[].clone_create_ms] | sort | .[(length / 2 | floor)]' "$clones")
rm -f "$runs" "$clones"
jq -n -c --argjson c "$cold" --argjson m "$median_clone" \
  '{cold_create_ms: $c, clone_vs_cold: (($m / $c * 100 | round) / 100)}'
