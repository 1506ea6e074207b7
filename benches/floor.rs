//! `open` and `seal` of every state in `../shared/corpus/` in one run against: the `cookie`
//! crate's `PrivateJar` with serde_json (the Rust peer); the hardware floor (AES-256-GCM with a
//! cached cipher plus base64url on the state's uncompressed MessagePack, no framing); a loopback
//! Redis `GET`/`SET` of the same MessagePack (the central-store alternative); and XAES-256-GCM
//! against plain AES-256-GCM on the same bytes (the cost of the nonce extension).
//!
//! Needs a Redis server: `SEALED_SESSION_BENCH_REDIS=127.0.0.1:PORT` (the bench fails without
//! it). `scripts/bench-report.sh` starts one and runs this with `cargo bench --bench floor`.
//! Criterion reports each operation per corpus file; a real benchmark run then times all the
//! operations of a file again in alternating 1 ms batches and writes the medians to
//! `target/bench-report/floor.json`, from which `scripts/plots.py` builds the tables of
//! `BENCHMARKS.md`.

mod common;

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Duration;

use common::{Case, Floor, GCM_NONCE_LEN, Ops, Sides, XAES_NONCE_LEN, each_timed, run, summaries};
use criterion::{BenchmarkId, Criterion, Throughput};
use serde_json::json;

const ROUNDS: usize = 101;

/// Everything the floor, cipher-only and Redis operations of one file need.
struct Extra {
    /// The floor's cookie value (base64url of nonce, ciphertext and tag).
    floor_value: String,
    /// AES-256-GCM ciphertext and tag of the MessagePack, under `AES_NONCE`.
    aes_sealed: (Vec<u8>, [u8; 16]),
    /// XAES-256-GCM ciphertext and tag of the MessagePack, under `XAES_NONCE`.
    xaes_sealed: (Vec<u8>, [u8; 16]),
    redis_key: String,
}

const AES_NONCE: [u8; GCM_NONCE_LEN] = [7; GCM_NONCE_LEN];
const XAES_NONCE: [u8; XAES_NONCE_LEN] = [7; XAES_NONCE_LEN];

fn prepare(floor: &Floor, redis: &mut redis::Connection, case: &Case) -> Extra {
    let floor_value = floor.seal(&case.msgpack);
    let opened = floor.open(&floor_value);
    assert_eq!(&opened[GCM_NONCE_LEN..opened.len() - 16], case.msgpack, "floor round trip");

    let mut aes = case.msgpack.clone();
    let aes_tag = floor.aes_encrypt(&AES_NONCE, &mut aes);
    let mut xaes = case.msgpack.clone();
    let xaes_tag = floor.xaes_encrypt(&XAES_NONCE, &mut xaes);
    let mut check = aes.clone();
    floor.aes_decrypt(&AES_NONCE, &mut check, &aes_tag);
    assert_eq!(check, case.msgpack, "AES-256-GCM round trip");
    let mut check = xaes.clone();
    floor.xaes_decrypt(&XAES_NONCE, &mut check, &xaes_tag);
    assert_eq!(check, case.msgpack, "XAES-256-GCM round trip");

    let redis_key = format!("sealed-session-bench:floor:{}", case.file);
    common::redis_set(redis, &redis_key, &case.msgpack);
    assert_eq!(common::redis_get(redis, &redis_key), case.msgpack, "Redis round trip");
    Extra { floor_value, aes_sealed: (aes, aes_tag), xaes_sealed: (xaes, xaes_tag), redis_key }
}

/// The operations of one file, in the order of `OPS`, as closures for criterion and the
/// paired summary alike.
const OPS: [(&str, &str); 12] = [
    ("open", "sealed-session"),
    ("open", "privatejar"),
    ("open", "floor"),
    ("open", "redis-get"),
    ("seal", "sealed-session"),
    ("seal", "privatejar"),
    ("seal", "floor"),
    ("seal", "redis-set"),
    ("decrypt", "aes-256-gcm"),
    ("decrypt", "xaes-256-gcm"),
    ("encrypt", "aes-256-gcm"),
    ("encrypt", "xaes-256-gcm"),
];

