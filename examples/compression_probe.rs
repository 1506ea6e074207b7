//! Sizes and zstd instruction-heavy times of the compression configurations considered for
//! sealing (issue 27, item 1), on every corpus state and the seeded token-heavy states of
//! `benches/common/generated.rs`. The body is the state's MessagePack (`rmp_serde`), as the
//! benches compress it.
//!
//! Columns: the dictionary at level 1 (what sealing does below 4 KB), the dictionary at `LEVEL`
//! with literal Huffman forced on (a negative level makes zstd's fast matcher skip ahead over
//! data without matches, and would otherwise also turn Huffman off), plain level 3 (4 KB and
//! up) and plain `LEVEL` with Huffman. Times are the best of 7 runs of 2,000 calls, so they
//! only rank configurations on a quiet machine; for decisions on a busy one, count
//! instructions of one configuration on one file with callgrind:
//!
//! ```text
//! cargo run --release --example compression_probe -- [LEVEL]           # the table, LEVEL -20
//! valgrind --tool=callgrind --toggle-collect='*compression_probe::counted*' \
//!     target/release/examples/compression_probe count LEVEL FILE CALLS [huffman]
//!     # PROBE_ATTACH=copy|attach|load before it: how the dictionary meets the context
//! valgrind --tool=callgrind --toggle-collect='*compression_probe::opened*' \
//!     target/release/examples/compression_probe open FILE CALLS      # where open's time goes
//! ```

#[path = "../benches/common/mod.rs"]
#[allow(unused)]
mod common;

use std::time::Instant;

use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::EncoderDictionary;
use zstd::zstd_safe::{CParameter, ParamSwitch};

const DICTIONARY: &[u8] = include_bytes!("../src/format/dictionary-1.zdict");

fn best_of(mut compress: impl FnMut() -> usize) -> (usize, f64) {
    let mut best = f64::MAX;
    let mut size = 0;
    for _ in 0..7 {
        let calls = 2000;
        let start = Instant::now();
        for _ in 0..calls {
            size = std::hint::black_box(compress());
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e6 / f64::from(calls));
    }
    (size, best)
}

/// One compression, apart so that callgrind can count only it.
#[inline(never)]
fn counted(compressor: &mut Compressor<'static>, body: &[u8]) -> usize {
    std::hint::black_box(compressor.compress(body).expect("zstd compresses").len())
}

/// One decompression, apart so that callgrind can count only it.
#[inline(never)]
fn decoded(decompressor: &mut Decompressor<'static>, packed: &[u8], out: &mut Vec<u8>) {
    out.clear();
    decompressor.decompress_to_buffer(packed, out).expect("zstd decompresses");
}

/// One open of a sealed state, apart so that callgrind can count only it.
#[inline(never)]
fn opened(sides: &common::Sides, header: &str) {
    std::hint::black_box(sides.open(std::hint::black_box(header)));
}

fn with_dictionary(level: i32, huffman: bool) -> Compressor<'static> {
    let prepared = Box::leak(Box::new(EncoderDictionary::copy(DICTIONARY, level)));
    let mut compressor = Compressor::with_prepared_dictionary(prepared).expect("a context");
    compressor.set_parameter(CParameter::DictIdFlag(false)).expect("a parameter");
    if huffman {
        let on = CParameter::LiteralCompressionMode(ParamSwitch::Enable);
        compressor.set_parameter(on).expect("a parameter");
    }
    compressor
}

fn body_of(json: &str) -> Vec<u8> {
    let state: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).expect("a JSON object");
    rmp_serde::to_vec_named(&state).expect("MessagePack")
}

