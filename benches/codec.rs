//! `open` and `seal` of every state in `../shared/corpus/`, side by side with the `cookie`
//! crate's `PrivateJar` holding the same state as JSON (AES-256-GCM, base64).
//!
//! Run with `cargo bench --bench codec`. Criterion reports each operation per corpus file; the
//! bench then prints a markdown summary (wire bytes, median µs, ratios) and checks the targets
//! recorded in `BENCHMARKS.md`. The summary times the operations itself with `Instant`, in
//! alternating batches, so that it does not depend on where or under which baseline criterion
//! stored its estimates, nor on estimates left over from an earlier run.
//!
//! Both sides start from a Cookie request header string and end with the same thing the
//! application needs: ours a [`Session`] whose values decode on read (so "open + read all" is
//! measured too), the peer a `serde_json::Map`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use criterion::{BenchmarkId, Criterion, Throughput};
use sealed_session::Session;
use sealed_session::format::{HEADER_LEN, NONCE_LEN, TAG_LEN};
use serde_json::json;

use common::{Case, Sides, summaries};

/// Rounds of the summary's alternating batches (see [`common::medians`]).
const ROUNDS: usize = 101;

/// States at least this long (in JSON bytes) are held to the "large state" targets.
const LARGE_STATE: usize = 2 * 1024;
/// The corpus's token-heavy state, held to its own wire-size target (the generated states,
/// `gen_*`, are token-heavy too).
const TOKEN_HEAVY: &str = "api_tokens.json";

fn token_heavy(file: &str) -> bool {
    file == TOKEN_HEAVY || file.starts_with("gen_")
}

fn bench_case(criterion: &mut Criterion, sides: &Sides, case: &mut Case) {
    let mut group = criterion.benchmark_group(case.file.as_str());
    group.throughput(Throughput::Bytes(case.json_len as u64));
    group.bench_function(BenchmarkId::new("open", "sealed-session"), |b| {
        b.iter(|| sides.open(black_box(&case.header)))
    });
    group.bench_function(BenchmarkId::new("open+read", "sealed-session"), |b| {
        b.iter(|| sides.open_and_read(black_box(&case.header)))
    });
    group.bench_function(BenchmarkId::new("open", "privatejar"), |b| {
        b.iter(|| sides.peer_open(black_box(&case.peer_header)))
    });
    group.bench_function(BenchmarkId::new("seal", "sealed-session"), |b| {
        b.iter(|| sides.seal(black_box(&mut case.session)))
    });
    group.bench_function(BenchmarkId::new("insert+seal", "sealed-session"), |b| {
        b.iter(|| sides.insert_and_seal(black_box(&case.state)))
    });
    group.bench_function(BenchmarkId::new("seal", "privatejar"), |b| {
        b.iter(|| sides.peer_seal(black_box(&case.state)))
    });
    group.finish();
}

/// The summary of one file: medians in µs.
struct Row {
    open: f64,
    open_read: f64,
    peer_open: f64,
    seal: f64,
    insert_seal: f64,
    peer_seal: f64,
    /// All six, in the order of `OPS`, with their batches.
    summaries: Vec<common::Summary>,
}

/// The operations of `time_case`, as named in the report.
const OPS: [&str; 6] = [
    "open/sealed-session",
    "open+read/sealed-session",
    "open/privatejar",
    "seal/sealed-session",
    "insert+seal/sealed-session",
    "seal/privatejar",
];

fn time_case(sides: &Sides, case: &mut Case) -> Row {
    let (header, peer_header, state) = (&case.header, &case.peer_header, &case.state);
    let session = &mut case.session;
    let summaries = summaries(
        ROUNDS,
        &mut [
            &mut || {
                black_box(sides.open(black_box(header)));
            },
            &mut || {
                black_box(sides.open_and_read(black_box(header)));
            },
            &mut || {
                black_box(sides.peer_open(black_box(peer_header)));
            },
            &mut || {
                black_box(sides.seal(black_box(&mut *session)));
            },
            &mut || {
                black_box(sides.insert_and_seal(black_box(state)));
            },
            &mut || {
                black_box(sides.peer_seal(black_box(state)));
            },
        ],
    );
    Row {
        open: summaries[0].median,
        open_read: summaries[1].median,
        peer_open: summaries[2].median,
        seal: summaries[3].median,
        insert_seal: summaries[4].median,
        peer_seal: summaries[5].median,
        summaries,
    }
}

/// Bytes of cookie value an empty session costs beyond its (empty) MessagePack body, and the
/// same count in raw bytes before base64, as (value bytes, raw bytes).
fn fixed_overhead(sides: &Sides) -> (usize, usize) {
    const EMPTY_MAP: usize = 1; // MessagePack fixmap of length 0: 0x80.
    let cookies = sides.codec.seal(&mut Session::new(), sides.now).expect("an empty session seals");
    let value: String = cookies.cookies().iter().map(|c| c.value()).collect();
    let raw = BASE64.decode(&value).expect("our cookie value is base64url").len();
    let empty_body_b64 = (EMPTY_MAP * 4).div_ceil(3);
    (value.len() - empty_body_b64, raw - EMPTY_MAP)
}

