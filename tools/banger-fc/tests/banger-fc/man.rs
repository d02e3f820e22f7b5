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
        fields, RequestLine, SnapshotDisk, SnapshotLine, StopLine, SuspendLine,
    };
    use banger_lib::vmspec::VmmRecord;
    banger_testkit::man::assert_documents(
        &cli::command(),
        &[
            ("vmm record", fields::<VmmRecord>()),
            ("stop line", fields::<StopLine>()),
            ("suspend line", fields::<SuspendLine>()),
            ("snapshot line", fields::<SnapshotLine>()),
            ("snapshot disk", fields::<SnapshotDisk>()),
            ("--print-argv request", fields::<RequestLine>()),
            (
                "--print-argv process",
                vec!["process", "program", "args", "cwd", "user"],
            ),
        ],
    );
}
