//! Rotation on a schedule over a simulated year: three nodes with skewed clocks, users bouncing
//! between them at their own rhythms, the ring's keys derived per period from one root, and the
//! scheduled command (`keys rotate --if-due`, as `keys::file::due_at`) run on every node at
//! random times. Once with one ring file shared by the nodes, once with a copy per node (as a
//! Secret volume or each node's disk holds it). No session may be rejected, every key must leave
//! the ring exactly when the policy says, and no key id may ever name two secrets.
//!
//! `SEALED_SESSION_YEAR_DAYS` shortens or lengthens the run (365 by default).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sealed_session::keys::file::{KeyRingFile, due_at, load_file_at};
use sealed_session::{
    Key, KeyId, KeyRing, RejectReason, RotationPolicy, Schedule, SessionCodec, SessionConfig,
    SharedKeyRing,
};

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;
/// Each user visits every this many hours (offset by its index), so some sessions sit idle
/// across a key change and come back to another node.
const RHYTHMS: [u64; 8] = [1, 1, 2, 3, 5, 7, 11, 13];
/// Node clocks: behind, on time, ahead; at most the configured skew (60s) apart.
const SKEWS: [i64; 3] = [-30, 0, 30];
const CLOCK_SKEW: u64 = 60;

fn config() -> SessionConfig {
    SessionConfig::builder("session")
        .idle_timeout(Duration::from_secs(14 * HOUR))
        .absolute_timeout(Duration::from_secs(12 * HOUR))
        .clock_skew(Duration::from_secs(CLOCK_SKEW))
        .build()
        .unwrap()
}

fn policy() -> RotationPolicy {
    // A month per key, so a year has twelve changes; retirement from the servers' settings.
    RotationPolicy {
        lifetime: Duration::from_secs(30 * DAY),
        lead: Duration::from_secs(DAY),
        ..RotationPolicy::for_sessions(config().absolute_timeout(), config().clock_skew())
    }
}

fn secs(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// xorshift64: deterministic, so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn write_ring(path: &Path, ring: &KeyRing) {
    // Atomically, as the CLI does: a reader sees the old file or the new one.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, KeyRingFile::from_ring(ring).to_json().as_bytes()).unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Node {
    file: PathBuf,
    keys: SharedKeyRing,
    codec: SessionCodec,
    skew: i64,
    /// The file text this node last loaded (a watcher's "changed?").
    seen: String,
}

#[derive(Debug, Default)]
struct Outcome {
    requests: u64,
    expired: u64,
    rejected: Vec<RejectReason>,
    /// Times a key was in a node's ring when the policy says it must not be, or missing when it
    /// must be there.
    off_schedule: Vec<String>,
    /// Scheduled command runs, and those that wrote.
    command_runs: u64,
    command_writes: u64,
    keys_seen: usize,
}

/// The keys the policy says are in service at `now`: the hand-made key until the first
/// derived key has sealed for `retire_after`; derived key `n` from its lead time before
/// activation until `retire_after` past the next activation. Computed here from the policy
/// alone, not by the library.
fn expected_ids(handmade: KeyId, schedule: &Schedule, now: u64) -> Vec<KeyId> {
    let p = schedule.policy();
    let (l, lead, r) = (p.lifetime.as_secs(), p.lead.as_secs(), p.retire_after.as_secs());
    let epoch = sealed_session_epoch(schedule);
    let mut ids = Vec::new();
    if now < epoch + r {
        ids.push(handmade);
    }
    for n in 0..64u64 {
        let known = epoch + n * l - lead;
        let gone = epoch + (n + 1) * l + r;
        if known <= now && now < gone {
            ids.push(KeyId(schedule.id_base().0 + n as u32));
        }
    }
    ids.sort();
    ids
}

