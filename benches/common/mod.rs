//! Shared by the benches: the corpus, both sides of the comparison with `PrivateJar`, the
//! paired-median timer, the loopback Redis connection and the machine-readable reports.
//!
//! Each bench uses a different part of this module.
#![allow(dead_code)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use cookie::{Cookie, CookieJar};
use sealed_session::{Key, KeyRing, Session, SessionCodec, SessionConfig};
use serde_json::{Map, Value};

pub mod generated;

pub type State = Map<String, Value>;

/// The summaries' timing: each operation runs in batches of about `BATCH`. Batches shorter
/// than a scheduler slice are rarely preempted, so the median of many shrugs off a busy
/// machine better than a mean over long runs.
pub const BATCH: Duration = Duration::from_millis(1);

/// Tries at the number of calls per batch (see [`medians`]).
const CALIBRATIONS: usize = 5;

/// The peer's cookie name.
pub const PEER_NAME: &str = "session";

/// The fixed clock every bench seals and opens at.
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Operations to time together, as [`medians`] takes them.
pub type Ops<'a> = &'a mut [&'a mut dyn FnMut()];

/// Median microseconds per call of each operation, over `rounds` batches of each. Batches of
/// the operations alternate, so that a slow stretch of the machine hits all of them alike and
/// every ratio between two of them is a paired measurement. The order of the operations is
/// shuffled in every round: with a fixed order, a round that lasts about one scheduler time
/// slice gets preempted at the same place every time, and always hits the same operation.
pub fn medians(rounds: usize, ops: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    summaries(rounds, ops).iter().map(|summary| summary.median).collect()
}

/// How many times a batch is rerun when the thread was preempted during it.
const MAX_RETRIES: usize = 20;

thread_local! {
    /// Batches kept, and batches thrown away because the thread was preempted during them.
    static BATCHES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    static PREEMPTED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many times this thread has been preempted so far (`getrusage(RUSAGE_THREAD)`).
fn involuntary_switches() -> i64 {
    // SAFETY: `getrusage` only writes the struct it is given, which is zeroed plain data.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a `rusage`; RUSAGE_THREAD is supported on Linux.
    let status = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(status, 0, "getrusage failed");
    usage.ru_nivcsw
}

/// The batches kept so far, and those run again because the thread was preempted.
pub fn batch_counts() -> (u64, u64) {
    (BATCHES.get(), PREEMPTED.get())
}

/// An operation's batches, in µs per call: the time of each round's batch (in round order, so
/// that two operations' batches of the same round can be paired), their median and their 10th
/// percentile.
#[derive(Debug, Clone)]
pub struct Summary {
    pub median: f64,
    /// The fast batches: close to what a quiet machine would give.
    pub p10: f64,
    pub batches: Vec<f64>,
}

impl Summary {
    pub fn of(batches: Vec<f64>) -> Summary {
        assert!(!batches.is_empty(), "no samples");
        let mut sorted = batches.clone();
        sorted.sort_by(f64::total_cmp);
        Summary { median: sorted[sorted.len() / 2], p10: sorted[sorted.len() / 10], batches }
    }
}

/// [`medians`], with the 10th percentiles and every batch as well.
pub fn summaries(rounds: usize, ops: &mut [&mut dyn FnMut()]) -> Vec<Summary> {
    // Calls per batch: double until a batch lasts `BATCH`. A preemption during this makes the
    // count too small, and a batch of a few calls measures cold caches and branch predictors
    // rather than the operation; a preemption can only shrink the count, so take the largest
    // of a few tries.
    let iterations: Vec<u32> = ops
        .iter_mut()
        .map(|op| {
            (0..CALIBRATIONS)
                .map(|_| {
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
                .max()
                .expect("at least one calibration")
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(rounds); ops.len()];
    let mut order: Vec<usize> = (0..ops.len()).collect();
    let mut rng = Rng(0x0bad_5eed_1234_5678);
    for _ in 0..rounds {
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for &i in &order {
            let (op, n) = (&mut ops[i], iterations[i]);
            // A batch during which the thread was preempted measures the other processes:
            // run it again (a bounded number of times, so a saturated machine still ends).
            let mut retries = 0;
            let elapsed = loop {
                let switches = involuntary_switches();
                let start = Instant::now();
                (0..n).for_each(|_| op());
                let elapsed = start.elapsed();
                if involuntary_switches() == switches || retries == MAX_RETRIES {
                    break elapsed;
                }
                retries += 1;
                PREEMPTED.set(PREEMPTED.get() + 1);
            };
            BATCHES.set(BATCHES.get() + 1);
            samples[i].push(elapsed.as_secs_f64() * 1e6 / f64::from(n));
        }
    }
    samples.into_iter().map(Summary::of).collect()
}

/// Wraps an operation that waits on another process (a Redis round trip) so that each call is
/// also timed on its own, into `samples` (µs). Given to [`medians`] like any operation, it runs
/// in the same alternating batches; the quantiles of its single calls are then the better
/// statistics on a loaded machine: one late wake-up of either process spoils a whole batch's
/// mean, but only one single-call sample. The 10th percentile of single calls is also the
/// statistic most favourable to the server, which is what a target of "at least N times
/// faster than it" should be held to.
pub fn each_timed<'a, T>(
    samples: &'a std::cell::RefCell<Vec<f64>>,
    mut op: impl FnMut() -> T + 'a,
) -> impl FnMut() + 'a {
    move || {
        let start = Instant::now();
        black_box(op());
        samples.borrow_mut().push(start.elapsed().as_secs_f64() * 1e6);
    }
}

/// xorshift64*: deterministic pseudo-random numbers for shuffles and generated states.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// `len` random base64url characters.
    pub fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        (0..len).map(|_| char::from(ALPHABET[self.below(64) as usize])).collect()
    }
}

/// Whether this is a real benchmark run, which gets the paired summary and the report file:
/// not `cargo test --benches` (no `--bench`), `-- --test`, `--list` or `--profile-time`.
pub fn summary_requested() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|arg| arg == flag);
    has("--bench") && !has("--test") && !has("--list") && !has("--profile-time")
}

