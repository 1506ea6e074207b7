//! Writes the committed seed corpora from the fixture. With `--check`, verifies them instead
//! (they change only when the wire format or the fixture does).
//!
//! * `seeds/open_header/`: the Cookie header of each known session, sealed and signed mode;
//! * `seeds/decode_frame/`: the frame of each known signed-mode session (a signed token carries
//!   its frame in the clear), including a compressed one and one with a sensitive section;
//! * `seeds/keyring_file/`: a real key ring file (three keys, one pending) and the same ring as
//!   an environment value.
//!
//! `open_chunks` and `roundtrip` take structured input and need no seeds.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds            # write
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds -- --check # verify
//! ```

use std::path::Path;
use std::process::ExitCode;

use sealed_session::keys::file::KeyRingFile;
use sealed_session_fuzz::{fixture, frame, keyring};

/// Every seed: `(target, file name, content)`.
fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for subject in &fixture().subjects {
        for known in &subject.known {
            let name = format!("{}-{}", subject.label, known.name);
            seeds.push(("open_header", name, known.header.clone().into_bytes()));
        }
    }
    for (name, frame) in frame::known_frames() {
        seeds.push(("decode_frame", name.to_owned(), frame));
    }
    let ring = KeyRingFile::from_ring(&keyring::sample_ring());
    seeds.push(("keyring_file", "ring.json".to_owned(), ring.to_json().as_bytes().to_vec()));
    seeds.push(("keyring_file", "ring.env".to_owned(), ring.to_env().as_bytes().to_vec()));
    seeds
}

fn main() -> ExitCode {
    let check = std::env::args().any(|arg| arg == "--check");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let mut stale = 0;
    for (target, name, content) in seeds() {
        let dir = root.join(target);
        let path = dir.join(name);
        if check {
            if std::fs::read(&path).ok().as_deref() != Some(content.as_slice()) {
                eprintln!("stale or missing seed: {}", path.display());
                stale += 1;
            }
        } else {
            std::fs::create_dir_all(&dir).expect("create the seed directory");
            std::fs::write(&path, &content).expect("write a seed");
            println!("wrote {} ({} bytes)", path.display(), content.len());
        }
    }
    if stale > 0 {
        eprintln!("regenerate with: cargo run --manifest-path fuzz/Cargo.toml --example seeds");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
