//! The fake's microVM: Firecracker's state machine and the checks it makes
//! on the host (kernel and drive files exist, the vsock socket can be
//! bound, snapshot files are written and read back). Requests reach it
//! already schema-checked; what it refuses here is what the real
//! Firecracker refuses at run time, with a 400 and a `fault_message`.

use super::openapi::Operation;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

pub const VERSION: &str = "1.16.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    NotStarted,
    Running,
    Paused,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::NotStarted => "Not started",
            State::Running => "Running",
            State::Paused => "Paused",
        }
    }
}

/// What the server must do after sending the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    None,
    /// The guest started: write a console banner.
    Started,
    /// The guest got Ctrl+Alt+Del: a guest that handles it shuts down.
    CtrlAltDel,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub effect: Effect,
}

fn ok() -> Reply {
    Reply {
        status: 204,
        body: None,
        effect: Effect::None,
    }
}

fn json_reply(v: Value) -> Reply {
    Reply {
        status: 200,
        body: Some(v),
        effect: Effect::None,
    }
}

fn fault(msg: impl Into<String>) -> Reply {
    Reply {
        status: 400,
        body: Some(json!({ "fault_message": msg.into() })),
        effect: Effect::None,
    }
}

const AFTER_START: &str = "The requested operation is not supported after starting the microVM.";
const BEFORE_START: &str = "The requested operation is not supported before starting the microVM.";

/// Resources that can only be set before InstanceStart.
const PRE_BOOT: &[&str] = &[
    "/machine-config",
    "/boot-source",
    "/drives/{drive_id}",
    "/network-interfaces/{iface_id}",
    "/vsock",
    "/serial",
    "/cpu-config",
    "/mmds/config",
    "/entropy",
    "/balloon",
    "/pmem/{id}",
    "/hotplug/memory",
];

#[derive(Debug)]
pub struct Vmm {
    pub id: String,
    pub state: State,
    pub machine: Map<String, Value>,
    pub boot_source: Option<Value>,
    pub drives: BTreeMap<String, Value>,
    pub nets: BTreeMap<String, Value>,
    pub vsock: Option<Value>,
    pub logger: Option<Value>,
    pub metrics: Option<Value>,
    /// Where the serial console goes; stdout when unset.
    pub serial_out: Option<PathBuf>,
    /// Anything other than the logger and metrics was configured: a
    /// snapshot can no longer be loaded.
    pub configured: bool,
    pub from_snapshot: bool,
    /// Bound at PUT /vsock (or snapshot load), as Firecracker does; the
    /// server takes it to serve hybrid vsock connections.
    pub vsock_listener: Option<UnixListener>,
    /// The guest powered off (through the fake agent): it answers nothing
    /// more, and Firecracker, which has no ACPI power management on x86,
    /// lives on.
    pub guest_halted: bool,
}

impl Vmm {
    pub fn new(id: &str) -> Vmm {
        let mut machine = Map::new();
        machine.insert("vcpu_count".into(), json!(1));
        machine.insert("mem_size_mib".into(), json!(128));
        machine.insert("smt".into(), json!(false));
        machine.insert("track_dirty_pages".into(), json!(false));
        machine.insert("huge_pages".into(), json!("None"));
        Vmm {
            id: id.to_string(),
            state: State::NotStarted,
            machine,
            boot_source: None,
            drives: BTreeMap::new(),
            nets: BTreeMap::new(),
            vsock: None,
            logger: None,
            metrics: None,
            serial_out: None,
            configured: false,
            from_snapshot: false,
            vsock_listener: None,
            guest_halted: false,
        }
    }

    pub fn full_config(&self) -> Value {
        let mut c = Map::new();
        c.insert("machine-config".into(), Value::Object(self.machine.clone()));
        if let Some(b) = &self.boot_source {
            c.insert("boot-source".into(), b.clone());
        }
        c.insert("drives".into(), self.drives.values().cloned().collect());
        c.insert(
            "network-interfaces".into(),
            self.nets.values().cloned().collect(),
        );
        if let Some(v) = &self.vsock {
            c.insert("vsock".into(), v.clone());
        }
        if let Some(l) = &self.logger {
            c.insert("logger".into(), l.clone());
        }
        Value::Object(c)
    }

