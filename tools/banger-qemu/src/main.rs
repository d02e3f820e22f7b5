fn main() {
    clap::Command::new("banger-qemu").get_matches();
    banger_lib::run::main("banger-qemu", || {
        Err(banger_lib::Error::failed("banger-qemu is not built yet").into())
    })
}
