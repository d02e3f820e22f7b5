//! One error type for every tool: a kind that maps to an exit code, a
//! message, and an optional hint telling the user what to do.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// What went wrong, as far as the exit code is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Exit 1: the operation failed.
    Failed,
    /// Exit 2: the command line or input was wrong.
    Usage,
    /// Exit 3: the named thing does not exist.
    NotFound,
    /// Exit 4: a prerequisite is missing (host tool, /dev/kvm, privilege, bundle).
    Prereq,
    /// Exit 5: conflict (exists, busy, locked).
    Conflict,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::NotFound => 3,
            Kind::Prereq => 4,
            Kind::Conflict => 5,
        }
    }

    pub fn from_exit_code(code: i32) -> Kind {
        match code {
            2 => Kind::Usage,
            3 => Kind::NotFound,
            4 => Kind::Prereq,
            5 => Kind::Conflict,
            _ => Kind::Failed,
        }
    }
}

/// A banger error: its kind (the exit code), the message, an optional
/// hint, and the cause it came from (an I/O error keeps its kind and
/// errno), so code decides on the cause, never on the message text.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    pub hint: Option<String>,
    pub cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            cause: None,
        }
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Kind::Failed, message)
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, message)
    }
    pub fn prereq(message: impl Into<String>) -> Self {
        Self::new(Kind::Prereq, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(Kind::Conflict, message)
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn with_cause(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Arc::new(cause));
        self
    }
    pub fn exit_code(&self) -> i32 {
        self.kind.exit_code()
    }

    /// The I/O error this came from, if any.
    pub fn io_error(&self) -> Option<&std::io::Error> {
        self.cause.as_deref()?.downcast_ref::<std::io::Error>()
    }

    /// The kind of the I/O error this came from (`StorageFull`...).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        self.io_error().map(std::io::Error::kind)
    }

    /// The errno of the I/O error this came from.
    pub fn errno(&self) -> Option<i32> {
        self.io_error().and_then(std::io::Error::raw_os_error)
    }

    /// The same error with a new message (the cause, kind and hint kept).
    pub fn reword(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// Add context to an I/O error while keeping the right kind: a missing file
/// is "not found", a permission problem is a missing prerequisite. The
/// I/O error itself is kept as the cause.
pub fn io(context: impl fmt::Display, err: std::io::Error) -> Error {
    let kind = match err.kind() {
        std::io::ErrorKind::NotFound => Kind::NotFound,
        std::io::ErrorKind::PermissionDenied => Kind::Prereq,
        std::io::ErrorKind::AlreadyExists => Kind::Conflict,
        _ => Kind::Failed,
    };
    Error::new(kind, format!("{context}: {err}")).with_cause(err)
}

/// The one JSON object a tool prints on stderr for its error when asked
/// (`--json-errors`, or `BANGER_ERRORS=json` with stderr not a terminal);
/// sibling calls read it instead of parsing text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorLine {
    pub error: String,
    /// `failed`, `usage`, `not_found`, `prereq` or `conflict`.
    pub kind: String,
    pub exit: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Failed => "failed",
            Kind::Usage => "usage",
            Kind::NotFound => "not_found",
            Kind::Prereq => "prereq",
            Kind::Conflict => "conflict",
        }
    }
}

impl ErrorLine {
    pub fn new(kind: Kind, message: &str, hint: Option<&str>) -> ErrorLine {
        ErrorLine {
            error: message.into(),
            kind: kind.name().into(),
            exit: kind.exit_code(),
            hint: hint.map(str::to_string),
        }
    }

    /// Back to an error: the exit code decides the kind.
    pub fn into_error(self) -> Error {
        Error {
            kind: Kind::from_exit_code(self.exit),
            message: self.error,
            hint: self.hint,
            cause: None,
        }
    }
}

/// Whether this process prints its errors as JSON lines.
pub fn json_mode() -> bool {
    use std::io::IsTerminal;
    let flag = std::env::args_os().any(|a| a == "--json-errors");
    let asked = std::env::var("BANGER_ERRORS").is_ok_and(|v| v == "json");
    flag || (asked && !std::io::stderr().is_terminal())
}

