#!/usr/bin/env bash
# verify.sh: the live smoke test of the whole workflow on this host.
#
#   ./verify.sh [--nat] [--vmm auto|firecracker|qemu] [--host] [--soak N]
#
# doctor; create a VM; its ssh host key was pinned from the guest agent
# before any ssh (and is the guest's); ssh `true`; 3 MiB of escapes on
# the guest console stay under the console cap and out of `vm logs`; (in
# the namespaces: the
# guest cannot reach a host listener on 0.0.0.0 until `banger net allow
# --port`, and can ping and resolve NAME.vm on the gateway; `vm forward
# NAME 18000:8000` reaches a server in the guest from the loopback, a
# taken host port is exit 5 and changes nothing, the forward is gone while
# stopped and back after start); health;
# banger-health check and
# banger-ssh alone (uname -r, exit codes); write a file on the work disk and
# stop at once (a clean stop through the guest agent); start; the file is
# there; stop again with the agent stopped in the guest (the ACPI power
# button instead) and read a synced file back; (--nat: the guest fetches a
# page from "upstream" through NAT, and the NAT rule is gone after delete);
# delete; then check that nothing is left: no VMM process, no non-pool TAP,
# no lease, no nft element, no port forward, no VM dir, and the image's
# files the VM's qcow2 overlays read (QEMU) are there and unwritten. On the
# way: the overlays are qcow2 on the image's files, the guest grew the work
# disk's filesystem to fill its disk, `image rm` is refused while the VM
# exists, and the guest's systemd-analyze is printed. Then two creates
# killed with SIGKILL (while making disks, and once the VMM runs): delete
# removes each, the same leak check holds; --soak N: N more cycles of
# create (booted), ssh `true`, delete, each followed by the leak check;
# `banger gc --dry-run` finds nothing; (in the namespaces) teardown leaves
# no banger nftables table and ip_forward as it was.
#
# By default everything runs inside network namespaces this script makes
# and removes: "bv-host-PID" holds the bridge, TAPs and guest, and
# "bv-up-PID" stands in for the internet (a web server on 10.250.0.2). The
# host's own interfaces and rules are never touched. It also runs in a
# private world (its own XDG config, data, state and runtime dirs under
# /tmp, the caller's default image registered there and its config copied),
# so the caller's VMs, net.json and DNS daemon are never read, stopped or
# reset. --host runs on the host's real network and state instead (for a
# real machine whose guests should use its uplink).
#
# The banger tools are taken from BANGER_BIN (a directory), else from this
# checkout's target/release or target/debug, else PATH. The default image
# must exist (banger-image default): make runtime-local builds it.
# VERIFY_KERNEL_RELEASE, when set, is the `uname -r` the guest must report.
# Exit status: 0 all good, 1 a step failed (the step is named on stderr).
set -euo pipefail

NAT=0 VMM=${BANGER_VMM:-} HOST=0 INSIDE=0 SOAK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --nat) NAT=1 ;;
    --soak) SOAK=$2; shift
      [[ "$SOAK" =~ ^[0-9]+$ ]] || { echo "verify.sh: --soak takes a count" >&2; exit 2; } ;;
    --vmm) VMM=$2; shift ;;
    --host) HOST=1 ;;
    --inside) INSIDE=1 ;;
    -h|--help) sed -n '2,47p' "$0"; exit 0 ;;
    *) echo "verify.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${BANGER_BIN:-}" ]; then
  for d in "$here/target/release" "$here/target/debug"; do
    [ -x "$d/banger-vm" ] && { BANGER_BIN=$d; break; }
  done
fi
[ -n "${BANGER_BIN:-}" ] && export PATH="$BANGER_BIN:$PATH"
export BANGER_BIN

say()  { printf 'verify: %s\n' "$*" >&2; }
fail() { printf 'verify: FAILED: %s\n' "$*" >&2; exit 1; }
step() { say "$1"; }

UP_IP=10.250.0.2
MARKER=${MARKER:-banger-verify-$$}  # the outer run passes its own to --inside

# A world of our own: the caller's default image (registered: its files are
# read, never copied or changed) and config, fresh state and runtime dirs.
private_world() {
  local img cfg
  img=$(banger-image default) \
    || fail "no default image (banger-image default): build one with make runtime-local"
  cfg=${XDG_CONFIG_HOME:-$HOME/.config}/banger/config.json
  world=$(mktemp -d /tmp/bv-world.XXXXXX)
  mkdir -p "$world/config/banger"
  # The caller's config, with a 1 MiB console cap: the flood step below
  # then rotates the console log within seconds.
  if [ -f "$cfg" ]; then
    jq '. + {console_log_max_mib: 1}' "$cfg" > "$world/config/banger/config.json"
  else
    echo '{"console_log_max_mib": 1}' > "$world/config/banger/config.json"
  fi
  export XDG_CONFIG_HOME=$world/config XDG_DATA_HOME=$world/data \
    XDG_STATE_HOME=$world/state XDG_RUNTIME_DIR=$world/run
  local args=(--name "$(jq -r .name <<<"$img")" --rootfs "$(jq -r .rootfs <<<"$img")")
  local k
  for k in kernel initrd work_seed; do
    v=$(jq -r --arg k "$k" '.[$k] // empty' <<<"$img")
    [ -n "$v" ] && args+=("--${k//_/-}" "$v")
  done
  banger-image register "${args[@]}" >/dev/null || fail "registering the image in the private world"
  step "private world $world (image $(jq -r .name <<<"$img"))"
}

