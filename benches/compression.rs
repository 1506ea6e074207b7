//! The measurement behind the choice of compression codec: every candidate on the MessagePack
//! of each state in `../shared/corpus/`, compressed size and time to compress and decompress.
//!
//! Run with `cargo bench --bench compression` (`ITERS` sets the calls per batch, default
//! 20,000). The table it prints is the one in `BENCHMARKS.md`.
use std::{hint::black_box, time::Instant};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use zstd::zstd_safe::{CParameter, compress_bound};

/// Upper bound for a decompressed payload (decompression output buffers are pre-sized to this).
const MAX_PLAIN: usize = 64 * 1024;

/// `compress`/`decompress` overwrite `dst` (it is cleared first; its capacity may be reused).
trait Codec {
    fn name(&self) -> &'static str;
    fn compress(&mut self, src: &[u8], dst: &mut Vec<u8>);
    fn decompress(&mut self, src: &[u8], dst: &mut Vec<u8>);
}

struct None;
impl Codec for None {
    fn name(&self) -> &'static str {
        "none"
    }
    fn compress(&mut self, src: &[u8], dst: &mut Vec<u8>) {
        dst.clear();
        dst.extend_from_slice(src)
    }
    fn decompress(&mut self, src: &[u8], dst: &mut Vec<u8>) {
        dst.clear();
        dst.extend_from_slice(src)
    }
}

/// zstd with a Compressor/Decompressor created once and reused for every call.
struct Zstd {
    name: &'static str,
    c: zstd::bulk::Compressor<'static>,
    d: zstd::bulk::Decompressor<'static>,
}
impl Zstd {
    fn new(name: &'static str, level: i32) -> Self {
        let mut c = zstd::bulk::Compressor::new(level).unwrap();
        c.set_parameter(CParameter::ChecksumFlag(false)).unwrap();
        Zstd { name, c, d: zstd::bulk::Decompressor::new().unwrap() }
    }
}
impl Codec for Zstd {
    fn name(&self) -> &'static str {
        self.name
    }
    fn compress(&mut self, src: &[u8], dst: &mut Vec<u8>) {
        dst.clear();
        dst.reserve(compress_bound(src.len()));
        self.c.compress_to_buffer(src, dst).unwrap();
    }
    fn decompress(&mut self, src: &[u8], dst: &mut Vec<u8>) {
        dst.clear();
        dst.reserve(MAX_PLAIN);
        self.d.decompress_to_buffer(src, dst).unwrap();
    }
}

/// zstd level 3 creating a fresh context on every call (zstd::bulk::compress / decompress).
struct ZstdFresh;
impl Codec for ZstdFresh {
    fn name(&self) -> &'static str {
        "zstd-3 fresh"
    }
    fn compress(&mut self, src: &[u8], dst: &mut Vec<u8>) {
        *dst = zstd::bulk::compress(src, 3).unwrap()
    }
    fn decompress(&mut self, src: &[u8], dst: &mut Vec<u8>) {
        *dst = zstd::bulk::decompress(src, MAX_PLAIN).unwrap()
    }
}

/// Raw deflate (no zlib header) via flate2 + zlib-rs, reusing Compress/Decompress with reset().
struct Deflate {
    name: &'static str,
    c: Compress,
    d: Decompress,
}
impl Deflate {
    fn new(name: &'static str, level: u32) -> Self {
        Deflate {
            name,
            c: Compress::new(Compression::new(level), false),
            d: Decompress::new(false),
        }
    }
}
impl Codec for Deflate {
    fn name(&self) -> &'static str {
        self.name
    }
    fn compress(&mut self, src: &[u8], dst: &mut Vec<u8>) {
        self.c.reset();
        dst.clear();
        dst.reserve(src.len() + src.len() / 8 + 64);
        assert_eq!(
            self.c.compress_vec(src, dst, FlushCompress::Finish).unwrap(),
            Status::StreamEnd
        );
    }
    fn decompress(&mut self, src: &[u8], dst: &mut Vec<u8>) {
        self.d.reset(false);
        dst.clear();
        dst.reserve(MAX_PLAIN);
        assert_eq!(
            self.d.decompress_vec(src, dst, FlushDecompress::Finish).unwrap(),
            Status::StreamEnd
        );
    }
}

