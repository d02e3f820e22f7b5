//! The image record (`images/NAME/image.json`) and where images live.

use banger_lib::records::{ImageLine, ImageRecord};
use banger_lib::{paths, state, Error, Result};
use std::path::{Path, PathBuf};

/// The stored record: banger_lib's type, so banger-vm reads what this
/// tool writes.
pub type Image = ImageRecord;

pub fn dir(name: &str) -> PathBuf {
    paths::images_dir().join(name)
}

pub fn record_path(name: &str) -> PathBuf {
    dir(name).join("image.json")
}

/// A per-name lock outside the image folder, so removing the folder never
/// removes a lock someone waits on.
pub fn lock(name: &str) -> Result<state::Lock> {
    banger_lib::records::image::lock(name)
}

/// Load NAME or fail with exit 3.
pub fn load(name: &str) -> Result<Image> {
    banger_lib::names::validate("image", name)?;
    state::load(&record_path(name))?.ok_or_else(|| {
        Error::not_found(format!("no image named {name:?}")).with_hint(
            "`banger-image list` shows the images; `banger-image build --name NAME` makes one",
        )
    })
}

pub fn store(img: &Image) -> Result<()> {
    state::store(&record_path(&img.name), img)
}

/// An image folder whose record could not be read, and why.
pub type Unreadable = (String, Error);

/// Every image record, by name, and the records that could not be read
/// (corrupt, or a schema this build does not know). A folder without a
/// record (a build in progress, a stray dir) is skipped.
pub fn all() -> Result<(Vec<Image>, Vec<Unreadable>)> {
    let root = paths::images_dir();
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((vec![], vec![])),
        Err(e) => {
            return Err(banger_lib::error::io(
                format!("reading {}", root.display()),
                e,
            ))
        }
    };
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        match state::load::<Image>(&e.path().join("image.json")) {
            Ok(Some(img)) => out.push(img),
            Ok(None) => {}
            Err(err) => bad.push((name, err)),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    bad.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, bad))
}

/// The bundle's kernel and initrd and the default image name, when a
/// runtime bundle is there to ask.
pub struct Context {
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub default_image: String,
}

impl Context {
    /// Without a runtime bundle the records are shown as they are; a
    /// broken config.json or bundle.json is an error, not silently skipped.
    pub fn load() -> Result<Context> {
        Ok(match banger_lib::config::Bundle::load_optional()? {
            Some(b) => Context {
                kernel: Some(b.path(&b.kernel)),
                // A bundle may have no initrd (a kernel with virtio built in).
                initrd: Some(b.path(&b.initrd)).filter(|p| p.exists()),
                default_image: b.default_image.clone(),
            },
            None => Context {
                kernel: None,
                initrd: None,
                default_image: crate::defaults::from_config().unwrap_or_else(|| "debian".into()),
            },
        })
    }

    pub fn show(&self, image: Image) -> ImageLine {
        let default = image.name == self.default_image;
        ImageLine::new(image, self.kernel.clone(), self.initrd.clone(), default)
    }
}

/// Whether `p` lies inside `dir` (by path, without following links).
pub fn inside(p: &Path, dir: &Path) -> bool {
    p.parent() == Some(dir)
}
