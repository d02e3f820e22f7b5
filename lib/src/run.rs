//! The common `main` of every tool: run, print errors the banger way, exit
//! with the documented code.

/// Run a tool's body and exit with its code. Clap handles its own usage
/// errors (exit 2) before the body runs.
pub fn main(tool: &str, body: impl FnOnce() -> anyhow::Result<i32>) -> ! {
    // A closed pipe (`banger-image list | head -1`) is not an error worth a
    // panic: restore the default SIGPIPE so we just end quietly.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let code = match body() {
        Ok(code) => code,
        Err(err) => {
            let (kind, _) = crate::error::classify(&err);
            eprintln!("{}", crate::error::render(tool, &err));
            kind.exit_code()
        }
    };
    std::process::exit(code)
}
