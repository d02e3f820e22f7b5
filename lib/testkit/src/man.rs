//! Man pages are generated from each tool's clap definition and checked
//! in. `check` fails a test when the checked-in page differs from what the
//! code generates; `BANGER_UPDATE_MAN=1` (what `make man` sets) rewrites it.

use std::path::PathBuf;

/// Render `cmd` as roff.
pub fn render(cmd: clap::Command, section: &str) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .section(section.to_string())
        .date("2026")
        .source(format!("banger {}", env!("CARGO_PKG_VERSION")))
        .manual("banger manual")
        .render(&mut out)
        .expect("rendering a man page");
    out
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
