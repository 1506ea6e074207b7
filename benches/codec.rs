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

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use cookie::{Cookie, CookieJar};
use criterion::{BenchmarkId, Criterion, Throughput};
use sealed_session::format::{HEADER_LEN, NONCE_LEN, TAG_LEN};
use sealed_session::{Key, KeyRing, Session, SessionCodec, SessionConfig};
use serde_json::{Map, Value};

type State = Map<String, Value>;

/// The summary's timing: each operation runs in batches of about `BATCH`, `ROUNDS` times.
/// Batches shorter than a scheduler slice are rarely preempted, so the median shrugs off a
/// busy machine better than a mean over long runs.
const BATCH: Duration = Duration::from_millis(1);
const ROUNDS: usize = 101;

/// The peer's cookie name.
const PEER_NAME: &str = "session";
/// States at least this long (in JSON bytes) are held to the "large state" targets.
const LARGE_STATE: usize = 2 * 1024;
/// The token-heavy state, held to its own wire-size target.
const TOKEN_HEAVY: &str = "api_tokens.json";

/// One corpus file, with everything both sides need already prepared.
struct Case {
    file: String,
    json_len: usize,
    state: State,
    /// A session holding `state`, already sealed once (so it has an id and times).
    session: Session,
    /// The Cookie request header a browser sends back for `session`.
    header: String,
    /// Sum of our cookie values' lengths.
    wire: usize,
    /// The Cookie request header for the peer's cookie.
    peer_header: String,
    /// Length of the peer's cookie value.
    peer_wire: usize,
}

/// The sealing and opening machinery of both sides, and the fixed clock.
struct Sides {
    codec: SessionCodec,
    jar_key: cookie::Key,
    now: SystemTime,
}

impl Sides {
    fn new() -> Sides {
        Sides {
            codec: SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate())),
            jar_key: cookie::Key::generate(),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        }
    }

    fn session_of(state: &State) -> Session {
        let mut session = Session::new();
        for (key, value) in state {
            session.insert(key.clone(), value).expect("a JSON value encodes as MessagePack");
        }
        session
    }

    fn open(&self, header: &str) -> Session {
        self.codec.open(header, self.now).expect("our own cookies open")
    }

    fn open_and_read(&self, header: &str) -> State {
        let session = self.open(header);
        session
            .keys()
            .map(|key| {
                let value = session.get::<Value>(key).expect("decodes").expect("present");
                (key.to_owned(), value)
            })
            .collect()
    }

    fn seal(&self, session: &mut Session) -> usize {
        let cookies = self.codec.seal(session, self.now).expect("the corpus fits the budget");
        cookies.cookies().iter().map(|c| c.value().len()).sum()
    }

    fn insert_and_seal(&self, state: &State) -> usize {
        self.seal(&mut Sides::session_of(state))
    }

    fn peer_open(&self, header: &str) -> State {
        let jar = CookieJar::new();
        let cookie = Cookie::split_parse(header)
            .flatten()
            .find(|cookie| cookie.name() == PEER_NAME)
            .expect("the peer's cookie is in the header");
        let plain = jar.private(&self.jar_key).decrypt(cookie.into_owned()).expect("authentic");
        serde_json::from_str(plain.value()).expect("the peer's JSON parses")
    }

    /// The peer's cookie value.
    fn peer_seal(&self, state: &State) -> String {
        let json = serde_json::to_string(state).expect("a JSON value serializes");
        let mut jar = CookieJar::new();
        jar.private_mut(&self.jar_key).add(Cookie::new(PEER_NAME, json));
        jar.get(PEER_NAME).expect("just added").value().to_owned()
    }

    fn case(&self, path: &Path) -> Case {
        let file = path.file_name().expect("a file name").to_string_lossy().into_owned();
        let json = std::fs::read_to_string(path)
            .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
        let state: State = serde_json::from_str(&json)
            .unwrap_or_else(|error| panic!("{file} is not a JSON object: {error}"));
        let mut session = Sides::session_of(&state);
        let cookies = self.codec.seal(&mut session, self.now).expect("the corpus fits the budget");
        let header = cookies.request_header();
        let wire = cookies.cookies().iter().map(|c| c.value().len()).sum();
        let peer_value = self.peer_seal(&state);
        let peer_header = format!("{PEER_NAME}={peer_value}");

        // Both sides must give the state back, or the timings compare nothing.
        assert_eq!(self.open_and_read(&header), state, "{file}: sealed-session round trip");
        assert_eq!(self.peer_open(&peer_header), state, "{file}: PrivateJar round trip");
        Case {
            file,
            json_len: json.len(),
            state,
            session,
            header,
            wire,
            peer_wire: peer_value.len(),
            peer_header,
        }
    }
}

fn corpus_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(dir.is_dir(), "the corpus directory {} is missing", dir.display());
    dir
}

fn load_cases(sides: &Sides) -> Vec<Case> {
    let dir = corpus_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no .json file in {}", dir.display());
    paths.iter().map(|path| sides.case(path)).collect()
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

/// Median microseconds per call of each operation. Batches of the operations alternate, so that
/// a slow stretch of the machine hits all of them alike.
fn medians(ops: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let iterations: Vec<u32> = ops
        .iter_mut()
        .map(|op| {
            let mut n = 1u32;
            loop {
                let start = Instant::now();
                (0..n).for_each(|_| op());
                if start.elapsed() >= BATCH || n >= 1 << 20 {
                    break n;
                }
                n *= 2;
            }
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(ROUNDS); ops.len()];
    for _ in 0..ROUNDS {
        for ((op, &n), samples) in ops.iter_mut().zip(&iterations).zip(&mut samples) {
            let start = Instant::now();
            (0..n).for_each(|_| op());
            samples.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(n));
        }
    }
    samples
        .into_iter()
        .map(|mut samples| {
            samples.sort_by(f64::total_cmp);
            samples[samples.len() / 2]
        })
        .collect()
}

/// The summary of one file: medians in µs.
struct Row {
    open: f64,
    open_read: f64,
    peer_open: f64,
    seal: f64,
    insert_seal: f64,
    peer_seal: f64,
}

fn time_case(sides: &Sides, case: &mut Case) -> Row {
    let (header, peer_header, state) = (&case.header, &case.peer_header, &case.state);
    let session = &mut case.session;
    let times = medians(&mut [
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
    ]);
    Row {
        open: times[0],
        open_read: times[1],
        peer_open: times[2],
        seal: times[3],
        insert_seal: times[4],
        peer_seal: times[5],
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
        if large {
            let seal_ratio = row.seal / row.peer_seal;
            println!(
                "| seal / PrivateJar seal | {} | {seal_ratio:.2}x | 1.5x | {} |",
                case.file,
                verdict(seal_ratio <= 1.5)
            );
        }
        let wire_limit = if case.file == TOKEN_HEAVY {
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
    let mut cases = load_cases(&sides);

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();
    for case in &mut cases {
        bench_case(&mut criterion, &sides, case);
    }
    criterion.final_summary();

    // The summary only in a real benchmark run: not under `cargo test --benches`
    // (no `--bench`), `-- --test`, `--list` or `--profile-time`.
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|arg| arg == flag);
    if has("--bench") && !has("--test") && !has("--list") && !has("--profile-time") {
        let rows: Vec<Row> = cases.iter_mut().map(|case| time_case(&sides, case)).collect();
        print_summary(&sides, &cases, &rows);
    }
}