/// Where the benches write their reports: `$SEALED_SESSION_BENCH_REPORT_DIR`, by default
/// `target/bench-report/` of the crate.
pub fn report_dir() -> PathBuf {
    std::env::var_os("SEALED_SESSION_BENCH_REPORT_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-report"),
        PathBuf::from,
    )
}

/// Writes `report` as `<report_dir>/<name>.json`.
pub fn write_report(name: &str, report: &Value) {
    let mut report = report.clone();
    let (kept, rerun) = batch_counts();
    report["batches"] = serde_json::json!({ "kept": kept, "rerun_preempted": rerun });
    let dir = report_dir();
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|error| panic!("creating {}: {error}", dir.display()));
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(&report).expect("a JSON value serializes");
    std::fs::write(&path, text + "\n")
        .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
    eprintln!("wrote {}", path.display());
}

/// The loopback Redis server the script started, from `SEALED_SESSION_BENCH_REDIS`
/// (`127.0.0.1:PORT`, or a `redis://` URL). Panics when the variable is missing or the server
/// does not answer: a bench that compares against Redis must not pass without it.
pub fn redis_connection() -> redis::Connection {
    const VAR: &str = "SEALED_SESSION_BENCH_REDIS";
    let addr = std::env::var(VAR).unwrap_or_else(|_| {
        panic!(
            "{VAR} is not set: this bench compares against a loopback Redis server. Run \
             scripts/bench-report.sh, which starts one, or start `redis-server --port PORT \
             --save '' --appendonly no` and set {VAR}=127.0.0.1:PORT"
        )
    });
    let url = if addr.starts_with("redis://") { addr.clone() } else { format!("redis://{addr}/") };
    let info = redis::IntoConnectionInfo::into_connection_info(url.as_str())
        .unwrap_or_else(|error| panic!("{VAR}={addr} is not a Redis address: {error}"));
    // TCP_NODELAY, as connection pools set it: each command is one small write.
    let nodelay = redis::io::tcp::TcpSettings::default().set_nodelay(true);
    let client = redis::Client::open(info.set_tcp_settings(nodelay))
        .unwrap_or_else(|error| panic!("{VAR}={addr}: {error}"));
    let mut connection = client
        .get_connection()
        .unwrap_or_else(|error| panic!("connecting to Redis at {addr} ({VAR}): {error}"));
    let pong: String = redis::cmd("PING")
        .query(&mut connection)
        .unwrap_or_else(|error| panic!("PING to Redis at {addr}: {error}"));
    assert_eq!(pong, "PONG", "Redis at {addr} answered PING with {pong:?}");
    connection
}

