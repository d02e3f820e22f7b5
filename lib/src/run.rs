//! The common `main` of every tool: run, print errors the banger way, exit
//! with the documented code.

/// Run a tool's body and exit with its code. Clap handles its own usage
/// errors (exit 2) before the body runs.
pub fn main(tool: &str, body: impl FnOnce() -> anyhow::Result<i32>) -> ! {
    // A closed pipe (`banger-image list | head -1`) is not an error worth a
    // panic: restore the default SIGPIPE (std ignores it) so we just end
    // quietly.
    let _ = crate::proc::default_signal(crate::proc::Signal::SIGPIPE);
    // As root, refuse directories another user could write before
    // touching anything in them (see `trust`).
    let code = match crate::trust::check_dirs()
        .map_err(anyhow::Error::from)
        .and_then(|()| body())
    {
        Ok(code) => code,
        Err(err) => {
            let (kind, hint) = crate::error::classify(&err);
            let message = crate::error::message(&err);
            crate::error::report(tool, kind, &message, hint.as_deref());
            kind.exit_code()
        }
    };
    std::process::exit(code)
}

/// Parse the command line. Usage errors are exit 2; with `--json-errors`
/// (or `BANGER_ERRORS=json`) they are one JSON line like any other error.
pub fn parse<C: clap::Parser>(tool: &str) -> C {
    match C::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() && crate::error::json_mode() => {
            // clap's text, up to its usage block, on one line.
            let text = e.to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(|l| l.trim().trim_start_matches("error: "))
                .filter(|l| !l.is_empty())
                .collect();
            crate::error::report(
                tool,
                crate::Kind::Usage,
                &message.join(" "),
                Some(&format!("see {tool} --help")),
            );
            std::process::exit(2)
        }
        Err(e) => e.exit(),
    }
}

/// The flag every tool takes (flattened into its clap CLI).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ErrorArgs {
    /// Print an error as one JSON object on stderr: {"error","kind","exit","hint"}
    #[arg(long, global = true)]
    pub json_errors: bool,
}

/// The value parser of a `--timeout S` that waits: seconds, fractions
/// allowed, more than 0 and at most a day.
pub fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v <= 86400.0 => Ok(v),
        _ => Err(format!("'{s}' is not a number of seconds (0 < S <= 86400)")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seconds_within_a_day() {
        assert_eq!(super::seconds("0.5"), Ok(0.5));
        assert_eq!(super::seconds("86400"), Ok(86400.0));
        for bad in ["0", "-1", "86401", "inf", "NaN", "soon", ""] {
            let e = super::seconds(bad).unwrap_err();
            assert!(e.contains("0 < S <= 86400"), "{bad}: {e}");
        }
    }
}
