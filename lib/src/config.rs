//! The runtime bundle's defaults (`runtime/bundle.json`) with the user's
//! overrides (`$XDG_CONFIG_HOME/banger/config.json`) laid over them.

use crate::error::{io, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const INSTALLED_RUNTIME: &str = "/usr/local/lib/banger/runtime";

/// The merged configuration every tool reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bundle {
    /// The runtime directory the bundle was loaded from; relative paths in
    /// the bundle are relative to it.
    pub dir: PathBuf,
    pub schema: u32,
    /// `auto`, `firecracker` or `qemu`.
    pub vmm: String,
    pub firecracker: String,
    pub qemu: String,
    /// Unused since QEMU guests reach their agent over a virtio-serial
    /// port; still accepted so older config.json files load.
    pub vhost_vsock: String,
    pub kernel: String,
    pub initrd: String,
    pub default_image: String,
    pub ssh_key: String,
    pub agent_path: String,
    pub agent_port: u32,
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
    pub dns_port: u16,
    pub pool_size: u32,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub disk_size: String,
    /// The interface NAT masquerades out of; empty: the default route's.
    pub uplink: String,
    /// Host ports (TCP and UDP) guests may reach on the gateway address,
    /// besides DNS and ping; every other port of the host is closed to them.
    pub guest_host_ports: Vec<u16>,
    /// The unprivileged user VMMs (and the DNS server) run as when banger
    /// runs as root.
    pub vmm_user: String,
    /// Firecracker's jailer; used when it is found.
    pub jailer: String,
    /// A VM's console log cap (console.log and console.log.1 together).
    pub console_log_max_mib: u32,
}

/// One file's worth of settings: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    schema: Option<u32>,
    vmm: Option<String>,
    firecracker: Option<String>,
    qemu: Option<String>,
    vhost_vsock: Option<String>,
    kernel: Option<String>,
    initrd: Option<String>,
    default_image: Option<String>,
    ssh_key: Option<String>,
    agent_path: Option<String>,
    agent_port: Option<u32>,
    /// Legacy spelling of `agent_path`.
    ping_helper_path: Option<String>,
    /// Legacy spelling of `agent_port`.
    ping_helper_port: Option<u32>,
    bridge: Option<String>,
    subnet: Option<String>,
    gateway: Option<String>,
    dns_port: Option<u16>,
    pool_size: Option<u32>,
    vcpus: Option<u32>,
    memory_mib: Option<u32>,
    disk_size: Option<String>,
    uplink: Option<String>,
    guest_host_ports: Option<Vec<u16>>,
    vmm_user: Option<String>,
    jailer: Option<String>,
    console_log_max_mib: Option<u32>,
}

impl Bundle {
    /// The built-in defaults, as if `dir` held an empty bundle.json.
    pub fn defaults(dir: PathBuf) -> Bundle {
        Bundle {
            dir,
            schema: 1,
            vmm: "auto".into(),
            firecracker: "firecracker".into(),
            qemu: "qemu-system-x86_64".into(),
            vhost_vsock: "vhost-device-vsock".into(),
            kernel: "vmlinux".into(),
            initrd: "initrd.img".into(),
            default_image: "debian".into(),
            ssh_key: "id_ed25519".into(),
            agent_path: "banger-vsock-agent".into(),
            agent_port: 52,
            bridge: "banger0".into(),
            subnet: "172.30.0.0/24".into(),
            gateway: "172.30.0.1".into(),
            dns_port: 53,
            pool_size: 4,
            vcpus: 2,
            memory_mib: 1024,
            disk_size: "8G".into(),
            uplink: String::new(),
            guest_host_ports: Vec::new(),
            vmm_user: crate::vmmuser::DEFAULT.into(),
            jailer: "jailer".into(),
            console_log_max_mib: crate::console::DEFAULT_MAX_MIB,
        }
    }

    /// Load the bundle from the runtime dir and the user's config over it.
    pub fn load() -> Result<Bundle> {
        let dir = runtime_dir()?;
        Self::load_from(&dir, &crate::paths::config_dir().join("config.json"))
    }

    /// Like `load`, but a missing runtime bundle is `None` rather than an
    /// error; a broken config.json or bundle.json is still an error. For
    /// tools that work without a bundle (`banger-image list`).
    pub fn load_optional() -> Result<Option<Bundle>> {
        let dir = runtime_dir()?;
        let config = crate::paths::config_dir().join("config.json");
        if dir.join("bundle.json").exists() {
            return Self::load_from(&dir, &config).map(Some);
        }
        read_layer(&config)?;
        Ok(None)
    }

