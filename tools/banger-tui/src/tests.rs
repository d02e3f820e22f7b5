//! The UI driven headless: keys into App, tasks run against the fake
//! backend, frames rendered into ratatui's TestBackend.

use crate::app::{self, App, Mode, Msg, Task};
use crate::backend::fake::{vm, Fake};
use crate::backend::Backend;
use crate::records::Health;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Color;
use ratatui::Terminal;

fn screen(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| crate::ui::draw(f, app)).unwrap();
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The row of the screen holding `needle`.
fn line_with(s: &str, needle: &str) -> String {
    s.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not on screen:\n{s}"))
        .to_string()
}

fn refresh(app: &mut App, b: &Fake) {
    app.update(Msg::Vms(b.list_vms()));
}

/// Press keys, running what they ask for as the event loop would, but in
/// line. Returns the ssh sessions asked for. `<E>` is Enter, `<X>` Esc,
/// `<B>` Backspace, `<U>`/`<D>` Up/Down.
fn press(app: &mut App, b: &Fake, keys: &str) -> Vec<String> {
    let mut ssh = Vec::new();
    let mut chars = keys.chars().peekable();
    while let Some(c) = chars.next() {
        let code = if c == '<' && chars.peek().is_some() {
            let k = chars.next().unwrap();
            assert_eq!(chars.next(), Some('>'));
            match k {
                'E' => KeyCode::Enter,
                'X' => KeyCode::Esc,
                'B' => KeyCode::Backspace,
                'U' => KeyCode::Up,
                'D' => KeyCode::Down,
                _ => panic!("unknown key <{k}>"),
            }
        } else {
            KeyCode::Char(c)
        };
        for task in app.key(KeyEvent::new(code, KeyModifiers::NONE)) {
            let msg = match task {
                Task::Ssh(name) => {
                    ssh.push(name.clone());
                    Msg::SshDone(name, Ok(0))
                }
                t => app::run(b, t),
            };
            if app.update(msg) {
                refresh(app, b);
            }
        }
    }
    ssh
}

fn fixture() -> (App, Fake) {
    let mut running = vm("box", "running", true);
    running.started_at = Some("2026-01-01T00:00:00Z".into());
    running.vmm = "firecracker".into();
    let b = Fake::with(vec![
        running,
        vm("web-1", "stopped", false),
        vm("dead", "crashed", false),
    ]);
    let mut app = App::new();
    app.now = crate::records::parse_rfc3339("2026-01-01T00:05:07Z").unwrap();
    refresh(&mut app, &b);
    (app, b)
}

#[test]
fn table_at_80x24_shows_every_column() {
    let (mut app, _) = fixture();
    app.update(Msg::Health(Ok(vec![Health {
        name: "box".into(),
        ok: true,
        error: None,
    }])));
    let s = screen(&app, 80, 24);
    for col in [
        "NAME", "STATE", "VMM", "IP", "NAT", "IMAGE", "UPTIME", "HEALTH",
    ] {
        assert!(s.contains(col), "{col} missing:\n{s}");
    }
    let row = line_with(&s, "box");
    for cell in ["running", "fc", "172.30.0.2", "on", "debian", "5m07s", "ok"] {
        assert!(row.contains(cell), "{cell} missing from {row:?}");
    }
    assert!(row.starts_with("> "), "first VM selected: {row:?}");
    let stopped = line_with(&s, "web-1");
    assert!(stopped.contains("stopped") && stopped.contains("off"));
    assert!(line_with(&s, "banger").contains("3 VMs, 1 running"));
    assert!(line_with(&s, "Enter ssh").contains("c create"));
}

#[test]
fn health_column_says_ok_down_or_unknown() {
    let (mut app, b) = fixture();
    b.vms.lock().unwrap()[1].state = "running".into();
    refresh(&mut app, &b);
    assert!(line_with(&screen(&app, 80, 24), "web-1")
        .trim_end()
        .ends_with('?'));
    app.update(Msg::Health(Ok(vec![
        Health {
            name: "box".into(),
            ok: true,
            error: None,
        },
        Health {
            name: "web-1".into(),
            ok: false,
            error: Some("no agent".into()),
        },
    ])));
    let s = screen(&app, 80, 24);
    assert!(line_with(&s, "box").ends_with("ok"));
    assert!(line_with(&s, "web-1").ends_with("down"));
    assert!(
        line_with(&s, "dead").ends_with('-'),
        "not running: no health"
    );
}

