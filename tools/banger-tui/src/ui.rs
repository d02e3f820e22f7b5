//! Drawing the App. Ratatui diffs each frame against the last, so drawing
//! the whole screen every time does not flicker.

use crate::app::{App, Mode};
use crate::records::Vm;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

pub const HELP: &[(&str, &str)] = &[
    ("Enter", "ssh into the selected VM"),
    ("s / x / r", "start / stop / restart it"),
    ("d", "delete it (asks first)"),
    ("n", "turn its NAT on or off"),
    ("c", "create a VM"),
    ("l", "its console log"),
    ("i", "images"),
    ("Up/Down j/k", "move"),
    ("?", "this help"),
    ("q", "quit"),
];

pub fn draw(f: &mut Frame, app: &App) {
    // A long error (message and hint) gets up to three rows rather than
    // being cut at the edge.
    let width = f.area().width.max(1) as usize;
    // Word wrap can take a row more than the width alone says.
    let status_rows = match status_line(app).width() {
        n if n <= width => 1,
        n => (n.div_ceil(width) + 1).min(3) as u16,
    };
    let [title, main, status, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(status_rows),
        Constraint::Length(1),
    ])
    .areas(f.area());

    draw_title(f, app, title);
    match &app.mode {
        Mode::Logs { name, text, back } => {
            let [top, bottom] =
                Layout::vertical([Constraint::Percentage(35), Constraint::Percentage(65)])
                    .areas(main);
            draw_vms(f, app, top);
            draw_logs(f, name, text.as_deref(), *back, bottom);
        }
        Mode::Images { images, selected } => draw_images(f, images.as_deref(), *selected, main),
        _ => draw_vms(f, app, main),
    }
    draw_status(f, app, status);
    draw_keys(f, app, keys);

    match &app.mode {
        Mode::Help => draw_help(f, main),
        Mode::ConfirmDelete(name) => {
            let body = Text::from(vec![
                Line::from(format!("Delete {name}? Its disks are removed.")),
                Line::from(""),
                Line::from("y: delete   any other key: keep").dim(),
            ]);
            popup(f, main, " delete ", body, 46, 5, Color::Red);
        }
        Mode::Create { input, error } => {
            let note = match error {
                Some(e) => Line::from(e.as_str()).red(),
                None => Line::from("Enter: create   Esc: cancel").dim(),
            };
            let body = Text::from(vec![
                Line::from(vec![
                    Span::raw("Name: "),
                    Span::raw(input.as_str()).bold(),
                    "_".slow_blink(),
                ]),
                Line::from(""),
                note,
            ]);
            popup(f, main, " create a VM ", body, 60, 6, Color::Cyan);
        }
        _ => {}
    }
}

fn draw_title(f: &mut Frame, app: &App, area: Rect) {
    let running = app.vms.iter().filter(|v| v.running()).count();
    let left = Line::from(vec![
        " banger ".bold().reversed(),
        Span::raw(format!(
            "  {} VM{}, {running} running",
            app.vms.len(),
            if app.vms.len() == 1 { "" } else { "s" }
        )),
    ]);
    f.render_widget(Paragraph::new(left), area);
    f.render_widget(
        Paragraph::new("? help  q quit ".dim()).alignment(Alignment::Right),
        area,
    );
}

fn state_style(state: &str) -> Style {
    match state {
        "running" => Style::new().green(),
        "crashed" => Style::new().red().bold(),
        "created" => Style::new().cyan(),
        _ => Style::new(),
    }
}

/// The VMM column is narrow: firecracker is "fc".
fn vmm_short(vmm: &str) -> &str {
    match vmm {
        "firecracker" => "fc",
        v => v,
    }
}

fn health_cell(app: &App, vm: &Vm) -> Cell<'static> {
    if !vm.running() {
        return Cell::from("-");
    }
    match app.health.get(&vm.name) {
        Some(h) if h.ok => Cell::from("ok").green(),
        Some(_) => Cell::from("down").red(),
        None => Cell::from("?").dim(),
    }
}

