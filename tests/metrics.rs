//! The metrics (feature `metrics`) after scripted requests through real servers, axum and
//! actix-web: every value the README's metrics table names, as a Prometheus recorder renders
//! it.
//!
//! One recorder serves this whole test binary (a `metrics` recorder is process-wide), and the
//! scenarios run one at a time (`SERIAL`) and compare what they did with the difference between
//! two renderings, so nothing else moves the values they read.

#![cfg(all(feature = "metrics", feature = "axum", feature = "actix-web"))]

#[cfg(feature = "redis")]
#[path = "common/redis_server.rs"]
mod redis_server;
#[path = "common/revoking.rs"]
mod revoking;
#[path = "common/servers.rs"]
mod servers;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use reqwest::Client;
use sealed_session::metrics::{
    COOKIE_BYTES, COOKIE_CHUNKS, KEY_RING_REFUSED, KEY_RING_RELOADS, KEY_USED, REVOCATION_CHECKS,
    SAVES, SESSIONS,
};
use sealed_session::revocation::{
    BoxFuture, FailurePolicy, MemoryRevocations, Query, Revocation, RevocationStore, StoreError,
};
use sealed_session::{Key, KeyId, KeyRing, ManualClock, Session, SessionCodec, SessionConfig};
use servers::{Actix, Axum, TestServer};

/// The session's first cookie.
const NAME: &str = "__Host-app";

/// One scenario at a time: they read differences of process-wide values.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn recorder() -> &'static PrometheusHandle {
    static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(COOKIE_BYTES.into()), &[1024.0, 4096.0, 6144.0])
            .expect("buckets")
            .set_buckets_for_metric(Matcher::Full(COOKIE_CHUNKS.into()), &[1.0, 2.0, 4.0])
            .expect("buckets")
            .install_recorder()
            .expect("the only recorder of this binary");
        sealed_session::metrics::describe();
        handle
    })
}

/// Every series of a rendering: `name{labels sorted}` to its value.
fn render() -> HashMap<String, f64> {
    let text = recorder().render();
    let mut series = HashMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#') && !line.is_empty()) {
        let (key, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = value.parse().expect("a number");
        let key = match key.split_once('{') {
            None => key.to_owned(),
            Some((name, labels)) => {
                let mut labels: Vec<&str> =
                    labels.trim_end_matches('}').split(',').filter(|l| !l.is_empty()).collect();
                labels.sort_unstable();
                format!("{name}{{{}}}", labels.join(","))
            }
        };
        series.insert(key, value);
    }
    series
}

/// The series `name` with `labels` (any order), as [`render`] keys it.
fn series(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    labels.sort_unstable();
    format!("{name}{{{}}}", labels.join(","))
}

/// What the values moved by between two renderings.
struct Delta {
    before: HashMap<String, f64>,
    after: HashMap<String, f64>,
}

impl Delta {
    fn of(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let key = series(name, labels);
        self.after.get(&key).copied().unwrap_or(0.0) - self.before.get(&key).copied().unwrap_or(0.0)
    }