/// One Redis `GET`: a full round trip over the connection, the stored bytes back.
pub fn redis_get(connection: &mut redis::Connection, key: &str) -> Vec<u8> {
    redis::cmd("GET").arg(key).query(connection).expect("Redis GET")
}

/// One Redis `SET` of `value` under `key`.
pub fn redis_set(connection: &mut redis::Connection, key: &str, value: &[u8]) {
    redis::cmd("SET").arg(key).arg(value).query::<()>(connection).expect("Redis SET")
}

/// One corpus file, with everything both sides need already prepared.
pub struct Case {
    pub file: String,
    pub json_len: usize,
    pub state: State,
    /// The state as the uncompressed MessagePack of its JSON value (`rmp_serde::to_vec_named`).
    pub msgpack: Vec<u8>,
    /// A session holding `state`, already sealed once (so it has an id and times).
    pub session: Session,
    /// The Cookie request header a browser sends back for `session`.
    pub header: String,
    /// Sum of our cookie values' lengths.
    pub wire: usize,
    /// The Cookie request header for the peer's cookie.
    pub peer_header: String,
    /// Length of the peer's cookie value.
    pub peer_wire: usize,
}

/// The sealing and opening machinery of both sides.
pub struct Sides {
    pub codec: SessionCodec,
    pub jar_key: cookie::Key,
    pub now: SystemTime,
}

impl Sides {
    pub fn new() -> Sides {
        Sides::with_config(SessionConfig::default())
    }

    pub fn with_config(config: SessionConfig) -> Sides {
        Sides {
            codec: SessionCodec::new(config, KeyRing::single(Key::generate())),
            jar_key: cookie::Key::generate(),
            now: now(),
        }
    }

    pub fn session_of(state: &State) -> Session {
        let mut session = Session::new();
        for (key, value) in state {
            session.insert(key.clone(), value).expect("a JSON value encodes as MessagePack");
        }
        session
    }

    pub fn open(&self, header: &str) -> Session {
        self.codec.open(header, self.now).expect("our own cookies open")
    }

    pub fn open_and_read(&self, header: &str) -> State {
        let session = self.open(header);
        session
            .keys()
            .map(|key| {
                let value = session.get::<Value>(key).expect("decodes").expect("present");
                (key.to_owned(), value)
            })
            .collect()
    }

    /// Seals, returning the sum of the cookie values' lengths.
    pub fn seal(&self, session: &mut Session) -> usize {
        let cookies = self.codec.seal(session, self.now).expect("the state fits the budget");
        cookies.cookies().iter().map(|c| c.value().len()).sum()
    }

    pub fn insert_and_seal(&self, state: &State) -> usize {
        self.seal(&mut Sides::session_of(state))
    }

    pub fn peer_open(&self, header: &str) -> State {
        let jar = CookieJar::new();
        let cookie = Cookie::split_parse(header)
            .flatten()
            .find(|cookie| cookie.name() == PEER_NAME)
            .expect("the peer's cookie is in the header");
        let plain = jar.private(&self.jar_key).decrypt(cookie.into_owned()).expect("authentic");
        serde_json::from_str(plain.value()).expect("the peer's JSON parses")
    }

    /// The peer's cookie value.
    pub fn peer_seal(&self, state: &State) -> String {
        let json = serde_json::to_string(state).expect("a JSON value serializes");
        let mut jar = CookieJar::new();
        jar.private_mut(&self.jar_key).add(Cookie::new(PEER_NAME, json));
        jar.get(PEER_NAME).expect("just added").value().to_owned()
    }

    /// The peer's Cookie request header for `state`, and its cookie value's length.
    pub fn peer_header(&self, state: &State) -> (String, usize) {
        let value = self.peer_seal(state);
        let len = value.len();
        (format!("{PEER_NAME}={value}"), len)
    }

