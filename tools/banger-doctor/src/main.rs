//! banger-doctor: is this host ready to run banger VMs?

mod checks;
mod cli;
mod report;

const COLUMNS: &[(&str, &str)] = &[
    ("check", "check"),
    ("ok", "ok"),
    ("required", "required"),
    ("detail", "detail"),
    ("hint", "hint"),
];

fn main() {
    let cli = banger_lib::run::parse::<cli::Cli>("banger-doctor");
    banger_lib::run::main("banger-doctor", || {
        let checks = report::run();
        banger_lib::output::print_list(&checks, COLUMNS, cli.json);
        let code = report::exit_code(&checks);
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| c.required && !c.ok)
            .map(|c| c.check.as_str())
            .collect();
        if !failed.is_empty() {
            eprintln!(
                "banger-doctor: not ready: required checks failed: {}",
                failed.join(", ")
            );
        }
        Ok(code)
    })
}
