//! A qcow2 overlay on a raw backing file, written directly: the same file
//! `qemu-img create -f qcow2 -b BACKING -F raw FILE SIZE` makes (version 3,
//! 64 KiB clusters, 16-bit refcounts), without running a process. It costs
//! the same for any image and any disk size: a header, one refcount table
//! entry, one refcount block and an empty L1 table, at most a few hundred
//! KiB and mostly holes. QEMU allocates clusters as the guest writes and
//! reads everything else from the backing file, which it never writes.
//!
//! Layout (cluster = 64 KiB):
//!   cluster 0   header, backing-format extension, end of extensions,
//!               backing file name
//!   cluster 1   refcount table: one entry, the block in cluster 2
//!   cluster 2   refcount block: clusters 0..=L1's last are used once
//!   cluster 3+  L1 table, all zero (nothing allocated yet); the file
//!               ends where it ends, as qemu-img leaves it

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;

const CLUSTER_BITS: u32 = 16;
const CLUSTER: u64 = 1 << CLUSTER_BITS;
/// Bytes of guest disk one L1 entry maps: an L2 table of 8-byte entries.
const L1_SPAN: u64 = CLUSTER * (CLUSTER / 8);
const REFTABLE_OFFSET: u64 = CLUSTER;
const REFBLOCK_OFFSET: u64 = 2 * CLUSTER;
const L1_OFFSET: u64 = 3 * CLUSTER;
/// The version 3 header up to and with the compression type byte, padded
/// to 8 bytes, as QEMU 7 writes it.
const HEADER_LEN: usize = 112;
/// Header extension: the backing file's format.
const EXT_BACKING_FORMAT: u32 = 0xE279_2ACA;
/// The longest backing file name the format allows.
pub const MAX_BACKING_NAME: usize = 1023;

/// The header (cluster 0) and refcount block (cluster 2) of an overlay of
/// `size` bytes on `backing` (a raw file), and the file's length.
fn layout(backing: &[u8], size: u64) -> (Vec<u8>, Vec<u8>, u64) {
    // A qcow2 disk is a whole number of 512-byte sectors.
    let size = size.next_multiple_of(512);
    let l1_entries = size.div_ceil(L1_SPAN).max(1);
    let l1_bytes = l1_entries * 8;
    let l1_clusters = l1_bytes.div_ceil(CLUSTER);
    let used_clusters = 3 + l1_clusters;

    let mut h = Vec::with_capacity(256 + backing.len());
    let be32 = |h: &mut Vec<u8>, v: u32| h.extend_from_slice(&v.to_be_bytes());
    let be64 = |h: &mut Vec<u8>, v: u64| h.extend_from_slice(&v.to_be_bytes());
    let ext_len = 8 + 8 + 8; // backing format ("raw", padded) + end marker
    let backing_offset = (HEADER_LEN + ext_len) as u64;
    h.extend_from_slice(b"QFI\xfb");
    be32(&mut h, 3); // version
    be64(&mut h, backing_offset);
    be32(&mut h, backing.len() as u32);
    be32(&mut h, CLUSTER_BITS);
    be64(&mut h, size);
    be32(&mut h, 0); // crypt_method: none
    be32(&mut h, l1_entries as u32);
    be64(&mut h, L1_OFFSET);
    be64(&mut h, REFTABLE_OFFSET);
    be32(&mut h, 1); // refcount_table_clusters
    be32(&mut h, 0); // nb_snapshots
    be64(&mut h, 0); // snapshots_offset
    be64(&mut h, 0); // incompatible_features
    be64(&mut h, 0); // compatible_features
    be64(&mut h, 0); // autoclear_features
    be32(&mut h, 4); // refcount_order: 16-bit refcounts
    be32(&mut h, HEADER_LEN as u32);
    h.push(0); // compression_type: zlib
    h.resize(HEADER_LEN, 0);
    be32(&mut h, EXT_BACKING_FORMAT);
    be32(&mut h, 3);
    h.extend_from_slice(b"raw\0\0\0\0\0");
    be64(&mut h, 0); // end of header extensions
    debug_assert_eq!(h.len() as u64, backing_offset);
    h.extend_from_slice(backing);

    let refblock: Vec<u8> = (0..used_clusters)
        .flat_map(|_| 1u16.to_be_bytes())
        .collect();
    (h, refblock, L1_OFFSET + l1_bytes)
}

/// Make `path` (which must not exist) a qcow2 overlay of `size` bytes
/// whose backing file is the raw file `backing` (an absolute path, so the
/// overlay does not depend on where it is opened from). Synced before it
/// returns.
pub fn create(path: &Path, backing: &Path, size: u64) -> io::Result<()> {
    let name = backing.as_os_str().as_bytes();
    if !backing.is_absolute() || name.len() > MAX_BACKING_NAME || name.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a qcow2 backing file must be an absolute path of at most \
                 {MAX_BACKING_NAME} bytes: {}",
                backing.display()
            ),
        ));
    }
    let (header, refblock, len) = layout(name, size);
    let f = OpenOptions::new().write(true).create_new(true).open(path)?;
    let written = write(&f, &header, &refblock, len);
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