    pub fn case(&self, file: String, json: &str) -> Case {
        let state: State = serde_json::from_str(json)
            .unwrap_or_else(|error| panic!("{file} is not a JSON object: {error}"));
        let msgpack = rmp_serde::to_vec_named(&state).expect("a JSON value encodes");
        let mut session = Sides::session_of(&state);
        let cookies = self.codec.seal(&mut session, self.now).expect("the corpus fits the budget");
        let header = cookies.request_header();
        let wire = cookies.cookies().iter().map(|c| c.value().len()).sum();
        let (peer_header, peer_wire) = self.peer_header(&state);

        // Both sides must give the state back, or the timings compare nothing.
        assert_eq!(self.open_and_read(&header), state, "{file}: sealed-session round trip");
        assert_eq!(self.peer_open(&peer_header), state, "{file}: PrivateJar round trip");
        Case {
            file,
            json_len: json.len(),
            state,
            msgpack,
            session,
            header,
            wire,
            peer_header,
            peer_wire,
        }
    }
}

pub fn corpus_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(dir.is_dir(), "the corpus directory {} is missing", dir.display());
    dir
}

/// Every `.json` file of the corpus, sorted by name: `(file name, JSON text)`.
pub fn corpus_files() -> Vec<(String, String)> {
    let dir = corpus_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no .json file in {}", dir.display());
    paths
        .iter()
        .map(|path| {
            let file = path.file_name().expect("a file name").to_string_lossy().into_owned();
            let json = std::fs::read_to_string(path)
                .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
            (file, json)
        })
        .collect()
}

/// Every `.json` file of the corpus, sorted by name, then the seeded token-heavy states of
/// [`generated`], prepared for both sides.
pub fn load_cases(sides: &Sides) -> Vec<Case> {
    let files = corpus_files().into_iter().chain(generated::states());
    files.map(|(file, json)| sides.case(file, &json)).collect()
}

/// Runs `op` once and hands its result to `black_box`, for the closures given to [`medians`].
pub fn run<T>(mut op: impl FnMut() -> T) -> impl FnMut() {
    move || {
        black_box(op());
    }
}

/// The hardware floor: what any cookie session must at least pay to carry `state` encrypted.
/// AES-256-GCM with a cipher created once (its key schedule and GHASH key cached) and base64url,
/// on the state's uncompressed MessagePack, with no framing, no compression, no associated
/// data and no cookie parsing. The 96-bit nonce comes from a counter, so the floor does not pay
/// for a random nonce either. The XAES-256-GCM cipher (also created once) is here to measure
/// the nonce extension alone against the same AES-256-GCM.
pub struct Floor {
    aes: aes_gcm::Aes256Gcm,
    xaes: xaes_256_gcm::Xaes256Gcm,
    counter: std::cell::Cell<u64>,
}

/// Bytes of AES-256-GCM nonce and tag.
pub const GCM_NONCE_LEN: usize = 12;
pub const GCM_TAG_LEN: usize = 16;
/// Bytes of XAES-256-GCM nonce.
pub const XAES_NONCE_LEN: usize = 24;

impl Floor {
    pub fn new() -> Floor {
        use aes_gcm::KeyInit as _;
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("random key");
        Floor {
            aes: aes_gcm::Aes256Gcm::new_from_slice(&key).expect("a 32-byte key"),
            xaes: xaes_256_gcm::Xaes256Gcm::new_from_slice(&key).expect("a 32-byte key"),
            counter: std::cell::Cell::new(0),
        }
    }

    fn next_nonce(&self) -> [u8; GCM_NONCE_LEN] {
        let n = self.counter.get().wrapping_add(1);
        self.counter.set(n);
        let mut nonce = [0u8; GCM_NONCE_LEN];
        nonce[4..].copy_from_slice(&n.to_be_bytes());
        nonce
    }

