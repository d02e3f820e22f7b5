//! The banger-* tools `banger SUB` can run, found where every banger tool
//! finds its siblings (`banger_lib::sibling::search_dirs`).

use banger_lib::sibling;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Serialize, Debug)]
pub struct Tool {
    pub name: String,
    pub path: PathBuf,
}

/// The executable for `banger SUB`, if any.
pub fn find(sub: &str) -> Option<PathBuf> {
    // A name with a slash or a leading dash is never a tool.
    if sub.is_empty() || sub.contains('/') || sub.starts_with('-') {
        return None;
    }
    sibling::find(&format!("banger-{sub}"))
}

/// Every banger-* tool found, first one of each name in search order wins
/// (the one `find` runs), sorted by name.
pub fn all() -> Vec<Tool> {
    let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in sibling::search_dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let Some(name) = file.strip_prefix("banger-") else {
                continue;
            };
            // Skip cargo's hashed test binaries and build leftovers.
            if name.is_empty() || name.contains('.') || name.contains('-') && is_hashed(name) {
                continue;
            }
            let path = e.path();
            if banger_lib::hosttools::is_executable(&path) {
                found.entry(name.to_string()).or_insert(path);
            }
        }
    }
    found
        .into_iter()
        .map(|(name, path)| Tool { name, path })
        .collect()
}

/// cargo names test binaries `crate-0123456789abcdef`.
fn is_hashed(name: &str) -> bool {
    name.rsplit_once('-')
        .is_some_and(|(_, h)| h.len() == 16 && h.chars().all(|c| c.is_ascii_hexdigit()))
}
