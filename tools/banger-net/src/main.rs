fn main() {
    clap::Command::new("banger-net").get_matches();
    banger_lib::run::main("banger-net", || {
        Err(banger_lib::Error::failed("banger-net is not built yet").into())
    })
}
