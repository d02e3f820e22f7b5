//! Test helpers shared by every banger crate: network namespaces that
//! clean up after themselves, root gating, the workspace's built binaries,
//! an isolated banger home, and the man-page drift check.

pub mod fakefc;
pub mod fakevsock;
pub mod guest;
pub mod image;
pub mod man;
pub mod netns;
pub mod records;

use std::path::{Path, PathBuf};

pub use netns::NetNs;

/// The workspace root (where the top Cargo.toml is).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|d| d.join("Cargo.lock").is_file() || d.join("runtime/bundle.json").is_file())
        .unwrap_or(here)
        .to_path_buf()
}

/// `../shared` beside the project root: the Firecracker API document.
pub fn shared_dir() -> PathBuf {
    let root = workspace_root();
    let s = root.join("../shared");
    s.canonicalize().unwrap_or(s)
}

/// The target dir the tests were built into (target/debug or similar).
pub fn target_dir() -> PathBuf {
    // A test binary lives in target/PROFILE/deps/.
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps dir");
    if deps.ends_with("deps") {
        deps.parent().unwrap().to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

/// A workspace binary, for cross-tool tests (assert_cmd only sees its own
/// package's binaries). The workspace's binaries are built once per test
/// process (a no-op when they are current), so a test never runs a stale
/// sibling, even under `cargo test -p ONE_CRATE`.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--workspace", "--bins"])
            .current_dir(workspace_root())
            .status()
            .expect("running cargo build");
        assert!(status.success(), "cargo build --workspace --bins failed");
    });
    let p = target_dir().join(name);
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

/// Whether we run under CI, where gated tests must run rather than skip.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

/// Skip (return false, with a visible reason) unless root; under CI=true a
/// missing privilege is a failure instead.
pub fn require_root(test: &str) -> bool {
    if banger_lib::hosttools::is_root() {
        return true;
    }
    skip_or_fail(test, "needs root")
}

/// Skip with a printed reason, or panic under CI=true.
pub fn skip_or_fail(test: &str, why: &str) -> bool {
    if in_ci() {
        panic!("{test}: {why}, and CI=true requires it to run");
    }
    skip(test, why)
}

/// Skip visibly, also under CI=true: only for what CI cannot have (a real
/// Firecracker binary). Writes `SKIPPED: TEST: WHY` past the test
/// harness's capture, so it shows in CI output, and appends it to
/// target/test-skips.log, which `make test` counts in its summary.
pub fn skip(test: &str, why: &str) -> bool {
    use std::io::Write;
    let line = format!("SKIPPED: {test}: {why}\n");
    // std's stderr handle is not captured by the harness (eprintln! is).
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(workspace_root().join("target/test-skips.log"))
    {
        let _ = f.write_all(line.as_bytes());
    }
    false
}

/// Skip unless `tool` is on PATH (see `skip_or_fail`).
pub fn require_tool(test: &str, tool: &str) -> bool {
    if banger_lib::hosttools::which(tool).is_some() {
        return true;
    }
    skip_or_fail(test, &format!("needs {tool}"))
}

/// A private banger home: XDG dirs and a runtime dir in a temp dir, to set
/// on every command a test runs.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    /// As root, this also makes sure the unprivileged VMM user exists
    /// (`banger_lib::vmmuser`), as `banger-net setup` would: the VMM
    /// drivers refuse to run a VMM as root.
    pub fn new() -> Home {
        if banger_lib::hosttools::is_root() {
            banger_lib::vmmuser::ensure(banger_lib::vmmuser::DEFAULT).expect("making the VMM user");
        }
        // Short, because Unix socket paths live under it.
        let dir = tempfile::Builder::new()
            .prefix("bgr")
            .tempdir_in("/tmp")
            .expect("temp home");
        Home { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The environment for a banger command that uses this home.
    pub fn envs(&self) -> Vec<(String, PathBuf)> {
        let p = self.path();
        vec![
            ("XDG_CONFIG_HOME".into(), p.join("config")),
            ("XDG_DATA_HOME".into(), p.join("data")),
            ("XDG_STATE_HOME".into(), p.join("state")),
            ("XDG_RUNTIME_DIR".into(), p.join("run")),
        ]
    }

    /// Apply `envs` to a command.
    pub fn apply<'a>(&self, cmd: &'a mut std::process::Command) -> &'a mut std::process::Command {
        for (k, v) in self.envs() {
            cmd.env(k, v);
        }
        cmd
    }
}

impl Default for Home {
    fn default() -> Self {
        Self::new()
    }
}

/// Poll `f` until it returns Some or the deadline passes (banger_lib's
/// backoff, so tests wait the way the tools do).
pub use banger_lib::wait::poll;

/// Take the machine-wide lock for heavy live tests (guest boots, image
/// builds), so tests from parallel threads and binaries run them one at a
/// time on a small machine. Held until the guard drops.
pub fn serial() -> banger_lib::state::Lock {
    banger_lib::state::Lock::acquire(
        std::path::Path::new("/tmp/banger-tests-serial.lock"),
        std::time::Duration::from_secs(3600),
    )
    .expect("taking the serial test lock")
}