/// lz4_flex block format with the uncompressed size prepended (allocates per call).
struct Lz4;
impl Codec for Lz4 {
    fn name(&self) -> &'static str {
        "lz4_flex"
    }
    fn compress(&mut self, src: &[u8], dst: &mut Vec<u8>) {
        *dst = lz4_flex::compress_prepend_size(src)
    }
    fn decompress(&mut self, src: &[u8], dst: &mut Vec<u8>) {
        *dst = lz4_flex::decompress_size_prepended(src).unwrap()
    }
}

/// brotli (pure Rust), quality 5, default window; encoder/decoder state is created per call.
struct Brotli(brotli::enc::BrotliEncoderParams);
impl Codec for Brotli {
    fn name(&self) -> &'static str {
        "brotli-5"
    }
    fn compress(&mut self, src: &[u8], dst: &mut Vec<u8>) {
        dst.clear();
        self.0.size_hint = src.len();
        brotli::BrotliCompress(&mut &src[..], dst, &self.0).unwrap();
    }
    fn decompress(&mut self, src: &[u8], dst: &mut Vec<u8>) {
        dst.clear();
        brotli::BrotliDecompress(&mut &src[..], dst).unwrap();
    }
}

fn codecs() -> Vec<Box<dyn Codec>> {
    let brotli = brotli::enc::BrotliEncoderParams { quality: 5, ..Default::default() };
    vec![
        Box::new(None),
        Box::new(Zstd::new("zstd-1", 1)),
        Box::new(Zstd::new("zstd-3", 3)),
        Box::new(ZstdFresh),
        Box::new(Deflate::new("deflate-6", 6)),
        Box::new(Deflate::new("deflate-1", 1)),
        Box::new(Lz4),
        Box::new(Brotli(brotli)),
    ]
}

/// (file name, MessagePack bytes) for every *.json in `dir`, sorted by name.
fn corpus(dir: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                rmp_serde::to_vec_named(&v).unwrap(),
            )
        })
        .collect()
}

/// Median over 5 batches of `iters` calls (after a warm-up batch), in µs per call.
fn time_us(iters: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f()
    }
    let mut batches: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f()
            }
            t.elapsed().as_secs_f64() * 1e6 / iters as f64
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[2]
}

fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus");
    let iters: u32 = std::env::var("ITERS").ok().map_or(20_000, |s| s.parse().unwrap());
    if std::env::args().any(|arg| arg == "--list" || arg == "--test") {
        return; // `cargo test --benches` runs benches as tests: nothing to check here.
    }
    let files = corpus(dir);
    let mut codecs = codecs();
    let mut totals = vec![0usize; codecs.len()];

    println!(
        "| file (msgpack B) | {} |",
        codecs.iter().map(|c| c.name()).collect::<Vec<_>>().join(" | ")
    );
    println!("|---|{}", "---:|".repeat(codecs.len()));
    for (name, plain) in &files {
        let mut row = format!("| {name} ({}) |", plain.len());
        for (i, codec) in codecs.iter_mut().enumerate() {
            let (mut packed, mut out) = (Vec::new(), Vec::new());
            codec.compress(plain, &mut packed);
            codec.decompress(&packed, &mut out);
            assert_eq!(&out, plain, "{} round-trip failed on {name}", codec.name());
            totals[i] += packed.len();
            let c = time_us(iters, || codec.compress(black_box(plain), black_box(&mut out)));
            let d = time_us(iters, || codec.decompress(black_box(&packed), black_box(&mut out)));
            row += &format!(" {} / {c:.2} / {d:.2} |", packed.len());
        }
        println!("{row}");
    }
    println!(
        "\ncells: compressed bytes / compress µs / decompress µs (median of 5 batches x {iters} ops)\n"
    );

    let zstd3 = totals[codecs.iter().position(|c| c.name() == "zstd-3").unwrap()] as f64;
    println!("| codec | total bytes (5 files) | ratio to zstd-3 |\n|---|---:|---:|");
    for (codec, total) in codecs.iter().zip(&totals) {
        println!("| {} | {total} | {:.3} |", codec.name(), *total as f64 / zstd3);
    }
}
