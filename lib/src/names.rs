//! The one validator for VM and image names: a DNS label of at most 32
//! characters, so `NAME.vm` resolves and derived names stay short.

use crate::error::{Error, Result};

pub const MAX_NAME: usize = 32;

/// Check a VM or image name; `what` is "VM" or "image" for the message.
pub fn validate(what: &str, name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::usage(format!("invalid {what} name {name:?}: {why}")).with_hint(
            "names are 1-32 characters of a-z, 0-9 and '-', with a letter, starting and ending with a letter or digit",
        ))
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME {
        return bad(&format!("it is {} characters long", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return bad(&format!("{c:?} is not allowed"));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return bad("it starts or ends with '-'");
    }
    // `0` or `1-2` would be odd hostnames, and `0.vm` reads as an address.
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        return bad("it has no letter");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn good_names() {
        for n in ["a", "box", "web-1", "0a", "1-2x", &"a".repeat(32), "a-b-c9"] {
            assert!(validate("VM", n).is_ok(), "{n}");
        }
    }

    #[test]
    fn bad_names() {
        for n in [
            "",
            "A",
            "../x",
            "x/y",
            "-a",
            "a-",
            "a_b",
            "0",
            "42",
            "1-2",
            "a.b",
            " a",
            "é",
            &"a".repeat(33),
            &"a".repeat(40),
        ] {
            let e = validate("VM", n).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{n}");
            assert!(e.message.contains("invalid VM name"), "{}", e.message);
        }
    }
}
