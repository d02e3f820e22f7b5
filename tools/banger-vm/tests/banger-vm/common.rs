//! Stand-ins for the plumbing tools: one shell script, installed under each
//! tool's name in a directory put first through BANGER_LIBEXEC. It logs
//! every call, keeps its "leases", "NAT elements" and "VMM processes" as
//! files (so a test can check nothing is left), and fails or hangs at a
//! chosen call (FAIL_AT / HANG_AT: a prefix of "TOOL ARGS").

use banger_lib::proc::{kill, Signal};
use banger_testkit::Home;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const STANDIN: &str = r#"#!/bin/bash
tool=$(basename "$0")
S="$STANDIN"
call="$tool $*"
echo "$call" >> "$S/log"
T="$S/templates"
# The error line every banger tool prints with BANGER_ERRORS=json, from
# templates Fx::new makes out of banger_lib's ErrorLine.
fail() { # CODE MESSAGE [HINT]
  if [ -n "${3:-}" ]; then
    sed -e "s|__MSG__|$2|" -e "s|__HINT__|$3|" "$T/error-$1.json" >&2
  else
    sed -e "s|__MSG__|$2|" -e 's|,"hint":"__HINT__"||' "$T/error-$1.json" >&2
  fi
  exit "$1"
}
if [ -n "$FAIL_AT" ] && [[ "$call" == "$FAIL_AT"* ]]; then
  fail "${FAIL_CODE:-1}" "injected failure at $FAIL_AT" "this is a stand-in"
fi
if [ -n "$HANG_AT" ] && [[ "$call" == "$HANG_AT"* ]]; then
  echo $$ > "$S/hang.pid"
  exec sleep 300
fi
vm_arg() { while [ $# -gt 0 ]; do [ "$1" = --vm ] && { echo "$2"; return; }; shift; done; }
case "$tool" in
banger-image)
  case "$1" in
  show) f="$S/images/$2.json"
        [ -f "$f" ] || fail 3 "no image named $2"
        cat "$f" ;;
  default) cat "$S/images/debian.json" ;;
  *) exit 2 ;;
  esac ;;
