//! org.osbuild.machine-id in Rust: prepares /etc/machine-id for the image's
//! first boot. It replaces the Go build of the stage in the shipped library
//! and runs the same golden tests
//! (stages-wasm/stages/testdata/org.osbuild.machine-id).
//!
//! "first-boot": "yes" writes "uninitialized\n" (systemd runs first-boot
//! units and writes a new id), "no" an empty file (a new id, no first
//! boot), "preserve" keeps the file, which must exist.

use std::fs;
use std::io::ErrorKind;

const PATH: &str = "/etc/machine-id";

fn write(content: &str) -> kiln::StageResult {
    // A file that exists keeps its mode and owner, as osbuild's open("w")
    // does; a new one is root's, 0644 (WASI would make it 0600).
    let existed = fs::symlink_metadata(PATH).is_ok();
    fs::write(PATH, content).map_err(|e| format!("{}: {}", PATH, e))?;
    if !existed {
        kiln::lchown(PATH, 0, 0)?;
        kiln::chmod(PATH, 0o644)?;
    }
    Ok(())
}

fn main() {
    kiln::run(|opts| {
        let mode = opts.string("first-boot")?;
        match mode.as_deref() {
            Some("yes") => write("uninitialized\n"),
            Some("no") => write(""),
            Some("preserve") => match fs::symlink_metadata(PATH) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => Err(format!(
                    "option \"first-boot\": preserve, but {} is not in the tree",
                    PATH
                )
                .into()),
                Err(e) => Err(e.into()),
            },
            Some(other) => Err(format!(
                "option \"first-boot\": \"{}\" is not yes, no or preserve",
                other
            )
            .into()),
            None => Err("option \"first-boot\": missing".into()),
        }
    })
}
