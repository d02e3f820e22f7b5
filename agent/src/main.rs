//! banger-vsock-agent: runs inside the guest and answers HTTP over AF_VSOCK
//! (Firecracker) and on the virtio-serial port `org.banger.agent` (QEMU;
//! serial.rs):
//! `GET /healthz` so the host can tell a booted, responsive guest from a
//! hung one, `GET /hostkeys` so the host can pin the guest's ssh host keys
//! before it first connects, `POST /sync`, `/shutdown`, `/reboot` so
//! the host can stop a guest without losing its writes, `POST /init` for
//! first-boot scripts, and `POST /identity` so a VM cloned from a memory
//! snapshot stops being its source (routes.rs).

mod args;
mod health;
mod hostkeys;
mod http;
mod identity;
mod init;
mod power;
mod routes;
mod serial;
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
        args::Listen::Vsock(port) => serve_both(port),
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

/// vsock and, in a thread, the virtio-serial port (looked for until it
/// appears). A guest without vsock (QEMU: banger's initramfs loads the
/// vsock modules only for a vsock device) keeps serving its port; with
/// neither yet (another initramfs, whose udev loads the modules later),
/// vsock is tried again every 2 s, in this process: exiting to be
/// restarted would leave the unit failing, and leave a port that appears
/// meanwhile unserved for the restart's delay.
fn serve_both(port: u32) -> std::io::Result<()> {
    let serial = std::thread::Builder::new()
        .name("serial".into())
        .spawn(|| serial::serve_forever(&power::Real))?;
    let mut said = false;
    loop {
        let err = match server::serve_vsock(port, &power::Real) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if serial::find_port().is_some() {
            eprintln!("banger-vsock-agent: {err}; serving the virtio-serial port only");
            break;
        }
        if !said {
            eprintln!(
                "banger-vsock-agent: {err}, and no virtio-serial port yet: looking for either"
            );
            said = true;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    let _ = serial.join();
    Ok(())
}
