//! Man pages are generated from each tool's clap definition and checked
//! in. `check` fails a test when the checked-in page differs from what the
//! code generates; `BANGER_UPDATE_MAN=1` (what `make man` sets) rewrites it.

use std::path::PathBuf;

/// Render `cmd` as roff: clap_mangen's sections, with a COMMANDS section
/// that gives every verb (and nested verb) its own usage, description and
/// options, which clap_mangen alone only lists by name.
pub fn render(cmd: clap::Command, section: &str) -> Vec<u8> {
    let mut cmd = cmd;
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone())
        .section(section.to_string())
        .date("2026")
        .source(format!("banger {}", env!("CARGO_PKG_VERSION")))
        .manual("banger manual");
    let mut out = Vec::new();
    let w = &mut out;
    man.render_title(w).expect("roff");
    man.render_name_section(w).expect("roff");
    man.render_synopsis_section(w).expect("roff");
    man.render_description_section(w).expect("roff");
    man.render_options_section(w).expect("roff");
    let mut verbs = String::new();
    for sub in cmd.get_subcommands_mut() {
        verb_roff(sub, &mut verbs);
    }
    if !verbs.is_empty() {
        out.extend_from_slice(b".SH COMMANDS\n");
        out.extend_from_slice(verbs.as_bytes());
    }
    let w = &mut out;
    man.render_extra_section(w).expect("roff");
    man.render_version_section(w).expect("roff");
    out
}

fn esc(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    // A leading dot or quote would be read as a roff request.
    t.lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn verb_roff(cmd: &mut clap::Command, out: &mut String) {
    if cmd.get_name() == "help" || cmd.is_hide_set() {
        return;
    }
    let usage = cmd.render_usage().to_string();
    let usage = usage.trim_start_matches("Usage: ").trim();
    out.push_str(&format!(".SS \"{}\"\n", esc(usage)));
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        out.push_str(&format!("{}\n", esc(&about.to_string())));
    }
    for arg in cmd.get_arguments() {
        if arg.is_hide_set() || matches!(arg.get_id().as_str(), "help" | "version") {
            continue;
        }
        let mut names = Vec::new();
        if let Some(s) = arg.get_short() {
            names.push(format!("\\fB\\-{s}\\fR"));
        }
        if let Some(l) = arg.get_long() {
            names.push(format!("\\fB\\-\\-{}\\fR", esc(l)));
        }
        let values = arg
            .get_value_names()
            .map(|v| {
                v.iter()
                    .map(|n| format!("<{n}>"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_else(|| format!("<{}>", arg.get_id().as_str().to_uppercase()));
        let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
        let mut head = if names.is_empty() {
            format!("\\fI{}\\fR", esc(&values))
        } else {
            names.join(", ")
        };
        if takes_value && !names.is_empty() {
            head.push_str(&format!(" \\fI{}\\fR", esc(&values)));
        }
        out.push_str(&format!(".TP\n{head}\n"));
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let mut text = esc(&help);
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|p| !p.is_hide_set())
            .map(|p| p.get_name().to_string())
            .collect();
        if !possible.is_empty() && takes_value {
            text.push_str(&format!(" [values: {}]", esc(&possible.join(", "))));
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        if !defaults.is_empty() && takes_value {
            text.push_str(&format!(" [default: {}]", esc(&defaults.join(", "))));
        }
        out.push_str(&format!("{}\n", text.trim()));
    }
    for sub in cmd.get_subcommands_mut() {
        verb_roff(sub, out);
    }
}

/// Compare (or with BANGER_UPDATE_MAN=1, write) `man/NAME.SECTION`.
pub fn check(cmd: clap::Command, section: &str) {
    let name = cmd.get_name().to_string();
    let page = render(cmd, section);
    let path: PathBuf = crate::workspace_root()
        .join("man")
        .join(format!("{name}.{section}"));
    if std::env::var("BANGER_UPDATE_MAN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &page).expect("writing man page");
        return;
    }
    let current = std::fs::read(&path).unwrap_or_default();
    assert!(
        current == page,
        "{} is out of date with the code; run `make man` and commit it",
        path.display()
    );
}

/// The man page's long help (where each tool documents its records) names
/// every field of each record type: the page stays true to the types the
/// tools print. `records` are (what, field names), e.g. from
/// `banger_lib::records::fields::<T>()`.
pub fn assert_documents(cmd: &clap::Command, records: &[(&str, Vec<&str>)]) {
    let text = cmd
        .get_after_long_help()
        .map(|t| t.to_string())
        .unwrap_or_default();
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let names = |field: &str| {
        text.match_indices(field).any(|(i, _)| {
            let before = text[..i].chars().next_back();
            let after = text[i + field.len()..].chars().next();
            !before.is_some_and(is_word) && !after.is_some_and(is_word)
        })
    };
    let missing: Vec<String> = records
        .iter()
        .flat_map(|(what, fields)| {
            fields
                .iter()
                .filter(|f| !names(f))
                .map(move |f| format!("{what}.{f}"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{}(1) does not document these record fields: {}",
        cmd.get_name(),
        missing.join(", ")
    );
}