fn verdict(pass: bool) -> &'static str {
    if pass { "pass" } else { "FAIL" }
}

fn print_summary(sides: &Sides, cases: &[Case], rows: &[Row]) {
    println!();
    println!("## Summary (median of {ROUNDS} alternating batches, µs per call)");
    println!();
    println!(
        "| file | JSON B | ours wire B | PrivateJar wire B | wire ratio \
         | open ours µs | open PrivateJar µs | open ratio \
         | open+read all ours µs | open+read ratio \
         | seal ours µs | seal PrivateJar µs | seal ratio \
         | insert+seal ours µs | insert+seal ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (case, row) in cases.iter().zip(rows) {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} \
             | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            case.file,
            case.json_len,
            case.wire,
            case.peer_wire,
            case.wire as f64 / case.peer_wire as f64,
            row.open,
            row.peer_open,
            row.open / row.peer_open,
            row.open_read,
            row.open_read / row.peer_open,
            row.seal,
            row.peer_seal,
            row.seal / row.peer_seal,
            row.insert_seal,
            row.insert_seal / row.peer_seal,
        );
    }

    let (value_overhead, raw_overhead) = fixed_overhead(sides);
    let envelope = HEADER_LEN + NONCE_LEN + TAG_LEN;
    println!();
    println!(
        "Fixed overhead: {value_overhead} bytes of cookie value (empty session's value minus the \
         base64 of its 1-byte MessagePack body); raw {raw_overhead} bytes = header {HEADER_LEN} + \
         nonce {NONCE_LEN} + tag {TAG_LEN} + frame metadata {}.",
        raw_overhead - envelope
    );

    println!();
    println!("## Targets");
    println!();
    println!("| target | file | measured | limit | verdict |");
    println!("|---|---|---:|---:|---|");
    for (case, row) in cases.iter().zip(rows) {
        let large = case.json_len >= LARGE_STATE;
        let open_limit = if large { 0.5 } else { 1.5 };
        let open_ratio = row.open / row.peer_open;
        println!(
            "| open / PrivateJar open | {} | {open_ratio:.2}x | {open_limit}x | {} |",
            case.file,
            verdict(open_ratio <= open_limit)
        );
        // Every state, small or large, token-heavy or not (issue 27).
        let seal_ratio = row.seal / row.peer_seal;
        println!(
            "| seal / PrivateJar seal | {} | {seal_ratio:.2}x | 1.5x | {} |",
            case.file,
            verdict(seal_ratio <= 1.5)
        );
        let wire_limit = if token_heavy(&case.file) {
            Some(0.8)
        } else if large {
            Some(0.3)
        } else {
            None
        };
        if let Some(limit) = wire_limit {
            let ratio = case.wire as f64 / case.peer_wire as f64;
            println!(
                "| wire bytes / PrivateJar | {} | {ratio:.2}x | {limit}x | {} |",
                case.file,
                verdict(ratio <= limit)
            );
        }
    }
    println!(
        "| fixed overhead (cookie value bytes) | empty session | {value_overhead} | 80 | {} |",
        verdict(value_overhead <= 80)
    );
}

fn main() {
    let sides = Sides::new();
    let mut cases = common::load_cases(&sides);

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();
    for case in &mut cases {
        bench_case(&mut criterion, &sides, case);
    }
    criterion.final_summary();

    if common::summary_requested() {
        let rows: Vec<Row> = cases.iter_mut().map(|case| time_case(&sides, case)).collect();
        print_summary(&sides, &cases, &rows);
        write_report(&sides, &cases, &rows);
    }
}

/// The summary as `target/bench-report/codec.json`, for `scripts/plots.py`.
fn write_report(sides: &Sides, cases: &[Case], rows: &[Row]) {
    let (value_overhead, raw_overhead) = fixed_overhead(sides);
    let files: Vec<_> = cases
        .iter()
        .zip(rows)
        .map(|(case, row)| {
            let names: Vec<String> = OPS.iter().map(|&name| name.to_owned()).collect();
            let mut file = json!({
                "file": case.file,
                "json_bytes": case.json_len,
                "large": case.json_len >= LARGE_STATE,
                "token_heavy": token_heavy(&case.file),
                "wire_bytes": { "sealed-session": case.wire, "privatejar": case.peer_wire },
            });
            let timing = common::timing(&names, &row.summaries, &[]);
            file.as_object_mut().expect("an object").extend(timing);
            file
        })
        .collect();
    common::write_report(
        "codec",
        &json!({
            "bench": "codec",
            "rounds": ROUNDS,
            "batch_ms": common::BATCH.as_secs_f64() * 1e3,
            "fixed_overhead": {
                "value_bytes": value_overhead,
                "raw_bytes": raw_overhead,
                "header": HEADER_LEN,
                "nonce": NONCE_LEN,
                "tag": TAG_LEN,
            },
            "files": files,
        }),
    );
}
