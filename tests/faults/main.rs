//! The revocation fault suite (issue 23, "What it must show"): three node processes, each with
//! its own `ReplicatedRevocations`, on real `redis-server`s (127.0.0.1, free ports), through
//! every fault of the issue, each under both failure policies:
//!
//! | scenario | fault |
//! |---|---|
//! | `killed_restarted_empty` | Redis SIGKILLed, a revocation made while it is down, an empty server on the same port |
//! | `hung` | Redis SIGSTOPped for less than the bound, then again for longer |
//! | `flushall` | `FLUSHALL` without a restart, a node started right after |
//! | `trimmed_under_a_paused_node` | a node SIGSTOPped past the bound, revocations made and the stream trimmed meanwhile |
//! | `failover` | the primary SIGKILLed, its replica promoted, the nodes' address repointed |
//! | `partitioned_skewed` | two nodes cut off, clocks 30 s slow and 30 s fast (`faketime`) |
//! | `cap_then_empty_restart` | every node past its entry cap, then Redis restarted empty |
//! | `cap_then_restart_from_an_older_save` | the same, Redis restarted from a `SAVE` made before the logouts |
//!
//! Every answer of every node is judged as it comes (`Ledger::judge`). A revocation is **lost**
//! when a node answers "not revoked" for it although the node refused it before (it knew it),
//! or although the node says it is current and the revocation reached Redis more than the
//! staleness bound earlier (a current node has missed nothing older than the bound); or when a
//! node hands a revocation it knew to the failure policy. Every scenario ends with the fleet
//! current, plus a node started afterwards, answering every session right. Under `Reject`, a
//! never-revoked session refused while Redis is out for less than the bound counts against the
//! grace period. Each run prints one line of numbers; `scripts/faults.sh` runs full sizes.
//!
//! No libtest harness (`harness = false`): the nodes are this binary started again with
//! [`node::NODE_ENV`] set, and the scenarios run one after the other, each with its two
//! policies side by side on separate servers. Every
//! process a scenario starts is SIGKILLed when it ends, failing or not (guards' `Drop`).
//! Arguments that do not start with `-` select scenarios by name.

#[path = "../common/redis_server.rs"]
mod redis_server;

mod node;
mod proxy;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use node::{NODE_ENV, NodeConfig};
use proxy::Proxy;
use redis_server::RedisServer;
use sealed_session::revocation::FailurePolicy;

/// How big the runs are: reduced by default (CI), full with `SEALED_SESSION_FAULTS_FULL=1`.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// Sessions never revoked.
    valid: usize,
    /// Sessions revoked before the fault (a quarter by "log out everywhere").
    revoked: usize,
    /// Sessions revoked during the fault.
    during: usize,
    /// The entry cap of `cap_then_empty_restart`, and how many users log out there.
    cap: usize,
    cap_users: usize,
    staleness: Duration,
}

fn sizes() -> Sizes {
    if std::env::var("SEALED_SESSION_FAULTS_FULL").is_ok_and(|v| v == "1") {
        Sizes {
            valid: 1_000,
            revoked: 10_000,
            during: 1_000,
            cap: 5_000,
            cap_users: 8_000,
            staleness: Duration::from_secs(5),
        }
    } else {
        Sizes {
            valid: 12,
            revoked: 24,
            during: 6,
            cap: 50,
            cap_users: 80,
            staleness: Duration::from_secs(3),
        }
    }
}

/// A hang guard for anything that must happen, not a speed target (full sizes sample 20,000
/// sessions on four nodes per round).
const PATIENCE: Duration = Duration::from_secs(180);

/// The watchdog's and the pipes' slack when judging "older than the bound".
const SLACK: Duration = Duration::from_millis(300);

const PREFIX: &str = "f:";

// ---------------------------------------------------------------------------------------------
// Node processes

/// A node process; SIGKILLed and reaped when dropped.
struct NodeProcess {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
    name: String,
    stopped: bool,
}

