fn main() {
    clap::Command::new("banger-ssh").get_matches();
    banger_lib::run::main("banger-ssh", || {
        Err(banger_lib::Error::failed("banger-ssh is not built yet").into())
    })
}