outside() {
  for t in banger banger-vm banger-net banger-image; do
    command -v "$t" >/dev/null || fail "$t not found: build it (make build) or set BANGER_BIN"
  done
  [ "$(id -u)" = 0 ] || fail "run verify.sh as root (it makes network namespaces, TAPs and VMs)"
  # Not local: the EXIT trap reads them after this function returns.
  ns=bv-host-$$ up=bv-up-$$
  www=$(mktemp -d /tmp/bv-www.XXXXXX)
  echo "$MARKER" > "$www/marker"
  world=
  cleanup_ns() {
    [ -n "${HTTPD_PID:-}" ] && kill "$HTTPD_PID" 2>/dev/null || true
    # Anything left running in the namespace (it should be nothing).
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
    ip netns del "$up" 2>/dev/null || true
    rm -rf "$www"
    [ -n "$world" ] && rm -rf "$world"
  }
  trap cleanup_ns EXIT
  private_world
  step "making namespaces $ns (guests) and $up (upstream)"
  ip netns add "$ns"
  ip netns add "$up"
  ip -n "$ns" link set lo up
  ip -n "$up" link set lo up
  ip -n "$ns" link add bv-uplink type veth peer name bv-down netns "$up"
  ip -n "$ns" addr add 10.250.0.1/30 dev bv-uplink
  ip -n "$up" addr add "$UP_IP/30" dev bv-down
  ip -n "$ns" link set bv-uplink up
  ip -n "$up" link set bv-down up
  ip -n "$ns" route add default via "$UP_IP"
  if command -v busybox >/dev/null; then
    ip netns exec "$up" busybox httpd -f -p "$UP_IP:8080" -h "$www" &
  else
    ip netns exec "$up" python3 -m http.server --bind "$UP_IP" --directory "$www" 8080 \
      >/dev/null 2>&1 &
  fi
  HTTPD_PID=$!
  local args=(--inside)
  [ "$NAT" = 1 ] && args+=(--nat)
  [ -n "$VMM" ] && args+=(--vmm "$VMM")
  args+=(--soak "$SOAK")
  set +e
  MARKER=$MARKER ip netns exec "$ns" "$0" "${args[@]}"
  local rc=$?
  set -e
  return $rc
}

