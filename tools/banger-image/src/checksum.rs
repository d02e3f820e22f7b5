//! sha256 of image files and downloads.

use banger_lib::{error::io, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Hex sha256 of a file, read in large blocks (images are gigabytes,
/// mostly sparse).
pub fn file(path: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(path).map_err(|e| io(format!("opening {}", path.display()), e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_digest() {
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), b"abc").unwrap();
        assert_eq!(
            super::file(t.path()).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
