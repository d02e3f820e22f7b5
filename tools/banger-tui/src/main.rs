fn main() {
    clap::Command::new("banger-tui").get_matches();
    banger_lib::run::main("banger-tui", || {
        Err(banger_lib::Error::failed("banger-tui is not built yet").into())
    })
}