    /// Floor seal: AES-256-GCM encryption of `plain`, then base64url of nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plain: &[u8]) -> String {
        use aes_gcm::aead::AeadInOut as _;
        use base64::Engine as _;
        let nonce = self.next_nonce();
        let mut token = Vec::with_capacity(GCM_NONCE_LEN + plain.len() + GCM_TAG_LEN);
        token.extend_from_slice(&nonce);
        token.extend_from_slice(plain);
        let tag = self
            .aes
            .encrypt_inout_detached(&nonce.into(), &[], (&mut token[GCM_NONCE_LEN..]).into())
            .expect("encrypts");
        token.extend_from_slice(&tag);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&token)
    }

    /// Floor open: base64url decoding, then AES-256-GCM decryption in place. Returns the
    /// decoded token, whose bytes between the nonce and the tag are the plaintext.
    pub fn open(&self, value: &str) -> Vec<u8> {
        use aes_gcm::aead::AeadInOut as _;
        use base64::Engine as _;
        let mut token = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .expect("the floor's value is base64url");
        let (nonce, rest) = token.split_at_mut(GCM_NONCE_LEN);
        let (body, tag) = rest.split_at_mut(rest.len() - GCM_TAG_LEN);
        let nonce = aes_gcm::aead::Nonce::<aes_gcm::Aes256Gcm>::try_from(&*nonce).expect("12");
        let tag = aes_gcm::aead::Tag::<aes_gcm::Aes256Gcm>::try_from(&*tag).expect("16");
        self.aes.decrypt_inout_detached(&nonce, &[], body.into(), &tag).expect("authentic");
        token
    }

    /// AES-256-GCM alone: encrypts `buf` in place under the fixed `nonce`, returns the tag.
    pub fn aes_encrypt(&self, nonce: &[u8; GCM_NONCE_LEN], buf: &mut [u8]) -> [u8; GCM_TAG_LEN] {
        use aes_gcm::aead::AeadInOut as _;
        let tag = self.aes.encrypt_inout_detached(&(*nonce).into(), &[], buf.into());
        tag.expect("encrypts").into()
    }

    /// AES-256-GCM alone: decrypts `buf` in place, panicking if it is not authentic.
    pub fn aes_decrypt(&self, nonce: &[u8; GCM_NONCE_LEN], buf: &mut [u8], tag: &[u8; 16]) {
        use aes_gcm::aead::AeadInOut as _;
        let result =
            self.aes.decrypt_inout_detached(&(*nonce).into(), &[], buf.into(), &(*tag).into());
        result.expect("authentic");
    }

    /// XAES-256-GCM alone: encrypts `buf` in place under the fixed `nonce`, returns the tag.
    pub fn xaes_encrypt(&self, nonce: &[u8; XAES_NONCE_LEN], buf: &mut [u8]) -> [u8; 16] {
        use xaes_256_gcm::aead::AeadInOut as _;
        let tag = self.xaes.encrypt_inout_detached(&(*nonce).into(), &[], buf.into());
        tag.expect("encrypts").into()
    }

    /// XAES-256-GCM alone: decrypts `buf` in place, panicking if it is not authentic.
    pub fn xaes_decrypt(&self, nonce: &[u8; XAES_NONCE_LEN], buf: &mut [u8], tag: &[u8; 16]) {
        use xaes_256_gcm::aead::AeadInOut as _;
        let result =
            self.xaes.decrypt_inout_detached(&(*nonce).into(), &[], buf.into(), &(*tag).into());
        result.expect("authentic");
    }
}

/// The timing of a report: `median_us`, `p10_us` and `batches_us` (every batch, in round
/// order) objects, where operation `names[i]` maps to `summaries[i]`; except that each
/// operation named in `single` maps to the quantiles of its single calls (recorded by
/// [`each_timed`]), and its batches move to `NAME:batch`.
pub fn timing(
    names: &[String],
    summaries: &[Summary],
    single: &[(&str, &std::cell::RefCell<Vec<f64>>)],
) -> Map<String, Value> {
    let (mut medians, mut p10s, mut batches) = (Map::new(), Map::new(), Map::new());
    for (name, summary) in names.iter().zip(summaries) {
        let key = if single.iter().any(|(single, _)| single == name) {
            format!("{name}:batch")
        } else {
            name.clone()
        };
        medians.insert(key.clone(), summary.median.into());
        p10s.insert(key.clone(), summary.p10.into());
        batches.insert(key, summary.batches.clone().into());
    }
    for &(name, calls) in single {
        let summary = Summary::of(calls.take());
        medians.insert(name.to_owned(), summary.median.into());
        p10s.insert(name.to_owned(), summary.p10.into());
    }
    let mut timing = Map::new();
    timing.insert("median_us".into(), medians.into());
    timing.insert("p10_us".into(), p10s.into());
    timing.insert("batches_us".into(), batches.into());
    timing
}
