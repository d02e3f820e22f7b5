# banger: build, test, install. `make help` lists the targets.
PREFIX ?= /usr/local
BINDIR := $(PREFIX)/bin
MANDIR := $(PREFIX)/share/man
RUNTIMEDIR := $(PREFIX)/lib/banger/runtime
CARGO ?= cargo
TOOLS := banger banger-vm banger-fc banger-qemu banger-net banger-image \
         banger-health banger-ssh banger-doctor banger-tui
AGENT_TARGET := x86_64-unknown-linux-gnu
AGENT := target/$(AGENT_TARGET)/agent/banger-vsock-agent

.PHONY: help build agent kernel test test-live man install clean runtime-bundle \
        runtime-local rootfs rootfs-void verify-void bench-create bench-snapshot soak \
        kernel-debian

help:
	@echo "make build | agent | test | test-live | man | install | clean"
	@echo "make kernel | kernel-debian"
	@echo "make runtime-bundle RUNTIME_MANIFEST=path | runtime-local | rootfs | rootfs-void | bench-create | bench-snapshot | soak"

build: agent
	$(CARGO) build --release --workspace --bins

# The guest agent: static (no glibc version tie to the guest) and small.
agent:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build \
		-p banger-vsock-agent --profile agent --target $(AGENT_TARGET)

# Tests that could not run print SKIPPED: lines; the count comes last.
test:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@mkdir -p target && rm -f target/test-skips.log
	$(CARGO) test --workspace
	# banger-net killed after each change in turn (a test-only feature).
	$(CARGO) test -p banger-net --features fault-injection --test banger-net fault::
	@n=$$(cat target/test-skips.log 2>/dev/null | wc -l); \
	  echo "test summary: $$n skipped"; cat target/test-skips.log 2>/dev/null || true

# The whole flow with a real guest under QEMU, as root: verify.sh --nat in
# network namespaces it makes (see tools/banger-vm/tests/banger-vm/live.rs).
test-live:
	$(CARGO) build --workspace --bins
	$(CARGO) test -p banger-vm --test banger-vm live:: -- --include-ignored --nocapture

# SOAK create/delete cycles with the real banger-net in a namespace (CI
# runs 20 as part of make test), then SOAK_BOOTED cycles with a booted
# guest under QEMU after verify.sh (CI runs 2); nothing may be left. Root.
SOAK ?= 100
SOAK_BOOTED ?= 5
soak:
	BANGER_SOAK=$(SOAK) $(CARGO) test -p banger-vm --test banger-vm with_net::soak -- --nocapture
	BANGER_SOAK_BOOTED=$(SOAK_BOOTED) $(CARGO) test -p banger-vm --test banger-vm live:: -- --nocapture

# Create and delete RUNS VMs: phase timings per run, min/median/p90/max; the
# same VM booted by hand with the driver's exact command lines (--print-argv)
# to the same readiness, for banger's own part and the ratio; 1 and 10
# concurrent creates (see tools/banger-vm/bench-create.sh --help).
RUNS ?= 5
bench-create:
	$(CARGO) build --release --workspace --bins
	BANGER_BIN=$(CURDIR)/target/release tools/banger-vm/bench-create.sh -n $(RUNS)

# One VM suspended and resumed RUNS times, then RUNS clones from a golden
# snapshot of it: suspend time, state size, clone create-to-ssh,
# resume-to-agent time, beside the same VM's cold create.
bench-snapshot:
	$(CARGO) build --release --workspace --bins
	BANGER_BIN=$(CURDIR)/target/release tools/banger-vm/bench-snapshot.sh -n $(RUNS)

# banger's guest kernel (ELF vmlinux, no initramfs needed), built from
# Debian's linux-source with rootfs/guest-kernel.config: ~10 min on 2 cores.
kernel:
	rootfs/build-kernel.sh runtime

# Instead: Debian's packaged cloud kernel and banger's busybox initramfs
# loading its modules (a download, no build; a slower boot).
kernel-debian:
	rootfs/make-kernel.sh runtime

# A runtime bundle made on this machine alone: banger's guest kernel built
# from Debian's linux-source, a fresh ed25519 key, the agent, and the
# default Debian image (root; kept if it exists: `banger-image rm debian`
# to rebuild).
runtime-local: agent
	rootfs/build-kernel.sh runtime
	[ -f runtime/id_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -C banger -f runtime/id_ed25519
	install -m 0755 $(AGENT) runtime/banger-vsock-agent
	$(CARGO) build --release -p banger-image
	target/release/banger-image show debian >/dev/null 2>&1 || target/release/banger-image build --name debian

# A released bundle: download, check sha256, then unpack into runtime/.
runtime-bundle:
	@[ -n "$(RUNTIME_MANIFEST)" ] || { echo "usage: make runtime-bundle RUNTIME_MANIFEST=path/to/runtime-bundle.toml" >&2; exit 2; }
	$(CARGO) build --release -p banger-image
	target/release/banger-image bundle fetch --manifest $(RUNTIME_MANIFEST) --into runtime

# A Debian image named IMAGE (root).
IMAGE ?= debian
rootfs: agent
	$(CARGO) build --release -p banger-image
	target/release/banger-image build --name $(IMAGE) --agent $(AGENT)

# Experimental Void image into target/void/; fails early where no Void
# mirror is reachable.
rootfs-void:
	rootfs/make-rootfs-void.sh --out target/void --pubkey runtime/id_ed25519.pub --agent $(AGENT)

verify-void:
	rootfs/make-rootfs-void.sh --verify target/void/rootfs.ext4

man:
	BANGER_UPDATE_MAN=1 $(CARGO) test --workspace man_page

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 \
		$(DESTDIR)$(RUNTIMEDIR)
	for t in $(TOOLS); do \
		[ -f target/release/$$t ] && install -m 0755 target/release/$$t $(DESTDIR)$(BINDIR)/; \
	done; true
	install -m 0644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	-install -m 0644 man/*.7 $(DESTDIR)$(MANDIR)/man7/ 2>/dev/null
# Completions come from the dispatcher just built, so they offer the tools installed with it.
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	target/release/banger completions bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/banger
	target/release/banger completions zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_banger
	target/release/banger completions fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/banger.fish
	[ -f $(DESTDIR)$(RUNTIMEDIR)/bundle.json ] || install -m 0644 runtime/bundle.json $(DESTDIR)$(RUNTIMEDIR)/
	install -m 0755 $(AGENT) $(DESTDIR)$(RUNTIMEDIR)/banger-vsock-agent
# What make runtime-local or runtime-bundle put in runtime/, when it is there.
	for f in vmlinux initrd.img kernel.json id_ed25519.pub; do \
		[ ! -f runtime/$$f ] || install -m 0644 runtime/$$f $(DESTDIR)$(RUNTIMEDIR)/; \
	done
	[ ! -f runtime/id_ed25519 ] || install -m 0600 runtime/id_ed25519 $(DESTDIR)$(RUNTIMEDIR)/
	[ ! -f runtime/firecracker ] || install -m 0755 runtime/firecracker $(DESTDIR)$(RUNTIMEDIR)/
# banger-image build runs the rootfs scripts from beside the runtime dir.
	install -d $(DESTDIR)$(PREFIX)/lib/banger/rootfs
	install -m 0755 rootfs/*.sh rootfs/banger-ipconfig $(DESTDIR)$(PREFIX)/lib/banger/rootfs/
	install -m 0644 rootfs/*.service rootfs/guest-kernel.config $(DESTDIR)$(PREFIX)/lib/banger/rootfs/

clean:
	$(CARGO) clean
