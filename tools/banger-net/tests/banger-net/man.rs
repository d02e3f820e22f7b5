#[path = "../../src/cli.rs"]
#[allow(dead_code)]
mod cli;

#[test]
fn man_page_is_current() {
    banger_testkit::man::check(cli::command(), "1");
}

#[test]
fn man_page_documents_the_records() {
    use banger_lib::records::{fields, Forward, GcLine, Lease, TapLine};
    banger_testkit::man::assert_documents(
        &cli::command(),
        &[
            ("lease", fields::<Lease>()),
            ("tap line", fields::<TapLine>()),
            ("gc line", fields::<GcLine>()),
            ("forward", fields::<Forward>()),
        ],
    );
}
