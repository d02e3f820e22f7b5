#!/bin/bash
# Runs INSIDE the image's chroot (make-rootfs.sh copies it to /tmp/banger
# with the key, the agent and its unit). Makes a Debian tree a banger guest:
# see DESIGN.md, "Guest contract".
set -euo pipefail
B=/tmp/banger

# Root: bash, locked password (ssh keys only), key in both the work disk's
# ~/.ssh (mounted over /root) and a root-fs fallback sshd also reads.
usermod -s /bin/bash root
passwd -l root >/dev/null
install -d -m 0700 /root/.ssh
install -m 0600 $B/authorized_keys /root/.ssh/authorized_keys
install -d -m 0755 /etc/ssh/authorized_keys
install -m 0644 $B/authorized_keys /etc/ssh/authorized_keys/root
[ -f /root/.bashrc ] || cp /etc/skel/.bashrc /root/.bashrc 2>/dev/null || true

# sshd: key-only root login. Host keys are made on first boot so clones of
# one image never share them; ed25519 only, cheap even under emulation.
rm -f /etc/ssh/ssh_host_*
cat > /etc/ssh/sshd_config.d/banger.conf <<'CONF'
# banger guest: key-only root login.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/authorized_keys/%u
HostKey /etc/ssh/ssh_host_ed25519_key
UseDNS no
CONF
cat > /etc/systemd/system/banger-ssh-hostkey.service <<'UNIT'
[Unit]
Description=banger: generate this guest's ssh host key
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=multi-user.target
UNIT

# Network from the kernel's ip= argument: the Debian cloud kernel has no IP
# autoconfig, so apply it in userspace.
install -m 0755 $B/banger-ipconfig /usr/local/sbin/banger-ipconfig
cat > /etc/systemd/system/banger-ipconfig.service <<'UNIT'
[Unit]
Description=banger: network and hostname from the kernel's ip= argument
DefaultDependencies=no
After=systemd-udevd.service local-fs.target
Before=network.target network-online.target ssh.service
Wants=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/banger-ipconfig

[Install]
WantedBy=multi-user.target network-online.target
UNIT
# Keep the kernel's eth0 name (no PCI path names on virtio-mmio anyway).
mkdir -p /etc/systemd/network
ln -sf /dev/null /etc/systemd/network/99-default.link
echo banger > /etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 banger\n::1 localhost ip6-localhost ip6-loopback\n' > /etc/hosts

# Disks: root on the first, the VM's work disk (from work-seed) at /root.
# nofail: a guest booted without a work disk still comes up. The device
# timeout is long: under TCG on a loaded host vdb can take over 20 s to
# appear, and then /root would be the root disk's.
cat > /etc/fstab <<'FSTAB'
# banger guest
/dev/vda  /      ext4  defaults,errors=remount-ro            0 0
/dev/vdb  /root  ext4  defaults,nofail,x-systemd.device-timeout=90s  0 0
FSTAB

# Older work seeds held /root inside the disk (so it showed up as
# /root/root): move its contents up once, never overwriting.
cat > /usr/local/sbin/banger-fix-root <<'SH'
#!/bin/bash
set -u
shopt -s dotglob nullglob
nested=/root/root
[ -d "$nested" ] || exit 0
for e in "$nested"/*; do
  name=${e##*/}
  if [ -e "/root/$name" ]; then
    echo "banger-fix-root: /root/$name exists; leaving $e"
  else
    mv "$e" "/root/$name"
  fi
done
rmdir "$nested" 2>/dev/null && echo "banger-fix-root: moved $nested up into /root"
exit 0
SH
chmod 0755 /usr/local/sbin/banger-fix-root
cat > /etc/systemd/system/banger-fix-root.service <<'UNIT'
[Unit]
Description=banger: repair a stale nested /root/root layout
RequiresMountsFor=/root
ConditionPathIsDirectory=/root/root
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/banger-fix-root

[Install]
WantedBy=multi-user.target
UNIT

# The guest agent on vsock: health, and sync / poweroff / reboot on the
# host's request (a stop asks it first).
install -m 0755 $B/banger-vsock-agent /usr/local/bin/banger-vsock-agent
if [ -f $B/banger-vsock-agent.service ]; then
  install -m 0644 $B/banger-vsock-agent.service /etc/systemd/system/banger-vsock-agent.service
else
  cat > /etc/systemd/system/banger-vsock-agent.service <<'UNIT'
[Unit]
Description=banger guest agent (HTTP over vsock: /healthz, /sync, /shutdown, /reboot)
After=local-fs.target

[Service]
ExecStart=/usr/local/bin/banger-vsock-agent
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
UNIT
fi

# The VMM's power button (QEMU `system_powerdown`, an ACPI power button
# event) powers the guest off cleanly, so a stop does not have to wait out
# its timeout and kill the VMM with writes in flight. Nothing else here
# would react: systemd-logind, the usual handler, needs D-Bus, which this
# image does not carry (logind would not even start). acpid is the lean
# choice: one small daemon and no bus; the initramfs loads the `button` and
# `evdev` modules it listens to. acpid.path starts it as soon as
# /etc/acpi/events has a rule (early, at paths.target), and it does not
# hold up the boot. `systemctl poweroff` reaches pid 1 over systemd's
# private socket, so it needs no D-Bus either.
install -d -m 0755 /etc/acpi/events
cat > /etc/acpi/events/banger-powerbtn <<'RULE'
# banger: the VMM's power button powers the guest off.
event=button/power.*
action=/bin/systemctl poweroff
RULE

# A root shell on the serial console: only the host can reach it.
mkdir -p /etc/systemd/system/serial-getty@ttyS0.service.d
cat > /etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf <<'UNIT'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 %I $TERM
UNIT

systemctl enable banger-ssh-hostkey.service banger-ipconfig.service \
  banger-fix-root.service banger-vsock-agent.service ssh.service \
  serial-getty@ttyS0.service acpid.path acpid.socket acpid.service >/dev/null 2>&1
# Nothing in a throwaway guest should wake up to update apt lists.
systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
  systemd-networkd-wait-online.service >/dev/null 2>&1 || true
# No screen on a microVM: no VT gettys.
systemctl disable getty@tty1.service >/dev/null 2>&1 || true
systemctl mask getty-static.service >/dev/null 2>&1 || true
systemctl set-default multi-user.target >/dev/null
apt-get clean
echo "customize.sh: done" >&2
