//! banger-vsock-agent: runs inside the guest and answers HTTP over AF_VSOCK:
//! `GET /healthz` so the host can tell a booted, responsive guest from a
//! hung one, `GET /hostkeys` so the host can pin the guest's ssh host keys
//! before it first connects, and `POST /sync`, `/shutdown`, `/reboot` so
//! the host can stop a guest without losing its writes (routes.rs).

mod args;
mod health;
mod hostkeys;
mod http;
mod init;
mod power;
mod routes;
mod server;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match args::parse(
        std::env::args().skip(1),
        std::env::var("BANGER_AGENT_PORT").ok(),
    ) {
        Ok(args::Action::Run(listen)) => listen,
        Ok(args::Action::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("banger-vsock-agent: error: {msg}");
            eprintln!("hint: see banger-vsock-agent --help");
            return ExitCode::from(2);
        }
    };
    // A client that goes away mid-response must not kill the agent: std
    // has set SIGPIPE to SIG_IGN before main, so a write fails with EPIPE.
    let result = match args {
        args::Listen::Vsock(port) => server::serve_vsock(port, &power::Real),
        args::Listen::Unix(path) => server::serve_unix(&path, &power::Real),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("banger-vsock-agent: error: {err}");
            ExitCode::from(1)
        }
    }
}
