//! The UI's state and what keys and tool results do to it. Pure: a key
//! yields `Task`s, the event loop runs them (threads, or the terminal for
//! ssh) and feeds back `Msg`s. Tests drive it with a fake backend.

use crate::backend::{Backend, Verb};
use crate::records::{Health, Image, Vm};
use banger_lib::Error;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::HashMap;

/// What is on screen over (or instead of) the VM table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Table,
    Help,
    ConfirmDelete(String),
    Create {
        input: String,
        error: Option<String>,
    },
    /// The console log of a VM; `text` is None while loading. `back` is
    /// how many lines the view is scrolled up from the end.
    Logs {
        name: String,
        text: Option<String>,
        back: usize,
    },
    Images {
        images: Option<Vec<Image>>,
        selected: usize,
    },
}

/// Work for the event loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    Act(Verb, String),
    Create(String),
    Logs(String),
    Images,
    /// Needs the terminal: the loop suspends the UI around it.
    Ssh(String),
}

/// Results coming back to the UI.
#[derive(Debug)]
pub enum Msg {
    Vms(Result<Vec<Vm>, Error>),
    Health(Result<Vec<Health>, Error>),
    Acted(Verb, String, Result<(), Error>),
    Created(String, Result<(), Error>),
    Logs(String, Result<String, Error>),
    Images(Result<Vec<Image>, Error>),
    /// The ssh session ended: its exit code, or why it could not run.
    SshDone(String, Result<i32, Error>),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub text: String,
    pub error: bool,
}

pub struct App {
    pub vms: Vec<Vm>,
    /// Whether the first `vm list` has answered.
    pub loaded: bool,
    pub health: HashMap<String, Health>,
    pub selected: Option<String>,
    pub mode: Mode,
    pub status: Status,
    /// Actions running now, for the status line ("stopping box").
    pub pending: Vec<String>,
    /// Seconds since the epoch, for uptimes; the loop keeps it current.
    pub now: u64,
    pub quit: bool,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl App {
    pub fn new() -> App {
        App {
            vms: Vec::new(),
            loaded: false,
            health: HashMap::new(),
            selected: None,
            mode: Mode::Table,
            status: Status::default(),
            pending: Vec::new(),
            now: 0,
            quit: false,
        }
    }

    /// Index of the selected VM in `vms` (the first when the selected one
    /// went away).
    pub fn cursor(&self) -> Option<usize> {
        if self.vms.is_empty() {
            return None;
        }
        let by_name = self
            .selected
            .as_ref()
            .and_then(|s| self.vms.iter().position(|v| &v.name == s));
        Some(by_name.unwrap_or(0))
    }

    pub fn current(&self) -> Option<&Vm> {
        self.cursor().map(|i| &self.vms[i])
    }

    fn info(&mut self, text: impl Into<String>) {
        self.status = Status {
            text: text.into(),
            error: false,
        };
    }

    fn error(&mut self, e: &Error) {
        let mut text = e.message.clone();
        if let Some(h) = &e.hint {
            text.push_str(&format!(" (hint: {h})"));
        }
        self.status = Status { text, error: true };
    }

    fn error_text(&mut self, text: impl Into<String>) {
        self.status = Status {
            text: text.into(),
            error: true,
        };
    }

    fn start_pending(&mut self, what: String) {
        self.info(format!("{what}..."));
        self.pending.push(what);
    }

    fn end_pending(&mut self, what: &str) {
        if let Some(i) = self.pending.iter().position(|p| p == what) {
            self.pending.remove(i);
        }
    }

    fn move_cursor(&mut self, delta: isize) {
        let Some(i) = self.cursor() else { return };
        let last = self.vms.len().saturating_sub(1);
        let j = i.saturating_add_signed(delta).min(last);
        self.selected = Some(self.vms[j].name.clone());
    }

    /// Handle one key press.
    pub fn key(&mut self, k: KeyEvent) -> Vec<Task> {
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            self.quit = true;
            return vec![];
        }
        match self.mode.clone() {
            Mode::Table => self.key_table(k),
            Mode::Help => {
                self.mode = Mode::Table;
                vec![]
            }
            Mode::ConfirmDelete(name) => {
                self.mode = Mode::Table;
                if matches!(k.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                    self.start_pending(format!("{} {name}", Verb::Delete.progressive()));
                    vec![Task::Act(Verb::Delete, name)]
                } else {
                    self.info(format!("{name} kept"));
                    vec![]
                }
            }
            Mode::Create { input, .. } => self.key_create(k, input),
            Mode::Logs { name, text, back } => {
                let lines = text.as_deref().map_or(0, |t| t.lines().count());
                let back = match k.code {
                    KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('l') => {
                        self.mode = Mode::Table;
                        return vec![];
                    }
                    KeyCode::Char('r') => {
                        self.mode = Mode::Logs {
                            name: name.clone(),
                            text,
                            back,
                        };
                        return vec![Task::Logs(name)];
                    }
                    KeyCode::Up | KeyCode::Char('k') => back + 1,
                    KeyCode::Down | KeyCode::Char('j') => back.saturating_sub(1),
                    KeyCode::PageUp => back + 10,
                    KeyCode::PageDown => back.saturating_sub(10),
                    KeyCode::Home | KeyCode::Char('g') => lines,
                    KeyCode::End | KeyCode::Char('G') => 0,
                    _ => back,
                };
                self.mode = Mode::Logs {
                    name,
                    text,
                    back: back.min(lines),
                };
                vec![]
            }
            Mode::Images { images, selected } => {
                let n = images.as_ref().map_or(0, Vec::len);
                let selected = match k.code {
                    KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('i') => {
                        self.mode = Mode::Table;
                        return vec![];
                    }
                    KeyCode::Up | KeyCode::Char('k') => selected.saturating_sub(1),
                    KeyCode::Down | KeyCode::Char('j') => (selected + 1).min(n.saturating_sub(1)),
                    _ => selected,
                };
                self.mode = Mode::Images { images, selected };
                vec![]
            }
        }
    }