    /// Every series of `name` that moved, but those in `expected`, for spotting extra counts.
    fn others(&self, name: &str, expected: &[String]) -> Vec<(String, f64)> {
        let mut moved: Vec<(String, f64)> = self
            .after
            .iter()
            .filter(|(key, _)| key.split('{').next() == Some(name) && !expected.contains(key))
            .map(|(key, after)| (key.clone(), after - self.before.get(key).copied().unwrap_or(0.0)))
            .filter(|(_, delta)| *delta != 0.0)
            .collect();
        moved.sort_by(|a, b| a.0.cmp(&b.0));
        moved
    }
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn config() -> SessionConfig {
    SessionConfig::builder("app").max_cookie_line(2048).build().expect("a valid configuration")
}

/// A codec whose ring holds one key, under `id`.
fn codec(id: u32, key: &Key) -> SessionCodec {
    let mut ring = KeyRing::new();
    ring.insert(KeyId(id), key.clone(), SystemTime::UNIX_EPOCH, SystemTime::UNIX_EPOCH)
        .expect("one key");
    SessionCodec::new(config(), ring)
}

/// A session holding a user, sealed by `codec` at `at`, as a Cookie header.
fn sealed(codec: &SessionCodec, user: &str, at: SystemTime) -> String {
    let mut session = Session::new();
    session.insert("user", user).expect("a string encodes");
    codec.seal(&mut session, at).expect("fits").request_header()
}

/// `header` (one session cookie) with its clear header changed by `change`.
fn rewrite_header(cookie: &str, change: impl FnOnce(&mut [u8])) -> String {
    let value = cookie.strip_prefix(&format!("{NAME}=")).expect("one session cookie");
    let mut header = URL_SAFE_NO_PAD.decode(&value[..8]).expect("base64url");
    change(&mut header);
    format!("{NAME}={}{}", URL_SAFE_NO_PAD.encode(&header), &value[8..])
}

/// A response's Set-Cookie lines, and the Cookie header a browser would send back (removals
/// dropped).
struct Answer {
    status: u16,
    set_cookies: Vec<String>,
}

impl Answer {
    fn cookie_header(&self) -> String {
        let pairs: Vec<&str> = self
            .set_cookies
            .iter()
            .filter(|line| !line.contains("Max-Age=0"))
            .map(|line| line.split(';').next().expect("name=value"))
            .collect();
        pairs.join("; ")
    }

    /// The bytes the session's cookies take in a Cookie header (`name=value; ` each), as the
    /// budget counts them.
    fn cookie_bytes(&self) -> usize {
        self.cookie_header().split("; ").map(|pair| pair.len() + 2).sum()
    }