fn main() {
    let mut files = common::corpus_files();
    files.extend(common::generated::states());
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("open") {
        // Opens of one state, for callgrind (issue 27, item 2: where open's time goes).
        let (_, json) = files.iter().find(|(file, _)| *file == args[2]).expect("FILE");
        let calls: usize = args[3].parse().expect("CALLS");
        let sides = common::Sides::new();
        let case = sides.case(args[2].clone(), json);
        (0..calls).for_each(|_| opened(&sides, &case.header));
        return;
    }
    if args.get(1).map(String::as_str) == Some("decode") {
        // Decompressions of one body compressed at LEVEL, with the dictionary unless `plain`.
        let level: i32 = args[2].parse().expect("LEVEL");
        let (_, json) = files.iter().find(|(file, _)| *file == args[3]).expect("FILE");
        let calls: usize = args[4].parse().expect("CALLS");
        let plain = args.get(5).is_some();
        let body = body_of(json);
        let (packed, mut decompressor) = if plain {
            let packed = Compressor::new(level).expect("a context").compress(&body);
            (packed.expect("zstd compresses"), Decompressor::new().expect("a context"))
        } else {
            let packed = with_dictionary(level, false).compress(&body).expect("zstd compresses");
            (packed, Decompressor::with_dictionary(DICTIONARY).expect("a context"))
        };
        let mut out = Vec::with_capacity(body.len());
        (0..calls).for_each(|_| decoded(&mut decompressor, &packed, &mut out));
        assert_eq!(out, body, "round trip");
        println!("{} bytes", packed.len());
        return;
    }
    if args.get(1).map(String::as_str) == Some("count") {
        let level: i32 = args[2].parse().expect("LEVEL");
        let (_, json) = files.iter().find(|(file, _)| *file == args[3]).expect("FILE");
        let calls: usize = args[4].parse().expect("CALLS");
        let mut compressor = if let Ok(spec) = std::env::var("PROBE_LOCAL") {
            // A dictionary loaded into the context (zstd builds its tables with the context's
            // parameters): PROBE_LOCAL="targetLength,minMatch,hashLog", 0 for zstd's choice.
            let mut compressor = Compressor::with_dictionary(level, DICTIONARY).expect("a context");
            compressor.set_parameter(CParameter::DictIdFlag(false)).expect("a parameter");
            let p: Vec<u32> = spec.split(',').map(|v| v.parse().expect("a number")).collect();
            if p[0] > 0 {
                compressor.set_parameter(CParameter::TargetLength(p[0])).expect("tl");
            }
            if p[1] > 0 {
                compressor.set_parameter(CParameter::MinMatch(p[1])).expect("mm");
            }
            if p[2] > 0 {
                compressor.set_parameter(CParameter::HashLog(p[2])).expect("hl");
            }
            if args.get(5).is_some() {
                let on = CParameter::LiteralCompressionMode(ParamSwitch::Enable);
                compressor.set_parameter(on).expect("a parameter");
            }
            compressor
        } else {
            let mut compressor = with_dictionary(level, args.get(5).is_some());
            // PROBE_ATTACH=copy|attach|load: how the prepared dictionary meets the context.
            if let Ok(how) = std::env::var("PROBE_ATTACH") {
                use zstd::zstd_safe::DictAttachPref;
                let pref = match how.as_str() {
                    "copy" => DictAttachPref::ForceCopy,
                    "attach" => DictAttachPref::ForceAttach,
                    _ => DictAttachPref::ForceLoad,
                };
                compressor.set_parameter(CParameter::ForceAttachDict(pref)).expect("attach");
            }
            compressor
        };
        let body = body_of(json);
        let size = (0..calls).map(|_| counted(&mut compressor, &body)).last();
        println!("{} bytes", size.unwrap_or(0));
        return;
    }
    let level: i32 = args.get(1).map_or(-20, |level| level.parse().expect("LEVEL"));
    let mut current = with_dictionary(1, false);
    let mut fast = with_dictionary(level, true);
    let mut plain = Compressor::new(3).expect("a context");
    let mut plain_fast = Compressor::new(level).expect("a context");
    let on = CParameter::LiteralCompressionMode(ParamSwitch::Enable);
    plain_fast.set_parameter(on).expect("a parameter");
    println!(
        "| file | body B | dictionary, 1: B, µs | dictionary, {level} + Huffman | plain, 3 \
         | plain, {level} + Huffman |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (file, json) in files {
        let body = body_of(&json);
        let columns = [
            best_of(|| counted(&mut current, &body)),
            best_of(|| counted(&mut fast, &body)),
            best_of(|| counted(&mut plain, &body)),
            best_of(|| counted(&mut plain_fast, &body)),
        ];
        let cells: Vec<String> =
            columns.iter().map(|(size, us)| format!("{size}, {us:.2}")).collect();
        println!("| {file} | {} | {} |", body.len(), cells.join(" | "));
    }
}