fn draw_vms(f: &mut Frame, app: &App, area: Rect) {
    if app.vms.is_empty() {
        let msg = if app.loaded {
            "No VMs yet. Press c to create one."
        } else {
            "Reading banger-vm list..."
        };
        f.render_widget(
            Paragraph::new(msg)
                .alignment(Alignment::Center)
                .block(Block::new().borders(Borders::TOP)),
            area,
        );
        return;
    }
    let header = Row::new([
        "NAME", "STATE", "VMM", "IP", "NAT", "IMAGE", "UPTIME", "HEALTH",
    ])
    .style(Style::new().bold().underlined());
    let rows = app.vms.iter().map(|vm| {
        Row::new(vec![
            Cell::from(vm.name.clone()),
            Cell::from(vm.state.clone()).style(state_style(&vm.state)),
            Cell::from(vmm_short(&vm.vmm).to_string()),
            Cell::from(vm.ip.clone()),
            Cell::from(if vm.nat { "on" } else { "off" }),
            Cell::from(vm.image.clone()),
            Cell::from(vm.uptime(app.now)),
            health_cell(app, vm),
        ])
    });
    let widths = [
        Constraint::Min(8),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(15),
        Constraint::Length(3),
        Constraint::Length(10),
        Constraint::Length(6),
        Constraint::Length(6),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ");
    let mut state = TableState::new().with_selected(app.cursor());
    f.render_stateful_widget(table, area, &mut state);
}

fn draw_logs(f: &mut Frame, name: &str, text: Option<&str>, back: usize, area: Rect) {
    let block = Block::bordered()
        .title(format!(" console: {name} "))
        .title_bottom(Line::from(" Up/Down scroll  r reload  Esc close ").dim());
    let inner = block.inner(area);
    let body = match text {
        None => Text::from("loading...".dim()),
        Some(t) => {
            // Show the end of the log, `back` lines up from it.
            let lines: Vec<&str> = t.lines().collect();
            let h = inner.height as usize;
            let end = lines.len().saturating_sub(back);
            let start = end.saturating_sub(h);
            Text::from(
                lines[start..end]
                    .iter()
                    .map(|l| Line::from(l.to_string()))
                    .collect::<Vec<_>>(),
            )
        }
    };
    f.render_widget(Paragraph::new(body).block(block), area);
}

fn draw_images(f: &mut Frame, images: Option<&[crate::records::Image]>, sel: usize, area: Rect) {
    let block = Block::bordered()
        .title(" images ")
        .title_bottom(Line::from(" Esc back ").dim());
    let Some(images) = images else {
        f.render_widget(Paragraph::new("loading...".dim()).block(block), area);
        return;
    };
    if images.is_empty() {
        let msg = "No images. Build one with: banger image build --name debian";
        f.render_widget(
            Paragraph::new(msg).wrap(Wrap { trim: true }).block(block),
            area,
        );
        return;
    }
    let header = Row::new(["NAME", "DEFAULT", "MANAGED", "SIZE", "FROM", "CREATED"])
        .style(Style::new().bold().underlined());
    let rows = images.iter().map(|i| {
        Row::new(vec![
            i.name.clone(),
            if i.default { "*".into() } else { String::new() },
            i.managed.clone(),
            i.size.clone(),
            i.from.clone(),
            i.created_at.clone(),
        ])
    });
    let widths = [
        Constraint::Min(8),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(16),
        Constraint::Length(20),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(block)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::new().with_selected(Some(sel.min(images.len() - 1)));
    f.render_stateful_widget(table, area, &mut state);
}

fn status_line(app: &App) -> Line<'static> {
    let mut spans = Vec::new();
    if !app.pending.is_empty() {
        spans.push(format!("[{}] ", app.pending.join(", ")).yellow());
    }
    // A busy action already says what it does; do not repeat "stopping box...".
    let repeat = app
        .pending
        .iter()
        .any(|p| app.status.text == format!("{p}..."));
    if !repeat {
        let s = Span::raw(app.status.text.clone());
        spans.push(if app.status.error { s.red().bold() } else { s });
    }
    Line::from(spans)
}

fn draw_status(f: &mut Frame, app: &App, area: Rect) {
    f.render_widget(
        Paragraph::new(status_line(app)).wrap(Wrap { trim: false }),
        area,
    );
}

fn draw_keys(f: &mut Frame, app: &App, area: Rect) {
    let text = match app.mode {
        Mode::Table => "Enter ssh s start x stop r restart d delete n nat c create l log i images",
        Mode::Help => "any key: close help",
        Mode::ConfirmDelete(_) => "y: delete  other: keep",
        Mode::Create { .. } => "type a name  Enter: create  Esc: cancel",
        Mode::Logs { .. } => "Up/Down PgUp/PgDn scroll  r reload  Esc close",
        Mode::Images { .. } => "Up/Down move  Esc back",
    };
    f.render_widget(Paragraph::new(text.dim()), area);
}

fn draw_help(f: &mut Frame, area: Rect) {
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| Line::from(vec![format!("{k:>12}  ").bold(), Span::raw(*what)]))
        .collect();
    let h = lines.len() as u16 + 2;
    popup(f, area, " keys ", Text::from(lines), 44, h, Color::Cyan);
}

/// A bordered box centred in `area`, shrunk to fit small terminals.
fn popup(f: &mut Frame, area: Rect, title: &str, body: Text, w: u16, h: u16, color: Color) {
    let w = w.min(area.width);
    let h = h.min(area.height);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    f.render_widget(Clear, r);
    let block = Block::bordered()
        .title(title)
        .border_style(Style::new().fg(color));
    f.render_widget(
        Paragraph::new(body).wrap(Wrap { trim: false }).block(block),
        r,
    );
}