    fn chunks(&self) -> usize {
        self.set_cookies.iter().filter(|line| !line.contains("Max-Age=0")).count()
    }
}

async fn get(client: &Client, url: &str, cookie: Option<&str>) -> Answer {
    let mut request = client.get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.expect("the server answers");
    let set_cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ASCII").to_owned())
        .collect();
    Answer { status: response.status().as_u16(), set_cookies }
}

/// The codec's rejection reasons, each with a Cookie header that brings it about on a server
/// whose ring holds `key` under `id` (its clock at [`t0`]), given `valid`, a cookie of one
/// chunk that server sealed.
fn rejections(id: u32, key: &Key, valid: &str) -> Vec<(&'static str, String)> {
    let ours = codec(id, key);
    let stranger = codec(id + 1000, &Key::generate());
    let minutes = |n: u64| Duration::from_secs(n * 60);
    // The value's 20th character, changed to another base64url character.
    let mut forged = valid.to_owned();
    let at = NAME.len() + 1 + 20;
    let swapped = if &forged[at..=at] == "A" { "B" } else { "A" };
    forged.replace_range(at..=at, swapped);
    vec![
        ("malformed", format!("{NAME}=%%%%%%%%%%%%")),
        ("unsupported_version", rewrite_header(valid, |h| h[0] = 0xf0 | (h[0] & 0x0f))),
        ("wrong_mode", rewrite_header(valid, |h| h[0] ^= 0x01)),
        ("unknown_key", sealed(&stranger, "eve", t0())),
        ("forged", forged),
        ("idle_expired", sealed(&ours, "ada", t0() - minutes(40))),
        ("absolute_expired", sealed(&ours, "ada", t0() - minutes(13 * 60))),
        ("issued_in_future", sealed(&ours, "ada", t0() + minutes(60))),
        ("too_large", format!("{valid}{}", "A".repeat(7_000))),
        (
            "conflicting_sessions",
            format!("{}; {}", sealed(&ours, "ada", t0()), sealed(&ours, "eve", t0())),
        ),
    ]
}

/// Fresh, opened, every rejection of the codec, written, unchanged, removed, over budget, the
/// key that sealed and opened, and the sizes written, through server `S` keyed under `id`.
async fn scripted<S: TestServer>(id: u32) {
    let _serial = SERIAL.lock().await;
    let key = Key::generate();
    let server = S::start(codec(id, &key), ManualClock::new(t0()));
    let client = Client::new();
    let url = |path: &str| server.url(path);
    let before = render();

    let visitor = get(&client, &url("/whoami"), None).await; // fresh, unchanged
    assert!(visitor.set_cookies.is_empty());
    let login = get(&client, &url("/login?user=ada"), None).await; // fresh, written (1 chunk)
    let one = login.cookie_header();
    assert_eq!(login.chunks(), 1, "{}", S::NAME);
    get(&client, &url("/whoami"), Some(&one)).await; // opened, unchanged
    let grown = get(&client, &url("/grow?bytes=7000"), Some(&one)).await; // opened, written
    assert_eq!(grown.chunks(), 3, "{}", S::NAME);
    let too_big = get(&client, &url("/too-big"), Some(&one)).await; // opened, over budget
    assert_eq!(too_big.status, 500, "{}", S::NAME);
    let reasons = rejections(id, &key, &one);
    for (reason, cookie) in &reasons {
        let answer = get(&client, &url("/whoami"), Some(cookie)).await; // rejected, removed
        assert!(answer.set_cookies.iter().all(|line| line.contains("Max-Age=0")), "{reason}");
        assert!(!answer.set_cookies.is_empty(), "{reason}: the cookies are removed");
    }
    get(&client, &url("/logout"), Some(&one)).await; // opened, removed
    let delta = Delta { before, after: render() };
    server.stop().await;

    let id = id.to_string();
    let rejected = reasons.len() as f64;
    let mut expected = vec![
        (SESSIONS, vec![("outcome", "fresh")], 2.0),
        (SESSIONS, vec![("outcome", "opened")], 4.0),
        (SAVES, vec![("result", "unchanged")], 2.0),
        (SAVES, vec![("result", "written")], 2.0),
        (SAVES, vec![("result", "over_budget")], 1.0),
        (SAVES, vec![("result", "removed")], rejected + 1.0),
        (KEY_USED, vec![("op", "seal"), ("key_id", id.as_str())], 2.0),
        (KEY_USED, vec![("op", "open"), ("key_id", id.as_str())], 4.0),
    ];
    for (reason, _) in &reasons {
        expected.push((SESSIONS, vec![("outcome", "rejected"), ("reason", reason)], 1.0));
    }
    for (name, labels, value) in &expected {
        assert_eq!(delta.of(name, labels), *value, "{}: {}", S::NAME, series(name, labels));
    }
    // Nothing else moved: no outcome, result or key counted that the script did not make.
    let keys: Vec<String> = expected.iter().map(|(name, labels, _)| series(name, labels)).collect();
    for name in [SESSIONS, SAVES, KEY_USED] {
        assert_eq!(delta.others(name, &keys), [], "{}", S::NAME);
    }
    // The sizes of the two written sessions.
    let bytes = (login.cookie_bytes() + grown.cookie_bytes()) as f64;
    let count = |name: &str| format!("{name}_count");
    let sum = |name: &str| format!("{name}_sum");
    let chunks_le = |le: &str| delta.of(&format!("{COOKIE_CHUNKS}_bucket"), &[("le", le)]);
    let table = [
        (count(COOKIE_BYTES), 2.0),
        (sum(COOKIE_BYTES), bytes),
        (count(COOKIE_CHUNKS), 2.0),
        (sum(COOKIE_CHUNKS), 4.0),
    ];
    for (name, value) in table {
        assert_eq!(delta.of(&name, &[]), value, "{}: {name}", S::NAME);
    }
    assert_eq!((chunks_le("1"), chunks_le("2"), chunks_le("4")), (1.0, 1.0, 2.0), "{}", S::NAME);
}

#[tokio::test]
async fn axum_requests_are_counted() {
    scripted::<Axum>(41).await;
}

#[tokio::test]
async fn actix_web_requests_are_counted() {
    scripted::<Actix>(42).await;
}

/// A store that never answers.
struct Unreachable;

impl RevocationStore for Unreachable {
    fn is_revoked<'a>(&'a self, _: Query<'a>) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async { Err(StoreError("unreachable".to_owned())) })
    }

