//! Key rotation across a fleet: three codec instances ("nodes") in one process serve many users
//! round robin while a staged rotation rolls out node by node, activates, and the old key is
//! retired. No session may be rejected. The same run with the new key activated immediately
//! must show rejections, which proves the test can fail.
//!
//! Also: hot reload of a key ring file under concurrent load, invalid files included.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use sealed_session::keys::file::KeyRingFile;
use sealed_session::{
    Key, KeyId, KeyRing, RejectReason, Session, SessionCodec, SessionConfig, SharedKeyRing,
};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
/// Not a multiple of the node count, so round robin sends each user to every node in turn.
const USERS: usize = 121;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn config() -> SessionConfig {
    SessionConfig::builder("session")
        .idle_timeout(30 * MINUTE)
        .absolute_timeout(2 * HOUR)
        .build()
        .unwrap()
}

/// A browser's cookie jar for one site, enough for these tests.
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn header(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn apply(&mut self, set_cookies: sealed_session::SetCookies) {
        for cookie in set_cookies {
            if cookie.max_age() == Some(cookie::time::Duration::ZERO) {
                self.0.remove(cookie.name());
            } else {
                self.0.insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
    }
}

#[derive(Default)]
struct Counts {
    requests: usize,
    logins: usize,
    expired: usize,
    rejected: Vec<RejectReason>,
}

impl std::fmt::Debug for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "users={USERS} nodes=3 requests={} logins={} expired={} rejected={} {:?}",
            self.requests,
            self.logins,
            self.expired,
            self.rejected.len(),
            self.rejected.first()
        )
    }
}

struct Fleet {
    nodes: Vec<(SessionCodec, SharedKeyRing)>,
    users: Vec<Jar>,
    next_node: usize,
    counts: Counts,
}

impl Fleet {
    fn new(ring: &KeyRing) -> Fleet {
        let nodes = (0..3)
            .map(|_| {
                let keys = SharedKeyRing::new(ring.clone());
                (SessionCodec::new(config(), keys.clone()), keys)
            })
            .collect();
        Fleet {
            nodes,
            users: (0..USERS).map(|_| Jar::default()).collect(),
            next_node: 0,
            counts: Counts::default(),
        }
    }

    /// Every user makes one request, each to the next node in round robin. A user whose
    /// session ended by its absolute timeout logs in again; any other rejection is counted.
    fn traffic(&mut self, now: SystemTime) {
        for (user, jar) in self.users.iter_mut().enumerate() {
            let (codec, _) = &self.nodes[self.next_node];
            self.next_node = (self.next_node + 1) % self.nodes.len();
            self.counts.requests += 1;
            let mut session = match codec.open(&jar.header(), now) {
                Ok(session) => session,
                Err(rejection) => {
                    match rejection.reason() {
                        RejectReason::AbsoluteExpired => self.counts.expired += 1,
                        other => self.counts.rejected.push(other),
                    }
                    rejection.into_fresh_session()
                }
            };
            if session.get::<usize>("user").unwrap().is_none() {
                self.counts.logins += 1;
                session.renew();
                session.insert("user", user).unwrap();
            }
            assert_eq!(session.get::<usize>("user").unwrap(), Some(user));
            let visits = session.get::<u64>("visits").unwrap().unwrap_or(0);
            session.insert("visits", visits + 1).unwrap();
            if let Some(set_cookies) = codec.save(&mut session, now).unwrap() {
                jar.apply(set_cookies);
            }
        }
    }

    fn roll_out(&mut self, node: usize, ring: &KeyRing) {
        self.nodes[node].1.replace(ring.clone());
    }

    /// Which key each user's session is sealed under, as a node opening it sees it.
    fn key_ids(&self, now: SystemTime) -> Vec<Option<KeyId>> {
        let (codec, _) = &self.nodes[0];
        self.users
            .iter()
            .map(|jar| codec.open(&jar.header(), now).ok().and_then(|s| s.key_id()))
            .collect()
    }
}

