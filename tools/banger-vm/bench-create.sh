#!/usr/bin/env bash
# bench-create.sh [-n RUNS] [--vmm qemu|firecracker] [--concurrent N]
#                 [--sizes] [--no-bare] [--no-life]
#                 [--rootfs F --work-seed F] [--kernel F] [--initrd F] [--key F]
#
# `make bench-create`: how long banger takes to give a shell, and how much
# of that is banger's own. Root only. It runs in a world of its own: a
# network namespace it makes, and private XDG config/data/state dirs and
# runtime dir with a runtime bundle of its own (like the tests'
# banger_testkit::Home), so it never reads or changes the host's banger
# state, network or daemons, and removes everything when it ends.
#
# Inputs: the image (rootfs + work seed), guest kernel (+ initrd) and the
# private key the image trusts. By default the Debian test image, kernel and
# key the live tests build into target/guest/ (`make test-live` makes
# them); the options name other files (read only, never written).
#
# Output, JSON lines on stdout (progress on stderr):
#   {"bench":"create","run":N,"vmm",...phases ms...,"stop","start","restart","delete"}
#       `vm create --timings` to ssh, then the rest of that VM's life
#   {"bench":"bare","run":N,"spawn","healthy","ssh","total"}
#       the same VM without banger (QEMU only): `banger-vm create
#       --no-start` makes its disks and TAP, `banger-vm spec NAME |
#       banger-qemu start --print-argv` gives the exact processes the
#       driver would run, with the descriptors they inherit; a small
#       launcher opens those (same files, TAP, QMP socket, same numbers)
#       before the clock starts, then runs the same argv as the same user
#       on "go", timed to the same readiness: the agent answers
#       (banger-health wait on the same socket), then sshd's banner
#       (banger-ssh wait)
#   {"bench":"summary","of":"create"|"bare","phase","min","median","p90","max"}
#   {"bench":"compare","banger_median","bare_median","banger_own","ratio"}
#       banger's own part: create's median minus the bare run's
#   {"bench":"concurrent","mode","creates":1|N,"own_median","own_max",
#    "total_median","total_max","vmm_start_median","phase_medians"}
#       `vm create --no-start` alone, then N at once (mode no-start: no
#       emulator on the cores), then the same with --no-wait (the VMMs
#       start, and the guests booted first load the cores); own is what
#       banger does besides the VMM driver (image + disks + tap + nat + dns)
#   {"bench":"disks","image","size","data","min","median","max"}   (--sizes)
#       the disks phase of `vm create --no-start` (max(RUNS, 10) runs) for
#       the image and for a copy grown to 8G with 3G of random data in it
# The create and bare runs alternate, so a changing load on a shared host
# weighs on both alike.
set -euo pipefail
RUNS=5 VMM=qemu CONC=10 SIZES=0 BARE=1 LIFE=1 INSIDE=0
ROOTFS= SEED= KERNEL= INITRD= KEY=
here=$(cd "$(dirname "$0")/../.." && pwd)
while [ $# -gt 0 ]; do
  case "$1" in
    -n) RUNS=$2; shift ;;
    --vmm) VMM=$2; shift ;;
    --concurrent) CONC=$2; shift ;;
    --sizes) SIZES=1 ;;
    --no-bare) BARE=0 ;;
    --no-life) LIFE=0 ;;
    --rootfs) ROOTFS=$2; shift ;;
    --work-seed) SEED=$2; shift ;;
    --kernel) KERNEL=$2; shift ;;
    --initrd) INITRD=$2; shift ;;
    --key) KEY=$2; shift ;;
    --inside) INSIDE=1 ;;
    -h|--help) sed -n '2,42p' "$0"; exit 0 ;;
    *) echo "bench-create.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
say() { echo "bench: $*" >&2; }
die() { echo "bench-create.sh: error: $*" >&2; exit "${2:-1}"; }
case $VMM in qemu|firecracker) ;; *) die "--vmm is qemu or firecracker" 2 ;; esac
# The bare run reproduces banger-qemu's launch; Firecracker's has no
# --print-argv yet.
[ "$VMM" = firecracker ] && BARE=0

if [ -z "${BANGER_BIN:-}" ]; then
  for d in "$here/target/release" "$here/target/debug"; do
    [ -x "$d/banger-vm" ] && { BANGER_BIN=$d; break; }
  done