    /// Handle one schema-valid request.
    pub fn handle(&mut self, method: &str, op: &Operation, body: Option<&Value>) -> Reply {
        let b = body.cloned().unwrap_or(Value::Null);
        let t = op.template.as_str();
        if method == "PUT" && PRE_BOOT.contains(&t) {
            if self.state != State::NotStarted || self.from_snapshot {
                return fault(AFTER_START);
            }
            self.configured = true;
        }
        if method == "PATCH"
            && t != "/vm"
            && t != "/machine-config"
            && self.state == State::NotStarted
        {
            return fault(BEFORE_START);
        }
        match (method, t) {
            ("GET", "/") => json_reply(json!({
                "app_name": "Firecracker",
                "id": self.id,
                "state": self.state.as_str(),
                "vmm_version": VERSION,
            })),
            ("GET", "/version") => json_reply(json!({ "firecracker_version": VERSION })),
            ("GET", "/machine-config") => json_reply(Value::Object(self.machine.clone())),
            ("GET", "/vm/config") => json_reply(self.full_config()),
            ("PUT", "/logger") => {
                if let Some(p) = b["log_path"].as_str() {
                    if let Err(e) = open_create(Path::new(p)) {
                        return fault(format!("Failed to open target file: {e}"));
                    }
                }
                self.logger = Some(b);
                ok()
            }
            ("PUT", "/metrics") => {
                if let Err(e) = open_create(Path::new(b["metrics_path"].as_str().unwrap_or(""))) {
                    return fault(format!("Cannot initialize the metrics system: {e}"));
                }
                self.metrics = Some(b);
                ok()
            }
            ("PUT", "/machine-config") | ("PATCH", "/machine-config") => {
                if self.state != State::NotStarted || self.from_snapshot {
                    return fault(AFTER_START);
                }
                if method == "PUT" {
                    self.machine = Vmm::new("").machine;
                }
                for (k, v) in b.as_object().into_iter().flatten() {
                    self.machine.insert(k.clone(), v.clone());
                }
                self.configured = true;
                ok()
            }
            ("PUT", "/boot-source") => {
                for key in ["kernel_image_path", "initrd_path"] {
                    if let Some(p) = b[key].as_str() {
                        if let Err(e) = std::fs::File::open(p) {
                            let what = if key == "initrd_path" {
                                "initrd"
                            } else {
                                "kernel"
                            };
                            return fault(format!("The {what} file cannot be opened: {e}"));
                        }
                    }
                }
                self.boot_source = Some(b);
                ok()
            }
            ("PUT", "/drives/{drive_id}") => self.put_drive(op, b),
            ("PATCH", "/drives/{drive_id}") => self.patch_drive(op, b),
            ("PUT", "/network-interfaces/{iface_id}") => self.put_net(op, b),
            ("PUT", "/vsock") => {
                if let Err(e) = self.bind_vsock(b["uds_path"].as_str().unwrap_or("")) {
                    return fault(format!("Cannot create backend for vsock device: {e}"));
                }
                self.vsock = Some(b);
                ok()
            }
            ("PUT", "/serial") => {
                if let Some(p) = b["serial_out_path"].as_str() {
                    self.serial_out = Some(PathBuf::from(p));
                }
                ok()
            }
            ("PUT", "/actions") => self.action(b["action_type"].as_str().unwrap_or("")),
            ("PATCH", "/vm") => {
                if self.state == State::NotStarted {
                    return fault(BEFORE_START);
                }
                self.state = if b["state"] == "Paused" {
                    State::Paused
                } else {
                    State::Running
                };
                ok()
            }
            ("PUT", "/snapshot/create") => self.snapshot_create(&b),
            ("PUT", "/snapshot/load") => self.snapshot_load(&b),
            ("GET", other) => fault(format!("{other} is not configured")),
            // Valid requests the fake does not model: accepted.
            _ => ok(),
        }
    }

