fn main() {
    clap::Command::new("banger-fc").get_matches();
    banger_lib::run::main("banger-fc", || {
        Err(banger_lib::Error::failed("banger-fc is not built yet").into())
    })
}
