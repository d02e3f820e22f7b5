//! A VM dir planted as a symlink is refused by every verb and never
//! followed into a delete.

use crate::common::{stderr, Fx};

#[test]
fn a_vm_dir_that_is_a_symlink_is_refused_never_deleted_through() {
    let fx = Fx::new();
    fx.create("real", &[]);
    // Another tree that looks like a VM, holding a file that must survive.
    let elsewhere = fx.home.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::copy(fx.vms_dir().join("real/vm.json"), elsewhere.join("vm.json")).unwrap();
    std::fs::write(elsewhere.join("canary"), "keep").unwrap();
    std::os::unix::fs::symlink(&elsewhere, fx.vms_dir().join("box")).unwrap();
    for args in [
        &["delete", "box"][..],
        &["delete", "--force", "box"],
        &["stop", "box"],
        &["show", "box"],
        &["logs", "box"],
    ] {
        let out = fx.run(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr(&out).contains("symbolic link"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(
        std::fs::read_to_string(elsewhere.join("canary")).unwrap(),
        "keep"
    );
    assert!(elsewhere.join("vm.json").exists());
}