fi
[ -n "${BANGER_BIN:-}" ] || die "no banger build: make build (or set BANGER_BIN)" 4
export BANGER_BIN PATH="$BANGER_BIN:$PATH"

. "$here/tools/banger-vm/bench-world.sh"
if [ "$INSIDE" = 0 ]; then
  args=(-n "$RUNS" --vmm "$VMM" --concurrent "$CONC")
  [ "$SIZES" = 1 ] && args+=(--sizes)
  [ "$BARE" = 0 ] && args+=(--no-bare)
  [ "$LIFE" = 0 ] && args+=(--no-life)
  bench_world_enter "${args[@]}"
fi

# --- inside the namespace and the world ---------------------------------
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
timed() { local t0; t0=$(now_ms); "$@" >/dev/null; echo $(( $(now_ms) - t0 )); }
results=$(mktemp "$WORLD/results.XXXX")
out() { tee -a "$results"; }
made=()
finish() {
  [ ${#made[@]} -gt 0 ] && banger-vm delete --force "${made[@]}" >/dev/null 2>&1 || true
  banger-net dns stop >/dev/null 2>&1 || true
  banger-net teardown >/dev/null 2>&1 || true
}
trap finish EXIT
bench_world_inside
base=(--image bench --vmm "$VMM")

# Per phase min/median/p90/max of the lines of $results with bench=$1.
summary() {
  jq -s -c --arg of "$1" '
    map(select(.bench == $of)) as $all
    | ($all[0] | keys_unsorted | map(select(. != "bench" and . != "run" and . != "vmm"))) as $phases
    | $phases[] as $p
    | [$all[][$p] | numbers] | sort
    | select(length > 0)
    | {bench: "summary", of: $of, phase: $p, min: .[0], median: .[(length / 2 | floor)],
       p90: .[((length * 9 / 10) | ceil) - 1], max: .[-1]}' "$results"
}
median_of() { # bench phase
  jq -s --arg of "$1" --arg p "$2" \
    '[.[] | select(.bench == $of) | .[$p] | numbers] | sort | if length > 0 then .[(length / 2 | floor)] else null end' "$results"
}

# A. vm create to ssh, then the rest of the VM's life.
create_run() { # RUN
  local i=$1 name=bc-$1 rec life delete
  say "create $name ($i/$RUNS)"
  made+=("$name")
  rec=$(banger-vm create --name "$name" --timings "${base[@]}")
  life='{}'
  if [ "$LIFE" = 1 ]; then
    stop=$(timed banger-vm stop "$name")
    start=$(timed banger-vm start "$name")
    restart=$(timed banger-vm restart "$name")
    life=$(jq -n -c --argjson a "$stop" --argjson b "$start" --argjson c "$restart" \
      '{stop: $a, start: $b, restart: $c}')
  fi
  delete=$(timed banger-vm delete "$name")
  echo "$rec" | jq -c --argjson run "$i" --argjson life "$life" --argjson delete "$delete" \
    '{bench: "create", run: $run, vmm} + .timings_ms + $life + {delete: $delete}' | out
}

# B. The same boot without banger: the driver's own processes, by hand.
# launch.py opens what `start --print-argv` lists (the same files, TAP and
# QMP socket, at the same descriptor numbers), says "ready", and on "go"
# starts the processes in order as their user, in their directory, as
# the driver does, then prints their pids. The clock runs from "go": the bare run
# is charged nothing of what it prepared, so banger's own part is, if
# anything, overstated.
cat >"$WORLD/launch.py" <<'PY'
import fcntl, json, os, pwd, socket, struct, sys, time
procs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
log = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
HIGH = 200
def high(fd):
    h = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, HIGH)
    os.close(fd)
    return h
plans = []
for p in procs:
    user = pwd.getpwnam(p["user"]) if p.get("user") else None
    os.makedirs(p["cwd"], exist_ok=True)
    if user:
        os.chown(p["cwd"], user.pw_uid, user.pw_gid)
    moves = []
    for f in p.get("fds", []):
        kind, path = f["open"], f["path"]
        if kind == "read":
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        elif kind == "read-write":
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        elif kind == "write":
            fd = os.open(path + ".bare", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        elif kind == "listen":
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(path)
            s.listen(16)
            fd = s.detach()
        elif kind == "tap":
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
            fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH22x", path.encode(), 0x0002 | 0x1000 | 0x4000))
        else:
            sys.exit("launch.py: unknown fd kind " + kind)
        moves.append((f["fd"], high(fd)))
    exe = high(os.open(p["program"], os.O_RDONLY | os.O_CLOEXEC))
    socks = []
    if p["process"] == "vhost-device-vsock":
        a = p["args"]
        socks = [os.path.join(p["cwd"], a[a.index(k) + 1]) for k in ("--socket", "--uds-path")]
    plans.append((p, user, moves, exe, socks))
print("ready", flush=True)
sys.stdin.readline()
pids = []
for p, user, moves, exe, socks in plans:
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(log, 1)
            os.dup2(log, 2)
            for target, src in moves:
                os.dup2(src, target, inheritable=True)
            os.set_inheritable(exe, True)
            os.chdir(p["cwd"])
            os.setsid()
            if user:
                os.setgroups(p.get("groups", []))
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)
            os.execv("/proc/self/fd/%d" % exe, [p["program"]] + p["args"])
        finally:
            os._exit(127)
    pids.append(pid)
    # Wait for the sockets it makes, as the driver does (5 ms polls).
    deadline = time.monotonic() + 20
    while not all(os.path.exists(s) for s in socks):
        if time.monotonic() > deadline:
            sys.exit("launch.py: %s made no sockets" % p["process"])
        time.sleep(0.005)
print(json.dumps({"pids": pids}), flush=True)
PY
bare_run() { # NAME RUN
  local name=$1 run=$2 lines t0 spawned healthy sshed pids ready
  banger-vm create --name "$name" --no-start "${base[@]}" >/dev/null
  lines=$(banger-vm spec "$name" | banger-qemu start --print-argv)
  local ip uds plan
  ip=$(banger-vm show "$name" | jq -r .ip)
  # The host side of the agent's virtio-serial port: a socket the launcher
  # binds, as banger-qemu does.
  uds=$(echo "$lines" | jq -r '.fds[] | select(.open == "listen" and (.path | endswith("agent.sock"))) | .path')
  [ -n "$uds" ] || die "banger-qemu --print-argv names no agent socket"
  plan=$(mktemp "$WORLD/plan.XXXX")
  echo "$lines" >"$plan"
  # Copies of the coprocess's pipes and pid: bash drops its own when the
  # launcher exits.
  local from to lpid
  coproc L { python3 -S "$WORLD/launch.py" "$plan" "$WORLD/bare-$name.log"; }
  lpid=$L_PID
  exec {from}<&"${L[0]}" {to}>&"${L[1]}"
  read -r ready <&"$from" || true
  [ "$ready" = ready ] || die "launch.py did not get ready for $name: $(tail -n 5 "$WORLD/bare-$name.log")"
  t0=$(now_ms)
  echo go >&"$to"
  read -r pids <&"$from" || die "launch.py failed for $name: $(tail -n 5 "$WORLD/bare-$name.log")"
  spawned=$(now_ms)
  exec {from}<&- {to}>&-
  banger-health wait "$name" --serial "$uds" --timeout 300 >/dev/null
  healthy=$(now_ms)
  banger-ssh wait "$name" --ip "$ip" --timeout 300 >/dev/null
  sshed=$(now_ms)
  for p in $(echo "$pids" | jq -r '.pids[]'); do kill -9 "$p" 2>/dev/null || true; done
  wait "$lpid" 2>/dev/null || true
  rm -f "$plan"
  banger-vm delete "$name" >/dev/null
  jq -n -c --argjson run "$run" --argjson a $((spawned - t0)) --argjson b $((healthy - spawned)) \
    --argjson c $((sshed - healthy)) --argjson d $((sshed - t0)) \
    '{bench: "bare", run: $run, spawn: $a, healthy: $b, ssh: $c, total: $d}'
}
# A and B alternate, run by run, so that a host whose load changes over
# the benchmark (a shared machine) weighs on both alike.
for i in $(seq 1 "$RUNS"); do
  create_run "$i"
  if [ "$BARE" = 1 ]; then
    say "bare boot $i/$RUNS"
    made+=("bb-$i")
    bare_run "bb-$i" "$i" | out
  fi
done
summary create
if [ "$BARE" = 1 ]; then
  summary bare
  b=$(median_of create total) r=$(median_of bare total)
  jq -n -c --argjson b "$b" --argjson r "$r" \
    '{bench: "compare", banger_median: $b, bare_median: $r, banger_own: (($b - $r) * 10 | round / 10),
      ratio: (if $r > 0 then ($b / $r * 100 | round / 100) else null end)}' | tee -a "$results"
