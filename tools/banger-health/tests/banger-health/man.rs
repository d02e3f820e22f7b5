#[path = "../../src/cli.rs"]
mod cli;

#[test]
fn man_page_is_current() {
    banger_testkit::man::check(cli::command(), "1");
}

#[test]
fn man_page_documents_the_records() {
    use banger_lib::records::{fields, HealthLine};
    banger_testkit::man::assert_documents(
        &cli::command(),
        &[("health line", fields::<HealthLine>())],
    );
}
