fn main() {
    clap::Command::new("banger-health").get_matches();
    banger_lib::run::main("banger-health", || {
        Err(banger_lib::Error::failed("banger-health is not built yet").into())
    })
}
