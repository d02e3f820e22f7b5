use crate::cli;

#[test]
fn man_page_is_current() {
    banger_testkit::man::check(cli::command(), "1");
}

/// banger-workflows(7) is hand-written: it must render cleanly, point at
/// every tool's page and at the plumbing script that exists.
#[test]
fn workflows_page_renders_and_is_complete() {
    let root = banger_testkit::workspace_root();
    let page = root.join("man/banger-workflows.7");
    let text = std::fs::read_to_string(&page).unwrap();
    for t in [
        "banger", "vm", "image", "net", "fc", "qemu", "health", "ssh", "doctor", "tui",
    ] {
        let name = if t == "banger" {
            "banger".to_string()
        } else {
            format!("banger\\-{t}")
        };
        assert!(
            text.contains(&format!("\\fB{name}\\fR(1)")),
            "SEE ALSO lacks {name}(1)"
        );
        if t != "banger" {
            assert!(root.join(format!("man/banger-{t}.1")).is_file());
        }
    }
    assert!(text.contains("examples/plumbing\\-vm.sh"));
    assert!(root.join("examples/plumbing-vm.sh").is_file());
    if !banger_testkit::require_tool("workflows_page_renders_and_is_complete", "groff") {
        return;
    }
    let out = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&page)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "groff warnings: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
