//! What a bundle archive may hold, checked before anything is unpacked:
//! plain files, directories, symlinks and hard links that stay inside it,
//! no absolute names or `..`, no device nodes, fifos or setuid/setgid
//! bits, and no more than a cap of unpacked bytes (a decompression bomb
//! stops here). GNU tar reads the archive (it knows gzip, xz and zstd);
//! its listing is read two ways, names alone (`-t`, one escaped name a
//! line) and long (`-tv`: type, mode, size, link target), so a name is
//! never split on guesswork. The unpacked tree is walked again before it
//! is installed.

use banger_lib::{error::io, Error, Result};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path};
use std::process::Command;

#[derive(Debug, PartialEq)]
pub struct Member {
    pub name: String,
    /// `-` file, `d` dir, `l` symlink, `h` hard link, `c`/`b` device, ...
    pub kind: char,
    /// `rwsr-xr-x`
    pub perms: String,
    pub size: u64,
    /// A link's target.
    pub link: Option<String>,
}

/// Read the archive's member list with GNU tar.
pub fn list(archive: &Path) -> Result<Vec<Member>> {
    let tar = |verbose: bool| -> Result<String> {
        let mut c = Command::new("tar");
        c.arg(if verbose { "-tvPf" } else { "-tPf" })
            .arg(archive)
            .args(["--quoting-style=escape", "--numeric-owner"]);
        let out = c.output().map_err(|e| io("running tar", e))?;
        if !out.status.success() {
            return Err(Error::failed(format!(
                "unpacking the bundle failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
            .with_hint("the archive is damaged; the current bundle is untouched"));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    parse_listing(&tar(false)?, &tar(true)?)
}

/// Pair `tar -t` names with `tar -tv` lines (same order, one line each).
pub fn parse_listing(names: &str, long: &str) -> Result<Vec<Member>> {
    let bad = |why: String| {
        Error::failed(format!("cannot read the bundle archive's listing: {why}"))
            .with_hint("the archive is damaged or not a tar; the current bundle is untouched")
    };
    let names: Vec<&str> = names.lines().collect();
    let long: Vec<&str> = long.lines().collect();
    if names.len() != long.len() {
        return Err(bad(format!(
            "{} names but {} long lines",
            names.len(),
            long.len()
        )));
    }
    let mut out = Vec::with_capacity(names.len());
    for (name, line) in names.into_iter().zip(long) {
        // MODE OWNER/GROUP SIZE DATE TIME NAME[ -> TARGET | link to TARGET]
        let mut rest = line;
        let mut fields = Vec::new();
        for _ in 0..5 {
            rest = rest.trim_start();
            let end = rest.find(' ').ok_or_else(|| bad(format!("{line:?}")))?;
            fields.push(&rest[..end]);
            rest = &rest[end..];
        }
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        let after = rest
            .strip_prefix(name)
            .ok_or_else(|| bad(format!("{line:?} is not about {name:?}")))?;
        let mode = fields[0];
        let kind = mode.chars().next().unwrap_or('?');
        let link = match kind {
            'l' => after.strip_prefix(" -> "),
            'h' => after.strip_prefix(" link to "),
            _ => None,
        };
        out.push(Member {
            name: name.to_string(),
            kind,
            perms: mode.chars().skip(1).collect(),
            // A device's "MAJOR,MINOR" is no size; devices are refused anyway.
            size: fields[2].parse().unwrap_or(0),
            link: link.map(str::to_string),
        });
    }
    Ok(out)
}

/// Refuse the archive when any member is unsafe (naming up to five), or
/// when its members add up to more than `max_total` bytes.
pub fn check(members: &[Member], max_total: u64) -> Result<()> {
    let mut problems = Vec::new();
    let mut total: u64 = 0;
    for m in members {
        if let Some(why) = unsafe_member(m) {
            problems.push(format!("{} {why}", m.name));
        }
        total = total.saturating_add(m.size);
    }
    if !problems.is_empty() {
        let more = problems.len().saturating_sub(5);
        problems.truncate(5);
        return Err(Error::failed(format!(
            "refusing the bundle archive: {}{}",
            problems.join("; "),
            if more > 0 {
                format!(" (and {more} more)")
            } else {
                String::new()
            }
        ))
        .with_hint("a bundle holds only plain files, directories and links within it; the current bundle is untouched"));
    }
    if total > max_total {
        return Err(Error::failed(format!(
            "refusing the bundle archive: it unpacks to {total} bytes, over the limit of {max_total}"
        ))
        .with_hint("raise --max-mib if the bundle really is that large; the current bundle is untouched"));
    }
    Ok(())
}

fn unsafe_member(m: &Member) -> Option<String> {
    if m.name.starts_with('/') {
        return Some("is an absolute path".into());
    }
    if has_dotdot(&m.name) {
        return Some("contains ..".into());
    }
    let p: Vec<char> = m.perms.chars().collect();
    if p.get(2).is_some_and(|c| matches!(c, 's' | 'S')) {
        return Some("is setuid".into());
    }
    if p.get(5).is_some_and(|c| matches!(c, 's' | 'S')) {
        return Some("is setgid".into());
    }
    match (m.kind, &m.link) {
        ('-' | 'd', _) => None,
        ('l', Some(t)) if !stays_inside(&m.name, t) => {
            Some(format!("is a symlink out of it ({t})"))
        }
        ('h', Some(t)) if t.starts_with('/') || has_dotdot(t) => {
            Some(format!("is a hard link out of it ({t})"))
        }
        ('l' | 'h', Some(_)) => None,
        ('c' | 'b', _) => Some("is a device node".into()),
        ('p', _) => Some("is a fifo".into()),
        (k, _) => Some(format!("is of a kind a bundle has no use for ({k})")),
    }
}

fn has_dotdot(name: &str) -> bool {
    name.split('/').any(|c| c == "..")
}

/// Whether symlink `name` -> `target` resolves (lexically) inside the
/// archive's root.
pub fn stays_inside(name: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    // Directories deep the link sits: its name's parts but the last.
    let mut depth = name
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .count()
        .saturating_sub(1);
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            _ => depth += 1,
        }
    }
    true
}

/// Walk what tar unpacked: only files, dirs and links inside `root`, no
/// setuid/setgid. What the listing promised, checked on disk.
pub fn check_tree(root: &Path) -> Result<()> {
    fn walk(root: &Path, dir: &Path) -> Result<()> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| io(format!("reading {}", dir.display()), e))?;
        for e in entries {
            let e = e.map_err(|e| io(format!("reading {}", dir.display()), e))?;
            let path = e.path();
            let m = std::fs::symlink_metadata(&path)
                .map_err(|e| io(format!("reading {}", path.display()), e))?;
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let refuse = |why: &str| {
                Err(Error::failed(format!(
                    "refusing the bundle archive: {} {why}",
                    rel.display()
                ))
                .with_hint("the current bundle is untouched"))
            };
            let ft = m.file_type();
            if m.mode() & 0o6000 != 0 {
                return refuse("is setuid or setgid");
            }
            if ft.is_symlink() {
                let t = std::fs::read_link(&path)
                    .map_err(|e| io(format!("reading {}", path.display()), e))?;
                let inside = rel.to_str().zip(t.to_str()).is_some_and(|(n, t)| {
                    stays_inside(n, t)
                        && !Path::new(t)
                            .components()
                            .any(|c| matches!(c, Component::Prefix(_)))
                });
                if !inside {
                    return refuse(&format!("is a symlink out of it ({})", t.display()));
                }
            } else if ft.is_dir() {
                walk(root, &path)?;
            } else if ft.is_block_device()
                || ft.is_char_device()
                || ft.is_fifo()
                || ft.is_socket()
                || !ft.is_file()
            {
                return refuse("is not a file, directory or link");
            }
        }
        Ok(())
    }
    walk(root, root)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What GNU tar 1.34 lists for an archive made with Python's tarfile.
    const NAMES: &str =
        "ok/file\n../x\n/abs\nlink\nrel -> odd\nsuid\ndev\nhard\nnew\\nline\ndir/\n";
    const LONG: &str = "\
-rw-r--r-- 0/0               1 1970-01-01 00:00 ok/file
-rw-r--r-- 0/0               1 1970-01-01 00:00 ../x
-rw-r--r-- 0/0               1 1970-01-01 00:00 /abs
lrw-r--r-- 0/0               0 1970-01-01 00:00 link -> /etc/passwd
lrw-r--r-- 0/0               0 1970-01-01 00:00 rel -> odd -> ../../x
-rwsr-xr-x 0/0               1 1970-01-01 00:00 suid
crw-r--r-- 0/0             1,3 1970-01-01 00:00 dev
hrw-r--r-- 0/0               0 1970-01-01 00:00 hard link to ok/file
-rw-r--r-- 0/0               1 1970-01-01 00:00 new\\nline
drwxr-xr-x 0/0               0 1970-01-01 00:00 dir/
";

    #[test]
    fn listing_is_read_without_guessing_at_names() {
        let m = parse_listing(NAMES, LONG).unwrap();
        assert_eq!(m.len(), 10);
        assert_eq!(m[4].name, "rel -> odd");
        assert_eq!(m[4].link.as_deref(), Some("../../x"));
        assert_eq!(m[7].link.as_deref(), Some("ok/file"));
        assert_eq!(m[5].perms, "rwsr-xr-x");
        assert_eq!(m[0].size, 1);
        assert!(parse_listing("a\n", "").is_err());
    }

    #[test]
    fn every_unsafe_kind_is_named() {
        let m = parse_listing(NAMES, LONG).unwrap();
        let why: Vec<Option<String>> = m.iter().map(unsafe_member).collect();
        assert_eq!(why[0], None);
        assert_eq!(why[1].as_deref(), Some("contains .."));
        assert_eq!(why[2].as_deref(), Some("is an absolute path"));
        assert!(why[3].as_deref().unwrap().contains("symlink out"));
        assert!(why[4].as_deref().unwrap().contains("symlink out"));
        assert_eq!(why[5].as_deref(), Some("is setuid"));
        assert_eq!(why[6].as_deref(), Some("is a device node"));
        assert_eq!(why[7], None);
        assert_eq!(why[9], None);
        let e = check(&m, u64::MAX).unwrap_err();
        assert!(e.message.contains("and 1 more"), "{}", e.message);
        let ok: Vec<Member> = m
            .into_iter()
            .filter(|m| unsafe_member(m).is_none())
            .collect();
        assert!(check(&ok, 10).is_ok());
        assert!(check(&ok, 1)
            .unwrap_err()
            .message
            .contains("over the limit"));
    }

    #[test]
    fn symlinks_inside_and_out() {
        assert!(stays_inside("a/b", "c"));
        assert!(stays_inside("a/b", "../x"));
        assert!(stays_inside("./a/b/c", "../../x"));
        assert!(!stays_inside("a/b", "../../x"));
        assert!(!stays_inside("b", "../b"));
        assert!(!stays_inside("a/b", "/etc"));
        assert!(stays_inside("a/b", "./c/../d"));
    }
}
