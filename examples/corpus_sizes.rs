//! Prints, for each state in `../shared/corpus/`, its JSON and MessagePack sizes and the bytes
//! its sealed cookies take, next to the `cookie` crate's `PrivateJar` holding the same JSON.
//!
//! Run with `cargo run --example corpus_sizes [CORPUS_DIR]`.

use std::time::SystemTime;

use sealed_session::{Key, KeyRing, Session, SessionCodec, SessionConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "../shared/corpus".to_owned());
    let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    let mut files: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
    files.sort_by_key(|entry| entry.path());
    println!(
        "| file | JSON | MessagePack | sealed-session cookie value | PrivateJar cookie value | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for entry in files {
        let json = std::fs::read_to_string(entry.path())?;
        let state: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json)?;
        let mut session = Session::new();
        for (key, value) in &state {
            session.insert(key.clone(), value)?;
        }
        let msgpack = rmp_serde::to_vec_named(&state)?;
        let sealed = codec.seal(&mut session, SystemTime::now())?;
        let ours: usize = sealed.cookies().iter().map(|c| c.value().len()).sum();

        let mut jar = cookie::CookieJar::new();
        let jar_key = cookie::Key::generate();
        jar.private_mut(&jar_key)
            .add(cookie::Cookie::new("session", serde_json::to_string(&state)?));
        let peer = jar.get("session").map_or(0, |c| c.value().len());
        println!(
            "| {} | {} | {} | {} | {} | {:.2} |",
            entry.file_name().to_string_lossy(),
            json.len(),
            msgpack.len(),
            ours,
            peer,
            ours as f64 / peer as f64
        );
    }
    Ok(())
}
