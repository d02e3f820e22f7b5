#!/usr/bin/env bash
# From a fresh Debian 12 machine to a shell command run inside a banger VM:
# install packages and tools, build and install banger, make the runtime
# bundle on this machine, create a VM and run a command in it over ssh.
# Safe to run again: every step skips what is already done.
set -euo pipefail
cd "$(dirname "$0")"
[ "$(id -u)" = 0 ] || { echo "quickstart.sh: run it as root (sudo ./quickstart.sh)" >&2; exit 4; }
NAME=${1:-box}

step() { printf '\n==> %s\n' "$*" >&2; }

step "installing packages and tools"
if ! command -v cargo >/dev/null; then
  echo "quickstart.sh: cargo is missing; install Rust (rustup) first" >&2; exit 4
fi
.ci/install-deps

step "building banger"
make build

step "making the runtime bundle here: guest kernel, Debian image, ssh key, agent"
make runtime-local

step "installing banger (PREFIX=/usr/local)"
make install

step "checking the host"
banger doctor || true

if ! banger vm show "$NAME" >/dev/null 2>&1; then
  step "creating VM $NAME"
  banger vm create --name "$NAME"
fi
banger vm start "$NAME" >/dev/null 2>&1 || true

step "running a command in $NAME over ssh"
banger vm ssh "$NAME" -- uname -a

printf '\n%s is running. Enter it with:  banger vm ssh %s\n' "$NAME" "$NAME" >&2
