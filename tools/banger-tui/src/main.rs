//! banger-tui: a terminal UI over banger-vm, banger-image and banger-health,
//! which it runs as processes.

mod app;
mod backend;
mod cli;
mod records;
mod term;
#[cfg(test)]
mod tests;
mod ui;

fn main() {
    let cli = banger_lib::run::parse::<cli::Cli>("banger-tui");
    banger_lib::run::main("banger-tui", || {
        let backend = std::sync::Arc::new(backend::Tools);
        term::run(backend, std::time::Duration::from_secs(cli.interval))?;
        Ok(0)
    })
}
