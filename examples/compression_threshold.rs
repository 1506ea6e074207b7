//! Where compression starts to pay: the measurement behind `DEFAULT_COMPRESSION_THRESHOLD`
//! and the minimum gain a compressed body must bring to be kept.
//!
//! Draws states from `../shared/corpus/` (each file's top-level values, shuffled with a fixed
//! seed and added one at a time, so that every size from a few bytes to a few KB occurs),
//! encodes each as MessagePack, compresses it with zstd at the library's level, and prints, per
//! size bucket, how often compression made the body smaller and by how much, and what one
//! compression costs. Run with `cargo run --release --example compression_threshold`.

use std::path::Path;
use std::time::Instant;

use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;
use serde_json::{Map, Value};

/// The zstd level the library seals with (`format::compress::LEVEL`).
const LEVEL: i32 = 3;
/// Lower bounds of the size buckets, in MessagePack bytes.
const BUCKETS: [usize; 8] = [64, 128, 192, 256, 384, 512, 768, 1024];
/// Larger states are not drawn: every one of them compresses well.
const LARGEST: usize = 1536;
/// Shuffles of each file's values.
const DRAWS: usize = 300;

#[derive(Default, Clone, Copy)]
struct Bucket {
    states: usize,
    helped: usize,
    /// Kept under the library's rule (at least a sixteenth smaller).
    kept: usize,
    bytes: usize,
    saved: usize,
    nanos: u128,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&corpus)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    let mut compressor = zstd::bulk::Compressor::new(LEVEL)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut buckets = [Bucket::default(); BUCKETS.len()];
    for path in &files {
        let state: Map<String, Value> = serde_json::from_slice(&std::fs::read(path)?)?;
        let mut keys: Vec<&String> = state.keys().collect();
        for _ in 0..DRAWS {
            keys.shuffle(&mut rng);
            let mut drawn = Map::new();
            for key in &keys {
                drawn.insert((*key).clone(), state[*key].clone());
                let body = rmp_serde::to_vec(&drawn)?;
                if body.len() >= LARGEST {
                    break;
                }
                let Some(index) = BUCKETS.iter().rposition(|&low| body.len() >= low) else {
                    continue;
                };
                // The fastest of a few runs: the machine may be busy.
                let mut nanos = u128::MAX;
                let mut packed = Vec::new();
                for _ in 0..5 {
                    let started = Instant::now();
                    packed = compressor.compress(&body)?;
                    nanos = nanos.min(started.elapsed().as_nanos());
                }
                let bucket = &mut buckets[index];
                bucket.states += 1;
                bucket.bytes += body.len();
                bucket.nanos += nanos;
                if packed.len() < body.len() {
                    bucket.helped += 1;
                    bucket.saved += body.len() - packed.len();
                    bucket.kept += usize::from(body.len() - packed.len() >= body.len() / 16);
                }
            }
        }
    }
    println!(
        "| MessagePack bytes | states | smaller | kept (>= 1/16 smaller) | bytes saved | compress µs (mean) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (index, bucket) in buckets.iter().enumerate() {
        if bucket.states == 0 {
            continue;
        }
        let high = BUCKETS.get(index + 1).map_or(LARGEST, |&next| next) - 1;
        let percent = |n: usize| 100.0 * n as f64 / bucket.states as f64;
        println!(
            "| {}-{high} | {} | {:.0}% | {:.0}% | {:.1}% | {:.2} |",
            BUCKETS[index],
            bucket.states,
            percent(bucket.helped),
            percent(bucket.kept),
            100.0 * bucket.saved as f64 / bucket.bytes as f64,
            bucket.nanos as f64 / bucket.states as f64 / 1e3,
        );
    }
    Ok(())
}