fn write(f: &File, header: &[u8], refblock: &[u8], len: u64) -> io::Result<()> {
    // Everything not written below is zero: holes in the file.
    f.set_len(len)?;
    f.write_all_at(header, 0)?;
    f.write_all_at(&REFBLOCK_OFFSET.to_be_bytes(), REFTABLE_OFFSET)?;
    f.write_all_at(refblock, REFBLOCK_OFFSET)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn layout_matches_qemu_img_for_small_and_huge_disks() {
        // qemu-img create -f qcow2 -b /b -F raw x 2G: 4 L1 entries, the file
        // ends right after them; 15T: 30720 entries over 4 clusters.
        let (h, refblock, len) = layout(b"/b", 2 << 30);
        assert_eq!(&h[..4], b"QFI\xfb");
        assert_eq!(u32::from_be_bytes(h[36..40].try_into().unwrap()), 4);
        assert_eq!(refblock.len(), 4 * 2);
        assert_eq!(len, 0x30020);
        let (h, refblock, len) = layout(b"/b", 15 << 40);
        assert_eq!(u32::from_be_bytes(h[36..40].try_into().unwrap()), 30720);
        assert_eq!(refblock.len(), 7 * 2);
        assert_eq!(len, 0x6c000);
        // The backing name follows the extensions, as the header says.
        let at = u64::from_be_bytes(h[8..16].try_into().unwrap()) as usize;
        assert_eq!(&h[at..], b"/b");
        // A size that is not whole sectors is rounded up.
        let (h, ..) = layout(b"/b", 1000);
        assert_eq!(u64::from_be_bytes(h[24..32].try_into().unwrap()), 1024);
    }

    #[test]
    fn refuses_a_relative_or_overlong_backing_name() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("o.qcow2");
        let e = create(&p, Path::new("rel/x"), 1 << 20).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let long = format!("/{}", "x".repeat(MAX_BACKING_NAME));
        assert!(create(&p, Path::new(&long), 1 << 20).is_err());
        assert!(!p.exists());
    }

    fn qemu(tool: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new(banger_lib::hosttools::which(tool).unwrap())
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// QEMU's own tools read the overlay as qemu-img would have made it:
    /// consistent, backed by the file, reads falling through to it and
    /// writes landing in the overlay alone.
    #[test]
    fn qemu_reads_and_writes_the_overlay_and_never_the_backing_file() {
        let t = "qemu_reads_and_writes_the_overlay_and_never_the_backing_file";
        if !banger_testkit::require_tool(t, "qemu-img")
            || !banger_testkit::require_tool(t, "qemu-io")
        {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let backing = dir.path().join("base.ext4");
        let mut data = vec![0x42u8; 1 << 20];
        data.resize(3 << 20, 0);
        std::fs::write(&backing, &data).unwrap();
        let before = std::fs::read(&backing).unwrap();
        let ov = dir.path().join("ov.qcow2");
        create(&ov, &backing, 8 << 30).unwrap();
        let o = ov.to_str().unwrap();

        let (ok, info) = qemu("qemu-img", &["info", "--output=json", o]);
        assert!(ok, "{info}");
        let info: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(info["format"], "qcow2");
        assert_eq!(info["virtual-size"], 8u64 << 30);
        assert_eq!(info["backing-filename"], backing.to_str().unwrap());
        assert_eq!(info["backing-filename-format"], "raw");
        let (ok, check) = qemu("qemu-img", &["check", o]);
        assert!(ok, "{check}");

        let io = |cmd: &str| qemu("qemu-io", &["-f", "qcow2", "-c", cmd, o]);
        let (ok, out) = io("read -P 0x42 0 1M");
        assert!(ok && !out.contains("fail"), "{out}");
        let (ok, out) = io("read -P 0 2M 1M");
        assert!(ok && !out.contains("fail"), "{out}");
        // Past the backing file's end (3M) the disk reads as zeros too.
        let (ok, out) = io("read -P 0 7G 64k");
        assert!(ok && !out.contains("fail"), "{out}");
        let (ok, out) = io("write -P 0xab 512k 128k");
        assert!(ok, "{out}");
        let (ok, out) = io("write -P 0xcd 6G 64k");
        assert!(ok, "{out}");
        let (ok, out) = io("read -P 0xab 512k 128k");
        assert!(ok && !out.contains("fail"), "{out}");
        let (ok, out) = io("read -P 0x42 0 512k");
        assert!(ok && !out.contains("fail"), "{out}");
        let (ok, check) = qemu("qemu-img", &["check", o]);
        assert!(ok, "after writes: {check}");
        assert_eq!(std::fs::read(&backing).unwrap(), before);
    }
}