    fn generation(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async { Err(StoreError("unreachable".to_owned())) })
    }

    fn revoke_lineage<'a>(
        &'a self,
        _: &'a [u8],
        _: sealed_session::SessionId,
        _: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Err(StoreError("unreachable".to_owned())) })
    }

    fn revoke_subject<'a>(&'a self, _: &'a [u8], _: u64) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async { Err(StoreError("unreachable".to_owned())) })
    }
}

/// The revocation answers through each adapter: not revoked, revoked, and a store that cannot
/// answer under each failure policy.
#[tokio::test]
async fn revocation_answers_are_counted() {
    let _serial = SERIAL.lock().await;
    let client = Client::new();
    for adapter in revoking::Adapter::all() {
        let before = render();
        let memory: revoking::MakeRevocation =
            Box::new(|| Revocation::new(MemoryRevocations::new(), "user"));
        let node = revoking::Node::start(adapter, codec(7, &Key::generate()), clock(), memory);
        let cookie = get(&client, &node.url("/login?user=ada"), None).await.cookie_header();
        get(&client, &node.url("/whoami"), Some(&cookie)).await; // not revoked
        let out = get(&client, &node.url("/logout-everywhere"), Some(&cookie)).await; // not revoked
        assert_eq!(out.status, 200, "{adapter:?}");
        get(&client, &node.url("/whoami"), Some(&cookie)).await; // revoked
        node.stop().await;
        for policy in [FailurePolicy::Accept, FailurePolicy::Reject] {
            let failing: revoking::MakeRevocation =
                Box::new(move || Revocation::new(Unreachable, "user").failure_policy(policy));
            let node = revoking::Node::start(adapter, codec(7, &Key::generate()), clock(), failing);
            let cookie = get(&client, &node.url("/login?user=ada"), None).await.cookie_header();
            get(&client, &node.url("/whoami"), Some(&cookie)).await; // unavailable
            node.stop().await;
        }
        let delta = Delta { before, after: render() };
        let table = [
            ("not_revoked", 2.0),
            ("revoked", 1.0),
            ("unavailable_accepted", 1.0),
            ("unavailable_rejected", 1.0),
        ];
        for (answer, value) in table {
            assert_eq!(delta.of(REVOCATION_CHECKS, &[("answer", answer)]), value, "{adapter:?}");
        }
    }
}

fn clock() -> ManualClock {
    ManualClock::new(t0())
}

/// Key ring reloads: a good file, then one that is refused (counted once, and the gauge up
/// while it stays), then a good one again (the gauge down).
#[tokio::test]
async fn key_ring_reloads_are_counted() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("ring.json");
    let ring = KeyRing::single(Key::generate());
    let file = sealed_session::keys::file::KeyRingFile::from_ring(&ring).to_json();
    std::fs::write(&path, file.as_bytes()).expect("written");
    // A ring file is a secret: the loader refuses one that others can read.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("permissions");
    let shared = sealed_session::SharedKeyRing::new(ring);
    let before = render();
    shared.reload_from_file(&path).expect("a valid file");
    std::fs::write(&path, b"{ not a key ring").expect("written");
    shared.reload_from_file(&path).expect_err("refused");
    let refused = render();
    let delta = Delta { before, after: refused.clone() };
    for (result, value) in [("ok", 1.0), ("error", 1.0)] {
        assert_eq!(delta.of(KEY_RING_RELOADS, &[("result", result)]), value, "{result}");
    }
    let gauge =
        |rendered: &HashMap<String, f64>| rendered.get(&series(KEY_RING_REFUSED, &[])).copied();
    assert_eq!(gauge(&refused), Some(1.0), "refused: the gauge is up");
    std::fs::write(&path, file.as_bytes()).expect("written");
    shared.reload_from_file(&path).expect("a valid file again");
    assert_eq!(gauge(&render()), Some(0.0), "loaded again: the gauge is down");
}