/// Runs the rotation; `activate_in` is the delay between adding the new key and its activation.
fn rolling_rotation(activate_in: Duration) -> Counts {
    let mut now = t0();
    let mut v1 = KeyRing::new();
    v1.insert(KeyId(1), Key::generate(), now - HOUR, now - HOUR).unwrap();
    let mut fleet = Fleet::new(&v1);
    let step = |fleet: &mut Fleet, now: &mut SystemTime, minutes: u32| {
        for _ in 0..minutes / 10 {
            *now += 10 * MINUTE;
            fleet.traffic(*now);
        }
    };
    step(&mut fleet, &mut now, 30);

    // Stage: a ring with a second key, pending until `activate_in` from now, rolled out one
    // node at a time with traffic in between.
    let mut v2 = v1.clone();
    v2.insert(KeyId(2), Key::generate(), now, now + activate_in).unwrap();
    let activation = now + activate_in;
    // Two requests per user per node, so users reach nodes the ring has not reached yet.
    for node in 0..3 {
        fleet.roll_out(node, &v2);
        step(&mut fleet, &mut now, 20);
    }
    // Activation, then enough traffic for every live session to be resealed under key 2.
    while now < activation + 20 * MINUTE {
        step(&mut fleet, &mut now, 10);
    }
    assert!(fleet.key_ids(now).iter().all(|id| *id == Some(KeyId(2))), "all resealed under key 2");

    // Retire key 1 once no live session can carry it: its successor's activation plus the
    // absolute timeout. Roll the smaller ring out node by node.
    while now < activation + config().absolute_timeout() {
        step(&mut fleet, &mut now, 10);
    }
    let mut v3 = v2.clone();
    assert!(v3.remove(KeyId(1)));
    for node in 0..3 {
        fleet.roll_out(node, &v3);
        step(&mut fleet, &mut now, 10);
    }
    step(&mut fleet, &mut now, 60);
    fleet.counts
}

#[test]
fn staged_rotation_rejects_no_session() {
    let counts = rolling_rotation(HOUR);
    println!("staged rotation: {counts:?}");
    assert!(counts.requests > 3_000, "{counts:?}");
    assert!(counts.expired > 0, "absolute timeouts happened and were re-logged in: {counts:?}");
    assert_eq!(counts.rejected, Vec::new(), "no session rejected");
}

#[test]
fn immediate_activation_rejects_sessions() {
    // The new key seals on node 0 before nodes 1 and 2 know it: users bouncing between nodes
    // are rejected. This is what staged activation prevents.
    let counts = rolling_rotation(Duration::ZERO);
    println!("immediate activation: {counts:?}");
    assert!(!counts.rejected.is_empty(), "{counts:?}");
    assert!(counts.rejected.iter().all(|r| *r == RejectReason::UnknownKey(KeyId(2))), "{counts:?}");
}