fn sealed_session_epoch(schedule: &Schedule) -> u64 {
    schedule.epoch().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

/// Runs the year; `shared` puts every node on one file, otherwise each has its own copy.
fn year(shared: bool, days: u64) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let t0: u64 = 1_800_000_000;
    // Day 0: a ring with one hand-made key; the operator adds the schedule (its first key
    // seals after the lead time) and copies the file to every node.
    let mut ring = KeyRing::new();
    let handmade = KeyId(7);
    ring.insert(handmade, Key::generate(), at(t0 - DAY), at(t0 - DAY)).unwrap();
    let taken: Vec<KeyId> = ring.keys().map(|k| k.id).collect();
    let id_base = Schedule::fresh_id_base(taken.into_iter());
    let schedule =
        Schedule::new(Key::generate(), id_base, at(t0) + policy().lead, policy()).unwrap();
    ring.set_schedule(schedule.clone(), at(t0)).unwrap();
    let files: Vec<PathBuf> = (0..3)
        .map(|i| {
            dir.path().join(if shared { "ring.json".to_owned() } else { format!("ring-{i}.json") })
        })
        .collect();
    for file in &files {
        write_ring(file, &ring);
    }
    let mut nodes: Vec<Node> = files
        .iter()
        .zip(SKEWS)
        .map(|(file, skew)| {
            let now = at(t0.saturating_add_signed(skew));
            let keys = SharedKeyRing::new(load_file_at(file, now).unwrap());
            Node {
                file: file.clone(),
                codec: SessionCodec::new(config(), keys.clone()),
                keys,
                skew,
                seen: std::fs::read_to_string(file).unwrap(),
            }
        })
        .collect();

    let mut rng = Rng(0x5eed_0000 + u64::from(shared));
    let mut jars: Vec<Option<String>> = vec![None; RHYTHMS.len()];
    // Per user: when its session was issued, and when it ends (absolute or idle, whichever
    // first), as the test sees it.
    let (mut issued, mut ends) = (vec![0u64; RHYTHMS.len()], vec![0u64; RHYTHMS.len()]);
    let mut secrets: HashMap<KeyId, [u8; 32]> = HashMap::new();
    let mut outcome = Outcome::default();
    for hour in 0..days * 24 {
        let base = t0 + hour * HOUR;
        // Watchers: a node reloads its file when it changed.
        for node in &mut nodes {
            let text = std::fs::read_to_string(&node.file).unwrap();
            if text != node.seen {
                let now = at(base.saturating_add_signed(node.skew));
                node.keys.replace(load_file_at(&node.file, now).unwrap());
                node.seen = text;
            }
        }
        // Every node's ring at the top of the hour (before this hour's requests move it on):
        // on schedule, and one secret per id across the fleet.
        for (i, node) in nodes.iter().enumerate() {
            let now = base.saturating_add_signed(node.skew);
            let ring = node.keys.snapshot_at(at(now));
            let mut ids: Vec<KeyId> = ring.keys().map(|k| k.id).collect();
            ids.sort();
            let expected = expected_ids(handmade, &schedule, now);
            if ids != expected {
                outcome.off_schedule.push(format!("node {i} at {now}: {ids:?} != {expected:?}"));
            }
            for id in ids {
                let secret = *ring.secret(id).unwrap().expose_secret();
                let first = *secrets.entry(id).or_insert(secret);
                assert!(first == secret, "key id {id} names two different secrets");
            }
        }
        // Users, each on its own rhythm, each request to a random node at a random minute.
        for (user, rhythm) in RHYTHMS.iter().enumerate() {
            if (hour + user as u64) % rhythm != 0 {
                continue;
            }
            let node = &nodes[rng.below(3) as usize];
            let now = base + rng.below(60) * MINUTE;
            let now = at(now.saturating_add_signed(node.skew));
            outcome.requests += 1;
            let header = jars[user].clone().unwrap_or_default();
            let mut session = match node.codec.open(&header, now) {
                Ok(session) => session,
                Err(rejection) => {
                    match rejection.reason() {
                        RejectReason::AbsoluteExpired | RejectReason::IdleExpired => {
                            outcome.expired += 1
                        }
                        // A retired key is looked up before the session's times can be read, so a
                        // session that ended on its own (by the test's record, with every clock
                        // difference allowed for) comes back as `unknown_key`: expired too.
                        RejectReason::UnknownKey(_)
                            if secs(now) > ends[user].saturating_add(2 * CLOCK_SKEW) =>
                        {
                            outcome.expired += 1;
                        }
                        other => outcome.rejected.push(other),
                    }
                    rejection.into_fresh_session()
                }
            };
            if session.get::<usize>("user").unwrap().is_none() {
                session.renew();
                session.insert("user", user).unwrap();
                issued[user] = secs(now);
            }
            let config = config();
            ends[user] = (issued[user] + config.absolute_timeout().as_secs())
                .min(secs(now) + config.idle_timeout().as_secs());
            assert_eq!(session.get::<usize>("user").unwrap(), Some(user));
            if let Some(cookies) = node.codec.save(&mut session, now).unwrap() {
                for cookie in cookies {
                    jars[user] = Some(format!("{}={}", cookie.name(), cookie.value()));
                }
            }
        }
        // The scheduled command, on every node at a random minute about once a day.
        for node in &nodes {
            if rng.below(24) != 0 {
                continue;
            }
            let now = at((base + rng.below(60) * MINUTE).saturating_add_signed(node.skew));
            let due = due_at(&std::fs::read_to_string(&node.file).unwrap(), now).unwrap();
            outcome.command_runs += 1;
            if !due.retired.is_empty() {
                write_ring(&node.file, &due.ring);
                outcome.command_writes += 1;
            }
        }
    }
    outcome.keys_seen = secrets.len();
    outcome
}