fi

# C. Creates side by side, one, then CONC at once, in two modes:
# --no-start (disks, lease and record: banger's work alone, no emulator on
# the cores) and --no-wait (the VMMs start too, and the guests that booted
# first take the cores from the creates still at work).
concurrent() { # N MODE
  local n=$1 mode=$2 tmp pids=() names=()
  tmp=$(mktemp -d "$WORLD/conc.XXXX")
  for i in $(seq 1 "$n"); do
    names+=("cc$n-$i"); made+=("cc$n-$i")
    banger-vm create --name "cc$n-$i" "--$mode" --timings "${base[@]}" >"$tmp/$i" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  banger-vm delete "${names[@]}" >/dev/null
  cat "$tmp"/* | jq -s -c --argjson n "$n" --arg mode "$mode" '
    map(.timings_ms | {own: ((.image // 0) + (.disks // 0) + (.tap // 0) + (.nat // 0) + (.dns // 0)
                             | . * 10 | round / 10),
                       total, vmm_start: (.vmm_start // 0),
                       phases: {image: (.image // 0), disks: (.disks // 0), tap: (.tap // 0),
                                dns: (.dns // 0)}})
    | def med(f): map(f) | sort | .[(length / 2 | floor)];
      {bench: "concurrent", mode: $mode, creates: $n,
       own_median: med(.own), own_max: (map(.own) | max),
       total_median: med(.total), total_max: (map(.total) | max),
       vmm_start_median: med(.vmm_start),
       phase_medians: (map(.phases) | {image: med(.image), disks: med(.disks),
                                       tap: med(.tap), dns: med(.dns)})}'
  rm -rf "$tmp"
}
if [ "$CONC" -gt 0 ]; then
  for mode in no-start no-wait; do
    say "one create --$mode, three times"
    for _ in 1 2 3; do concurrent 1 "$mode"; done | jq -s -c \
      '{bench: "concurrent", mode: .[0].mode, creates: 1, own_median: (map(.own_median) | sort | .[1]),
        own_max: (map(.own_max) | max), total_median: (map(.total_median) | sort | .[1]),
        total_max: (map(.total_max) | max), vmm_start_median: (map(.vmm_start_median) | sort | .[1]),
        phase_medians: (map(.phase_medians) | {image: (map(.image) | sort | .[1]),
          disks: (map(.disks) | sort | .[1]), tap: (map(.tap) | sort | .[1]),
          dns: (map(.dns) | sort | .[1])})}' | out
    say "$CONC creates --$mode at once"
    concurrent "$CONC" "$mode" | out
  done
fi

# D. The disks phase for a small and a big image.
if [ "$SIZES" = 1 ]; then
  big=$WORLD/big-rootfs.ext4
  say "making an 8G copy of the image with 3G of data (once)"
  cp --sparse=always "$ROOTFS" "$big"
  truncate -s 8G "$big"
  e2fsck -fy "$big" >/dev/null 2>&1 || true
  resize2fs "$big" >/dev/null 2>&1
  m=$(mktemp -d "$WORLD/mnt.XXXX")
  mount -o loop "$big" "$m"
  dd if=/dev/urandom of="$m/fill" bs=4M count=768 status=none
  umount "$m"; rmdir "$m"
  banger-image register --name bench-big --rootfs "$big" --work-seed "$SEED" >/dev/null
  for img in bench bench-big; do
    show=$(banger-image show "$img")
    rootfs=$(echo "$show" | jq -r .rootfs)
    # Cheap (no boot): at least 10 runs, since a few ms of fsync on a
    # shared disk are noise next to a few ms of work.
    for i in $(seq 1 $((RUNS > 10 ? RUNS : 10))); do
      made+=("bd-$img-$i")
      banger-vm create --name "bd-$img-$i" --no-start --timings --image "$img" --vmm "$VMM" \
        | jq -c '.timings_ms.disks'
      banger-vm delete "bd-$img-$i" >/dev/null
    done | jq -s -c --arg img "$img" --arg size "$(du -h --apparent-size "$rootfs" | cut -f1)" \
      --arg data "$(du -h "$rootfs" | cut -f1)" \
      'sort | {bench: "disks", image: $img, size: $size, data: $data,
               min: .[0], median: .[(length / 2 | floor)], max: .[-1]}' | out
  done
fi
