fn main() {
    clap::Command::new("banger-image").get_matches();
    banger_lib::run::main("banger-image", || {
        Err(banger_lib::Error::failed("banger-image is not built yet").into())
    })
}