    fn put_drive(&mut self, op: &Operation, b: Value) -> Reply {
        if b["drive_id"].as_str() != op.params.get("drive_id").map(String::as_str) {
            return fault("The id from the path does not match the id from the body!");
        }
        let id = b["drive_id"].as_str().unwrap_or_default().to_string();
        if let Some(p) = b["path_on_host"].as_str() {
            let ro = b["is_read_only"].as_bool().unwrap_or(false);
            if let Err(e) = std::fs::OpenOptions::new().read(true).write(!ro).open(p) {
                return fault(format!(
                    "Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: {e} {p}"
                ));
            }
        } else if b["socket"].is_null() {
            return fault("Unable to create the block device: path_on_host is required");
        }
        if b["is_root_device"] == true
            && self
                .drives
                .values()
                .any(|d| d["is_root_device"] == true && d["drive_id"] != b["drive_id"])
        {
            return fault("A root block device already exists!");
        }
        self.drives.insert(id, b);
        ok()
    }

    /// Firecracker's runtime drive update (running or paused): the file is
    /// reopened, and a later snapshot records the new path.
    fn patch_drive(&mut self, op: &Operation, b: Value) -> Reply {
        if b["drive_id"].as_str() != op.params.get("drive_id").map(String::as_str) {
            return fault("The id from the path does not match the id from the body!");
        }
        let id = b["drive_id"].as_str().unwrap_or_default();
        let Some(drive) = self.drives.get_mut(id) else {
            return fault(format!(
                "Unable to patch the block device: Invalid block device ID: {id}"
            ));
        };
        if let Some(p) = b["path_on_host"].as_str() {
            let ro = drive["is_read_only"].as_bool().unwrap_or(false);
            if let Err(e) = std::fs::OpenOptions::new().read(true).write(!ro).open(p) {
                return fault(format!(
                    "Unable to patch the block device: Virtio backend error: Error manipulating the backing file: {e} {p}"
                ));
            }
            drive["path_on_host"] = json!(p);
        }
        ok()
    }

