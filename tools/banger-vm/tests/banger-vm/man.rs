#[path = "../../src/cli.rs"]
#[allow(dead_code)]
mod cli;

#[test]
fn man_page_is_current() {
    banger_testkit::man::check(cli::command(), "1");
}

#[test]
fn man_page_documents_the_records() {
    use banger_lib::records::{
        fields, Disks, FanoutLine, ForwardLine, GcLine, PortForward, SuspendInfo, VmRecord,
    };
    banger_testkit::man::assert_documents(
        &cli::command(),
        &[
            ("vm record", fields::<VmRecord>()),
            ("disks", fields::<Disks>()),
            ("list line", vec!["uptime_s"]),
            ("fan-out line", fields::<FanoutLine>()),
            ("stop line", vec!["state", "clean", "how"]),
            ("delete line", vec!["removed", "warnings"]),
            ("gc line", fields::<GcLine>()),
            ("port forward", fields::<PortForward>()),
            ("forward line", fields::<ForwardLine>()),
            ("suspend info", fields::<SuspendInfo>()),
            ("suspend line", vec!["state", "bytes", "ms"]),
        ],
    );
}