    /// Load `DIR/bundle.json`, then `config` if it exists.
    pub fn load_from(dir: &Path, config: &Path) -> Result<Bundle> {
        let mut b = Bundle::defaults(dir.to_path_buf());
        let bundle_json = dir.join("bundle.json");
        b.apply(read_layer(&bundle_json)?.ok_or_else(|| missing_bundle(dir))?);
        if let Some(layer) = read_layer(config)? {
            b.apply(layer);
        }
        if b.console_log_max_mib == 0 {
            return Err(Error::usage("console_log_max_mib must be at least 1")
                .with_hint("set it to the MiB a VM's console log may keep, e.g. 16"));
        }
        if !matches!(b.vmm.as_str(), "auto" | "firecracker" | "qemu") {
            return Err(Error::usage(format!(
                "vmm is {:?}; it must be auto, firecracker or qemu",
                b.vmm
            )));
        }
        Ok(b)
    }

    fn apply(&mut self, l: Layer) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = l.$f { self.$f = v; } )* };
        }
        if let Some(v) = l.ping_helper_path {
            self.agent_path = v;
        }
        if let Some(v) = l.ping_helper_port {
            self.agent_port = v;
        }
        set!(
            schema,
            vmm,
            firecracker,
            qemu,
            vhost_vsock,
            kernel,
            initrd,
            default_image,
            ssh_key,
            agent_path,
            agent_port,
            bridge,
            subnet,
            gateway,
            dns_port,
            pool_size,
            vcpus,
            memory_mib,
            disk_size,
            uplink,
            guest_host_ports,
            vmm_user,
            jailer,
            console_log_max_mib
        );
    }

    /// A bundle path setting made absolute: relative to the runtime dir.
    pub fn path(&self, value: &str) -> PathBuf {
        let p = Path::new(value);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    /// A program setting: absolute path as is, a file in the runtime dir if
    /// there is one, else the name to look up on PATH.
    pub fn program(&self, value: &str) -> PathBuf {
        let in_bundle = self.path(value);
        if Path::new(value).is_absolute() || in_bundle.is_file() {
            in_bundle
        } else {
            PathBuf::from(value)
        }
    }
}

fn missing_bundle(dir: &Path) -> Error {
    Error::prereq(format!(
        "no runtime bundle: {} does not exist",
        dir.join("bundle.json").display()
    ))
    .with_hint("set BANGER_RUNTIME to a runtime dir, or run `make install` / `make runtime-local`")
}

fn read_layer(path: &Path) -> Result<Option<Layer>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("reading {}", path.display()), e)),
    };
    let mut layer: Layer = serde_json::from_str(&text).map_err(|e| {
        Error::usage(format!("{}: {e}", path.display()))
            .with_hint("fix or remove the file; see banger(1) for the keys")
    })?;
    for (old, new, set) in [
        (
            "ping_helper_path",
            "agent_path",
            layer.ping_helper_path.is_some(),
        ),
        (
            "ping_helper_port",
            "agent_port",
            layer.ping_helper_port.is_some(),
        ),
    ] {
        if set {
            eprintln!(
                "warning: {}: `{old}` is deprecated; use `{new}`",
                path.display()
            );
        }
    }
    if let Some(v) = layer.schema.filter(|v| *v != 1) {
        return Err(Error::prereq(format!(
            "{} has schema {v}; this banger reads schema 1",
            path.display()
        ))
        .with_hint("upgrade banger, or fix the file's \"schema\""));
    }
    // The new spelling wins when a file has both.
    if layer.agent_path.is_some() {
        layer.ping_helper_path = None;
    }
    if layer.agent_port.is_some() {
        layer.ping_helper_port = None;
    }
    Ok(Some(layer))
}