    fn put_net(&mut self, op: &Operation, b: Value) -> Reply {
        if b["iface_id"].as_str() != op.params.get("iface_id").map(String::as_str) {
            return fault("The id from the path does not match the id from the body!");
        }
        if let Some(mac) = b["guest_mac"].as_str() {
            let good = mac.split(':').count() == 6
                && mac
                    .split(':')
                    .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok());
            if !good {
                return fault(format!("Invalid MAC address: {mac}"));
            }
        }
        let id = b["iface_id"].as_str().unwrap_or_default().to_string();
        self.nets.insert(id, b);
        ok()
    }

    fn bind_vsock(&mut self, path: &str) -> std::io::Result<()> {
        // A second PUT /vsock replaces the device (and its socket).
        if let Some(old) = self.vsock.as_ref().and_then(|v| v["uds_path"].as_str()) {
            self.vsock_listener = None;
            let _ = std::fs::remove_file(old);
        }
        self.vsock_listener = Some(UnixListener::bind(path)?);
        Ok(())
    }

    fn action(&mut self, action: &str) -> Reply {
        match action {
            "InstanceStart" => {
                if self.state != State::NotStarted || self.from_snapshot {
                    return fault(AFTER_START);
                }
                if self.boot_source.is_none() {
                    return fault("Cannot start microvm without kernel configuration.");
                }
                self.state = State::Running;
                Reply {
                    effect: Effect::Started,
                    ..ok()
                }
            }
            "SendCtrlAltDel" => {
                if self.state == State::NotStarted {
                    return fault(BEFORE_START);
                }
                Reply {
                    effect: Effect::CtrlAltDel,
                    ..ok()
                }
            }
            "FlushMetrics" => {
                if self.metrics.is_none() {
                    return fault("The metrics system is not initialized.");
                }
                ok()
            }
            other => fault(format!("unknown action {other}")),
        }
    }

    fn snapshot_create(&mut self, b: &Value) -> Reply {
        if self.state != State::Paused {
            return fault(
                "Cannot create snapshot: the microVM must be paused before taking a snapshot",
            );
        }
        if b["snapshot_type"] == "Diff" && self.machine["track_dirty_pages"] != true {
            return fault("Diff snapshots require dirty page tracking.");
        }
        let snap = Path::new(b["snapshot_path"].as_str().unwrap_or_default());
        let mem = Path::new(b["mem_file_path"].as_str().unwrap_or_default());
        let state =
            json!({ "fake_firecracker_snapshot": 1, "id": self.id, "config": self.full_config() });
        let write = || -> std::io::Result<()> {
            std::fs::write(snap, serde_json::to_vec(&state)?)?;
            let f = std::fs::File::create(mem)?;
            let mib = self.machine["mem_size_mib"].as_u64().unwrap_or(128);
            f.set_len(mib << 20)
        };
        match write() {
            Ok(()) => ok(),
            Err(e) => fault(format!("Cannot save the microVM state: {e}")),
        }
    }

    fn snapshot_load(&mut self, b: &Value) -> Reply {
        if self.configured || self.state != State::NotStarted || self.from_snapshot {
            return fault(
                "Loading a microVM snapshot not allowed after configuring boot-specific resources.",
            );
        }
        let mem =
            match (b["mem_file_path"].as_str(), b["mem_backend"].is_object()) {
                (Some(p), false) => p.to_string(),
                (None, true) => b["mem_backend"]["backend_path"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                _ => return fault(
                    "Exactly one of mem_file_path or mem_backend must be given to load a snapshot.",
                ),
            };
        if let Err(e) = std::fs::File::open(&mem) {
            return fault(format!("Cannot load the guest memory: {e}"));
        }
        let snap = b["snapshot_path"].as_str().unwrap_or_default();
        let state: Value = match std::fs::read(snap)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_slice(&t).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => return fault(format!("Cannot restore the microVM state: {e}")),
        };
        let c = &state["config"];
        if let Some(m) = c["machine-config"].as_object() {
            self.machine = m.clone();
        }
        // Dirty page tracking is the load's choice, not the snapshot's.
        self.machine.insert(
            "track_dirty_pages".into(),
            json!(b["track_dirty_pages"] == true || b["enable_diff_snapshots"] == true),
        );
        for d in c["drives"].as_array().into_iter().flatten() {
            // Firecracker reopens each drive at the path its vmstate names.
            let p = d["path_on_host"].as_str().unwrap_or_default();
            let ro = d["is_read_only"].as_bool().unwrap_or(false);
            if let Err(e) = std::fs::OpenOptions::new().read(true).write(!ro).open(p) {
                return fault(format!(
                    "Cannot restore the microVM state: Block device error: {e} {p}"
                ));
            }
            self.drives
                .insert(d["drive_id"].as_str().unwrap_or("").into(), d.clone());
        }
        for n in c["network-interfaces"].as_array().into_iter().flatten() {
            let mut n = n.clone();
            for o in b["network_overrides"].as_array().into_iter().flatten() {
                if o["iface_id"] == n["iface_id"] {
                    n["host_dev_name"] = o["host_dev_name"].clone();
                }
            }
            self.nets
                .insert(n["iface_id"].as_str().unwrap_or("").into(), n);
        }
        if let Some(v) = c.get("vsock").filter(|v| v.is_object()) {
            let mut v = v.clone();
            if let Some(p) = b["vsock_override"]["uds_path"].as_str() {
                v["uds_path"] = json!(p);
            }
            if let Err(e) = self.bind_vsock(v["uds_path"].as_str().unwrap_or("")) {
                return fault(format!("Cannot restore the vsock device: {e}"));
            }
            self.vsock = Some(v);
        }
        self.from_snapshot = true;
        self.state = if b["resume_vm"] == true {
            State::Running
        } else {
            State::Paused
        };
        ok()
    }
}

