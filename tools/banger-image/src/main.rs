//! banger-image: guest images. The CLI dispatch; the work lives in the
//! modules named for it.

mod archive;
mod build;
mod bundle;
mod checksum;
mod cli;
mod defaults;
mod progress;
mod record;
mod register;
mod remove;

use banger_lib::output::{emit, human_ago, human_bytes, print_list_human};
use banger_lib::Error;
use cli::{BundleSub, Cli, Sub};

fn main() {
    let cli = banger_lib::run::parse::<Cli>("banger-image");
    banger_lib::run::main("banger-image", || run(cli))
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let ctx = || record::Context::load();
    match cli.sub {
        Sub::Build(a) => {
            let img = build::build(&a)?;
            emit(&ctx()?.show(img));
        }
        Sub::Register(a) => {
            let img = register::register(&a)?;
            emit(&ctx()?.show(img));
        }
        Sub::List { json } => {
            let c = ctx()?;
            let (images, unreadable) = record::all()?;
            let rows: Vec<_> = images.into_iter().map(|i| c.show(i)).collect();
            let now = banger_lib::proc::now_unix();
            print_list_human(
                &rows,
                &[
                    ("name", "name"),
                    ("default", "default"),
                    ("managed", "managed"),
                    ("from", "from"),
                    ("size", "size"),
                    ("created_at", "created"),
                    ("rootfs", "rootfs"),
                ],
                json,
                |row| {
                    if let Some(n) = row["size"].as_u64() {
                        row["size"] = human_bytes(n).into();
                    }
                    if let Some(t) = row["created_at"].as_str() {
                        row["created_at"] = human_ago(t, now).into();
                    }
                },
            );
            if let Some((name, e)) = unreadable.into_iter().next() {
                return Err(Error::new(e.kind, format!("image {name}: {}", e.message))
                    .with_hint(e.hint.unwrap_or_else(|| {
                        format!(
                            "fix its record, or remove the image's folder: rm -r {}",
                            banger_lib::paths::images_dir().join(&name).display()
                        )
                    }))
                    .into());
            }
        }
        Sub::Show { name } => emit(&ctx()?.show(record::load(&name)?)),
        Sub::Rm { names, force } => return rm(&names, force),
        Sub::Default { name: Some(name) } => {
            defaults::set(&name)?;
            emit(&ctx()?.show(record::load(&name)?));
        }
        Sub::Default { name: None } => {
            // The record itself, so `banger-image default | jq -r .rootfs`
            // works as `show` does.
            let name = ctx()?.default_image;
            let img = record::load(&name).map_err(|e| {
                e.with_hint(format!(
                    "build it (banger-image build --name {name}) or pick another (banger-image default NAME)"
                ))
            })?;
            emit(&ctx()?.show(img));
        }
        Sub::Verify { name } => {
            let img = record::load(&name)?;
            let got = checksum::file(&img.rootfs)?;
            let ok = got == img.sha256;
            emit(
                &serde_json::json!({"name": name, "ok": ok, "sha256": got, "expected": img.sha256}),
            );
            if !ok {
                return Err(banger_lib::Error::failed(format!(
                    "{} does not match the sha256 recorded for {name:?}",
                    img.rootfs.display()
                ))
                .with_hint(
                    "the file changed since it was built or registered; rebuild or re-register it",
                )
                .into());
            }
        }
        Sub::Bundle(BundleSub::Fetch {
            manifest,
            into,
            timeout,
            max_mib,
        }) => {
            let into = match into {
                Some(d) => d,
                None => banger_lib::config::runtime_dir()?,
            };
            let limits = bundle::Limits {
                timeout: std::time::Duration::from_secs_f64(timeout),
                max_bytes: max_mib << 20,
            };
            emit(&bundle::fetch(&manifest, &into, limits)?);
        }
    }
    Ok(0)
}

/// Every name at once through banger_lib's fan-out, one line each:
/// one name keeps its own exit code (3 missing, 5 in use); several exit 1
/// if any failed.
fn rm(names: &[String], force: bool) -> anyhow::Result<i32> {
    Ok(banger_lib::fanout::run("banger-image", names, |n| {
        remove::remove(n, force).map(|removed| remove::Removed { removed })
    }))
}
