//! The Rust hello stage: writes /etc/hello with the "greeting" option and
//! links /etc/hello-link to it, showing the Rust side of the stage ABI.

use std::fs;
use std::io::ErrorKind;

fn main() {
    kiln::run(|opts| {
        let greeting = opts.string("greeting")?.unwrap_or_else(|| "Hello".to_string());
        fs::create_dir_all("/etc")?;
        fs::write("/etc/hello", format!("{} from the Rust hello stage\n", greeting))?;
        // WASI cannot set modes; the kiln_hostfs host call can.
        kiln::chmod("/etc/hello", 0o644)?;
        match fs::remove_file("/etc/hello-link") {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        kiln::make_symlink("hello", "/etc/hello-link")?;
        println!("wrote /etc/hello: {}", greeting);
        Ok(())
    })
}
