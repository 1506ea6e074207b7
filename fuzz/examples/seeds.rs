//! Writes the seed corpus of `open_header`: one file per known session of the fixture, holding
//! the Cookie header a browser sends back for it. With `--check`, verifies the committed seeds
//! instead (they change only when the wire format or the fixture does).
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds            # write
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds -- --check # verify
//! ```

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().any(|arg| arg == "--check");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/open_header");
    let mut stale = 0;
    for subject in &sealed_session_fuzz::fixture().subjects {
        for known in &subject.known {
            let path = dir.join(format!("{}-{}", subject.label, known.name));
            if check {
                if std::fs::read_to_string(&path).ok().as_deref() != Some(known.header.as_str()) {
                    eprintln!("stale or missing seed: {}", path.display());
                    stale += 1;
                }
            } else {
                std::fs::create_dir_all(&dir).expect("create the seed directory");
                std::fs::write(&path, &known.header).expect("write a seed");
                println!("wrote {} ({} bytes)", path.display(), known.header.len());
            }
        }
    }
    if stale > 0 {
        eprintln!("regenerate with: cargo run --manifest-path fuzz/Cargo.toml --example seeds");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