inside() {
  # name and created are global: the EXIT trap reads them.
  name=verify-$$
  local vmm_args=() ip
  [ -n "$VMM" ] && vmm_args=(--vmm "$VMM")
  local nat_args=()
  [ "$NAT" = 1 ] && nat_args=(--nat)

  local forward_before
  forward_before=$(cat /proc/sys/net/ipv4/ip_forward)
  step "banger net setup"
  banger net setup >/dev/null || fail "banger net setup"
  step "banger doctor"
  banger doctor --json > /tmp/bv-doctor.$$ || say "doctor reports failing checks (see above); going on"
  jq -r 'select(.ok == false) | "  doctor: \(.check): \(.detail)"' /tmp/bv-doctor.$$ >&2 || true
  rm -f /tmp/bv-doctor.$$

  created=0
  clones=()
  on_exit() {
    if [ "$created" = 1 ]; then
      say "cleaning up $name ${name_k:-}"
      banger vm delete --force "$name" >/dev/null 2>&1 || true
      [ -n "${name_k:-}" ] && { banger vm delete --force "$name_k" >/dev/null 2>&1 || true; }
      for c in "${clones[@]}"; do banger vm delete --force "$c" >/dev/null 2>&1 || true; done
      [ -n "${gold:-}" ] && { banger vm snapshots rm "$gold" >/dev/null 2>&1 || true; }
    fi
    # Only our own namespace's bridge: on --host, other VMs may use it.
    if [ "$INSIDE" = 1 ]; then
      banger net dns stop >/dev/null 2>&1 || true
      banger net teardown >/dev/null 2>&1 || true
    fi
  }
  trap on_exit EXIT

  # First-boot scripts: the first writes outside /root (so it ran outside
  # the agent's read-only sandbox) with a variable from --env.
  initd=$(mktemp -d /tmp/bv-init.XXXXXX)
  printf '%s\n' 'mkdir -p /usr/local/share/bv && echo "$GREETING" > /usr/local/share/bv/marker' \
    'echo "setup ran"' > "$initd/setup.sh"
  printf '%s\n' 'echo "second: $BANGER_INIT"' > "$initd/check.sh"
  printf '%s\n' 'echo doomed' 'exit 3' > "$initd/fail.sh"
  step "create $name ${nat_args[*]} ${vmm_args[*]} --init setup.sh --init check.sh"
  created=1
  banger vm create --name "$name" "${nat_args[@]}" "${vmm_args[@]}" --timings \
    --init "$initd/setup.sh" --init "$initd/check.sh" --env "GREETING=$MARKER" > /tmp/bv-rec.$$ \
    || fail "vm create"
  ip=$(jq -r .ip /tmp/bv-rec.$$)
  say "  $(jq -c '{vmm, ip, timings_ms}' /tmp/bv-rec.$$)"
  step "the --init scripts ran in order, and vm logs --init shows their output"
  jq -e '.init == [{"name":"01-setup.sh","exit":0},{"name":"02-check.sh","exit":0}]' /tmp/bv-rec.$$ \
    >/dev/null || fail "the record's init: $(jq -c .init /tmp/bv-rec.$$)"
  rm -f /tmp/bv-rec.$$
  logs=$(banger vm logs --init "$name") || fail "vm logs --init"
  grep -Fx "setup ran" <<<"$logs" >/dev/null && grep -Fx "second: 02-check.sh" <<<"$logs" >/dev/null \
    || fail "vm logs --init printed: $logs"
  got=$(banger vm ssh "$name" -- cat /usr/local/share/bv/marker) || fail "reading the init marker"
  [ "$got" = "$MARKER" ] || fail "the init script wrote '$got', not $MARKER"

  local kh=${XDG_STATE_HOME:-$HOME/.local/state}/banger/known_hosts/$name
  step "the guest's host keys were pinned from its agent before any ssh"
  grep -E "^$ip ssh-ed25519 " "$kh" >/dev/null || fail "no ed25519 key pinned for $ip in $kh"
  step "ssh true"
  banger vm ssh "$name" -- true || fail "vm ssh true"
  got=$(banger vm ssh "$name" -- cat /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f1,2) \
    || fail "reading the guest's host key"
  grep -Fx -- "$ip $got" "$kh" >/dev/null || fail "the pinned key is not the guest's: $got"

  if [ "$INSIDE" = 1 ]; then
    # Only in the namespace: a listener on every address of the "host".
    step "the guest reaches the host only for DNS, ping and opened ports"
    local gw hostdir port=8765
    gw=$(banger vm show "$name" | jq -r .gateway)
    hostdir=$(mktemp -d /tmp/bv-hostsrv.XXXXXX)
    echo "$MARKER" > "$hostdir/marker"
    python3 -m http.server --bind 0.0.0.0 --directory "$hostdir" "$port" >/dev/null 2>&1 &
    local hostsrv=$!
    local up=""
    for _ in $(seq 50); do
      curl -s -o /dev/null "http://127.0.0.1:$port/marker" && { up=1; break; }
      sleep 0.1
    done
    [ -n "$up" ] || { kill "$hostsrv"; fail "the host's test listener did not come up"; }
    guest_get() { banger vm ssh "$name" -- curl -s --max-time 3 "http://$gw:$port/marker"; }
    if guest_get >/dev/null 2>&1; then kill "$hostsrv"; fail "the guest reached a host port on 0.0.0.0"; fi
    banger net allow --port "$port" >/dev/null || { kill "$hostsrv"; fail "banger net allow --port $port"; }
    got=$(guest_get) || true
    [ "$got" = "$MARKER" ] || { kill "$hostsrv"; fail "after allow --port the guest got '$got'"; }
    banger net deny --port "$port" >/dev/null || { kill "$hostsrv"; fail "banger net deny --port $port"; }
    if guest_get >/dev/null 2>&1; then kill "$hostsrv"; fail "deny --port left the port open"; fi
    kill "$hostsrv"; wait "$hostsrv" 2>/dev/null || true
    rm -rf "$hostdir"
    local filter
    filter=$(banger net status | jq -c 'select(.kind == "filter")') || fail "banger net status"
    jq -e '.dropped.input > 0' <<<"$filter" >/dev/null \
      || fail "the guest's dropped packets were not counted: $filter"
    banger vm ssh "$name" -- ping -c 1 -W 3 "$gw" >/dev/null || fail "the guest cannot ping the gateway"
    got=$(banger vm ssh "$name" -- getent hosts "$name.vm" | cut -d' ' -f1) || true
    [ "$got" = "$ip" ] || fail "the guest resolved $name.vm to '$got', not $ip"

    # Only in the namespace: its loopback stands in for the host's.
    step "vm forward: a server on the guest's port 8000 answers on the loopback's 18000"
    local fwd
    fwd=$(mktemp -d /tmp/bv-fwd.XXXXXX)
    # python3's http.server where the image has it, else perl-base (every
    # Debian image has it) answering each request with the marker.
    cat > "$fwd/server.sh" <<'EOS'
cd /root/fwd-www || exit 1
command -v python3 >/dev/null && exec python3 -m http.server 8000
exec perl -MIO::Socket::INET -e '
  my $s = IO::Socket::INET->new(LocalPort => 8000, Listen => 5, ReuseAddr => 1) or die "$!";
  while (my $c = $s->accept) {
    while (my $l = <$c>) { last if $l =~ /^\r?$/ }
    open(my $f, "<", "marker"); local $/; my $m = <$f>;
    print $c "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n$m"; close $c;
  }'
EOS
    banger vm ssh "$name" -- "mkdir -p /root/fwd-www && echo $MARKER > /root/fwd-www/marker" \
      || fail "writing the guest's marker"
    banger vm cp "$fwd/server.sh" "$name:/root/fwd-server.sh" || fail "copying the guest's test server"
    rm -rf "$fwd"
    banger vm ssh "$name" -- 'setsid sh /root/fwd-server.sh </dev/null >/dev/null 2>&1 &' \
      || fail "starting the guest's test server"
    banger vm forward "$name" 18000:8000 \
      | jq -e '.active == true and .address == "127.0.0.1" and .host_port == 18000' >/dev/null \
      || fail "vm forward $name 18000:8000"
    got=
    for _ in $(seq 100); do
      got=$(curl -s --max-time 2 "http://127.0.0.1:18000/marker") && [ "$got" = "$MARKER" ] && break
      sleep 0.1
    done
    [ "$got" = "$MARKER" ] || fail "curl http://127.0.0.1:18000/marker through the forward got '$got'"
    if curl -s --max-time 2 -o /dev/null "http://127.0.0.1:18001/"; then
      fail "a port next to the forward answered"
    fi
    step "vm forward: a host port a socket holds is exit 5 and changes nothing"
    python3 -m http.server --bind 127.0.0.1 18500 >/dev/null 2>&1 &
    local held=$!
    up=
    for _ in $(seq 50); do
      curl -s -o /dev/null "http://127.0.0.1:18500/" && { up=1; break; }
      sleep 0.1
    done
    [ -n "$up" ] || { kill "$held"; fail "the host's listener on 18500 did not come up"; }
    set +e; banger vm forward "$name" 18500:8000 2>/dev/null; rc=$?; set -e
    kill "$held"; wait "$held" 2>/dev/null || true
    [ "$rc" = 5 ] || fail "vm forward onto a taken host port exited $rc, not 5"
    [ "$(banger vm forward "$name" --list | jq -s -c '[.[].host_port]')" = "[18000]" ] \
      || fail "the refused forward changed the list: $(banger vm forward "$name" --list)"
    [ "$(banger net forward list | jq -s -c '[.[].host_port]')" = "[18000]" ] \
      || fail "the refused forward changed what is in force: $(banger net forward list)"
  fi

  # A guest is hostile: 3 MiB of escape bytes on its console leave
  # console.log and console.log.1 within the 1 MiB cap, and vm logs
  # prints none of them.
  step "a console flood stays under the cap; vm logs prints no escape"
  banger vm ssh "$name" -- "head -c 3145728 /dev/zero | tr '\\000' '\\033' > /dev/console" \
    || fail "flooding the guest console"
  clog=$XDG_STATE_HOME/banger/vms/$name/console.log
  [ -e "$clog.1" ] || fail "3 MiB on the console and $clog never rotated"
  for f in "$clog" "$clog.1"; do
    sz=$(stat -c %s "$f")
    [ "$sz" -le 524288 ] || fail "$f holds $sz bytes, over half the 1 MiB cap"
  done
  esc=$(banger vm logs "$name" | tr -dc '\033' | wc -c)
  [ "$esc" = 0 ] || fail "vm logs printed $esc escape bytes"

  step "guest boot (systemd-analyze, for the record)"
  banger vm ssh "$name" -- 'systemd-analyze time; systemd-analyze critical-chain ssh.service banger-vsock-agent.service' 2>&1 \
    | sed 's/^/  guest: /' >&2 || true
  banger vm show "$name" > /tmp/bv-show.$$ || fail "vm show"
  img=$(jq -r .image /tmp/bv-show.$$)
  disk_size=$(jq -r .disk_size /tmp/bv-show.$$)
  # The image's files, as they must still be after the VM is gone.
  backing=$(jq -r '.disks | .rootfs_backing // empty, .work_backing // empty' /tmp/bv-show.$$)
  backing_stat=$(for f in $backing; do stat -c '%n %s %Y' "$f"; done)
  if [ "$(jq -r .vmm /tmp/bv-show.$$)" = qemu ]; then
    step "the disks are qcow2 overlays on the image's files"
    [ -n "$backing" ] || fail "a QEMU VM's disks name no backing files: $(jq -c .disks /tmp/bv-show.$$)"
    for d in rootfs work; do
      disk=$(jq -r ".disks.$d" /tmp/bv-show.$$)
      want=$(jq -r ".disks.${d}_backing // empty" /tmp/bv-show.$$)
      [ -n "$want" ] || continue
      qemu-img info -U --output=json "$disk" > /tmp/bv-qi.$$ || fail "qemu-img info $disk"
      jq -e --arg b "$want" '.format == "qcow2" and .["backing-filename"] == $b' /tmp/bv-qi.$$ >/dev/null \
        || fail "$disk is not a qcow2 overlay on $want: $(jq -c '{format, "backing-filename"}' /tmp/bv-qi.$$)"
    done
    rm -f /tmp/bv-qi.$$
  fi
  rm -f /tmp/bv-show.$$
  step "the work disk's filesystem was grown in the guest to fill its disk ($disk_size bytes)"
  # banger-grow-work runs after sshd: wait for it (bounded), then df.
  got=$(banger vm ssh "$name" -- 'for _ in $(seq 300); do systemctl -q is-active banger-grow-work && break; sleep 0.2; done
    journalctl -b -u banger-grow-work -o cat | grep "^banger-grow-work:"; df -B1 --output=size /root | tail -1') \
    || fail "reading /root's size"
  say "  $(echo "$got" | head -1)"
  size=$(echo "$got" | tail -1 | tr -d ' ')
  echo "$got" | grep -q '^banger-grow-work: /root on /dev/vdb' || fail "no banger-grow-work line in the guest's journal: $got"
  [ "$size" -ge $((disk_size * 9 / 10)) ] || fail "/root is $size bytes on a $disk_size-byte disk"
  step "image rm is refused while the VM uses $img"
  set +e; banger image rm "$img" 2>/dev/null; rc=$?; set -e
  [ "$rc" = 5 ] || fail "banger image rm $img while $name uses it exited $rc, not 5"
  banger image show "$img" >/dev/null || fail "image $img is gone after a refused rm"
  # A file, not <(...): some hosts (CI containers) have no /dev/fd.
  step "plain ssh with banger vm ssh-config: ssh -F FILE $name.vm"
  banger vm ssh-config "$name" > /tmp/bv-sshcfg.$$ || fail "vm ssh-config"
  ssh -F /tmp/bv-sshcfg.$$ "$name.vm" true || { rm -f /tmp/bv-sshcfg.$$; fail "ssh through the ssh-config stanza"; }
  rm -f /tmp/bv-sshcfg.$$
  step "vm cp: a file and a directory, both ways, byte-identical"
  cpd=$(mktemp -d /tmp/bv-cp.XXXXXX)
  head -c 300000 /dev/urandom > "$cpd/blob"
  mkdir -p "$cpd/tree/sub" && echo "$MARKER" > "$cpd/tree/sub/m"
  banger vm cp "$cpd/blob" "$name:/root/blob" || fail "vm cp into the guest"
  banger vm cp "$name:/root/blob" "$cpd/blob.back" || fail "vm cp out of the guest"
  cmp "$cpd/blob" "$cpd/blob.back" || fail "vm cp round trip changed the file"
  banger vm cp -r "$cpd/tree" "$name:/root/tree" || fail "vm cp -r into the guest"
  banger vm cp -r "$name:/root/tree" "$cpd/tree.back" || fail "vm cp -r out of the guest"
  diff -r "$cpd/tree" "$cpd/tree.back" >/dev/null || fail "vm cp -r round trip changed the tree"
  set +e; banger vm cp "$name:/root/no-such-file" "$cpd/x" 2>/dev/null; rc=$?; set -e
  [ "$rc" != 0 ] || fail "vm cp of a missing file succeeded"
  rm -rf "$cpd"
  step "a remote exit code comes back"
  set +e; banger vm ssh "$name" -- 'exit 3'; rc=$?; set -e
  [ "$rc" = 3 ] || fail "vm ssh 'exit 3' returned $rc"
  step "health"
  banger vm health "$name" | jq -e 'select(.ok == true)' >/dev/null || fail "vm health"
  # The plumbing alone, as a script would use it.
  step "banger health check: the agent answers, with the ip= hostname"
  banger health check "$name" \
    | jq -e --arg n "$name" 'select(.ok == true and .status == "ok" and .hostname == $n)' \
    >/dev/null || fail "banger health check $name"
  step "banger ssh -- uname -r"
  rel=$(banger ssh "$name" -- uname -r) || fail "banger ssh $name -- uname -r"
  [ -n "$rel" ] || fail "uname -r printed nothing"
  if [ -n "${VERIFY_KERNEL_RELEASE:-}" ] && [ "$rel" != "$VERIFY_KERNEL_RELEASE" ]; then
    fail "the guest runs $rel, not $VERIFY_KERNEL_RELEASE"
  fi
  say "  guest kernel $rel"
  step "banger ssh passes failing exit codes through unchanged"
  for want in 1 7 42; do
    set +e; banger ssh "$name" -- "exit $want"; rc=$?; set -e
    [ "$rc" = "$want" ] || fail "banger ssh $name -- 'exit $want' returned $rc"
  done
  set +e; banger ssh "$name" -- false; rc=$?; set -e
  [ "$rc" = 1 ] || fail "banger ssh $name -- false returned $rc"
  if command -v dig >/dev/null; then
    step "$name.vm resolves to $ip"
    gw=$(banger vm show "$name" | jq -r .dns)
    got=$(dig +short +time=2 +tries=2 @"$gw" "$name.vm" A || true)
    [ "$got" = "$ip" ] || fail "dig @$gw $name.vm gave '$got', not $ip"
  fi
  step "write a file on the work disk (no sync) and stop at once"
  banger vm ssh "$name" -- "echo $MARKER > /root/verify-marker" || fail "writing /root/verify-marker"
  # The guest agent powers the guest off: a clean stop, not the timeout.
  banger vm stop "$name" > /tmp/bv-stop.$$ || fail "vm stop"
  say "  $(cat /tmp/bv-stop.$$)"
  jq -e '.state == "stopped" and .clean == true and .how == "agent"' /tmp/bv-stop.$$ >/dev/null \
    || fail "vm stop was not a clean stop through the agent: $(cat /tmp/bv-stop.$$)"
  if [ "$INSIDE" = 1 ]; then
    [ -z "$(banger net forward list --vm "$name")" ] || fail "a stopped VM's forward is still in force"
  fi
  step "start"
  banger vm start "$name" | jq -e '.state == "running"' >/dev/null || fail "vm start"
  if [ "$INSIDE" = 1 ]; then
    banger net forward list --vm "$name" | jq -e 'select(.host_port == 18000)' >/dev/null \
      || fail "start did not put the forward back"
  fi
  step "the work disk kept the unsynced file"
  got=$(banger vm ssh "$name" -- cat /root/verify-marker) || fail "reading /root/verify-marker"
  [ "$got" = "$MARKER" ] || fail "/root/verify-marker holds '$got', not $MARKER"

  step "suspend: the VMM exits, a process and a file in /tmp live on"
  sleeper=$(banger vm ssh "$name" -- \
    "echo $MARKER > /tmp/verify-suspend; setsid sleep 100000 </dev/null >/dev/null 2>&1 & echo \$!") \
    || fail "starting a process in the guest"
  vmm_pid=$(banger vm show "$name" | jq -r .pid)
  banger vm suspend "$name" > /tmp/bv-susp.$$ || fail "vm suspend: $(cat /tmp/bv-susp.$$)"
  say "  $(cat /tmp/bv-susp.$$)"
  jq -e '.ok and .state == "suspended" and .bytes > 0' /tmp/bv-susp.$$ >/dev/null \
    || fail "vm suspend printed $(cat /tmp/bv-susp.$$)"
  banger vm show "$name" | jq -e '.state == "suspended" and .pid == null' >/dev/null \
    || fail "vm show after suspend: $(banger vm show "$name")"
  if [ "$INSIDE" = 1 ]; then
    [ -z "$(banger net forward list --vm "$name")" ] || fail "a suspended VM's forward is still in force"
  fi
  # Gone, or a zombie its parent has not reaped yet.
  st=$(ps -o stat= -p "$vmm_pid" 2>/dev/null || true)
  case $st in ''|Z*) ;; *) fail "the VMM (pid $vmm_pid, $st) still runs after suspend" ;; esac
  saved=${XDG_STATE_HOME:-$HOME/.local/state}/banger/vms/$name/suspended
  [ -e "$saved" ] || fail "no saved state at $saved"
  step "resume without its state file: a clear error, the VM stays suspended"
  mv "$saved" "$saved.away"
  set +e; banger vm resume "$name" > /tmp/bv-susp.$$ 2>/tmp/bv-susp-err.$$; rc=$?; set -e
  [ "$rc" = 3 ] || fail "vm resume without its state returned $rc: $(cat /tmp/bv-susp-err.$$)"
  grep -q "saved state .* is missing" /tmp/bv-susp-err.$$ || fail "vm resume said: $(cat /tmp/bv-susp-err.$$)"
  banger vm show "$name" | jq -e '.state == "suspended"' >/dev/null || fail "the failed resume changed the VM"
  pgrep -f -- "-name $name " >/dev/null && fail "a VMM runs after the failed resume"
  mv "$saved.away" "$saved"
  step "resume: the same process, the file in /tmp, the agent answers"
  banger vm resume "$name" > /tmp/bv-susp.$$ || fail "vm resume: $(cat /tmp/bv-susp.$$)"
  jq -e '.ok and .state == "running"' /tmp/bv-susp.$$ >/dev/null || fail "vm resume printed $(cat /tmp/bv-susp.$$)"
  [ -e "$saved" ] && fail "the saved state outlived the resume"
  got=$(banger vm ssh "$name" -- "kill -0 $sleeper && cat /tmp/verify-suspend") \
    || fail "after resume: process $sleeper or /tmp/verify-suspend is gone"
  [ "$got" = "$MARKER" ] || fail "after resume /tmp/verify-suspend holds '$got'"
  if [ "$INSIDE" = 1 ]; then
    banger net forward list --vm "$name" | jq -e 'select(.host_port == 18000)' >/dev/null \
      || fail "resume did not put the forward back"
  fi
  step "vm start of a suspended VM resumes it; vm stop of one discards its state"
  banger vm suspend "$name" | jq -e '.ok' >/dev/null || fail "second vm suspend"
  banger vm start "$name" | jq -e '.state == "running"' >/dev/null || fail "vm start of a suspended VM"
  banger vm ssh "$name" -- "kill -0 $sleeper" || fail "vm start of a suspended VM did not resume it"
  banger vm suspend "$name" | jq -e '.ok' >/dev/null || fail "third vm suspend"
  banger vm stop "$name" > /tmp/bv-susp.$$ || fail "vm stop of a suspended VM"
  jq -e '.state == "stopped" and .how == "discarded"' /tmp/bv-susp.$$ >/dev/null \
    || fail "vm stop of a suspended VM printed $(cat /tmp/bv-susp.$$)"
  [ -e "$saved" ] && fail "vm stop left the saved state"
  rm -f /tmp/bv-susp.$$ /tmp/bv-susp-err.$$
  banger vm start "$name" | jq -e '.state == "running"' >/dev/null || fail "vm start after a discarded suspend"
  got=$(banger vm ssh "$name" -- "cat /root/verify-marker; pgrep -x sleep || true") || fail "after a fresh boot"
  [ "$got" = "$MARKER" ] || fail "after a discarded suspend and a fresh boot: '$got'"

  step "golden snapshot: $name runs on, with its process and /tmp file"
  gold=$name-gold
  sleeper=$(banger vm ssh "$name" -- \
    "echo $MARKER > /tmp/verify-gold; setsid sleep 100000 </dev/null >/dev/null 2>&1 & echo \$!") \
    || fail "starting a process in the guest"
  banger vm snapshot "$name" --as "$gold" > /tmp/bv-snap.$$ || fail "vm snapshot: $(cat /tmp/bv-snap.$$)"
  say "  $(cat /tmp/bv-snap.$$)"
  jq -e --arg n "$name" --arg g "$gold" '.name == $g and .source == $n and .bytes > 0' /tmp/bv-snap.$$ \
    >/dev/null || fail "vm snapshot printed $(cat /tmp/bv-snap.$$)"
  banger vm show "$name" | jq -e '.state == "running"' >/dev/null || fail "the source stopped running"
  banger vm ssh "$name" -- "kill -0 $sleeper" || fail "the source lost its process to the snapshot"
  banger vm snapshots | jq -e --arg g "$gold" 'select(.name == $g)' >/dev/null \
    || fail "vm snapshots does not list $gold"
  step "a clone from a snapshot that does not exist: exit 3, nothing made"
  set +e; banger vm create --name "$name-c0" --from "$name-nosuch" 2>/tmp/bv-snap-err.$$; rc=$?; set -e
  [ "$rc" = 3 ] || fail "create --from a missing snapshot returned $rc: $(cat /tmp/bv-snap-err.$$)"
  banger vm show "$name-c0" >/dev/null 2>&1 && fail "a failed clone left a record"
  clones=()
  for c in c1 c2; do
    step "clone $name-$c from $gold: its own hostname, address, machine-id and host key"
    banger vm create --name "$name-$c" --from "$gold" --timings > /tmp/bv-snap.$$ \
      || fail "create --from: $(cat /tmp/bv-snap.$$)"
    clones+=("$name-$c")
    say "  $(jq -c .timings_ms /tmp/bv-snap.$$)"
    jq -e --arg g "$gold" '.state == "running" and .from_snapshot == $g' /tmp/bv-snap.$$ >/dev/null \
      || fail "create --from printed $(cat /tmp/bv-snap.$$)"
    cip=$(jq -r .ip /tmp/bv-snap.$$)
    # The process and the file the source had when it was saved, and
    # the clone's own name and address.
    got=$(banger vm ssh "$name-$c" -- \
      "kill -0 $sleeper && cat /tmp/verify-gold && hostname && ip -4 -o addr show dev eth0 | awk '{print \$4}'") \
      || fail "ssh into $name-$c"
    [ "$got" = "$MARKER"$'\n'"$name-$c"$'\n'"$cip/24" ] || fail "$name-$c says: '$got'"
    if command -v dig >/dev/null; then
      got=$(dig +short +time=2 +tries=2 @"$(jq -r .dns /tmp/bv-snap.$$)" "$name-$c.vm" A || true)
      [ "$got" = "$cip" ] || fail "dig $name-$c.vm gave '$got', not $cip"
    fi
  done
  step "the clones and the source differ in address, machine-id and ssh host key"
  ids=$(for v in "$name" "${clones[@]}"; do
    banger vm ssh "$v" -- "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub" || echo "unreadable $v"
  done)
  [ "$(echo "$ids" | sort -u | wc -l)" = 6 ] || fail "machine-ids or host keys repeat: $ids"
  ips=$(for v in "$name" "${clones[@]}"; do banger vm show "$v" | jq -r .ip; done | sort -u | wc -l)
  [ "$ips" = 3 ] || fail "the clones and the source share an address"
  step "a write in one clone is seen neither in the other nor in the source"
  banger vm ssh "${clones[0]}" -- "echo $MARKER > /root/verify-clone && sync" || fail "writing in ${clones[0]}"
  for v in "${clones[1]}" "$name"; do
    banger vm ssh "$v" -- "test ! -e /root/verify-clone" || fail "$v sees ${clones[0]}'s write"
  done
  step "delete the clones and the snapshot"
  banger vm delete "${clones[@]}" | jq -e 'select(.state == "deleted")' >/dev/null || fail "deleting the clones"
  # (Not nothing_left: the source's TAP is still there.)
  for v in "${clones[@]}"; do
    banger vm show "$v" >/dev/null 2>&1 && fail "$v's record outlived delete"
    [ -e "${XDG_STATE_HOME:-$HOME/.local/state}/banger/vms/$v" ] && fail "$v's dir outlived delete"
    banger net lease list | jq -r .vm | grep -Fx -- "$v" >/dev/null && fail "$v's lease outlived delete"
    pgrep -af -- "-name $v " >/dev/null && fail "$v's VMM outlived delete"
  done
  clones=()
  banger vm snapshots rm "$gold" | jq -e '.ok' >/dev/null || fail "vm snapshots rm $gold"
  [ -e "${XDG_STATE_HOME:-$HOME/.local/state}/banger/snapshots/$gold" ] && fail "the snapshot's dir outlived rm"
  # (not jq -e: jq 1.6 exits 0 on empty input, i.e. no snapshots at all)
  banger vm snapshots | jq -r .name | grep -Fx -- "$gold" >/dev/null && fail "rm left $gold listed"
  rm -f /tmp/bv-snap.$$ /tmp/bv-snap-err.$$

  step "without the guest agent, stop falls back to the power button"
  banger vm ssh "$name" -- "echo $MARKER > /root/verify-synced && sync && systemctl stop banger-vsock-agent" \
    || fail "writing /root/verify-synced and stopping the agent"
  banger vm stop "$name" > /tmp/bv-stop.$$ || fail "vm stop without the agent"
  say "  $(cat /tmp/bv-stop.$$)"
  jq -e '.clean == true and .how == "acpi"' /tmp/bv-stop.$$ >/dev/null \
    || fail "vm stop without the agent: $(cat /tmp/bv-stop.$$)"
  rm -f /tmp/bv-stop.$$
  banger vm start "$name" | jq -e '.state == "running"' >/dev/null || fail "vm start after the fallback stop"
  got=$(banger vm ssh "$name" -- cat /root/verify-synced /root/verify-marker) || fail "reading the files back"
  [ "$got" = "$MARKER"$'\n'"$MARKER" ] || fail "after the fallback stop the files hold '$got'"

  if [ "$NAT" = 1 ]; then
    step "the guest reaches upstream through NAT"
    got=$(banger vm ssh "$name" -- curl -s --max-time 10 "http://$UP_IP:8080/marker") \
      || fail "guest curl through NAT"
    [ "$got" = "$MARKER" ] || fail "guest fetched '$got', not $MARKER"
    nft list set inet banger nat_guests 2>/dev/null | grep -F "$ip" >/dev/null \
      || fail "$ip is not in banger's nat_guests set while NAT is on"
  fi

  step "delete"
  banger vm delete "$name" | jq -e '.state == "deleted"' >/dev/null || fail "vm delete"
  created=0

  nothing_left "$name" "$ip"

  # A create killed outright (SIGKILL) at two moments: while it makes the
  # disks (the record says creating) and once its VMM runs. Either way
  # delete removes all of it.
  for moment in creating running; do
    k=$name-$moment
    step "a create killed with SIGKILL once $k is $moment; then delete"
    banger vm create --name "$k" "${nat_args[@]}" "${vmm_args[@]}" >/dev/null 2>&1 &
    pid=$!
    created=1 name_k=$k
    seen=
    for _ in $(seq 600); do
      st=$(banger vm show "$k" 2>/dev/null | jq -r .state) || true
      [ "$st" = "$moment" ] && { seen=1; break; }
      kill -0 "$pid" 2>/dev/null || break
      # The creating window is about a second: look as often as we can.
      [ "$moment" = running ] && sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [ -n "$seen" ] || fail "$k never reached $moment"
    kip=$(banger vm show "$k" | jq -r '.ip // ""')
    banger vm delete "$k" | jq -e '.state == "deleted"' >/dev/null || fail "vm delete $k after the kill"
    name_k=
    nothing_left "$k" "$kip"
  done
  k=$name-fail
  step "a failing --init script fails the create and undoes it"
  created=1 name_k=$k
  set +e
  err=$(banger vm create --name "$k" "${nat_args[@]}" "${vmm_args[@]}" --init "$initd/fail.sh" 2>&1 >/dev/null)
  rc=$?
  set -e
  [ "$rc" = 1 ] || fail "create with a failing --init exited $rc: $err"
  grep -F "doomed" <<<"$err" >/dev/null && grep -F "exited with 3" <<<"$err" >/dev/null \
    || fail "create with a failing --init said: $err"
  name_k=
  nothing_left "$k" ""
  rm -rf "$initd"
  created=0
  local i
  for i in $(seq "$SOAK"); do
    k=$name-soak-$i
    step "soak $i/$SOAK: create $k, ssh, delete, nothing left"
    created=1 name_k=$k
    kip=$(banger vm create --name "$k" "${nat_args[@]}" "${vmm_args[@]}" | jq -r .ip) \
      || fail "soak create $k"
    banger vm ssh "$k" -- true || fail "soak ssh $k"
    banger vm delete "$k" | jq -e '.state == "deleted"' >/dev/null || fail "soak delete $k"
    name_k=
    nothing_left "$k" "$kip"
  done
  created=0
  if [ "$INSIDE" = 1 ]; then
    step "banger gc finds nothing"
    [ -z "$(banger gc --dry-run)" ] || fail "banger gc --dry-run found: $(banger gc --dry-run)"
    step "teardown leaves no banger table and ip_forward as it was"
    banger net dns stop >/dev/null 2>&1 || true
    banger net teardown >/dev/null || fail "banger net teardown"
    # (not grep -q: with pipefail, nft's SIGPIPE would hide a match)
    if nft list ruleset 2>/dev/null | grep -F banger >/dev/null; then
      fail "banger's nftables rules are left after teardown"
    fi
    [ "$(cat /proc/sys/net/ipv4/ip_forward)" = "$forward_before" ] \
      || fail "ip_forward is $(cat /proc/sys/net/ipv4/ip_forward) after teardown, was $forward_before"
  fi
  say "all good"
}