/// The runtime directory: `BANGER_RUNTIME`, else `runtime/` of the source
/// checkout this executable was built in, else the installed one.
pub fn runtime_dir() -> Result<PathBuf> {
    if let Some(v) = std::env::var_os("BANGER_RUNTIME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(v));
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/{debug,release}/banger-X, target/debug/deps/test-binary, or
        // the same under a per-developer target/NAME/.
        for dir in exe.ancestors().skip(1).take(6) {
            let candidate = dir.join("runtime");
            if candidate.join("bundle.json").is_file() && dir.join("Cargo.toml").is_file() {
                return Ok(candidate);
            }
        }
    }
    Ok(PathBuf::from(INSTALLED_RUNTIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, s: &str) {
        std::fs::write(p, s).unwrap();
    }

    #[test]
    fn config_overrides_bundle() {
        let t = tempfile::tempdir().unwrap();
        write(
            &t.path().join("bundle.json"),
            r#"{"vcpus": 2, "memory_mib": 512, "bridge": "banger0"}"#,
        );
        let cfg = t.path().join("config.json");
        write(&cfg, r#"{"memory_mib": 2048}"#);
        let b = Bundle::load_from(t.path(), &cfg).unwrap();
        assert_eq!(b.vcpus, 2);
        assert_eq!(b.memory_mib, 2048);
        assert_eq!(b.bridge, "banger0");
        assert_eq!(b.path("vmlinux"), t.path().join("vmlinux"));
        assert_eq!(b.path("/x/vmlinux"), PathBuf::from("/x/vmlinux"));
    }

    #[test]
    fn guest_host_ports_are_a_list_of_ports() {
        let t = tempfile::tempdir().unwrap();
        write(&t.path().join("bundle.json"), "{}");
        let cfg = t.path().join("config.json");
        let b = Bundle::load_from(t.path(), &cfg).unwrap();
        assert!(b.guest_host_ports.is_empty(), "closed unless opened");
        write(&cfg, r#"{"guest_host_ports": [8080, 5432]}"#);
        let b = Bundle::load_from(t.path(), &cfg).unwrap();
        assert_eq!(b.guest_host_ports, [8080, 5432]);
        write(&cfg, r#"{"guest_host_ports": [70000]}"#);
        let e = Bundle::load_from(t.path(), &cfg).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn missing_config_is_fine_missing_bundle_is_not() {
        let t = tempfile::tempdir().unwrap();
        let err = Bundle::load_from(t.path(), &t.path().join("nope.json")).unwrap_err();
        assert_eq!(err.exit_code(), 4);
        write(&t.path().join("bundle.json"), "{}");
        let b = Bundle::load_from(t.path(), &t.path().join("nope.json")).unwrap();
        assert_eq!(b.agent_port, 52);
    }

    #[test]
    fn legacy_keys_map_to_agent() {
        let t = tempfile::tempdir().unwrap();
        write(
            &t.path().join("bundle.json"),
            r#"{"ping_helper_port": 1234, "ping_helper_path": "old-agent"}"#,
        );
        let cfg = t.path().join("config.json");
        let b = Bundle::load_from(t.path(), &cfg).unwrap();
        assert_eq!(b.agent_port, 1234);
        assert_eq!(b.agent_path, "old-agent");
        // The user's new-style key overrides the bundle's legacy one.
        write(&cfg, r#"{"agent_port": 99}"#);
        let b = Bundle::load_from(t.path(), &cfg).unwrap();
        assert_eq!(b.agent_port, 99);
        // In one file, the new spelling wins.
        write(&cfg, r#"{"agent_port": 7, "ping_helper_port": 8}"#);
        assert_eq!(Bundle::load_from(t.path(), &cfg).unwrap().agent_port, 7);
    }

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let t = tempfile::tempdir().unwrap();
        write(&t.path().join("bundle.json"), "{}");
        let cfg = t.path().join("config.json");
        write(&cfg, "{\n  \"vcpus\": 2,\n  \"vpcus\": 4\n}");
        let err = Bundle::load_from(t.path(), &cfg).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message.contains("vpcus"), "{}", err.message);
        assert!(err.message.contains("config.json"), "{}", err.message);
        assert!(err.message.contains("line 3"), "{}", err.message);
    }

    #[test]
    fn malformed_json_names_file_and_line() {
        let t = tempfile::tempdir().unwrap();
        write(&t.path().join("bundle.json"), "{\n\"vcpus\": 2,\n}");
        let err = Bundle::load_from(t.path(), &t.path().join("c.json")).unwrap_err();
        assert!(err.message.contains("bundle.json"), "{}", err.message);
        assert!(err.message.contains("line 3"), "{}", err.message);
    }

    #[test]
    fn unknown_schema_is_refused() {
        let t = tempfile::tempdir().unwrap();
        write(&t.path().join("bundle.json"), "{}");
        let cfg = t.path().join("config.json");
        write(&cfg, r#"{"schema": 99}"#);
        let err = Bundle::load_from(t.path(), &cfg).unwrap_err();
        assert_eq!(err.exit_code(), 4);
        assert!(err.message.contains("schema 99"), "{}", err.message);
        write(&t.path().join("bundle.json"), r#"{"schema": 2}"#);
        let err = Bundle::load_from(t.path(), &t.path().join("none.json")).unwrap_err();
        assert!(err.message.contains("bundle.json"), "{}", err.message);
    }

    #[test]
    fn bad_vmm_value() {
        let t = tempfile::tempdir().unwrap();
        write(&t.path().join("bundle.json"), r#"{"vmm": "xen"}"#);
        let err = Bundle::load_from(t.path(), &t.path().join("c.json")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
