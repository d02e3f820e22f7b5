fn main() {
    clap::Command::new("banger-vm").get_matches();
    banger_lib::run::main("banger-vm", || {
        Err(banger_lib::Error::failed("banger-vm is not built yet").into())
    })
}
