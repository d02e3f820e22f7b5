#[path = "../src/cli.rs"]
#[allow(dead_code)]
mod cli;
#[path = "../src/tools.rs"]
#[allow(dead_code)]
mod tools;

#[test]
fn man_page_is_current() {
    banger_testkit::man::check(cli::command(), "1");
}
