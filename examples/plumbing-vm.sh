#!/bin/sh
# `banger vm create` and `banger vm delete` from the plumbing alone:
# banger-image, banger-net, banger-fc (or banger-qemu) and banger-health,
# glued with jq. It keeps its own state in $DIR; banger-vm is not used.
#
#   plumbing-vm.sh up NAME [IMAGE]     boot NAME, print its address when healthy
#   plumbing-vm.sh down NAME           stop it and give everything back
#
# VMM=fc|qemu picks the driver (default qemu); DIR defaults to
# $XDG_STATE_HOME/banger/plumbing/NAME.
set -eu
verb=${1:?usage: plumbing-vm.sh up|down NAME [IMAGE]}
name=${2:?usage: plumbing-vm.sh up|down NAME [IMAGE]}
vmm=banger-${VMM:-qemu}
dir=${DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/banger/plumbing/$name}

down() {
    "$vmm" stop "$name" >/dev/null 2>&1 || true
    banger-net tap release --vm "$name" >/dev/null 2>&1 || true
    rm -rf "$dir"
}

case $verb in
down)
    down
    exit 0
    ;;
up) ;;
*)
    echo "plumbing-vm.sh: unknown verb $verb" >&2
    exit 2
    ;;
esac

# 1. The image: the one named, else the default.
if [ -n "${3:-}" ]; then
    img=$(banger-image show "$3")
else
    img=$(banger-image default)
fi
rootfs=$(printf '%s' "$img" | jq -r .rootfs)
seed=$(printf '%s' "$img" | jq -r '.work_seed // empty')
kernel=$(printf '%s' "$img" | jq -r .kernel)
initrd=$(printf '%s' "$img" | jq -r '.initrd // empty')

# From here on, a failure gives back what was made.
trap 'down' EXIT

# 2. The VM's own disks: copy-on-write where the filesystem allows.
mkdir -p "$dir"
cp --reflink=auto --sparse=always "$rootfs" "$dir/rootfs.ext4"
drives=$(jq -nc --arg p "$dir/rootfs.ext4" '[{id:"rootfs",path:$p,root:true}]')
if [ -n "$seed" ]; then
    cp --reflink=auto --sparse=always "$seed" "$dir/work.ext4"
    drives=$(printf '%s' "$drives" | jq -c --arg p "$dir/work.ext4" '. + [{id:"work",path:$p}]')
fi

# 3. A TAP and an address.
lease=$(banger-net tap acquire --vm "$name")
ip=$(printf '%s' "$lease" | jq -r .ip)
prefix=$(printf '%s' "$lease" | jq -r .prefix)
mask=$(jq -rn --argjson p "$prefix" \
    '[range(4)] | map(if $p >= (.+1)*8 then 255 elif $p <= .*8 then 0
                      else 256 - pow(2; 8 - ($p - .*8)) end) | map(tostring) | join(".")')
host=${ip##*.}

# 4. The VMM, from a spec on stdin.
spec=$(jq -nc \
    --arg id "$name" --arg kernel "$kernel" --arg initrd "$initrd" \
    --argjson drives "$drives" --argjson lease "$lease" --arg mask "$mask" \
    --argjson cid $((1000 + host)) --arg dir "$dir" '
    {id: $id, kernel: $kernel, vcpus: 1, mem_mib: 512, drives: $drives,
     cmdline: "console=ttyS0 ip=\($lease.ip)::\($lease.gateway):\($mask):\($id):eth0:off:\($lease.dns)",
     tap: $lease.tap, mac: $lease.mac, vsock_cid: $cid,
     vmm_log: "\($dir)/vmm.log", console_log: "\($dir)/console.log"}
    + (if $initrd == "" then {} else {initrd: $initrd} end)')
vm=$(printf '%s' "$spec" | "$vmm" start)
printf '%s\n' "$vm" >"$dir/vmm.json"

# 5. Healthy: the guest agent answers at the endpoint the VMM printed
# (Firecracker's hybrid vsock, or QEMU's virtio-serial port).
uds=$(printf '%s' "$vm" | jq -r .agent.uds)
if [ "$(printf '%s' "$vm" | jq -r .agent.kind)" = serial ]; then
  banger-health wait --serial "$uds" --timeout "${TIMEOUT:-120}" >/dev/null
else
  banger-health wait --uds "$uds" --port "$(printf '%s' "$vm" | jq -r .agent.port)" \
    --timeout "${TIMEOUT:-120}" >/dev/null
fi

trap - EXIT
jq -nc --arg name "$name" --arg ip "$ip" --argjson vm "$vm" \
    '{name: $name, ip: $ip, vmm: $vm.vmm, pid: $vm.pid, vsock_uds: $vm.vsock_uds, agent: $vm.agent}'