# Nothing of VM $1 (address $2) is left: process, TAP, lease, nft element,
# record, dir.
nothing_left() {
  local name=$1 ip=$2 leaks=() taps
  step "nothing of $name is left"
  pgrep -af -- "$name" | grep -v -e verify.sh -e pgrep >/dev/null && leaks+=("a process with $name in its command line")
  taps=$(ip -o link show type tun 2>/dev/null | awk -F': ' '{print $2}' | grep -v '^tap-pool-' || true)
  [ -n "$taps" ] && leaks+=("TAPs: $taps")
  # (not jq -e: jq 1.6 exits 0 on empty input, i.e. no leases at all)
  banger net lease list | jq -r .vm | grep -Fx -- "$name" >/dev/null \
    && leaks+=("a lease for $name")
  if [ "$NAT" = 1 ] && [ -n "$ip" ] && nft list ruleset 2>/dev/null | grep -F "$ip" >/dev/null; then
    # (not grep -q: with pipefail, nft's SIGPIPE would hide a match)
    leaks+=("an nft element for $ip")
  fi
  banger net forward list | jq -r .vm | grep -Fx -- "$name" >/dev/null \
    && leaks+=("a port forward of $name")
  if [ -n "$ip" ] && nft list map inet banger forwards 2>/dev/null | grep -F "$ip" >/dev/null; then
    leaks+=("a forwards map element for $ip")
  fi
  banger vm show "$name" >/dev/null 2>&1 && leaks+=("the VM record")
  [ -e "${XDG_STATE_HOME:-$HOME/.local/state}/banger/vms/$name" ] && leaks+=("the VM dir")
  # Firecracker under its jailer: its chroot and cgroup.
  for jail in "${XDG_STATE_HOME:-$HOME/.local/state}"/banger/jail/*/"$name"; do
    [ -e "$jail" ] && leaks+=("the jail $jail")
  done
  [ -e "/sys/fs/cgroup/banger/$name" ] && leaks+=("the cgroup banger/$name")
  # The image's files its overlays read are there and unwritten.
  now_stat=$(for f in $backing; do stat -c '%n %s %Y' "$f" 2>/dev/null; done)
  [ "$now_stat" = "$backing_stat" ] || leaks+=("changed backing files: '$backing_stat' -> '$now_stat'")
  [ ${#leaks[@]} = 0 ] || fail "left behind: ${leaks[*]}"
}

if [ "$INSIDE" = 1 ] || [ "$HOST" = 1 ]; then
  inside
else
  outside
fi