/// Every name the library records, from its constants.
const NAMES: [&str; 12] = [
    SESSIONS,
    SAVES,
    COOKIE_BYTES,
    COOKIE_CHUNKS,
    KEY_USED,
    REVOCATION_CHECKS,
    sealed_session::metrics::REPLICA_STALENESS,
    sealed_session::metrics::REPLICA_ENTRIES,
    sealed_session::metrics::REPLICA_QUEUE,
    sealed_session::metrics::REPLICA_RELOADS,
    KEY_RING_RELOADS,
    KEY_RING_REFUSED,
];

/// The README's table lists every metric, once, and docs/deploy.md's alerts name no other.
#[test]
fn the_documents_name_the_metrics() {
    let mut names: Vec<&str> = NAMES.to_vec();
    names.sort_unstable();
    let readme = include_str!("../README.md");
    let mut table: Vec<&str> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(name, _)| name))
        .filter(|name| name.starts_with("sealed_session_"))
        .collect();
    table.sort_unstable();
    assert_eq!(table, names, "the README's metrics table");

    let deploy = include_str!("../docs/deploy.md");
    let mut named = Vec::new();
    for (start, _) in deploy.match_indices("sealed_session_") {
        let rest = &deploy[start..];
        let end = rest.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(rest.len());
        let name = &rest[..end];
        if name.ends_with('_') {
            continue; // `sealed_session_*`, the prefix
        }
        let series = ["_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s));
        named.push(series.unwrap_or(name));
    }
    assert!(named.len() >= 8, "the alert table names the metrics: {named:?}");
    for name in named {
        assert!(names.contains(&name), "docs/deploy.md names {name}, which is not recorded");
    }
}

/// The replica's gauges and reloads, against a real `redis-server`: current with what it
/// holds, then Redis gone: the queue grows, the staleness passes the bound, reloads fail.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_is_sampled() {
    use sealed_session::metrics::{
        REPLICA_ENTRIES, REPLICA_QUEUE, REPLICA_RELOADS, REPLICA_STALENESS,
    };
    use sealed_session::revocation::ReplicatedRevocations;

    let _serial = SERIAL.lock().await;
    let mut redis = redis_server::RedisServer::start();
    // Redis answers a blocking read's timeout on its timer tick (100 ms at the default `hz`),
    // so a bound of a few hundred milliseconds leaves the proof little room on a loaded machine.
    let staleness = Duration::from_millis(600);
    let store = ReplicatedRevocations::builder()
        .prefix("metrics-test")
        .staleness(staleness)
        .build(&redis.url())
        .expect("a valid URL, inside a runtime");
    let before = render();
    store.ready(Duration::from_secs(10)).await.expect("the replica loads");
    let revocation = Revocation::new(store.clone(), "user");
    let config = config();
    for user in ["ada", "bob"] {
        revocation.revoke_subject(user, SystemTime::now(), &config).await.expect("Redis is up");
    }
    // Sampled at least once per staleness bound.
    let gauge = |name: &str| render().get(name).copied();
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let started = std::time::Instant::now();
        while !done() {
            assert!(started.elapsed() < Duration::from_secs(10), "never: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    until("two entries", &|| gauge(REPLICA_ENTRIES) == Some(store.len() as f64));
    assert_eq!(store.len(), 2);
    // A write slower than the store's timeout is queued and sent again.
    until("an empty queue", &|| gauge(REPLICA_QUEUE) == Some(0.0));
    let fresh = gauge(REPLICA_STALENESS).expect("sampled");
    assert!(fresh < staleness.as_secs_f64(), "{fresh} s since the last proof while current");
    let reloads = |result: &str| {
        Delta { before: before.clone(), after: render() }.of(REPLICA_RELOADS, &[("result", result)])
    };
    // A new deployment's replica loads, holds for the bound, and loads again.
    assert!(reloads("ok") >= 1.0, "loaded at start");
    assert_eq!(reloads("error"), 0.0);

    redis.stop();
    revocation.revoke_subject("cy", SystemTime::now(), &config).await.ok();
    until("the queue", &|| gauge(REPLICA_QUEUE) == Some(1.0));
    until("stale", &|| gauge(REPLICA_STALENESS).is_some_and(|s| s > staleness.as_secs_f64()));
    until("failed reloads", &|| reloads("error") > 0.0);
}