fn days() -> u64 {
    std::env::var("SEALED_SESSION_YEAR_DAYS").ok().and_then(|d| d.parse().ok()).unwrap_or(365)
}

#[test]
fn a_year_on_one_shared_ring_rejects_nothing_and_retires_on_time() {
    check(year(true, days()), days());
}

#[test]
fn a_year_on_a_copy_per_node_rejects_nothing_and_retires_on_time() {
    check(year(false, days()), days());
}

fn check(outcome: Outcome, days: u64) {
    println!(
        "requests={} expired={} rejected={} command runs={} writes={} keys={}",
        outcome.requests,
        outcome.expired,
        outcome.rejected.len(),
        outcome.command_runs,
        outcome.command_writes,
        outcome.keys_seen
    );
    assert!(outcome.requests > days * 24, "{outcome:?}");
    let by_reason: BTreeMap<&str, usize> =
        outcome.rejected.iter().fold(BTreeMap::new(), |mut map, reason| {
            *map.entry(reason.code()).or_default() += 1;
            map
        });
    assert!(by_reason.is_empty(), "rejected sessions: {by_reason:?}");
    assert!(
        outcome.off_schedule.is_empty(),
        "{} times off schedule, first: {:?}",
        outcome.off_schedule.len(),
        outcome.off_schedule.first()
    );
    // The hand-made key and one derived key per 30 days, plus the one known ahead.
    assert!(outcome.keys_seen as u64 > days / 30, "{outcome:?}");
    // The hand-made key's retirement was written out by the command (at least once per file).
    assert!(outcome.command_writes >= 1, "{outcome:?}");
}

