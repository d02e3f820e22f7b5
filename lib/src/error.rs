//! One error type for every tool: a kind that maps to an exit code, a
//! message, and an optional hint telling the user what to do.

use std::fmt;

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

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    pub hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
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
    pub fn exit_code(&self) -> i32 {
        self.kind.exit_code()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Add context to an I/O error while keeping the right kind: a missing file
/// is "not found", a permission problem is a missing prerequisite.
pub fn io(context: impl fmt::Display, err: std::io::Error) -> Error {
    let kind = match err.kind() {
        std::io::ErrorKind::NotFound => Kind::NotFound,
        std::io::ErrorKind::PermissionDenied => Kind::Prereq,
        std::io::ErrorKind::AlreadyExists => Kind::Conflict,
        _ => Kind::Failed,
    };
    Error::new(kind, format!("{context}: {err}"))
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

/// The text printed on stderr for an error: `TOOL: error: MESSAGE` and,
/// when there is one, `hint: WHAT TO DO`.
pub fn render(tool: &str, err: &anyhow::Error) -> String {
    let (_, hint) = classify(err);
    let mut msg = format!("{tool}: error: {err}");
    // anyhow's context chain, outermost first, without repeating the head.
    for cause in err.chain().skip(1) {
        msg.push_str(&format!(": {cause}"));
    }
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