/// Print an error on stderr, as a JSON line or as `TOOL: error: MESSAGE`
/// and `hint: ...`, whichever this process was asked for.
pub fn report(tool: &str, kind: Kind, message: &str, hint: Option<&str>) {
    if json_mode() {
        let line = ErrorLine::new(kind, message, hint);
        eprintln!(
            "{}",
            serde_json::to_string(&line).expect("error lines serialize")
        );
    } else {
        eprintln!("{tool}: error: {message}");
        if let Some(h) = hint {
            eprintln!("hint: {h}");
        }
    }
}

/// The kind and hint of any error chain: a banger `Error` anywhere in an
/// anyhow chain decides the exit code; anything else is a plain failure.
pub fn classify(err: &anyhow::Error) -> (Kind, Option<String>) {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return (e.kind, e.hint.clone());
        }
    }
    (Kind::Failed, None)
}

/// The message of an error chain: anyhow's context, outermost first, down
/// to the first banger `Error` (whose own cause is already in its text).
pub fn message(err: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in err.chain() {
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&cause.to_string());
        if cause.downcast_ref::<Error>().is_some() {
            break;
        }
    }
    msg
}

/// The text printed on stderr for an error: `TOOL: error: MESSAGE` and,
/// when there is one, `hint: WHAT TO DO`.
pub fn render(tool: &str, err: &anyhow::Error) -> String {
    let (_, hint) = classify(err);
    let mut msg = format!("{tool}: error: {}", message(err));
    if let Some(h) = hint {
        msg.push_str(&format!("\nhint: {h}"));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_round_trip() {
        for kind in [
            Kind::Failed,
            Kind::Usage,
            Kind::NotFound,
            Kind::Prereq,
            Kind::Conflict,
        ] {
            assert_eq!(Kind::from_exit_code(kind.exit_code()), kind);
        }
        assert_eq!(Kind::Usage.exit_code(), 2);
        assert_eq!(Kind::Conflict.exit_code(), 5);
    }

    #[test]
    fn classify_finds_kind_under_context() {
        let e = anyhow::Error::new(Error::prereq("no nft").with_hint("apt-get install nftables"))
            .context("enabling NAT");
        let (kind, hint) = classify(&e);
        assert_eq!(kind, Kind::Prereq);
        assert_eq!(hint.as_deref(), Some("apt-get install nftables"));
        let text = render("banger-net", &e);
        assert_eq!(
            text,
            "banger-net: error: enabling NAT: no nft\nhint: apt-get install nftables"
        );
    }

    #[test]
    fn io_errors_keep_their_cause() {
        let e = io(
            "writing x",
            std::io::Error::from_raw_os_error(28), // ENOSPC
        );
        assert_eq!(e.io_kind(), Some(std::io::ErrorKind::StorageFull));
        assert_eq!(e.errno(), Some(28));
        let reworded = e.clone().reword("copying failed");
        assert_eq!(reworded.errno(), Some(28));
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(Error::failed("x").io_kind(), None);
    }

    #[test]
    fn error_lines_round_trip() {
        let line = ErrorLine::new(Kind::NotFound, "no VM named x", Some("banger vm list"));
        let text = serde_json::to_string(&line).unwrap();
        assert_eq!(
            text,
            r#"{"error":"no VM named x","kind":"not_found","exit":3,"hint":"banger vm list"}"#
        );
        let back: ErrorLine = serde_json::from_str(&text).unwrap();
        let e = back.into_error();
        assert_eq!(e.kind, Kind::NotFound);
        assert_eq!(e.hint.as_deref(), Some("banger vm list"));
    }

    #[test]
    fn io_error_kinds() {
        let nf = io("x", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(nf.kind, Kind::NotFound);
        let pd = io(
            "x",
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(pd.kind, Kind::Prereq);
    }
}