#[test]
fn empty_and_loading() {
    let app = App::new();
    assert!(screen(&app, 80, 24).contains("Reading banger-vm list"));
    let mut app = App::new();
    app.update(Msg::Vms(Ok(vec![])));
    assert!(screen(&app, 80, 24).contains("No VMs yet. Press c to create one."));
    let b = Fake::default();
    press(&mut app, &b, "sxd<E>");
    assert!(b.calls().is_empty(), "no VM, no action");
    assert_eq!(app.mode, Mode::Table);
}

#[test]
fn action_keys_run_the_right_commands_on_the_selected_vm() {
    let (mut app, b) = fixture();
    press(&mut app, &b, "xs");
    press(&mut app, &b, "jr");
    press(&mut app, &b, "n"); // web-1 has NAT off
    press(&mut app, &b, "kn"); // box has it on
    assert_eq!(
        b.calls(),
        [
            "stop box",
            "start box",
            "restart web-1",
            "set --nat web-1",
            "set --no-nat box"
        ]
    );
    assert_eq!(app.status.text, "NAT disabled for box");
    assert!(!app.status.error);
    assert!(app.pending.is_empty());
}

#[test]
fn movement_stays_in_bounds_and_follows_the_name() {
    let (mut app, b) = fixture();
    press(&mut app, &b, "kkk");
    assert_eq!(app.current().unwrap().name, "box");
    press(&mut app, &b, "jjjjj");
    assert_eq!(app.current().unwrap().name, "dead");
    press(&mut app, &b, "<U>");
    assert_eq!(app.current().unwrap().name, "web-1");
    // A refresh in a different order keeps the same VM selected.
    b.vms.lock().unwrap().reverse();
    refresh(&mut app, &b);
    assert_eq!(app.current().unwrap().name, "web-1");
    assert!(line_with(&screen(&app, 80, 24), "web-1").starts_with("> "));
    // The selected VM disappearing moves the cursor to the first.
    b.vms.lock().unwrap().retain(|v| v.name != "web-1");
    refresh(&mut app, &b);
    assert_eq!(app.current().unwrap().name, "dead");
}

#[test]
fn delete_asks_first() {
    let (mut app, b) = fixture();
    press(&mut app, &b, "d");
    let s = screen(&app, 80, 24);
    assert!(s.contains("Delete box? Its disks are removed."), "{s}");
    press(&mut app, &b, "n");
    assert!(b.calls().is_empty());
    assert_eq!(app.status.text, "box kept");
    press(&mut app, &b, "d<X>");
    assert!(b.calls().is_empty(), "Esc keeps it too");
    press(&mut app, &b, "dy");
    assert_eq!(b.calls(), ["delete box"]);
    assert_eq!(app.status.text, "deleted box");
}

#[test]
fn create_checks_the_name_as_you_type() {
    let (mut app, b) = fixture();
    press(&mut app, &b, "cBad");
    let s = screen(&app, 80, 24);
    assert!(s.contains("Name: Bad"), "{s}");
    assert!(s.contains("invalid VM name"), "{s}");
    press(&mut app, &b, "<E>");
    assert!(b.calls().is_empty(), "an invalid name is not sent");
    assert!(matches!(app.mode, Mode::Create { .. }));

    press(&mut app, &b, "<B><B><B>box<E>");
    assert!(b.calls().is_empty());
    assert!(screen(&app, 80, 24).contains("a VM named box already exists"));

    press(&mut app, &b, "<B><B><B>new-1");
    assert!(!screen(&app, 80, 24).contains("invalid"));
    press(&mut app, &b, "<E>");
    assert_eq!(b.calls(), ["create --name new-1"]);
    assert_eq!(app.mode, Mode::Table);
    assert!(app.status.text.starts_with("created new-1"));

    press(&mut app, &b, "cabc<X>");
    assert_eq!(b.calls().len(), 1, "Esc cancels");
}