/// Hands the operations of `case` to `each`.
fn with_ops(
    sides: &Sides,
    floor: &Floor,
    redis: &mut redis::Connection,
    case: &mut Case,
    extra: &Extra,
    redis_calls: &[RefCell<Vec<f64>>; 2],
    each: &mut dyn FnMut(Ops<'_>),
) {
    let (header, peer_header, state) = (&case.header, &case.peer_header, &case.state);
    let session = &mut case.session;
    let msgpack = &case.msgpack;
    let key = extra.redis_key.as_str();
    // `redis` is shared by two closures; they never run at the same time.
    let redis = RefCell::new(redis);
    let mut scratch = vec![vec![0u8; msgpack.len()]; 4];
    let [aes_dec, xaes_dec, aes_enc, xaes_enc] = &mut scratch[..] else { unreachable!() };
    each(&mut [
        &mut run(|| sides.open(black_box(header))),
        &mut run(|| sides.peer_open(black_box(peer_header))),
        &mut run(|| floor.open(black_box(&extra.floor_value))),
        &mut each_timed(&redis_calls[0], || {
            common::redis_get(&mut redis.borrow_mut(), black_box(key))
        }),
        &mut run(|| sides.seal(black_box(&mut *session))),
        &mut run(|| sides.peer_seal(black_box(state))),
        &mut run(|| floor.seal(black_box(msgpack))),
        &mut each_timed(&redis_calls[1], || {
            common::redis_set(&mut redis.borrow_mut(), key, black_box(msgpack))
        }),
        &mut run(|| {
            aes_dec.copy_from_slice(&extra.aes_sealed.0);
            floor.aes_decrypt(&AES_NONCE, black_box(&mut aes_dec[..]), &extra.aes_sealed.1)
        }),
        &mut run(|| {
            xaes_dec.copy_from_slice(&extra.xaes_sealed.0);
            floor.xaes_decrypt(&XAES_NONCE, black_box(&mut xaes_dec[..]), &extra.xaes_sealed.1)
        }),
        &mut run(|| {
            aes_enc.copy_from_slice(msgpack);
            floor.aes_encrypt(&AES_NONCE, black_box(&mut aes_enc[..]))
        }),
        &mut run(|| {
            xaes_enc.copy_from_slice(msgpack);
            floor.xaes_encrypt(&XAES_NONCE, black_box(&mut xaes_enc[..]))
        }),
    ]);
}

fn main() {
    let sides = Sides::new();
    let floor = Floor::new();
    let mut redis = common::redis_connection();
    let mut cases = common::load_cases(&sides);
    let extras: Vec<Extra> = cases.iter().map(|case| prepare(&floor, &mut redis, case)).collect();

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30)
        .configure_from_args();
    for (case, extra) in cases.iter_mut().zip(&extras) {
        let mut group = criterion.benchmark_group(format!("floor/{}", case.file));
        group.throughput(Throughput::Bytes(case.json_len as u64));
        let redis_calls = Default::default();
        with_ops(&sides, &floor, &mut redis, case, extra, &redis_calls, &mut |ops| {
            for ((function, parameter), op) in OPS.iter().zip(ops.iter_mut()) {
                group
                    .bench_function(BenchmarkId::new(*function, *parameter), |b| b.iter(&mut **op));
            }
        });
        group.finish();
    }
    criterion.final_summary();

    if !common::summary_requested() {
        return;
    }
    let mut files = Vec::new();
    for (case, extra) in cases.iter_mut().zip(&extras) {
        let mut times = Vec::new();
        let redis_calls: [RefCell<Vec<f64>>; 2] = Default::default();
        with_ops(&sides, &floor, &mut redis, case, extra, &redis_calls, &mut |ops| {
            times = summaries(ROUNDS, ops);
        });
        let names: Vec<String> = OPS.iter().map(|(f, p)| format!("{f}/{p}")).collect();
        let single = [("open/redis-get", &redis_calls[0]), ("seal/redis-set", &redis_calls[1])];
        let timing = common::timing(&names, &times, &single);
        eprintln!(
            "{}: open {:.2} µs (floor {:.2}, PrivateJar {:.2}, Redis GET {:.2}), seal {:.2} µs",
            case.file,
            times[0].median,
            times[2].median,
            times[1].median,
            timing["median_us"]["open/redis-get"],
            times[4].median
        );
        let mut file = json!({
            "file": case.file,
            "json_bytes": case.json_len,
            "msgpack_bytes": case.msgpack.len(),
            "wire_bytes": {
                "sealed-session": case.wire,
                "privatejar": case.peer_wire,
                "floor": extra.floor_value.len(),
            },
        });
        file.as_object_mut().expect("an object").extend(timing);
        files.push(file);
    }
    common::write_report(
        "floor",
        &json!({
            "bench": "floor",
            "rounds": ROUNDS,
            "batch_ms": common::BATCH.as_secs_f64() * 1e3,
            "files": files,
        }),
    );
}