banger-net)
  case "$1 $2" in
  "tap acquire")
    vm=$(vm_arg "$@"); f="$S/leases/$vm"
    exec 9>"$S/net.lock"; flock 9
    if [ ! -f "$f" ]; then
      n=10; while grep -qs "\"ip\":\"172.30.0.$n\"" "$S"/leases/*; do n=$((n+1)); done
      sed -e "s|__VM__|$vm|" -e "s|__TAP__|${STANDIN_TAP:-tap-$vm}|" \
          -e "s|172.30.0.199|172.30.0.$n|" -e "s|06:00:ac:1e:00:c7|06:00:ac:1e:00:$n|" \
          "$T/tap.json" > "$f"
    fi
    iso=true; case " $* " in *" --no-isolate "*) iso=false ;; esac
    sed -e "s|\"isolated\":true|\"isolated\":$iso|" "$f" ;;
  "tap set")
    vm=$(vm_arg "$@")
    [ -f "$S/leases/$vm" ] || fail 3 "no lease for $vm" ;;
  "tap release")
    vm=$(vm_arg "$@")
    rm "$S/leases/$vm" 2>/dev/null || fail 3 "no lease for $vm" ;;
  "nat enable") touch "$S/nat/$(vm_arg "$@")" ;;
  "nat disable")
    rm "$S/nat/$(vm_arg "$@")" 2>/dev/null || fail 3 "no NAT for it" ;;
  "dns ensure") ;;
  "lease list") cat "$S"/leases/* 2>/dev/null || true ;;
  "gc "*) ;;
  "forward add"|"forward remove"|"forward list") ;;
  *) exit 2 ;;
  esac ;;
banger-qemu|banger-fc)
  case "$1" in
  start)
    spec=$(cat); id=$(echo "$spec" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
    echo "$spec" > "$S/spec-$id.json"
    # DRIVER_HOLD=FILE: hold the driver's lock, as the real ones do for a
    # whole start, and go on once FILE exists (saying so in FILE.held).
    mkdir -p "$XDG_RUNTIME_DIR/banger/$id"
    exec 8>"$XDG_RUNTIME_DIR/banger/$id/vmm.json.lock"; flock 8
    if [ -n "$DRIVER_HOLD" ]; then
      touch "$DRIVER_HOLD.held"
      while [ ! -e "$DRIVER_HOLD" ]; do sleep 0.01; done
    fi
    setsid sleep 1000 </dev/null >/dev/null 2>&1 8>&- &
    pid=$!
    echo $pid > "$S/vmm/$id.pid"; echo $pid >> "$S/all-pids"
    st=$(awk '{print $22}' /proc/$pid/stat)
    mkdir -p "$XDG_STATE_HOME/banger/vms/$id"
    # A guest that floods its console with escape sequences: MiB of them.
    if [ -n "$CONSOLE_FLOOD_MIB" ]; then
      yes $'\e[2J\e]0;pwned\a\e[31mflood\e[0m\r' | head -c $((CONSOLE_FLOOD_MIB << 20)) \
        >> "$XDG_STATE_HOME/banger/vms/$id/console.log"
    fi
    echo "standin console: $id booting" >> "$XDG_STATE_HOME/banger/vms/$id/console.log"
    vmm=qemu; [ "$tool" = banger-fc ] && vmm=firecracker
    # The driver keeps its record in the VM's run dir, as the real ones do.
    mkdir -p "$XDG_RUNTIME_DIR/banger/$id"
    sed -e "s|__ID__|$id|g" -e "s|__VMM__|$vmm|" -e "s|4294967001|$pid|" \
        -e "s|18446744073709551001|$st|" -e "s|__RUN__|$XDG_RUNTIME_DIR|g" "$T/vmm.json" \
      >"$XDG_RUNTIME_DIR/banger/$id/vmm.json"
    # The record first, then the line: a caller gone meanwhile does not
    # keep the record from being written.
    cat "$XDG_RUNTIME_DIR/banger/$id/vmm.json" ;;
  stop)
    f="$S/vmm/$2.pid"
    [ -f "$f" ] || fail 3 "no VM $2"
    kill "$(cat "$f")" 2>/dev/null; rm -f "$f"; rm -rf "$XDG_RUNTIME_DIR/banger/$2"
    how=${STOP_HOW:-agent}; clean=true
    case " $* " in *" --kill "*) how=killed ;; esac
    [ "$how" = killed ] && clean=false
    sed -e "s|__ID__|$2|" -e "s|__HOW__|$how|" -e "s|\"clean\":true|\"clean\":$clean|" \
        -e "s|\"synced\":true|\"synced\":${STOP_SYNCED:-false}|" "$T/stop.json" ;;
  *) exit 2 ;;
  esac ;;
banger-health)
  case "$1" in
  wait)
    if [ -n "$KILL_VMM_AT_HEALTH" ]; then
      kill "$(cat "$S/vmm/$2.pid")"
      fail 1 "$2 is not running"
    fi
    echo "{\"name\":\"$2\",\"ok\":true}" ;;
  check) shift; for n in "$@"; do echo "{\"name\":\"$n\",\"ok\":true}"; done ;;
  esac ;;
banger-ssh)
  case "$1" in
  wait)
    # SSH_WAIT_PID: say so, then wait on for a minute (a guest whose sshd
    # never answers).
    if [ -n "$SSH_WAIT_PID" ]; then echo $$ >"$SSH_WAIT_PID"; sleep 60; fi ;;
  pin)
    # PIN_FAIL: fail once the ssh wait has begun (a poll, 5 s at most).
    if [ -n "$PIN_FAIL" ]; then
      i=0
      while [ ! -s "$SSH_WAIT_PID" ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
      fail 1 "no host keys"
    fi ;;
  forget) ;;
  *) shift; [ "$1" = -- ] && shift; exec sh -c "$*" ;;
  esac ;;
esac
"#;

/// The lines the stand-ins print, made from banger_lib's own types with
/// placeholders the script fills in: they cannot drift from what the real
/// tools print.
fn write_templates(dir: &Path) {
    use banger_lib::error::{ErrorLine, Kind};
    use banger_lib::records::{StopLine, TapLine};
    std::fs::create_dir_all(dir).unwrap();
    let put = |name: &str, v: String| std::fs::write(dir.join(name), v + "\n").unwrap();
    for kind in [
        Kind::Failed,
        Kind::Usage,
        Kind::NotFound,
        Kind::Prereq,
        Kind::Conflict,
    ] {
        let line = ErrorLine::new(kind, "__MSG__", Some("__HINT__"));
        put(
            &format!("error-{}.json", kind.exit_code()),
            serde_json::to_string(&line).unwrap(),
        );
    }
    let tap = TapLine {
        vm: "__VM__".into(),
        tap: "__TAP__".into(),
        ip: "172.30.0.199".parse().unwrap(),
        prefix: 24,
        gateway: "172.30.0.1".parse().unwrap(),
        mac: "06:00:ac:1e:00:c7".into(),
        dns: "172.30.0.1".parse().unwrap(),
        isolated: true,
    };
    put("tap.json", serde_json::to_string(&tap).unwrap());
    let vmm = banger_lib::vmspec::VmmRecord {
        schema: banger_lib::state::SCHEMA,
        id: "__ID__".into(),
        vmm: "__VMM__".into(),
        accel: "tcg".into(),
        pid: 4294967001,
        pid_start_time: 18446744073709551001,
        api_socket: None,
        jail: None,
        qmp_socket: None,
        vsock_uds: Some("__RUN__/banger/__ID__/vsock.sock".into()),
        agent: None,
        helper_pid: None,
        helper_pid_start_time: None,
        vmm_version: "standin".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        vmm_log: "/nonexistent/vmm.log".into(),
        console_log: "/nonexistent/console.log".into(),
    };
    put("vmm.json", serde_json::to_string(&vmm).unwrap());
    let stop = StopLine {
        id: "__ID__".into(),
        stopped: true,
        how: "__HOW__".into(),
        clean: true,
        synced: true,
    };
    put("stop.json", serde_json::to_string(&stop).unwrap());
}

pub struct Fx {
    pub home: Home,
    pub standin: PathBuf,
    pub libexec: PathBuf,
    pub runtime: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Fx {
    pub fn new() -> Fx {
        let home = Home::new();
        let root = home.path().to_path_buf();
        let standin = root.join("standin");
        let libexec = root.join("libexec");
        let runtime = root.join("runtime");
        for d in ["leases", "nat", "vmm", "images"] {
            std::fs::create_dir_all(standin.join(d)).unwrap();
        }
        std::fs::create_dir_all(&libexec).unwrap();
        std::fs::create_dir_all(&runtime).unwrap();
        std::fs::write(standin.join("log"), "").unwrap();
        write_templates(&standin.join("templates"));
        for tool in [
            "banger-image",
            "banger-net",
            "banger-qemu",
            "banger-fc",
            "banger-health",
            "banger-ssh",
        ] {
            let p = libexec.join(tool);
            std::fs::write(&p, STANDIN).unwrap();
            chmod_x(&p);
        }
        std::fs::write(
            runtime.join("bundle.json"),
            r#"{"schema":1,"vmm":"qemu","vcpus":1,"memory_mib":256,"disk_size":"16M"}"#,
        )
        .unwrap();
        std::fs::write(runtime.join("vmlinux"), b"kernel").unwrap();
        // An image: a rootfs with some data, an ext4 work seed.
        let rootfs = standin.join("rootfs.ext4");
        std::fs::write(&rootfs, vec![0x5a; 256 << 10]).unwrap();
        let seed = standin.join("work-seed.ext4");
        std::fs::File::create(&seed)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        let ok = Command::new(banger_lib::hosttools::which("mkfs.ext4").expect("mkfs.ext4"))
            .args(["-q", "-F"])
            .arg(&seed)
            .status()
            .unwrap();
        assert!(ok.success());
        let line = banger_testkit::records::image_line("debian", &rootfs, Some(&seed));
        std::fs::write(
            standin.join("images/debian.json"),
            serde_json::to_string(&line).unwrap(),
        )
        .unwrap();
        let mut env: Vec<(String, String)> = home
            .envs()
            .into_iter()
            .map(|(k, v)| (k, v.display().to_string()))
            .collect();
        env.push(("BANGER_RUNTIME".into(), runtime.display().to_string()));
        env.push(("BANGER_LIBEXEC".into(), libexec.display().to_string()));
        env.push(("STANDIN".into(), standin.display().to_string()));
        env.push(("BANGER_LOCK_TIMEOUT".into(), "30".into()));
        Fx {
            home,
            standin,
            libexec,
            runtime,
            env,
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_banger-vm"));
        c.args(args);
        self.apply(&mut c);
        c
    }

    /// Use the real `tool` (a built workspace binary) instead of its stand-in.
    pub fn use_real(&self, tool: &str) {
        let p = self.libexec.join(tool);
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(banger_testkit::bin(tool), &p).unwrap();
    }

    /// This fixture's environment on any command.
    pub fn apply(&self, c: &mut Command) {
        for (k, v) in &self.env {
            c.env(k, v);
        }
        for k in [
            "FAIL_AT",
            "FAIL_CODE",
            "CONSOLE_FLOOD_MIB",
            "HANG_AT",
            "KILL_VMM_AT_HEALTH",
            "STOP_HOW",
            "STOP_SYNCED",
        ] {
            c.env_remove(k);
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    /// `create --name NAME` with the stand-ins, which must succeed.
    pub fn create(&self, name: &str, extra: &[&str]) -> serde_json::Value {
        let mut args = vec!["create", "--name", name];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert_ok(&out);
        json_lines(&out).remove(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.standin.join("log")).unwrap()
    }

    pub fn clear_log(&self) {
        std::fs::write(self.standin.join("log"), "").unwrap();
    }

    pub fn vms_dir(&self) -> PathBuf {
        self.home.path().join("state/banger/vms")
    }

    pub fn vm_json(&self, name: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.vms_dir().join(name).join("vm.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn entries(&self, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.standin.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    pub fn leases(&self) -> Vec<String> {
        self.entries("leases")
    }

    pub fn nats(&self) -> Vec<String> {
        self.entries("nat")
    }

    /// Every VMM process the stand-in ever started, still alive.
    pub fn live_vmms(&self) -> Vec<u32> {
        let text = std::fs::read_to_string(self.standin.join("all-pids")).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.trim().parse().ok())
            .filter(|pid: &u32| {
                banger_lib::proc::start_time(*pid).is_some()
                    && banger_lib::proc::state(*pid) != Some('Z')
                    && banger_lib::proc::comm(*pid).as_deref() == Some("sleep")
            })
            .collect()
    }

    /// Nothing of VM `name` is left: no record or disks, no lease, no NAT
    /// element, no VMM process, no runtime dir.
    pub fn assert_nothing_left(&self, name: &str) {
        assert!(
            !self.vms_dir().join(name).exists(),
            "VM dir left: {:?}",
            std::fs::read_dir(self.vms_dir().join(name))
                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
        );
        assert!(!self.leases().contains(&name.to_string()), "lease left");
        assert!(!self.nats().contains(&name.to_string()), "NAT element left");
        let gone = banger_testkit::poll(Duration::from_secs(10), || {
            self.live_vmms().is_empty().then_some(())
        });
        assert!(gone.is_some(), "VMM processes left: {:?}", self.live_vmms());
        assert!(!self.home.path().join("run/banger").join(name).exists());
    }

    pub fn kill_hang(&self) {
        if let Some(pid) = banger_lib::proc::read_pid_file(&self.standin.join("hang.pid")) {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
}

impl Drop for Fx {
    fn drop(&mut self) {
        for pid in self.live_vmms() {
            let _ = kill(pid, Signal::SIGKILL);
        }
        self.kill_hang();
    }
}

fn chmod_x(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
}

pub fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
}

/// Wait until the stand-ins log a call starting with `call`.
pub fn wait_for_call(fx: &Fx, call: &str) {
    let seen = banger_testkit::poll(Duration::from_secs(30), || {
        fx.log().contains(call).then_some(())
    });
    assert!(seen.is_some(), "never called {call}: {}", fx.log());
}