#[test]
fn tool_errors_go_to_the_status_line() {
    let (mut app, b) = fixture();
    *b.fail.lock().unwrap() = Some("banger-vm stop failed: box is locked".into());
    press(&mut app, &b, "x");
    assert!(app.status.error);
    let s = screen(&app, 80, 24);
    let status = line_with(&s, "box is locked");
    assert!(status.contains("(hint: try again)"), "{status}");
    // Red, and one row above the key bar.
    let rows: Vec<&str> = s.lines().collect();
    assert!(rows[22].contains("box is locked"));
    let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
    t.draw(|f| crate::ui::draw(f, &app)).unwrap();
    assert_eq!(t.backend().buffer()[(0, 22)].fg, Color::Red);

    // A long one wraps above the key bar instead of being cut.
    app.update(Msg::Acted(
        crate::backend::Verb::Start,
        "box".into(),
        Err(
            banger_lib::Error::prereq(format!("banger-vm start failed: {}", "x".repeat(70)))
                .with_hint("install qemu-system-x86"),
        ),
    ));
    let s = screen(&app, 80, 24);
    let rows: Vec<&str> = s.lines().collect();
    let status = rows[20..23].join(" ");
    assert!(status.starts_with("banger-vm start failed"), "{s}");
    assert!(status.contains("install qemu-system-x86)"), "{s}");
    assert!(rows[23].contains("Enter ssh"));

    // A failing list keeps the last table and says why.
    app.update(Msg::Vms(Err(banger_lib::Error::prereq(
        "banger-vm is not installed next to this program or on PATH",
    ))));
    let s = screen(&app, 80, 24);
    assert!(s.contains("banger-vm is not installed"));
    assert!(s.contains("web-1"), "the last table stays");
    // Logs and images that fail close their view and report.
    press(&mut app, &b, "l");
    assert_eq!(app.mode, Mode::Table);
    press(&mut app, &b, "i");
    assert_eq!(app.mode, Mode::Table);
    assert!(app.status.error);
}

#[test]
fn enter_runs_ssh_only_on_a_running_vm() {
    let (mut app, b) = fixture();
    assert_eq!(press(&mut app, &b, "<E>"), ["box"]);
    assert_eq!(app.status.text, "back from box");
    assert!(press(&mut app, &b, "j<E>").is_empty());
    assert_eq!(app.status.text, "web-1 is stopped; press s to start it");
    assert!(app.status.error);
    app.update(Msg::SshDone("box".into(), Ok(255)));
    assert_eq!(app.status.text, "ssh box exited with status 255");
}

#[test]
fn console_log_pane() {
    let (mut app, b) = fixture();
    press(&mut app, &b, "l");
    assert_eq!(b.calls(), ["logs box"]);
    let s = screen(&app, 80, 24);
    assert!(s.contains("console: box"));
    assert!(s.contains("console line 100"), "shows the end:\n{s}");
    assert!(!s.contains("console line 50\n"));
    assert!(s.contains("box"), "the table stays above");
    press(&mut app, &b, "<U><U><U>");
    let s = screen(&app, 80, 24);
    assert!(s.contains("console line 97") && !s.contains("console line 100"));
    press(&mut app, &b, "G");
    assert!(screen(&app, 80, 24).contains("console line 100"));
    press(&mut app, &b, "r");
    assert_eq!(b.calls(), ["logs box", "logs box"]);
    press(&mut app, &b, "<X>");
    assert_eq!(app.mode, Mode::Table);
}

#[test]
fn images_view() {
    let (mut app, b) = fixture();
    app.key(KeyEvent::new(KeyCode::Char('i'), KeyModifiers::NONE));
    assert!(screen(&app, 80, 24).contains("loading"));
    app.update(app::run(&b, Task::Images));
    let s = screen(&app, 80, 24);
    let row = line_with(&s, "debian:bookworm");
    assert!(
        row.contains("debian") && row.contains('*') && row.contains("4.0G"),
        "{row}"
    );
    press(&mut app, &b, "q");
    assert_eq!(app.mode, Mode::Table);
    assert!(!app.quit, "q leaves the view, not the program");
}

#[test]
fn help_and_quit() {
    let (mut app, b) = fixture();
    press(&mut app, &b, "?");
    let s = screen(&app, 80, 24);
    for (k, what) in crate::ui::HELP {
        assert!(s.contains(k) && s.contains(what), "{k} {what}:\n{s}");
    }
    press(&mut app, &b, "x");
    assert!(b.calls().is_empty(), "a key closes help without acting");
    assert_eq!(app.mode, Mode::Table);
    press(&mut app, &b, "q");
    assert!(app.quit);
    let mut app = App::new();
    app.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(app.quit);
}

#[test]
fn any_size_renders() {
    let (mut app, b) = fixture();
    for keys in ["", "?", "d", "cx", "l", "i"] {
        press(&mut app, &b, keys);
        for (w, h) in [(80, 24), (120, 40), (40, 12), (20, 6), (1, 1)] {
            let s = screen(&app, w, h);
            assert_eq!(s.split('\n').count(), h as usize);
        }
        press(&mut app, &b, "<X>");
    }
    // Wide: long names are shown whole.
    b.vms.lock().unwrap()[0].name = "a-rather-long-name-of-28-chr".into();
    app.selected = None;
    refresh(&mut app, &b);
    assert!(screen(&app, 120, 40).contains("a-rather-long-name-of-28-chr"));
}