/// Firecracker opens log and metrics files creating them, without truncating.
fn open_create(p: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p)
}

#[cfg(test)]
mod tests {
    use super::super::openapi::{default_path, Api};
    use super::*;

    struct T {
        api: Api,
        vmm: Vmm,
        dir: tempfile::TempDir,
    }

    impl T {
        fn new() -> T {
            T {
                api: Api::load(&default_path()).unwrap(),
                vmm: Vmm::new("box"),
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn p(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }
        fn call(&mut self, m: &str, path: &str, body: Option<Value>) -> Reply {
            let op = self.api.check(m, path, body.as_ref()).unwrap();
            self.vmm.handle(m, &op, body.as_ref())
        }
        fn state(&mut self) -> String {
            self.call("GET", "/", None).body.unwrap()["state"]
                .as_str()
                .unwrap()
                .to_string()
        }
    }

    #[test]
    fn boot_pause_snapshot_and_load() {
        let mut t = T::new();
        std::fs::write(t.p("vmlinux"), b"k").unwrap();
        std::fs::write(t.p("rootfs"), b"r").unwrap();
        assert_eq!(t.state(), "Not started");
        let r = t.call(
            "PUT",
            "/actions",
            Some(json!({"action_type": "InstanceStart"})),
        );
        assert_eq!(r.status, 400, "no kernel yet");
        let r = t.call("PATCH", "/vm", Some(json!({"state": "Paused"})));
        assert_eq!(r.status, 400, "pause before start");
        let k = t.p("vmlinux");
        assert_eq!(
            t.call("PUT", "/boot-source", Some(json!({"kernel_image_path": k})))
                .status,
            204
        );
        let missing = t.p("nope");
        assert_eq!(
            t.call(
                "PUT",
                "/drives/rootfs",
                Some(
                    json!({"drive_id": "rootfs", "path_on_host": missing, "is_root_device": true})
                )
            )
            .status,
            400
        );
        let r = t.p("rootfs");
        assert_eq!(
            t.call(
                "PUT",
                "/drives/other",
                Some(json!({"drive_id": "rootfs", "path_on_host": r, "is_root_device": true}))
            )
            .status,
            400,
            "path id and body id differ"
        );
        assert_eq!(
            t.call(
                "PUT",
                "/drives/rootfs",
                Some(json!({"drive_id": "rootfs", "path_on_host": r, "is_root_device": true}))
            )
            .status,
            204
        );
        let v = t.p("v.sock");
        assert_eq!(
            t.call(
                "PUT",
                "/vsock",
                Some(json!({"guest_cid": 3, "uds_path": v}))
            )
            .status,
            204
        );
        assert!(Path::new(&v).exists());
        let r = t.call(
            "PUT",
            "/actions",
            Some(json!({"action_type": "InstanceStart"})),
        );
        assert_eq!((r.status, r.effect), (204, Effect::Started));
        assert_eq!(t.state(), "Running");
        let k = t.p("vmlinux");
        assert_eq!(
            t.call("PUT", "/boot-source", Some(json!({"kernel_image_path": k})))
                .status,
            400,
            "configuring after start"
        );
        let (s, m) = (t.p("vmstate"), t.p("mem"));
        let snap = json!({"snapshot_type": "Full", "snapshot_path": s, "mem_file_path": m});
        assert_eq!(
            t.call("PUT", "/snapshot/create", Some(snap.clone())).status,
            400
        );
        assert_eq!(
            t.call("PATCH", "/vm", Some(json!({"state": "Paused"})))
                .status,
            204
        );
        assert_eq!(t.state(), "Paused");
        assert_eq!(t.call("PUT", "/snapshot/create", Some(snap)).status, 204);
        assert_eq!(std::fs::metadata(&m).unwrap().len(), 128 << 20);

        // A fresh process loads it, with the vsock socket moved.
        let mut t2 = T::new();
        let v2 = t2.p("v2.sock");
        let load = json!({"snapshot_path": s, "mem_backend": {"backend_type": "File", "backend_path": m},
                          "resume_vm": true, "vsock_override": {"uds_path": v2}});
        assert_eq!(t2.call("PUT", "/snapshot/load", Some(load)).status, 204);
        assert_eq!(t2.state(), "Running");
        assert!(Path::new(&v2).exists());
        let cfg = t2.call("GET", "/vm/config", None).body.unwrap();
        assert_eq!(cfg["drives"][0]["drive_id"], "rootfs");
        let r = t2.call(
            "PUT",
            "/actions",
            Some(json!({"action_type": "SendCtrlAltDel"})),
        );
        assert_eq!((r.status, r.effect), (204, Effect::CtrlAltDel));
    }

    #[test]
    fn drives_patch_at_run_time_and_a_load_reopens_them() {
        let mut t = T::new();
        for f in ["vmlinux", "a", "b"] {
            std::fs::write(t.p(f), f).unwrap();
        }
        let (k, a, b) = (t.p("vmlinux"), t.p("a"), t.p("b"));
        let patch = json!({"drive_id": "rootfs", "path_on_host": b});
        t.call("PUT", "/boot-source", Some(json!({"kernel_image_path": k})));
        t.call(
            "PUT",
            "/drives/rootfs",
            Some(json!({"drive_id": "rootfs", "path_on_host": a, "is_root_device": true})),
        );
        let r = t.call("PATCH", "/drives/rootfs", Some(patch.clone()));
        assert_eq!(r.status, 400, "before start");
        t.call(
            "PUT",
            "/actions",
            Some(json!({"action_type": "InstanceStart"})),
        );
        t.call("PATCH", "/vm", Some(json!({"state": "Paused"})));
        let other = json!({"drive_id": "work", "path_on_host": b});
        assert_eq!(t.call("PATCH", "/drives/work", Some(other)).status, 400);
        assert_eq!(t.call("PATCH", "/drives/rootfs", Some(patch)).status, 204);
        let (s, m) = (t.p("vmstate"), t.p("mem"));
        let snap = json!({"snapshot_type": "Diff", "snapshot_path": s, "mem_file_path": m});
        assert_eq!(t.call("PUT", "/snapshot/create", Some(snap)).status, 400);
        let snap = json!({"snapshot_path": s, "mem_file_path": m});
        assert_eq!(t.call("PUT", "/snapshot/create", Some(snap)).status, 204);

        // The vmstate names b: a load opens b, and fails without it.
        let load = json!({"snapshot_path": s, "mem_backend": {"backend_type": "File", "backend_path": m},
                          "track_dirty_pages": true});
        std::fs::rename(&b, t.p("b.away")).unwrap();
        let mut t2 = T::new();
        assert_eq!(
            t2.call("PUT", "/snapshot/load", Some(load.clone())).status,
            400
        );
        std::fs::rename(t.p("b.away"), &b).unwrap();
        let mut t2 = T::new();
        assert_eq!(t2.call("PUT", "/snapshot/load", Some(load)).status, 204);
        assert_eq!(t2.state(), "Paused");
        let cfg = t2.call("GET", "/vm/config", None).body.unwrap();
        assert_eq!(cfg["drives"][0]["path_on_host"], json!(b));
        assert_eq!(cfg["machine-config"]["track_dirty_pages"], true);
    }

    #[test]
    fn load_only_on_a_fresh_process() {
        let mut t = T::new();
        assert_eq!(
            t.call(
                "PUT",
                "/machine-config",
                Some(json!({"vcpu_count": 1, "mem_size_mib": 128}))
            )
            .status,
            204
        );
        let s = t.p("s");
        let r = t.call(
            "PUT",
            "/snapshot/load",
            Some(json!({"snapshot_path": s, "mem_file_path": s})),
        );
        assert_eq!(r.status, 400);
        let mut t = T::new();
        let s = t.p("s");
        let r = t.call("PUT", "/snapshot/load", Some(json!({"snapshot_path": s})));
        assert_eq!(r.status, 400, "no memory given");
    }
}
