//! The console of a running VM goes through a FIFO to banger's logger,
//! which keeps console.log (and one console.log.1) under the cap however
//! much the guest prints, and ends with the VMM.

use crate::common::T;
use std::io::Write;
use std::os::unix::fs::FileTypeExt;

#[test]
fn a_gibibyte_of_console_output_stays_under_the_cap() {
    let t = T::new();
    let cfg = t.home.path().join("config/banger");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("config.json"), r#"{"console_log_max_mib": 1}"#).unwrap();
    let out = t
        .start(&t.spec("box"))
        .success()
        .get_output()
        .stdout
        .clone();
    let rec: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let log = std::path::PathBuf::from(rec["console_log"].as_str().unwrap());
    let fifo = t.vm_dir("box").join("console.fifo");
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());

    // What a guest printing 1 GiB makes the VMM write, escapes and all.
    let line = b"\x1b[2J\x1b]0;pwned\x07 flood\r\n";
    let block = line.repeat((64 << 10) / line.len());
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let mut written = 0usize;
    while written < 1 << 30 {
        w.write_all(&block).unwrap();
        written += block.len();
    }
    w.write_all(b"the end\n").unwrap();
    drop(w);
    let landed = banger_testkit::poll(std::time::Duration::from_secs(30), || {
        let tail = banger_lib::console::tail(&log, 64)?;
        tail.ends_with(b"the end\n").then_some(())
    });
    assert!(
        landed.is_some(),
        "the last line never reached {}",
        log.display()
    );
    let now = std::fs::metadata(&log).unwrap().len();
    let old = std::fs::metadata(banger_lib::console::rotated(&log))
        .unwrap()
        .len();
    assert!(now <= 512 << 10 && old <= 512 << 10, "{now} + {old} bytes");

    t.json(&["stop", "box"]);
    // The logger ended with the VMM, before stop returned; the FIFO and
    // its pid file went with the run dir.
    assert!(t.processes().is_empty(), "{:?}", t.processes());
    t.assert_nothing_left_but_logs("box");
}