    fn key_table(&mut self, k: KeyEvent) -> Vec<Task> {
        let act = |app: &mut App, verb: Verb, name: String| {
            app.start_pending(format!("{} {name}", verb.progressive()));
            vec![Task::Act(verb, name)]
        };
        match k.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Up | KeyCode::Char('k') => self.move_cursor(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_cursor(1),
            KeyCode::Home | KeyCode::Char('g') => self.move_cursor(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_cursor(isize::MAX / 2),
            KeyCode::Char('c') => {
                self.mode = Mode::Create {
                    input: String::new(),
                    error: None,
                }
            }
            KeyCode::Char('i') => {
                self.mode = Mode::Images {
                    images: None,
                    selected: 0,
                };
                return vec![Task::Images];
            }
            _ => {
                let Some(vm) = self.current().cloned() else {
                    if k.code != KeyCode::Esc {
                        self.info("no VM selected; press c to create one");
                    }
                    return vec![];
                };
                let name = vm.name.clone();
                match k.code {
                    KeyCode::Enter if vm.running() => return vec![Task::Ssh(name)],
                    KeyCode::Enter => {
                        self.error_text(format!("{name} is {}; press s to start it", vm.state))
                    }
                    KeyCode::Char('s') => return act(self, Verb::Start, name),
                    KeyCode::Char('x') => return act(self, Verb::Stop, name),
                    KeyCode::Char('r') => return act(self, Verb::Restart, name),
                    KeyCode::Char('n') => {
                        let verb = if vm.nat { Verb::NatOff } else { Verb::NatOn };
                        return act(self, verb, name);
                    }
                    KeyCode::Char('d') => self.mode = Mode::ConfirmDelete(name),
                    KeyCode::Char('l') => {
                        self.mode = Mode::Logs {
                            name: name.clone(),
                            text: None,
                            back: 0,
                        };
                        return vec![Task::Logs(name)];
                    }
                    _ => {}
                }
            }
        }
        vec![]
    }

    fn key_create(&mut self, k: KeyEvent, mut input: String) -> Vec<Task> {
        match k.code {
            KeyCode::Esc => {
                self.mode = Mode::Table;
                return vec![];
            }
            KeyCode::Enter => match self.check_name(&input) {
                Ok(()) => {
                    self.mode = Mode::Table;
                    self.selected = Some(input.clone());
                    self.start_pending(format!("creating {input}"));
                    return vec![Task::Create(input)];
                }
                Err(e) => {
                    self.mode = Mode::Create {
                        input,
                        error: Some(e),
                    };
                    return vec![];
                }
            },
            KeyCode::Backspace => {
                input.pop();
            }
            KeyCode::Char(c) if !c.is_control() && input.chars().count() < 64 => input.push(c),
            _ => {}
        }
        // Say what is wrong while typing, but not before there is input.
        let error = if input.is_empty() {
            None
        } else {
            self.check_name(&input).err()
        };
        self.mode = Mode::Create { input, error };
        vec![]
    }

    fn check_name(&self, name: &str) -> Result<(), String> {
        banger_lib::names::validate("VM", name).map_err(|e| e.message)?;
        if self.vms.iter().any(|v| v.name == name) {
            return Err(format!("a VM named {name} already exists"));
        }
        Ok(())
    }

    /// Take a result in. Returns true when the VM list should be read
    /// again now (an action changed something).
    pub fn update(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Vms(Ok(vms)) => {
                self.loaded = true;
                if self.selected.is_none() {
                    self.selected = vms.first().map(|v| v.name.clone());
                }
                self.health.retain(|n, _| vms.iter().any(|v| &v.name == n));
                self.vms = vms;
                false
            }
            Msg::Vms(Err(e)) => {
                self.error(&e);
                false
            }
            Msg::Health(Ok(hs)) => {
                for h in hs {
                    self.health.insert(h.name.clone(), h);
                }
                false
            }
            // Health is a column, not a command the user gave: a failure to
            // ask shows as unknown health rather than a status-line error.
            Msg::Health(Err(_)) => {
                self.health.clear();
                false
            }
            Msg::Acted(verb, name, result) => {
                self.end_pending(&format!("{} {name}", verb.progressive()));
                match result {
                    Ok(()) => self.info(format!("{} {name}", verb.past())),
                    Err(e) => self.error(&e),
                }
                true
            }
            Msg::Created(name, result) => {
                self.end_pending(&format!("creating {name}"));
                match result {
                    Ok(()) => self.info(format!("created {name}; press Enter to ssh into it")),
                    Err(e) => self.error(&e),
                }
                true
            }
            Msg::Logs(name, result) => {
                match (&mut self.mode, result) {
                    (
                        Mode::Logs {
                            name: shown, text, ..
                        },
                        Ok(t),
                    ) if *shown == name => *text = Some(t),
                    (Mode::Logs { name: shown, .. }, Err(e)) if *shown == name => {
                        self.mode = Mode::Table;
                        self.error(&e);
                    }
                    _ => {}
                }
                false
            }
            Msg::Images(result) => {
                match (&mut self.mode, result) {
                    (Mode::Images { images, .. }, Ok(list)) => *images = Some(list),
                    (Mode::Images { .. }, Err(e)) => {
                        self.mode = Mode::Table;
                        self.error(&e);
                    }
                    _ => {}
                }
                false
            }
            Msg::SshDone(name, result) => {
                match result {
                    Ok(0) => self.info(format!("back from {name}")),
                    Ok(code) => self.error_text(format!("ssh {name} exited with status {code}")),
                    Err(e) => self.error(&e),
                }
                true
            }
        }
    }
}

/// Run a task that does not need the terminal (everything but ssh).
pub fn run(backend: &dyn Backend, task: Task) -> Msg {
    match task {
        Task::Act(verb, name) => {
            let r = backend.act(verb, &name);
            Msg::Acted(verb, name, r)
        }
        Task::Create(name) => {
            let r = backend.create(&name);
            Msg::Created(name, r)
        }
        Task::Logs(name) => {
            let r = backend.logs(&name);
            Msg::Logs(name, r)
        }
        Task::Images => Msg::Images(backend.list_images()),
        Task::Ssh(name) => Msg::SshDone(
            name,
            Err(Error::failed(
                "ssh needs the terminal; the event loop runs it",
            )),
        ),
    }
}
