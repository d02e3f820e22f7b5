fn main() {
    clap::Command::new("banger-doctor").get_matches();
    banger_lib::run::main("banger-doctor", || {
        Err(banger_lib::Error::failed("banger-doctor is not built yet").into())
    })
}