/// The worst case the retirement delay must cover, at the second: node C (clock 30s ahead)
/// issues a session just after key 1 activated; node B (30s behind, so 60s apart, the
/// configured skew) reseals it with key 0, which it still considers current; the session lives
/// until its issue time plus the absolute timeout, and C grants its end one more skew. Key 0
/// must still be in C's ring then: `retire_after` = absolute timeout + 2 × skew. With one skew
/// it is gone a minute early.
#[test]
fn retirement_covers_an_issue_time_from_a_clock_ahead_and_the_skew_allowance() {
    let config = config();
    let (abs, skew) = (config.absolute_timeout().as_secs(), config.clock_skew().as_secs());
    let epoch: u64 = 1_800_000_000;
    let policy = RotationPolicy {
        lifetime: Duration::from_secs(DAY),
        lead: Duration::from_secs(HOUR),
        ..RotationPolicy::for_sessions(config.absolute_timeout(), config.clock_skew())
    };
    let schedule = Schedule::new(Key::generate(), KeyId(0x8000_0000), at(epoch), policy).unwrap();
    let mut ring = KeyRing::new();
    ring.set_schedule(schedule, at(epoch)).unwrap();
    let node = || SessionCodec::new(config.clone(), SharedKeyRing::new(ring.clone()));
    let (b, c) = (node(), node());
    let activation = epoch + DAY; // key 1 (0x80000001) seals from here
    // True time activation + 29: C reads activation + 59, B reads activation - 1.
    let (c_now, b_now) = (activation + 59, activation - 1);
    let mut session = c.open("", at(c_now)).unwrap();
    session.insert("user", 1).unwrap();
    let cookie = |set: sealed_session::SetCookies| {
        set.into_iter()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let header = cookie(c.save(&mut session, at(c_now)).unwrap().unwrap());
    let mut session = b.open(&header, at(b_now)).unwrap();
    session.insert("seen", true).unwrap();
    let header = cookie(b.save(&mut session, at(b_now)).unwrap().unwrap());
    assert_eq!(b.open(&header, at(b_now)).unwrap().key_id(), Some(KeyId(0x8000_0000)));
    // The last second C still accepts the session: its issue time + absolute timeout + skew.
    let last = c_now + abs + skew;
    let opened = c.open(&header, at(last));
    assert!(opened.is_ok(), "rejected at its last valid second: {:?}", opened.err());
}

/// A clock stepped backward (NTP correcting a clock that ran ahead, a VM restored from a
/// snapshot) gets the ring of the time it reads, not the one taken at the later time. Each
/// row reads the clock at a time, seals a session and opens it: the key that sealed it is the
/// one of that time. On main the ring taken a day after the first derived key activated (the
/// hand-made key retired by then) stayed in service when the clock went back before that
/// activation: no key was current, and every save failed with `NoActiveKey`.
#[test]
fn a_clock_stepped_backward_gets_the_ring_of_its_time() {
    let epoch: u64 = 1_800_000_000;
    let mut ring = KeyRing::new();
    ring.insert(KeyId(1), Key::generate(), at(epoch - 2 * DAY), at(epoch - 2 * DAY)).unwrap();
    let schedule = Schedule::new(Key::generate(), KeyId(0x8000_0000), at(epoch), policy()).unwrap();
    ring.set_schedule(schedule, at(epoch - HOUR)).unwrap();
    let codec = SessionCodec::new(config(), SharedKeyRing::new(ring));
    let cookie = |set: sealed_session::SetCookies| {
        set.into_iter()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let (handmade, derived) = (KeyId(1), KeyId(0x8000_0000));
    // (the clock's move, the time it reads, the key sealing then)
    let table = [
        ("start, before the first derived key", epoch - HOUR, handmade),
        ("forward past the hand-made key's retirement", epoch + DAY, derived),
        ("back before the first derived key", epoch - HOUR, handmade),
        ("forward again", epoch + 2 * DAY, derived),
        ("back by a day, within the same keys", epoch + DAY, derived),
    ];
    for (step, now, key) in table {
        let mut session = codec.open("", at(now)).unwrap();
        session.insert("user", 1).unwrap();
        let saved = codec.save(&mut session, at(now));
        let set = saved.unwrap_or_else(|error| panic!("{step}: {error}")).unwrap();
        let opened = codec.open(&cookie(set), at(now)).unwrap();
        assert_eq!(opened.key_id(), Some(key), "{step}");
    }
}
