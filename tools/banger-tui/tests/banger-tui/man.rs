#[path = "../../src/cli.rs"]
mod cli;

#[test]
fn man_page_is_current() {
    banger_testkit::man::check(cli::command(), "1");
}
