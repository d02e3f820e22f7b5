#!/usr/bin/env bash
# bench-snapshot.sh [-n RUNS] [--vmm auto|firecracker|qemu] [--image NAME]
#
# `make bench-snapshot`: creates one VM (its cold create, to ssh, is the
# baseline), then RUNS times suspends it and resumes it, and prints one
# JSON line per run {"run","suspend_ms","state_bytes","resume_to_agent_ms",
# "ssh_after_resume_ms"}, a summary line per measure {"measure","min",
# "median","max"}, and {"cold_create_ms"}. Like verify.sh it runs inside a
# network namespace it makes and removes. Root only. It uses the caller's
# banger world (XDG dirs, BANGER_RUNTIME) as it is.
set -euo pipefail
RUNS=5 VMM=${BANGER_VMM:-} IMAGE= INSIDE=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n) RUNS=$2; shift ;;
    --vmm) VMM=$2; shift ;;
    --image) IMAGE=$2; shift ;;
    --inside) INSIDE=1 ;;
    *) echo "bench-snapshot.sh: unknown argument $1" >&2; exit 2 ;;
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
  [ "$(id -u)" = 0 ] || { echo "bench-snapshot.sh: run it as root" >&2; exit 4; }
  ns=bv-snapb-$$
  ip netns add "$ns"
  trap 'for p in $(ip netns pids '"$ns"' 2>/dev/null); do kill -9 $p 2>/dev/null; done; ip netns del '"$ns"'' EXIT
  ip -n "$ns" link set lo up
  args=(--inside -n "$RUNS")
  [ -n "$VMM" ] && args+=(--vmm "$VMM")
  [ -n "$IMAGE" ] && args+=(--image "$IMAGE")
  ip netns exec "$ns" "$0" "${args[@]}"
  exit $?
fi

name=snapb-$$
banger-net setup >/dev/null
trap 'banger-vm delete "$name" >/dev/null 2>&1; banger-net dns stop >/dev/null 2>&1; banger-net teardown >/dev/null 2>&1' EXIT
create_args=(--timings)
[ -n "$VMM" ] && create_args+=(--vmm "$VMM")
[ -n "$IMAGE" ] && create_args+=(--image "$IMAGE")
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
jq -s -c '
  . as $all
  | ["suspend_ms", "state_bytes", "resume_to_agent_ms", "ssh_after_resume_ms"][]
  | . as $m
  | [$all[][$m]] | sort
  | {measure: $m, min: .[0], median: .[(length / 2 | floor)], max: .[-1]}' "$runs"
rm -f "$runs"
jq -n -c --argjson c "$cold" '{cold_create_ms: $c}'
