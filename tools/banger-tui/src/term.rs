//! The terminal side: raw mode and the alternate screen, the event loop,
//! the background refresh threads, and handing the terminal to ssh.

use crate::app::{self, App, Msg, Task};
use crate::backend::Backend;
use banger_lib::{proc, Error};
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::crossterm::{execute, terminal};
use ratatui::DefaultTerminal;
use std::io::IsTerminal;
use std::os::unix::process::CommandExt;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Health checks are slower (a vsock round trip per VM) and change less
/// often than the VM list: ask every few refreshes.
const HEALTH_EVERY: u32 = 3;

pub fn run(backend: Arc<dyn Backend>, interval: Duration) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Error::prereq("banger-tui needs a terminal")
            .with_hint("run it in a terminal; scripts can use `banger-vm list` instead")
            .into());
    }
    let mut term =
        ratatui::try_init().map_err(|e| Error::failed(format!("setting up the terminal: {e}")))?;
    let result = event_loop(&mut term, backend, interval);
    ratatui::restore();
    result
}

fn event_loop(
    term: &mut DefaultTerminal,
    backend: Arc<dyn Backend>,
    interval: Duration,
) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel();
    let wake = spawn_refreshers(backend.clone(), tx.clone(), interval);
    let mut app = App::new();
    app.now = banger_lib::proc::now_unix();
    let mut dirty = true;
    while !app.quit {
        if dirty {
            // draw() also notices a resized terminal and redraws it whole.
            term.draw(|f| crate::ui::draw(f, &app))?;
            dirty = false;
        }
        if event::poll(Duration::from_millis(50))? {
            match event::read()? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    dirty = true;
                    for task in app.key(k) {
                        match task {
                            Task::Ssh(name) => {
                                let msg = ssh(term, &*backend, name);
                                if app.update(msg) {
                                    let _ = wake.send(());
                                }
                            }
                            task => {
                                let (b, tx) = (backend.clone(), tx.clone());
                                std::thread::spawn(move || {
                                    let _ = tx.send(app::run(&*b, task));
                                });
                            }
                        }
                    }
                }
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
        while let Ok(msg) = rx.try_recv() {
            app.now = banger_lib::proc::now_unix();
            if app.update(msg) {
                let _ = wake.send(());
            }
            dirty = true;
        }
    }
    Ok(())
}

/// Start the threads that read `vm list` every `interval` (or at once when
/// woken through the returned sender) and health every few intervals.
/// They end when the UI drops its receiver.
fn spawn_refreshers(backend: Arc<dyn Backend>, tx: Sender<Msg>, interval: Duration) -> Sender<()> {
    let (wake_tx, wake_rx) = mpsc::channel::<()>();
    let running: Arc<Mutex<Vec<String>>> = Arc::default();

    let (b, t, r) = (backend.clone(), tx.clone(), running.clone());
    std::thread::spawn(move || loop {
        let vms = b.list_vms();
        if let Ok(vms) = &vms {
            *r.lock().unwrap() = vms
                .iter()
                .filter(|v| v.running())
                .map(|v| v.name.clone())
                .collect();
        }
        if t.send(Msg::Vms(vms)).is_err() {
            return;
        }
        match wake_rx.recv_timeout(interval) {
            Ok(()) => while wake_rx.try_recv().is_ok() {},
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    });

    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        // Owning stop_tx here keeps stop_rx from disconnecting: the
        // timeout is this thread's clock.
        let _keep = stop_tx;
        loop {
            let names = running.lock().unwrap().clone();
            if !names.is_empty() && tx.send(Msg::Health(backend.health(&names))).is_err() {
                return;
            }
            let _ = stop_rx.recv_timeout(interval * HEALTH_EVERY);
        }
    });
    wake_tx
}

/// Step out of the UI, run `banger-vm ssh NAME` on the real terminal, and
/// come back with a clean full redraw.
fn ssh(term: &mut DefaultTerminal, backend: &dyn Backend, name: String) -> Msg {
    let mut cmd = match backend.ssh_command(&name) {
        Ok(c) => c,
        Err(e) => return Msg::SshDone(name, Err(e)),
    };
    ratatui::restore();
    let _ = term.show_cursor();
    eprintln!("banger-tui: ssh {name}; the UI comes back when the session ends");
    // Ctrl-C before ssh owns the terminal must reach ssh, not end the UI:
    // ignore it here, and give the child the default back.
    let ignored = proc::InterruptsIgnored::new();
    // SAFETY: the closure runs between fork and exec, where only
    // async-signal-safe calls are sound; it only calls sigaction(2) and
    // allocates nothing.
    unsafe {
        cmd.pre_exec(proc::pre_exec_default_interrupts);
    }
    let status = cmd.status();
    drop(ignored);
    let _ = terminal::enable_raw_mode();
    let _ = execute!(std::io::stdout(), terminal::EnterAlternateScreen);
    let _ = term.clear();
    let result = status
        .map(|s| s.code().unwrap_or(1))
        .map_err(|e| Error::failed(format!("running banger-vm ssh {name}: {e}")));
    Msg::SshDone(name, result)
}