impl NodeProcess {
    /// Starts this binary as a node (under `faketime` with `skew`, e.g. `-30s`, when given).
    fn start(config: &NodeConfig, skew: Option<&str>, log: PathBuf, name: &str) -> NodeProcess {
        let exe = std::env::current_exe().expect("the test's own path");
        let mut command = match skew {
            Some(skew) => {
                let faketime = "/usr/bin/faketime";
                assert!(
                    std::path::Path::new(faketime).is_file(),
                    "{faketime} is missing: install the Debian package `faketime` (bash \
                     scripts/install-deps.sh)"
                );
                let mut command = Command::new(faketime);
                // Only the wall clock moves: tokio's timers run on the monotonic one.
                command.args(["-m", "-f", skew]).arg(&exe);
                command.env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
                command
            }
            None => Command::new(&exe),
        };
        command.envs(config.env());
        let stderr = std::fs::File::create(&log).expect("a log file");
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(stderr);
        let mut child = command.spawn().expect("starting a node process");
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        NodeProcess { child, stdin, lines, log, name: name.to_owned(), stopped: false }
    }

    fn ask(&mut self, request: &str) -> String {
        assert!(!self.stopped, "{} is stopped", self.name);
        let sent = writeln!(self.stdin, "{request}").and_then(|()| self.stdin.flush());
        let answer = sent.ok().and_then(|()| self.lines.recv_timeout(PATIENCE).ok());
        match answer {
            Some(answer) if !answer.starts_with("error") => answer,
            other => panic!(
                "{} answered {other:?} to {:.60}; its log:\n{}",
                self.name,
                request,
                self.log_tail()
            ),
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// (current, entries, queued)
    fn status(&mut self) -> (bool, usize, usize) {
        let answer = self.ask("status");
        let words: Vec<&str> = answer.split(' ').collect();
        let number = |i: usize| words.get(i).and_then(|w| w.parse().ok()).expect("a number");
        (words[0] == "1", number(1), number(2))
    }

    fn login(&mut self, users: &[String]) -> Vec<String> {
        if users.is_empty() {
            return Vec::new();
        }
        let answer = self.ask(&format!("login {}", users.join(" ")));
        answer.split(' ').skip(1).map(str::to_owned).collect()
    }

    fn signal(&mut self, name: &str) {
        let pid = self.child.id();
        let status = Command::new("sh").args(["-c", &format!("kill -{name} {pid}")]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} {pid}");
        self.stopped = name == "STOP";
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// What the nodes answer, judged

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Revoked,
    /// The store could not answer: refused by `Reject`.
    Refused,
    /// The store could not answer: accepted by `Accept`.
    Accepted,
    Invalid,
}

impl Verdict {
    fn parse(word: &str) -> Verdict {
        match word {
            "ok" => Verdict::Ok,
            "revoked" => Verdict::Revoked,
            "refused" => Verdict::Refused,
            "accepted" => Verdict::Accepted,
            _ => Verdict::Invalid,
        }
    }
}

/// One session the test made, and what it knows about it.
#[derive(Debug, Clone)]
struct Tracked {
    header: String,
    user: String,
    revoked: bool,
    /// When its revocation had reached Redis (the revoking node's queue was empty).
    in_redis_since: Option<Instant>,
    /// The node (by slot) whose queue holds it until then.
    queued_on: Option<usize>,
    /// Slots of the nodes that refused it as revoked once.
    known_by: Vec<bool>,
    /// Entries dropped at the cap may be answered by the failure policy.
    may_be_dropped: bool,
    /// Never revoked, but its user shares a bucket with users whose entries the cap may drop:
    /// the failure policy may answer it too (by design, `cap.rs`).
    shares_a_bucket: bool,
}

/// The numbers of one run.
#[derive(Debug, Default, Clone)]
struct Tally {
    answers: u64,
    lost: u64,
    /// Never-revoked sessions refused by `Reject` while Redis was out for less than the bound.
    blip_refused: u64,
    /// Never-revoked sessions refused by `Reject` (the bound ran out: the policy).
    refused_valid: u64,
    /// Revoked sessions accepted by `Accept` (entries dropped at the cap, lost by Redis).
    accepted_revoked: u64,
    /// A never-revoked session answered "revoked", or a cookie that did not open.
    wrong: u64,
    /// From the fault to the first node that said it was not current.
    stale_after: Option<Duration>,
    /// From the end of the fault to every node saying it is current.
    to_current: Option<Duration>,
    /// From the end of the fault to every node current and answering everything right (one
    /// round of checks included: seconds at full size).
    to_right: Option<Duration>,
    examples: Vec<String>,
}

struct World {
    policy: FailurePolicy,
    sizes: Sizes,
    /// Before `dir`: the nodes are killed before their files go.
    nodes: Vec<NodeProcess>,
    dir: tempfile::TempDir,
    sessions: Vec<Tracked>,
    /// Sessions made before the fault, revoked during it by `revoke_during`.
    pool: Vec<usize>,
    tally: Tally,
    /// Redis is out for less than the bound: refusals count against the grace period.
    blip: bool,
    /// Slots whose refusals count during a blip (not nodes started meanwhile).
    blip_slots: usize,
    fault_at: Option<Instant>,
    /// When the fault ended, until every node said it is current.
    recovering_since: Option<Instant>,
    max_entries: usize,
}

impl World {
    fn new(policy: FailurePolicy, sizes: Sizes) -> World {
        World {
            policy,
            sizes,
            nodes: Vec::new(),
            dir: tempfile::tempdir().expect("a temporary directory"),
            sessions: Vec::new(),
            pool: Vec::new(),
            tally: Tally::default(),
            blip: false,
            blip_slots: 3,
            fault_at: None,
            recovering_since: None,
            max_entries: 1_000_000,
        }
    }

    /// Starts a node on `url` (under `faketime` with `skew`) and waits until it is current.
    fn add_node(&mut self, url: &str, skew: Option<&str>) -> usize {
        let slot = self.nodes.len();
        let config = NodeConfig {
            url: url.to_owned(),
            policy: self.policy,
            staleness: self.sizes.staleness,
            max_entries: self.max_entries,
            snapshot: Some(self.dir.path().join(format!("node-{slot}.snapshot"))),
            prefix: PREFIX.to_owned(),
        };
        let log = self.dir.path().join(format!("node-{slot}.log"));
        let name =
            format!("node {slot}{}", skew.map(|s| format!(" (clock {s})")).unwrap_or_default());
        self.nodes.push(NodeProcess::start(&config, skew, log, &name));
        for session in &mut self.sessions {
            session.known_by.push(false);
        }
        slot
    }

    fn wait_current(&mut self, slot: usize) {
        let started = Instant::now();
        while !self.nodes[slot].status().0 {
            assert!(started.elapsed() < PATIENCE, "{} never became current", self.nodes[slot].name);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn track(&mut self, headers: Vec<String>, users: &[String]) -> Vec<usize> {
        let first = self.sessions.len();
        for (header, user) in headers.into_iter().zip(users) {
            self.sessions.push(Tracked {
                header,
                user: user.clone(),
                revoked: false,
                in_redis_since: None,
                queued_on: None,
                known_by: vec![false; self.nodes.len()],
                may_be_dropped: false,
                shares_a_bucket: false,
            });
        }
        (first..self.sessions.len()).collect()
    }

    /// Signs `users` in on `slot`.
    fn login(&mut self, slot: usize, users: &[String]) -> Vec<usize> {
        let headers = self.nodes[slot].login(users);
        assert_eq!(headers.len(), users.len(), "one session per user");
        self.track(headers, users)
    }

    /// Logs these sessions out on `slot` (one by one, as requests do).
    fn logout(&mut self, slot: usize, sessions: &[usize]) {
        for chunk in sessions.chunks(500) {
            let headers: Vec<&str> = chunk.iter().map(|&i| &*self.sessions[i].header).collect();
            self.nodes[slot].ask(&format!("logout {}", headers.join(" ")));
        }
        self.revoked_on(slot, sessions);
    }

    /// Logs these users out everywhere on `slot`: every session of theirs made so far.
    fn everywhere(&mut self, slot: usize, users: &[String]) {
        for chunk in users.chunks(500) {
            self.nodes[slot].ask(&format!("everywhere {}", chunk.join(" ")));
        }
        let users: std::collections::HashSet<&String> = users.iter().collect();
        let sessions: Vec<usize> =
            (0..self.sessions.len()).filter(|&i| users.contains(&self.sessions[i].user)).collect();
        self.revoked_on(slot, &sessions);
    }

    fn revoked_on(&mut self, slot: usize, sessions: &[usize]) {
        let (_, _, queued) = self.nodes[slot].status();
        let now = Instant::now();
        for &i in sessions {
            let session = &mut self.sessions[i];
            if session.revoked {
                continue;
            }
            session.revoked = true;
            if queued == 0 {
                session.in_redis_since = Some(now);
            } else {
                session.queued_on = Some(slot);
            }
        }
    }

    /// Valid sessions, revoked ones (a quarter by "log out everywhere") and a pool to revoke
    /// during the fault, spread over the first three nodes; then waits until every node knows.
    fn populate(&mut self) {
        let sizes = self.sizes;
        let names = |kind: &str, n: usize| (0..n).map(|i| format!("{kind}{i}")).collect::<Vec<_>>();
        for (kind, count) in [("valid-", sizes.valid), ("pool-", sizes.during)] {
            let users = names(kind, count);
            for slot in 0..3 {
                let mine: Vec<String> = users.iter().skip(slot).step_by(3).cloned().collect();
                let made = self.login(slot, &mine);
                if kind == "pool-" {
                    self.pool.extend(made);
                }
            }
        }
        let users = names("revoked-", sizes.revoked);
        for slot in 0..3 {
            let mine: Vec<String> = users.iter().skip(slot).step_by(3).cloned().collect();
            let made = self.login(slot, &mine);
            // Every fourth by "log out everywhere", the others by logout.
            let everywhere: Vec<String> = mine.iter().step_by(4).cloned().collect();
            let logout: Vec<usize> = made
                .into_iter()
                .filter(|&i| !everywhere.contains(&self.sessions[i].user))
                .collect();
            self.logout(slot, &logout);
            self.everywhere(slot, &everywhere);
        }
        self.settle("populate");
    }

    /// Revokes `count` sessions of the pool on `slot` (during a fault).
    fn revoke_during(&mut self, slot: usize, count: usize) {
        let take: Vec<usize> = self.pool.drain(..count.min(self.pool.len())).collect();
        self.logout(slot, &take);
    }

    /// Asks every running node about every session and judges the answers; returns whether
    /// every answer was the one expected in the end (a revoked session refused as revoked, or by
    /// the policy where the cap may have dropped it; any other accepted as not revoked).
    fn sample(&mut self) -> bool {
        let headers: Vec<String> = self.sessions.iter().map(|s| s.header.clone()).collect();
        let mut right = true;
        for slot in 0..self.nodes.len() {
            if self.nodes[slot].stopped {
                continue;
            }
            let mut verdicts = Vec::with_capacity(headers.len());
            let mut current = false;
            let sent = Instant::now();
            for chunk in headers.chunks(2_000) {
                let answer = self.nodes[slot].ask(&format!("check {}", chunk.join(" ")));
                let mut words = answer.split(' ');
                let before = words.next() == Some("1");
                let after = words.next() == Some("1");
                current |= before || after;
                verdicts.extend(words.map(Verdict::parse));
            }
            assert_eq!(verdicts.len(), headers.len(), "one verdict per session");
            if !current && self.tally.stale_after.is_none() {
                self.tally.stale_after = self.fault_at.map(|at| at.elapsed());
            }
            for (i, verdict) in verdicts.into_iter().enumerate() {
                let session = &self.sessions[i];
                right &= match (session.revoked, verdict) {
                    (true, Verdict::Revoked) => true,
                    (true, Verdict::Refused | Verdict::Accepted) => session.may_be_dropped,
                    (false, Verdict::Refused | Verdict::Accepted) => session.shares_a_bucket,
                    (false, verdict) => verdict == Verdict::Ok,
                    _ => false,
                };
                self.judge(slot, i, verdict, current, sent);
            }
        }
        right
    }

    fn judge(&mut self, slot: usize, i: usize, verdict: Verdict, current: bool, sent: Instant) {
        self.tally.answers += 1;
        let bound = self.sizes.staleness;
        let blip = self.blip && slot < self.blip_slots;
        let session = &mut self.sessions[i];
        let problem = match (session.revoked, verdict) {
            (true, Verdict::Revoked) => {
                session.known_by[slot] = true;
                None
            }
            (true, Verdict::Ok) => {
                let old = session.in_redis_since.is_some_and(|at| sent > at + bound + SLACK);
                (session.known_by[slot] || (current && old)).then(|| {
                    self.tally.lost += 1;
                    "lost: a revoked session answered \"not revoked\""
                })
            }
            (true, Verdict::Accepted) => {
                self.tally.accepted_revoked += 1;
                (session.known_by[slot] && !session.may_be_dropped).then(|| {
                    self.tally.lost += 1;
                    "lost: a known revocation handed to the failure policy"
                })
            }
            (true, Verdict::Refused) => None,
            (false, Verdict::Ok | Verdict::Accepted) => None,
            (false, Verdict::Refused) => {
                self.tally.refused_valid += 1;
                (blip && !session.shares_a_bucket).then(|| {
                    self.tally.blip_refused += 1;
                    "a never-revoked session refused during a blip shorter than the bound"
                })
            }
            (_, Verdict::Revoked | Verdict::Invalid) => {
                self.tally.wrong += 1;
                Some("a never-revoked session revoked, or a cookie that did not open")
            }
        };
        if let Some(problem) = problem {
            if self.tally.examples.len() < 5 {
                let name = &self.nodes[slot].name;
                let user = &session.user;
                let since = self.fault_at.map(|at| at.elapsed());
                self.tally.examples.push(format!(
                    "{problem}: {user} on {name} (current {current}, {since:?} after the fault)"
                ));
            }
        }
    }

    /// Whether every running node is current, has published its queue, and answers every
    /// session as it should in the end.
    fn settled(&mut self) -> bool {
        let all_current = self.note_published();
        let right = self.sample();
        all_current && right
    }

    /// Notes the revocations whose node published its queue; returns whether every running
    /// node is current.
    fn note_published(&mut self) -> bool {
        let now = Instant::now();
        let mut all_current = true;
        for slot in 0..self.nodes.len() {
            if self.nodes[slot].stopped {
                continue;
            }
            let (current, _, queued) = self.nodes[slot].status();
            all_current &= current;
            if queued == 0 {
                for session in &mut self.sessions {
                    if session.queued_on == Some(slot) {
                        session.queued_on = None;
                        session.in_redis_since = Some(now);
                    }
                }
            }
        }
        if all_current && let Some(since) = self.recovering_since.take() {
            self.tally.to_current = Some(since.elapsed());
        }
        all_current
    }

    /// Samples until [`settled`](World::settled); records how long it took since `since`.
    fn settle(&mut self, what: &str) -> Duration {
        let started = Instant::now();
        while !self.settled() {
            if started.elapsed() > PATIENCE {
                let logs: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|node| format!("--- {}:\n{}", node.name, node.log_tail()))
                    .collect();
                panic!("{what}: the fleet never settled; {:?}\n{}", self.tally, logs.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        started.elapsed()
    }

    /// Samples for `duration`.
    fn sample_for(&mut self, duration: Duration) {
        let started = Instant::now();
        while started.elapsed() < duration {
            self.note_published();
            self.sample();
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The fault is over: every node current and right (timed), then a node started afterwards.
    fn recover(&mut self, url: &str) {
        let ended = Instant::now();
        self.recovering_since = Some(ended);
        self.settle("recovery");
        self.tally.to_right = Some(ended.elapsed());
        self.blip = false;
        let late = self.add_node(url, None);
        self.wait_current(late);
        self.settle("a node started afterwards");
    }
}

// ---------------------------------------------------------------------------------------------
// The scenarios

fn raw(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .expect("a URL")
        .get_connection()
        .expect("Redis answers")
}

fn start_fleet(world: &mut World, url: &str) {
    for _ in 0..3 {
        world.add_node(url, None);
    }
    for slot in 0..3 {
        world.wait_current(slot);
    }
}

/// Redis SIGKILLed; a revocation made while it is down; an empty server on the same port.
fn killed_restarted_empty(world: &mut World) {
    let mut redis = RedisServer::start();
    start_fleet(world, &redis.url());
    world.populate();
    world.blip = true;
    world.fault_at = Some(Instant::now());
    let port = redis.port();
    redis.stop();
    world.revoke_during(0, world.sizes.during);
    let redis = RedisServer::start_on(port).expect("the port is still free");
    let down = world.fault_at.map(|at| at.elapsed()).unwrap_or_default();
    assert!(
        down < world.sizes.staleness / 2,
        "Redis was down {down:?}: not a blip on this machine"
    );
    world.recover(&redis.url());
}

/// Redis SIGSTOPped for less than the bound (a blip), then for longer (the policy).
fn hung(world: &mut World) {
    let redis = RedisServer::start();
    start_fleet(world, &redis.url());
    world.populate();
    let bound = world.sizes.staleness;
    world.blip = true;
    // Timed on its own thread: sampling every session may take longer than the blip.
    std::thread::scope(|scope| {
        let blip = scope.spawn(|| {
            redis.pause();
            std::thread::sleep(bound * 2 / 5);
            redis.resume();
        });
        while !blip.is_finished() {
            world.sample();
        }
    });
    world.settle("after a short hang");
    world.blip = false;

    world.fault_at = Some(Instant::now());
    redis.pause();
    world.revoke_during(1, world.sizes.during);
    let started = Instant::now();
    while world.tally.stale_after.is_none() || started.elapsed() < bound {
        assert!(started.elapsed() < PATIENCE, "the nodes never noticed the hang");
        world.sample();
        std::thread::sleep(Duration::from_millis(20));
    }
    world.sample_for(bound / 5);
    redis.resume();
    world.recover(&redis.url());
}

/// `FLUSHALL` without a restart, and a node started right after it.
fn flushall(world: &mut World) {
    let redis = RedisServer::start();
    start_fleet(world, &redis.url());
    world.populate();
    world.blip = true;
    world.fault_at = Some(Instant::now());
    let () = redis::cmd("FLUSHALL").query(&mut raw(redis.port())).expect("FLUSHALL");
    world.add_node(&redis.url(), None);
    world.recover(&redis.url());
}

/// A node SIGSTOPped past the bound; revocations made and the stream trimmed meanwhile.
fn trimmed_under_a_paused_node(world: &mut World) {
    let redis = RedisServer::start();
    start_fleet(world, &redis.url());
    world.populate();
    world.fault_at = Some(Instant::now());
    world.nodes[2].signal("STOP");
    world.revoke_during(0, world.sizes.during);
    let stream = format!("{PREFIX}events");
    let _: i64 = redis::cmd("XTRIM")
        .arg(&stream)
        .arg("MAXLEN")
        .arg(0)
        .query(&mut raw(redis.port()))
        .unwrap();
    world.sample_for(world.sizes.staleness + Duration::from_millis(500));
    world.nodes[2].signal("CONT");
    world.recover(&redis.url());
}

/// The primary SIGKILLed; its replica promoted (`REPLICAOF NO ONE`); the address the nodes use
/// (a proxy, as a virtual IP or a DNS name) repointed to it, as Sentinel or an operator does.
fn failover(world: &mut World) {
    let mut primary = RedisServer::start();
    let port = primary.port().to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let address = Proxy::start(primary.port());
    start_fleet(world, &address.url());
    world.populate();
    // Replicated, then a few more writes the replica may not have when the primary dies.
    let replicas: i64 =
        redis::cmd("WAIT").arg(1).arg(5_000).query(&mut raw(primary.port())).unwrap();
    assert_eq!(replicas, 1, "the replica follows the primary");
    world.blip = true;
    world.fault_at = Some(Instant::now());
    world.revoke_during(0, world.sizes.during);
    primary.stop();
    let () = redis::cmd("REPLICAOF").arg("NO").arg("ONE").query(&mut raw(replica.port())).unwrap();
    address.repoint(replica.port());
    world.recover(&address.url());
}

/// Two nodes cut off from Redis, one clock 30 s fast, one 30 s slow: the slow one logs a user
/// out everywhere while the fleet keeps signing that user in; the fast one signs a user in,
/// who is logged out everywhere after the partition heals.
fn partitioned_skewed(world: &mut World) {
    let redis = RedisServer::start();
    let fast = Proxy::start(redis.port());
    let slow = Proxy::start(redis.port());
    world.add_node(&redis.url(), None);
    world.add_node(&fast.url(), Some("+30s"));
    world.add_node(&slow.url(), Some("-30s"));
    for slot in 0..3 {
        world.wait_current(slot);
    }
    world.populate();
    let ada = vec!["ada".to_owned()];
    world.login(0, &ada);
    world.fault_at = Some(Instant::now());
    fast.cut();
    slow.cut();
    // The fleet moves on: newer generations, more sessions of ada.
    world.everywhere(0, &["zed".to_owned()]);
    world.login(0, &ada);
    world.login(0, &ada);
    world.everywhere(2, &ada);
    let bea = vec!["bea".to_owned()];
    world.login(1, &bea);
    world.sample_for(world.sizes.staleness + Duration::from_millis(500));
    fast.heal();
    slow.heal();
    world.settle("partition healed");
    world.everywhere(0, &bea);
    let after = world.login(0, &ada);
    assert!(!world.sessions[after[0]].revoked);
    world.recover(&redis.url());
}

/// Every node past its entry cap (distinct users logging out), then Redis restarted empty.
fn cap_then_empty_restart(world: &mut World) {
    cap_then_restart(world, false);
}

/// The same, Redis restarted from a snapshot it saved before the logouts (`SAVE`, as RDB
/// persistence does): the mark key survives, the entries written since do not.
fn cap_then_restart_from_an_older_save(world: &mut World) {
    cap_then_restart(world, true);
}

fn cap_then_restart(world: &mut World, from_save: bool) {
    let mut redis = RedisServer::start();
    world.max_entries = world.sizes.cap;
    start_fleet(world, &redis.url());
    world.sizes.revoked = 0;
    world.populate();
    if from_save {
        let () = redis::cmd("SAVE").query(&mut raw(redis.port())).expect("SAVE");
    }
    let users: Vec<String> = (0..world.sizes.cap_users).map(|i| format!("capped-{i}")).collect();
    for slot in 0..3 {
        let mine: Vec<String> = users.iter().skip(slot).step_by(3).cloned().collect();
        let made = world.login(slot, &mine);
        world.logout(slot, &made);
        for i in made {
            world.sessions[i].may_be_dropped = true;
        }
    }
    let capped: std::collections::HashSet<u16> = users.iter().map(|user| bucket(user)).collect();
    for session in &mut world.sessions {
        session.shares_a_bucket = !session.revoked && capped.contains(&bucket(&session.user));
    }
    world.settle("past the cap");
    world.blip = true;
    world.fault_at = Some(Instant::now());
    if from_save {
        assert!(redis.restart(), "the port is still free");
        world.recover(&redis.url());
    } else {
        let port = redis.port();
        redis.stop();
        let redis = RedisServer::start_on(port).expect("the port is still free");
        world.recover(&redis.url());
    }
}

/// The bucket a user's dropped entries are remembered in (`cap.rs`): the first 16 bits of the
/// SHA-256 of the subject, a MessagePack string.
fn bucket(user: &str) -> u16 {
    use sha2::Digest as _;
    let subject = rmp_serde::to_vec(user).expect("a string encodes");
    let digest = sha2::Sha256::digest(&subject);
    u16::from_be_bytes([digest[0], digest[1]])
}

type Scenario = fn(&mut World);

const SCENARIOS: [(&str, Scenario); 8] = [
    ("killed_restarted_empty", killed_restarted_empty),
    ("hung", hung),
    ("flushall", flushall),
    ("trimmed_under_a_paused_node", trimmed_under_a_paused_node),
    ("failover", failover),
    ("partitioned_skewed", partitioned_skewed),
    ("cap_then_empty_restart", cap_then_empty_restart),
    ("cap_then_restart_from_an_older_save", cap_then_restart_from_an_older_save),
];

/// One scenario under one policy: its numbers, sessions and duration, or `None` when it
/// panicked (the message is printed; its processes are killed by their guards).
fn run(
    name: &str,
    scenario: Scenario,
    policy: FailurePolicy,
    sizes: Sizes,
) -> Option<(Tally, usize, Duration)> {
    let started = Instant::now();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut world = World::new(policy, sizes);
        if std::env::var_os("SEALED_SESSION_FAULTS_KEEP").is_some() {
            // The nodes' logs, to read after a failure.
            println!("{name} {policy:?}: logs in {}", world.dir.path().display());
            world.dir.disable_cleanup(true);
        }
        scenario(&mut world);
        (world.tally.clone(), world.sessions.len(), started.elapsed())
    }))
    .ok()
}

fn main() {
    if std::env::var_os(NODE_ENV).is_some() {
        node::run();
        return;
    }
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let sizes = sizes();
    println!("revocation faults: {sizes:?}");
    println!(
        "{:<36} {:<7} {:>8} {:>5} {:>6} {:>8} {:>8} {:>9} {:>10} {:>10}",
        "scenario",
        "policy",
        "answers",
        "lost",
        "blip-",
        "refused",
        "accepted",
        "sessions",
        "stale",
        "current"
    );
    let mut failures = Vec::new();
    for (name, scenario) in SCENARIOS {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        // The two policies run side by side, each with its own servers and nodes: most of a
        // scenario is waiting for a bound to run out.
        let policies = [FailurePolicy::Accept, FailurePolicy::Reject];
        let runs: Vec<_> = std::thread::scope(|scope| {
            let handles = policies
                .map(|policy| scope.spawn(move || (policy, run(name, scenario, policy, sizes))));
            handles.into_iter().map(|handle| handle.join().expect("caught inside")).collect()
        });
        for (policy, run) in runs {
            let Some((tally, sessions, took)) = run else {
                failures.push(format!("{name} {policy:?}: panicked (above)"));
                continue;
            };
            let ms =
                |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{} ms", d.as_millis()));
            println!(
                "{name:<36} {:<7} {:>8} {:>5} {:>6} {:>8} {:>8} {:>9} {:>10} {:>10} {:>10}   ({:.1} s)",
                format!("{policy:?}"),
                tally.answers,
                tally.lost,
                tally.blip_refused,
                tally.refused_valid,
                tally.accepted_revoked,
                sessions,
                ms(tally.stale_after),
                ms(tally.to_current),
                ms(tally.to_right),
                took.as_secs_f64(),
            );
            let broken = tally.lost > 0 || tally.wrong > 0 || tally.blip_refused > 0;
            if broken {
                failures.push(format!("{name} {policy:?}: {tally:?}"));
            }
        }
    }
    println!(
        "(answers: every node asked about every session, repeatedly; lost: must be 0; blip-: \
         never-revoked sessions refused while Redis was out for less than the bound (users \
         sharing a bucket with users dropped at the cap aside), must be 0; refused: never-revoked \
         sessions refused by Reject (past the bound, or sharing such a bucket); accepted: revoked \
         sessions accepted by Accept because the store could not answer; stale: from the fault \
         to the first node not current; current: from the end of the fault to every node \
         current; right: to every node current and answering every session right)"
    );
    assert!(failures.is_empty(), "{} failed:\n{}", failures.len(), failures.join("\n"));
}
