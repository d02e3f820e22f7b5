//! Build stages on stderr: a redrawn bar on a terminal, plain lines
//! otherwise (logs, CI).

use std::io::{IsTerminal, Write};

pub struct Progress {
    tty: bool,
    drawn: bool,
}

/// `==> [N/T] NAME`, as rootfs/lib.sh prints it.
pub fn parse_stage(line: &str) -> Option<(u32, u32, &str)> {
    let rest = line.strip_prefix("==> [")?;
    let (counts, name) = rest.split_once("] ")?;
    let (n, t) = counts.split_once('/')?;
    Some((n.parse().ok()?, t.parse().ok()?, name))
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    pub fn stage(&mut self, n: u32, total: u32, name: &str) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            const W: u32 = 24;
            let done = (n.saturating_sub(1) * W).checked_div(total).unwrap_or(0);
            let bar: String = (0..W).map(|i| if i < done { '#' } else { '.' }).collect();
            let _ = write!(err, "\r\x1b[K[{bar}] {n}/{total} {name}");
            self.drawn = true;
        } else {
            let _ = writeln!(err, "banger-image: [{n}/{total}] {name}");
        }
        let _ = err.flush();
    }

    /// End the bar's line before other messages.
    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stage_lines() {
        assert_eq!(
            super::parse_stage("==> [2/5] debootstrap bookworm"),
            Some((2, 5, "debootstrap bookworm"))
        );
        assert_eq!(super::parse_stage("I: Retrieving"), None);
        assert_eq!(super::parse_stage("==> [x/5] y"), None);
    }
}