/// Writes a ring file atomically (temporary file and rename), mode 0600.
fn write_ring(path: &std::path::Path, contents: &[u8]) {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).unwrap();
    file.write_all(contents).unwrap();
    file.sync_all().unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn hot_reload_under_concurrent_load_never_fails_a_request() {
    let dir = std::env::temp_dir().join(format!("ss-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ring.json");
    let now = SystemTime::now();

    let mut ring = KeyRing::new();
    ring.insert(KeyId(1), Key::generate(), now - HOUR, now - HOUR).unwrap();
    write_ring(&path, KeyRingFile::from_ring(&ring).to_json().as_bytes());
    let keys = SharedKeyRing::new(sealed_session::keys::file::load_file(&path).unwrap());
    let codec = Arc::new(SessionCodec::new(config(), keys.clone()));
    let watcher = keys.watch_file(&path, Duration::from_millis(5));

    // Sessions sealed before any reload must keep opening, and new ones must seal and open.
    let mut seed = Session::new();
    seed.insert("user", "ada").unwrap();
    let header = codec.seal(&mut seed, now).unwrap().request_header();

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (codec, stop, served, header) =
                (Arc::clone(&codec), Arc::clone(&stop), Arc::clone(&served), header.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match codec.open(&header, now) {
                        Ok(session)
                            if session.get::<String>("user").unwrap().as_deref() == Some("ada") => {
                        }
                        other => failures.push(format!("open: {other:?}")),
                    }
                    let mut session = Session::new();
                    session.insert("n", 1u8).unwrap();
                    match codec
                        .seal(&mut session, now)
                        .map(|c| codec.open(&c.request_header(), now))
                    {
                        Ok(Ok(_)) => {}
                        other => failures.push(format!("round trip: {other:?}")),
                    }
                    served.fetch_add(1, Ordering::Relaxed);
                }
                failures
            })
        })
        .collect();

    // Replace the file many times: growing rings (key 1 always kept), and invalid files.
    let mut reloads = 0;
    for round in 0..40u32 {
        if round % 4 == 3 {
            write_ring(&path, b"{ not a key ring");
        } else {
            let created = now - HOUR;
            ring.insert(KeyId(100 + round), Key::generate(), created, created + MINUTE * round)
                .unwrap();
            write_ring(&path, KeyRingFile::from_ring(&ring).to_json().as_bytes());
            reloads += 1;
        }
        std::thread::sleep(Duration::from_millis(15));
    }
    // Finish on a valid file and wait until the watcher has loaded it (requests still running).
    write_ring(&path, KeyRingFile::from_ring(&ring).to_json().as_bytes());
    let started = std::time::Instant::now();
    while keys.snapshot().len() != ring.len() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    drop(watcher);

    println!(
        "hot reload: {} requests served, {reloads} valid and 10 invalid files written, {} keys in service",
        served.load(Ordering::Relaxed),
        keys.snapshot().len()
    );
    assert!(failures.is_empty(), "{} failures, first: {:?}", failures.len(), failures.first());
    assert!(served.load(Ordering::Relaxed) > 0);
    assert_eq!(keys.snapshot().len(), ring.len(), "the last valid file is in service");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_invalid_file_keeps_the_last_good_ring() {
    let dir = std::env::temp_dir().join(format!("ss-reload-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ring.json");
    let ring = KeyRing::single(Key::generate());
    let keys = SharedKeyRing::new(ring.clone());
    for bad in [&b"{"[..], br#"{"version":1,"keys":[]}"#, br#"{"version":9,"keys":[]}"#] {
        write_ring(&path, bad);
        assert!(keys.reload_from_file(&path).is_err());
        assert_eq!(keys.snapshot().secret(KeyId(1)), ring.secret(KeyId(1)));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A ring of one key (id 1) with a fixed secret and fixed times: rings built from different
/// bytes have JSON of exactly the same length, so one can overwrite the other in place.
fn fixed_ring(byte: u8, now: SystemTime) -> KeyRing {
    let mut ring = KeyRing::new();
    let at = SystemTime::UNIX_EPOCH
        + Duration::from_secs(now.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs())
        - HOUR;
    ring.insert(KeyId(1), Key::from_bytes([byte; 32]), at, at).unwrap();
    ring
}

/// A writer rewrites the file in place (same size, no truncation, two writes per rewrite, as
/// an editor or a config tool writing through an open file does) while the watcher reloads
/// it. The file is torn between the two writes (valid JSON, half old and half new secret);
/// the ring in service must always be exactly the old or the new one, never the torn mix.
/// Fails without the file's checksum: the watcher loads torn secrets in most runs of a few.
#[test]
fn a_file_rewritten_in_place_is_never_loaded_torn() {
    use std::os::unix::fs::FileExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.json");
    let now = SystemTime::now();
    let rings = [fixed_ring(0xAA, now), fixed_ring(0x55, now)];
    let texts = rings.each_ref().map(|ring| KeyRingFile::from_ring(ring).to_json());
    assert_eq!(texts[0].len(), texts[1].len(), "the two files must have the same size");
    let secrets = rings.each_ref().map(|ring| ring.secret(KeyId(1)).unwrap().clone());
    write_ring(&path, texts[0].as_bytes());

    let keys = SharedKeyRing::new(rings[0].clone());
    let watcher = keys.watch_file(&path, Duration::from_millis(1));
    let stop = Arc::new(AtomicBool::new(false));
    let checker = {
        let (keys, stop, secrets) = (keys.clone(), Arc::clone(&stop), secrets.clone());
        std::thread::spawn(move || {
            let (mut torn, mut seen) = (0usize, 0usize);
            let mut last = keys.snapshot();
            while !stop.load(Ordering::Relaxed) {
                let ring = keys.snapshot();
                if Arc::ptr_eq(&ring, &last) {
                    std::thread::yield_now();
                    continue;
                }
                seen += 1;
                if !secrets.iter().any(|secret| ring.secret(KeyId(1)) == Some(secret)) {
                    torn += 1;
                }
                last = ring;
            }
            (torn, seen)
        })
    };

    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let rewrites = 200;
    for round in 0..rewrites {
        let text = texts[(round + 1) % 2].as_bytes();
        let half = text.len() / 2;
        file.write_all_at(&text[..half], 0).unwrap();
        // The torn state lasts a moment, as any write of more than one block may.
        std::thread::sleep(Duration::from_millis(1));
        file.write_all_at(&text[half..], half as u64).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    // Liveness guard, not a speed target: wait (generously) for the last file to be served.
    let last = &secrets[rewrites % 2];
    for _ in 0..10_000 {
        if keys.snapshot().secret(KeyId(1)) == Some(last) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    let (torn, seen) = checker.join().unwrap();
    drop(watcher);
    println!("in-place rewrites: {rewrites} rewrites, {seen} rings put in service, {torn} torn");
    assert_eq!(torn, 0, "{torn} torn rings of {seen} were put in service");
    assert!(seen > 0, "the watcher reloaded nothing");
    assert_eq!(keys.snapshot().secret(KeyId(1)), Some(last), "the last file is in service");
}

/// A rewrite in place that leaves the watcher's file times as they were is still seen. File
/// times are coarse (a few milliseconds, or a second on some file systems), so a write within
/// the same tick as the previous one changes neither the modification time nor, for a ring of
/// the same size, the size or inode:
/// - torn: a check reads the first half (refused by its checksum), and the rest lands within
///   the same tick. Without reading a refused file again, the old ring stayed in service until
///   the next change.
/// - whole: the new file in one write. Without the digest of the file's bytes in the
///   fingerprint, the old ring stayed in service until the next change.
#[test]
fn a_rewrite_within_the_same_time_tick_is_reloaded() {
    use std::os::unix::fs::FileExt as _;
    // (case, the offsets at which the new file is split into writes)
    let table: [(&str, &[usize]); 2] = [("torn", &[1, 2]), ("whole", &[2])];
    for (case, halves) in table {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring.json");
        let now = SystemTime::now();
        let rings = [fixed_ring(0xAA, now), fixed_ring(0x55, now)];
        let [old, new] = rings.each_ref().map(|ring| KeyRingFile::from_ring(ring).to_json());
        assert_eq!(old.len(), new.len(), "{case}: the two files are the same size");
        write_ring(&path, old.as_bytes());
        let tick = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_modified(tick).unwrap();
        let keys = SharedKeyRing::new(rings[0].clone());
        let watcher = keys.watch_file(&path, Duration::from_millis(5));
        std::thread::sleep(Duration::from_millis(50));

        let mut from = 0;
        for &half in halves {
            let to = new.len() * half / 2;
            file.write_all_at(&new.as_bytes()[from..to], from as u64).unwrap();
            file.set_modified(tick).unwrap();
            from = to;
            if to < new.len() {
                std::thread::sleep(Duration::from_millis(100));
                let ring = keys.snapshot();
                assert_eq!(
                    ring.secret(KeyId(1)),
                    rings[0].secret(KeyId(1)),
                    "{case}: torn refused"
                );
            }
        }
        // Liveness guard, not a speed target.
        for _ in 0..10_000 {
            if keys.snapshot().secret(KeyId(1)) == rings[1].secret(KeyId(1)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(watcher);
        let ring = keys.snapshot();
        assert_eq!(ring.secret(KeyId(1)), rings[1].secret(KeyId(1)), "{case}: new ring in service");
    }
}

/// Issue 25, item 6: `SharedKeyRing::watching_file` keeps its watch for as long as a clone of
/// the ring lives, with no watcher for the caller to keep (or drop by mistake). The handle the
/// call returned is moved into a codec; a rotation written later still reaches that codec. When
/// the codec (the last clone) goes, the watch ends with it: the file's directory can be removed
/// and nothing reloads.
#[test]
fn a_ring_watching_its_file_keeps_watching_without_a_watcher_to_keep() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.json");
    let now = SystemTime::now();
    let mut ring = KeyRing::new();
    ring.insert(KeyId(1), Key::generate(), now - HOUR, now - HOUR).unwrap();
    write_ring(&path, KeyRingFile::from_ring(&ring).to_json().as_bytes());

    let codec = SessionCodec::new(
        config(),
        SharedKeyRing::watching_file(&path, Duration::from_millis(5)).unwrap(),
    );
    let rotated = [(1u32, 1usize), (2, 2), (3, 3)];
    for (id, expected_len) in rotated {
        if id > 1 {
            ring.insert(KeyId(id), Key::generate(), now, now).unwrap();
            write_ring(&path, KeyRingFile::from_ring(&ring).to_json().as_bytes());
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while codec.keys().snapshot().len() != expected_len {
            assert!(std::time::Instant::now() < deadline, "key {id} never reached the codec");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // The last clone goes: its watch is stopped (joined), so dropping returns promptly.
    let started = std::time::Instant::now();
    drop(codec);
    assert!(started.elapsed() < Duration::from_secs(5), "the watch did not stop");
}

/// A FIFO renamed over the watched file, then a valid ring renamed back: the watcher refuses
/// the FIFO (the loader's own checks, not a blocking read) and loads the ring. On main the
/// watcher's fingerprint read the FIFO with `std::fs::read`, which blocks until a writer comes:
/// the watch hung there and the valid ring was never loaded. A link to the FIFO is kept, so a
/// hung watcher can be released before failing (and the test end).
#[cfg(unix)]
#[test]
fn a_fifo_at_the_watched_path_does_not_stop_the_watch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.json");
    let now = SystemTime::now();
    let rings = [fixed_ring(0xAA, now), fixed_ring(0x55, now)];
    write_ring(&path, KeyRingFile::from_ring(&rings[0]).to_json().as_bytes());
    let keys = SharedKeyRing::new(rings[0].clone());
    let watcher = keys.watch_file(&path, Duration::from_millis(5));

    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg("-m").arg("600").arg(&fifo).status();
    assert!(made.unwrap().success(), "mkfifo");
    let kept = dir.path().join("fifo-kept");
    std::fs::hard_link(&fifo, &kept).unwrap();
    std::fs::rename(&fifo, &path).unwrap();
    // The watcher sees the FIFO (or hangs on it): give it a few checks.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while keys.health(SystemTime::now()).last_reload_error.is_none()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    write_ring(&path, KeyRingFile::from_ring(&rings[1]).to_json().as_bytes());
    // Liveness guard, not a speed target.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while keys.snapshot().secret(KeyId(1)) != rings[1].secret(KeyId(1))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let loaded = keys.snapshot().secret(KeyId(1)) == rings[1].secret(KeyId(1));
    if !loaded {
        // Release a watcher stuck opening the FIFO, so dropping it can join its thread.
        // (Without blocking: with no reader waiting the open fails at once.)
        let mut options = std::fs::OpenOptions::new();
        options.write(true);
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
        let _ = options.open(&kept);
    }
    drop(watcher);
    assert!(loaded, "the valid ring renamed back over the FIFO was never loaded");
    let error = keys.health(SystemTime::now()).last_reload_error;
    assert!(error.is_none(), "{error:?}");
}
