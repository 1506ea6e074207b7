//! The replicated store against real `redis-server` processes (127.0.0.1, free ports, killed
//! at the end): propagation across nodes, zero Redis commands per check, and the faults (Redis
//! restarted empty, paused past the staleness bound, down while a node revokes, the stream
//! trimmed past a node's position, a node started afterwards), then the cap.
//!
//! A "node" is a `ReplicatedRevocations` with its own connections and follower, as a process
//! of a fleet would have; sessions are sealed by one codec and checked with `try_check`, the
//! call the adapters make on every request. Waits poll every few milliseconds.

#![cfg(feature = "redis")]

#[path = "common/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant, SystemTime};

use redis_server::RedisServer;
use sealed_session::revocation::{
    FailurePolicy, RedisRevocations, ReplicatedRevocations, Revocation,
};
use sealed_session::{Key, KeyRing, RejectReason, Session, SessionCodec, SessionConfig};

/// The staleness bound of the test nodes: short, to keep the suite fast.
const STALENESS: Duration = Duration::from_millis(600);

/// How long a test waits for something that must happen (propagation, recovery): a hang
/// guard, not a speed target.
const PATIENCE: Duration = Duration::from_secs(15);

const PREFIX: &str = "t:";

fn codec() -> SessionCodec {
    SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::from_bytes([5; 32])))
}

/// A node: its store (to look at) and its check.
struct Node {
    store: ReplicatedRevocations,
    revocation: Revocation,
}

impl Node {
    fn start(redis: &RedisServer, policy: FailurePolicy) -> Node {
        Node::start_with(redis, policy, usize::MAX)
    }

    fn start_with(redis: &RedisServer, policy: FailurePolicy, max_entries: usize) -> Node {
        Node::build(redis, policy, max_entries, STALENESS)
    }

    fn start_grace(redis: &RedisServer, policy: FailurePolicy, staleness: Duration) -> Node {
        Node::build(redis, policy, usize::MAX, staleness)
    }

    fn build(
        redis: &RedisServer,
        policy: FailurePolicy,
        max_entries: usize,
        staleness: Duration,
    ) -> Node {
        let store = ReplicatedRevocations::builder()
            .prefix(PREFIX)
            .staleness(staleness)
            .max_entries(max_entries)
            .build(&redis.url())
            .expect("a valid URL, inside a runtime");
        let revocation = Revocation::new(store.clone(), "user").failure_policy(policy);
        Node { store, revocation }
    }

    async fn ready(&self) {
        self.store.ready(PATIENCE).await.expect("the node loads and follows");
    }

    /// A session of `user` signed in on this node, as a request brings it back.
    async fn login(&self, user: &str) -> Session {
        let codec = codec();
        let now = SystemTime::now();
        let mut session = Session::new();
        session.insert("user", user).expect("a string encodes");
        self.revocation.stamp(&mut session).await.expect("a string subject");
        let header = codec.seal(&mut session, now).expect("seals").request_header();
        codec.open(&header, now).expect("opens")
    }

    async fn logout(&self, session: &Session) {
        let mut ended = session.clone();
        ended.purge();
        self.revocation.revoke_purged(&ended, codec().config()).await.expect("recorded");
    }

    async fn logout_everywhere(&self, user: &str) {
        let config = codec().config().clone();
        self.revocation.revoke_subject(&user, SystemTime::now(), &config).await.expect("recorded");
    }

    /// The verdict as the adapters get it: at once when memory answers, else after a lookup.
    async fn check(&self, session: &Session) -> Result<(), RejectReason> {
        self.revocation.check(session).await
    }

    fn verdict(&self, session: &Session) -> Result<(), RejectReason> {
        self.revocation.try_check(session).expect("the replicated store answers at once")
    }
}

/// Polls until every node gives `expected` for `session`; returns how long it took.
async fn until_all(
    nodes: &[&Node],
    session: &Session,
    expected: Result<(), RejectReason>,
) -> Duration {
    let started = Instant::now();
    loop {
        if nodes.iter().all(|node| node.verdict(session) == expected) {
            return started.elapsed();
        }
        let verdicts: Vec<_> = nodes.iter().map(|node| node.verdict(session)).collect();
        assert!(started.elapsed() < PATIENCE, "expected {expected:?} everywhere: {verdicts:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn all_current(nodes: &[&Node]) {
    for node in nodes {
        node.ready().await;
    }
}

const REVOKED: Result<(), RejectReason> = Err(RejectReason::Revoked);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_node_reaches_every_node() {
    let redis = RedisServer::start();
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(&redis, FailurePolicy::Reject)).collect();
    let fleet: Vec<&Node> = nodes.iter().collect();
    all_current(&fleet).await;
    let copy = nodes[0].login("ada").await;
    let other_device = nodes[1].login("ada").await;
    let bob = nodes[2].login("bob").await;
    until_all(&fleet, &copy, Ok(())).await;

    // Logout on node 1: the copy is refused everywhere, the other device is not.
    nodes[1].logout(&copy).await;
    assert_eq!(nodes[1].verdict(&copy), REVOKED, "at once on the node that revoked");
    until_all(&fleet, &copy, REVOKED).await;
    until_all(&fleet, &other_device, Ok(())).await;

    // Log out everywhere on node 2: every earlier session of ada, and no login after.
    nodes[2].logout_everywhere("ada").await;
    until_all(&fleet, &other_device, REVOKED).await;
    let after = nodes[0].login("ada").await;
    until_all(&fleet, &after, Ok(())).await;
    until_all(&fleet, &bob, Ok(())).await;
}

/// Checks never reach Redis: `INFO commandstats` before and after 20,000 checks from four
/// tasks counts only the follower's own commands (a few, whatever the number of checks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_send_no_command_to_redis() {
    let redis = RedisServer::start();
    let node = std::sync::Arc::new(Node::start(&redis, FailurePolicy::Reject));
    node.ready().await;
    let ada = node.login("ada").await;
    let revoked = node.login("eve").await;
    node.logout(&revoked).await;
    // A write slower than the store's timeout (a loaded machine) is queued and sent again
    // later: counted from here, it would look like a check's command.
    until("the logout written to Redis", || node.store.queued() == 0).await;
    let mut raw = redis::Client::open(redis.url()).expect("URL").get_connection().expect("up");
    let () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut raw).expect("RESETSTAT");

    const CHECKS: usize = 5_000;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (node, ada, revoked) = (node.clone(), ada.clone(), revoked.clone());
            tokio::spawn(async move {
                for _ in 0..CHECKS {
                    assert_eq!(node.verdict(&ada), Ok(()));
                    assert_eq!(node.verdict(&revoked), REVOKED);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("the checks pass");
    }
    let stats: String =
        redis::cmd("INFO").arg("commandstats").query(&mut raw).expect("INFO commandstats");
    let calls: Vec<(&str, u64)> = stats
        .lines()
        .filter_map(|line| line.strip_prefix("cmdstat_"))
        .filter_map(|line| {
            let (name, rest) = line.split_once(":calls=")?;
            Some((name, rest.split(',').next()?.parse().ok()?))
        })
        .filter(|(name, _)| !name.starts_with("config") && !name.starts_with("info"))
        .collect();
    // The follower's: the stream, and a look at the mark (lost data) every third of the bound.
    let follower = |name: &str| name.starts_with("x") || name == "get";
    let others: Vec<_> = calls.iter().filter(|(name, _)| !follower(name)).collect();
    assert!(others.is_empty(), "commands other than the follower's: {others:?}");
    let follower: u64 = calls.iter().map(|(_, n)| n).sum();
    assert!(follower < 100, "{follower} follower commands during {} checks", 8 * CHECKS);
}

/// Redis killed, then restarted empty on the same port: the nodes keep refusing what they
/// know, write it back, and a node started afterwards learns it from Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_forgets_nothing() {
    let mut redis = RedisServer::start();
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(&redis, FailurePolicy::Accept)).collect();
    let fleet: Vec<&Node> = nodes.iter().collect();
    all_current(&fleet).await;
    let copy = nodes[0].login("ada").await;
    let valid = nodes[1].login("bob").await;
    nodes[0].logout(&copy).await;
    until_all(&fleet, &copy, REVOKED).await;

    let port = redis.port();
    redis.stop();
    until_all(&fleet, &copy, REVOKED).await;
    until_all(&fleet, &valid, Ok(())).await;
    let redis = RedisServer::start_on(port).expect("the port is still free");
    all_current(&fleet).await;
    until_all(&fleet, &copy, REVOKED).await;
    until_all(&fleet, &valid, Ok(())).await;

    let late = Node::start(&redis, FailurePolicy::Reject);
    late.ready().await;
    until_all(&[&late], &copy, REVOKED).await;
    until_all(&[&late], &valid, Ok(())).await;
}

/// A revocation made while Redis is down: enforced by its node at once, queued, and
/// published to every node (and a node started later) when Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_made_while_redis_is_down_reaches_everyone_later() {
    let mut redis = RedisServer::start();
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(&redis, FailurePolicy::Accept)).collect();
    let fleet: Vec<&Node> = nodes.iter().collect();
    all_current(&fleet).await;
    let copy = nodes[2].login("ada").await;
    let everywhere = nodes[2].login("cy").await;
    let valid = nodes[0].login("bob").await;

    let port = redis.port();
    redis.stop();
    nodes[1].logout(&copy).await;
    nodes[1].logout_everywhere("cy").await;
    assert_eq!(nodes[1].verdict(&copy), REVOKED, "enforced at once where it was made");
    assert_eq!(nodes[1].verdict(&everywhere), REVOKED);
    assert_eq!(nodes[1].store.queued(), 2, "both wait for Redis");

    let redis = RedisServer::start_on(port).expect("the port is still free");
    until_all(&fleet, &copy, REVOKED).await;
    until_all(&fleet, &everywhere, REVOKED).await;
    until_all(&fleet, &valid, Ok(())).await;
    let started = Instant::now();
    while nodes[1].store.queued() > 0 {
        assert!(started.elapsed() < PATIENCE, "the queue was never published");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let late = Node::start(&redis, FailurePolicy::Reject);
    late.ready().await;
    until_all(&[&late], &copy, REVOKED).await;
    until_all(&[&late], &everywhere, REVOKED).await;
}

/// Redis paused (SIGSTOP) past the staleness bound: each node keeps refusing what it knows,
/// and sessions it knows nothing against get the failure policy; a revocation made meanwhile
/// holds on its node and reaches the others once Redis resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_past_the_bound_follows_the_policy_then_recovers() {
    let redis = RedisServer::start();
    let accept = Node::start(&redis, FailurePolicy::Accept);
    let reject = Node::start(&redis, FailurePolicy::Reject);
    let fleet = [&accept, &reject];
    all_current(&fleet).await;
    let known = accept.login("ada").await;
    let valid = accept.login("bob").await;
    let during = accept.login("cy").await;
    accept.logout(&known).await;
    until_all(&fleet, &known, REVOKED).await;

    redis.pause();
    let started = Instant::now();
    while accept.store.is_current() || reject.store.is_current() {
        assert!(started.elapsed() < PATIENCE, "the nodes never noticed the pause");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    accept.logout(&during).await;
    assert_eq!(accept.verdict(&during), REVOKED, "enforced at once where it was made");
    for node in fleet {
        assert_eq!(node.verdict(&known), REVOKED, "a known revocation still holds");
    }
    assert_eq!(accept.verdict(&valid), Ok(()), "stale: policy accept");
    assert_eq!(reject.verdict(&valid), Err(RejectReason::RevocationUnavailable), "policy reject");

    redis.resume();
    all_current(&fleet).await;
    until_all(&fleet, &during, REVOKED).await;
    until_all(&fleet, &known, REVOKED).await;
    until_all(&fleet, &valid, Ok(())).await;
}

/// The stream trimmed past a node's position: the node notices (`max-deleted-entry-id`) and
/// reloads, so an entry whose event it never read still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_trimmed_past_a_node_s_position_makes_it_reload() {
    let redis = RedisServer::start();
    let node = Node::start(&redis, FailurePolicy::Reject);
    node.ready().await;
    let copy = node.login("ada").await;
    let valid = node.login("bob").await;

    // Written durably without an event (as the strict store writes), then an event trimmed
    // away in the same transaction: the node can only learn of it by reloading.
    let strict = RedisRevocations::builder().prefix(PREFIX).build(&redis.url()).expect("store");
    let strict = Revocation::new(strict, "user");
    let mut ended = copy.clone();
    ended.purge();
    strict.revoke_purged(&ended, codec().config()).await.expect("recorded");
    assert_eq!(node.verdict(&copy), Ok(()), "no event: the node does not know yet");
    let mut raw = redis::Client::open(redis.url()).expect("URL").get_connection().expect("up");
    let stream = format!("{PREFIX}events");
    let _: redis::Value = redis::pipe()
        .atomic()
        .cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("x")
        .arg("1")
        .cmd("XTRIM")
        .arg(&stream)
        .arg("MAXLEN")
        .arg(0)
        .query(&mut raw)
        .expect("MULTI XADD XTRIM EXEC");
    until_all(&[&node], &copy, REVOKED).await;
    until_all(&[&node], &valid, Ok(())).await;
}

/// The cap: past it, a node drops the subjects whose entries end soonest, and answers their
/// sessions by a strict lookup in Redis (`check`, not `try_check`, which cannot wait); every
/// other session is answered from memory as before (the blast radius is the dropped subjects,
/// not the site). Redis down: the dropped ones get the failure policy, the others the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_dropped_subjects_are_looked_up_in_redis() {
    let mut redis = RedisServer::start();
    let node = Node::start_with(&redis, FailurePolicy::Reject, 3);
    node.ready().await;
    let valid = node.login("zed").await;
    let mut revoked = Vec::new();
    for user in ["a", "b", "c", "d", "e"] {
        let session = node.login(user).await;
        node.logout(&session).await;
        revoked.push(session);
    }
    assert_eq!(node.store.len(), 3, "held at the cap");
    assert!(node.store.is_current(), "it knows where it dropped what");
    // (session, with Redis up, with Redis down past the bound)
    let unavailable = Err(RejectReason::RevocationUnavailable);
    let mut table = vec![(&valid, Ok(()), unavailable)];
    table.extend(revoked.iter().take(2).map(|session| (session, REVOKED, unavailable)));
    table.extend(revoked.iter().skip(2).map(|session| (session, REVOKED, REVOKED)));
    for &(session, up, _) in &table {
        assert_eq!(node.check(session).await, up, "Redis up");
    }
    assert!(node.store.is_current(), "lookups prove Redis answers; the node stays current");
    redis.stop();
    // Past the bound: the watchdog says so (a fixed sleep could wake before it ran).
    until("stale", || !node.store.is_current()).await;
    for &(session, _, down) in &table {
        assert_eq!(node.check(session).await, down, "Redis down");
    }
}

/// One account logging in and out in a loop: past a few logouts its entries fold into one "log
/// out everywhere", on the node that revoked and on the others, so memory does not grow with
/// the loop; every logged-out session stays refused everywhere, and the next sign-in is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_logging_in_and_out_cannot_grow_the_replicas() {
    let redis = RedisServer::start();
    let nodes: Vec<Node> = (0..2).map(|_| Node::start(&redis, FailurePolicy::Reject)).collect();
    let fleet: Vec<&Node> = nodes.iter().collect();
    all_current(&fleet).await;
    let mut revoked = Vec::new();
    for round in 0..60 {
        let session = nodes[0].login("mallory").await;
        nodes[0].logout(&session).await;
        revoked.push(session);
        assert!(nodes[0].store.len() <= 9, "round {round}: {} entries", nodes[0].store.len());
    }
    for session in &revoked {
        until_all(&fleet, session, REVOKED).await;
    }
    // Signed in once the fold has reached the other node: a sign-in there within the
    // milliseconds before it arrives is stamped before the fold, and the fold revokes it, as
    // any "log out everywhere" revokes a sign-in it raced.
    let after = nodes[1].login("mallory").await;
    until_all(&fleet, &after, Ok(())).await;
    for node in &fleet {
        assert!(node.store.len() <= 9, "{} entries", node.store.len());
    }
    let late = Node::start(&redis, FailurePolicy::Reject);
    late.ready().await;
    assert!(late.store.len() <= 9, "Redis holds the folded entries: {}", late.store.len());
    for session in &revoked {
        assert_eq!(late.verdict(session), REVOKED);
    }
}

/// The case: cap 50 on every node, 80 users log out, Redis restarts empty. What every
/// node dropped is gone from Redis too: those sessions get the failure policy (never "not
/// revoked"), on the nodes that dropped them and on a node started afterwards, until they
/// expire; every other session is answered as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_then_an_empty_restart_nothing_comes_back() {
    let mut redis = RedisServer::start();
    let nodes: Vec<Node> =
        (0..3).map(|_| Node::start_with(&redis, FailurePolicy::Reject, 50)).collect();
    let fleet: Vec<&Node> = nodes.iter().collect();
    all_current(&fleet).await;
    let mut valid = Vec::new();
    for user in 0..20 {
        valid.push(nodes[user % 3].login(&format!("valid-{user}")).await);
    }
    let mut revoked = Vec::new();
    for user in 0..80 {
        let session = nodes[user % 3].login(&format!("user-{user}")).await;
        nodes[user % 3].logout(&session).await;
        revoked.push(session);
    }
    let port = redis.port();
    redis.stop();
    let redis = RedisServer::start_on(port).expect("the port is still free");
    all_current(&fleet).await;
    let late = Node::start_with(&redis, FailurePolicy::Reject, 50);
    late.ready().await;
    let mut everyone = fleet.clone();
    everyone.push(&late);
    // A node that noticed the loss while already stale holds for one bound after it recovered
    // (and answers the valid sessions by the policy meanwhile): wait that out.
    all_current(&everyone).await;
    let unavailable = Err(RejectReason::RevocationUnavailable);
    for (i, node) in everyone.iter().enumerate() {
        for (user, session) in revoked.iter().enumerate() {
            let verdict = node.check(session).await;
            assert!(
                verdict == REVOKED || verdict == unavailable,
                "node {i}, user-{user}: {verdict:?}"
            );
        }
        for (user, session) in valid.iter().enumerate() {
            assert_eq!(node.check(session).await, Ok(()), "node {i}, valid-{user}");
        }
    }
}

/// A longer staleness bound, for blips a loaded machine must fit inside with room to spare.
const GRACE: Duration = Duration::from_secs(3);

/// A Redis fault shorter than the bound.
#[derive(Debug, Clone, Copy)]
enum Blip {
    /// SIGKILL, then an empty server on the same port at once.
    KilledRestartedEmpty,
    /// SIGSTOP for this long, then SIGCONT.
    Paused(Duration),
}

/// The staleness bound is a grace period: a blip of Redis shorter than the bound changes no
/// answer, so under `Reject` no never-revoked session is refused and every revoked one stays
/// refused, sampled every millisecond from before the fault until the node heard a revocation
/// made after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blip_shorter_than_the_bound_changes_no_answer() {
    let blips = [Blip::KilledRestartedEmpty, Blip::Paused(GRACE * 2 / 5)];
    for blip in blips {
        let mut redis = RedisServer::start();
        let node = std::sync::Arc::new(Node::start_grace(&redis, FailurePolicy::Reject, GRACE));
        let other = Node::start_grace(&redis, FailurePolicy::Reject, GRACE);
        node.ready().await;
        other.ready().await;
        let valid = node.login("ada").await;
        let revoked = node.login("bob").await;
        node.logout(&revoked).await;

        let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sampler = {
            let (node, sampling) = (node.clone(), sampling.clone());
            let (valid, revoked) = (valid.clone(), revoked.clone());
            tokio::spawn(async move {
                let (mut samples, mut wrong) = (0u64, Vec::new());
                while sampling.load(std::sync::atomic::Ordering::SeqCst) {
                    for (session, expected) in [(&valid, Ok(())), (&revoked, REVOKED)] {
                        let verdict = node.verdict(session);
                        if verdict != expected {
                            wrong.push(verdict);
                        }
                    }
                    samples += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                (samples, wrong)
            })
        };
        let started = Instant::now();
        let _redis = match blip {
            Blip::KilledRestartedEmpty => {
                let port = redis.port();
                redis.stop();
                RedisServer::start_on(port).expect("the port is still free")
            }
            Blip::Paused(pause) => {
                redis.pause();
                tokio::time::sleep(pause).await;
                redis.resume();
                redis
            }
        };
        // Over when the node heard a revocation made on another node after the fault.
        let after = other.login("cy").await;
        other.logout(&after).await;
        until_all(&[&node], &after, REVOKED).await;
        let blip_took = started.elapsed();
        sampling.store(false, std::sync::atomic::Ordering::SeqCst);
        let (samples, wrong) = sampler.await.expect("the sampler runs");
        assert!(blip_took < GRACE, "{blip:?} took {blip_took:?}: not a blip on this machine");
        assert!(samples > 10, "{blip:?}: only {samples} samples");
        assert!(wrong.is_empty(), "{blip:?}: {} wrong answers: {:?}", wrong.len(), wrong);
        assert!(node.store.is_current(), "{blip:?}");
    }
}

/// An idle node with a short bound on a Redis at its default `hz` (10): Redis answers a
/// blocking read's timeout on its timer tick, up to 100 ms late, which must not count as Redis
/// failing to answer. Each such failure costs a full load (a `SCAN` of every user's hash).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_node_with_a_short_bound_does_not_reload() {
    let redis = RedisServer::start();
    // 150 ms: a third of it is 50, so the read's reply (at most a tick after its `BLOCK`)
    // comes after two thirds of the bound, the most a read could take before.
    let node = Node::start_grace(&redis, FailurePolicy::Reject, Duration::from_millis(150));
    node.ready().await;
    // A new node loads, holds for the bound, and loads again: let that pass.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = calls(&redis, "scan");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reloads = calls(&redis, "scan") - before;
    assert_eq!(reloads, 0, "full loads while idle");
}

/// A node whose runtime could not run for longer than the bound (a paused process, the only
/// worker blocked by a handler) answers its first check afterwards by the policy, not from a
/// replica older than the bound, even before its watchdog has run.
#[tokio::test(flavor = "current_thread")]
async fn a_node_whose_runtime_stalled_past_the_bound_is_not_current() {
    let redis = RedisServer::start();
    let node = Node::start(&redis, FailurePolicy::Reject);
    node.ready().await;
    let valid = node.login("ada").await;
    assert_eq!(node.verdict(&valid), Ok(()));
    // The runtime's only thread blocked: no watchdog, no follower.
    std::thread::sleep(STALENESS + Duration::from_millis(100));
    assert_eq!(node.verdict(&valid), Err(RejectReason::RevocationUnavailable));
    until("current again", || node.store.is_current()).await;
    assert_eq!(node.verdict(&valid), Ok(()));
}

/// Past the bound, and not before: Redis killed for good, the node turns stale when the bound
/// has run out since it last heard from Redis, not at the first connection error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_turns_stale_when_the_bound_runs_out() {
    let mut redis = RedisServer::start();
    let node = Node::start(&redis, FailurePolicy::Reject);
    node.ready().await;
    let valid = node.login("ada").await;
    let killed = Instant::now();
    redis.stop();
    while node.store.is_current() {
        assert!(killed.elapsed() < PATIENCE, "never turned stale");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let stale_after = killed.elapsed();
    // The first connection error comes at once. The last proof may be as old as the
    // follower's block (a third of the bound) plus Redis's timer tick, which answers a blocking
    // read's timeout (100 ms at its default `hz` of 10), when Redis dies.
    assert!(stale_after >= STALENESS / 3, "stale {stale_after:?} after the kill");
    assert!(stale_after <= STALENESS + Duration::from_millis(500), "{stale_after:?}");
    assert_eq!(node.verdict(&valid), Err(RejectReason::RevocationUnavailable));
}

/// Data lost without a restart (same run id): how a test makes Redis lose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loss {
    FlushAll,
    /// `maxmemory` reached under `volatile-lru`: filler keys with an expiry push the subjects'
    /// hashes (which expire too) out.
    Eviction,
}

/// Data lost without a restart is detected and written back: after `FLUSHALL`, or evictions
/// under `volatile-lru`, the nodes that knew the revocations write them back, so a node started
/// afterwards refuses every one of them (and accepts the others) as soon as it calls itself
/// current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_lost_without_a_restart_is_written_back() {
    for loss in [Loss::FlushAll, Loss::Eviction] {
        let redis = match loss {
            Loss::FlushAll => RedisServer::start(),
            Loss::Eviction => RedisServer::start_with(&[
                "--maxmemory",
                "4mb",
                "--maxmemory-policy",
                "volatile-lru",
                "--maxmemory-samples",
                "10",
            ]),
        };
        let nodes: Vec<Node> = (0..2).map(|_| Node::start(&redis, FailurePolicy::Reject)).collect();
        let fleet: Vec<&Node> = nodes.iter().collect();
        all_current(&fleet).await;
        let valid = nodes[0].login("valid").await;
        let mut revoked = Vec::new();
        for user in 0..20 {
            let session = nodes[user % 2].login(&format!("user-{user}")).await;
            if user % 4 == 0 {
                nodes[user % 2].logout_everywhere(&format!("user-{user}")).await;
            } else {
                nodes[user % 2].logout(&session).await;
            }
            revoked.push(session);
        }
        for session in &revoked {
            until_all(&fleet, session, REVOKED).await;
        }
        let mut raw = redis::Client::open(redis.url()).expect("URL").get_connection().expect("up");
        let subjects = || {
            let mut raw = redis::Client::open(redis.url()).expect("URL").get_connection().unwrap();
            let keys: Vec<String> =
                redis::cmd("KEYS").arg(format!("{PREFIX}sub:*")).query(&mut raw).expect("KEYS");
            keys.len()
        };
        match loss {
            Loss::FlushAll => {
                let () = redis::cmd("FLUSHALL").query(&mut raw).expect("FLUSHALL");
            }
            Loss::Eviction => {
                let filler = "x".repeat(4096);
                let mut key = 0;
                while subjects() == 20 {
                    let mut pipe = redis::pipe();
                    for _ in 0..100 {
                        pipe.cmd("SET").arg(format!("filler:{key}")).arg(&filler);
                        pipe.arg("EX").arg(3600).ignore();
                        key += 1;
                    }
                    let () = pipe.query(&mut raw).expect("SET filler");
                    assert!(key < 100_000, "no subject hash was ever evicted");
                }
            }
        }
        assert!(subjects() < 20, "{loss:?}: Redis lost no entry");
        if loss == Loss::Eviction {
            // The memory pressure passes (as after a burst). While it lasts, a write-back can
            // itself evict under an evicting policy, which the store warns about at start;
            // what is checked here is that the lost entries are written back once there is
            // room, without a restart.
            let fillers: Vec<String> =
                redis::cmd("KEYS").arg("filler:*").query(&mut raw).expect("KEYS");
            for chunk in fillers.chunks(1000) {
                let _: usize = redis::cmd("DEL").arg(chunk).query(&mut raw).expect("DEL");
            }
        }
        let late = Node::start(&redis, FailurePolicy::Reject);
        late.ready().await;
        for session in &revoked {
            assert_eq!(late.verdict(session), REVOKED, "{loss:?}: a revocation came back");
        }
        assert_eq!(late.verdict(&valid), Ok(()), "{loss:?}");
        // Written back by the nodes that noticed the loss (a repair may still be finishing).
        let deadline = Instant::now() + Duration::from_secs(20);
        while subjects() < 20 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(subjects(), 20, "{loss:?}: written back");
    }
}

/// A TCP proxy in front of Redis for one node: cutting it partitions that node alone. It counts
/// the bytes the node sent to Redis (to tell which node wrote back), and can hang the node
/// mid-write (see [`Proxy::hang_past`]).
struct Proxy {
    port: u16,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    hang: std::sync::Arc<std::sync::Mutex<Option<Hang>>>,
    hung: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

/// Stops forwarding what a node sends once it sent more than `after` bytes in all, unless
/// another proxy sharing `once` hung its node first.
#[derive(Clone)]
struct Hang {
    after: u64,
    once: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let hang = std::sync::Arc::new(std::sync::Mutex::new(None::<Hang>));
        let hung = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept = {
            let (open, links, sent) = (open.clone(), links.clone(), sent.clone());
            let (hang, hung) = (hang.clone(), hung.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !open.load(std::sync::atomic::Ordering::SeqCst) {
                        continue; // dropped: the connection is closed at once
                    }
                    let (sent, hang, hung) = (sent.clone(), hang.clone(), hung.clone());
                    let link = tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                        let Ok(mut server) =
                            tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                        else {
                            return;
                        };
                        let (mut from_client, mut to_client) = client.split();
                        let (mut from_server, mut to_server) = server.split();
                        let upstream = async {
                            let mut buffer = vec![0u8; 64 * 1024];
                            loop {
                                let n = match from_client.read(&mut buffer).await {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => n,
                                };
                                let total = n as u64
                                    + sent.fetch_add(n as u64, std::sync::atomic::Ordering::SeqCst);
                                let armed = hang.lock().expect("not poisoned").clone();
                                let past = armed.is_some_and(|hang| {
                                    total > hang.after
                                        && !hang
                                            .once
                                            .swap(true, std::sync::atomic::Ordering::SeqCst)
                                });
                                if past || hung.load(std::sync::atomic::Ordering::SeqCst) {
                                    // Hung: nothing more reaches Redis, the connection stays,
                                    // until it is cut or the node resumes.
                                    hung.store(true, std::sync::atomic::Ordering::SeqCst);
                                    while hung.load(std::sync::atomic::Ordering::SeqCst) {
                                        tokio::time::sleep(Duration::from_millis(1)).await;
                                    }
                                }
                                if to_server.write_all(&buffer[..n]).await.is_err() {
                                    break;
                                }
                            }
                            let _ = to_server.shutdown().await;
                        };
                        let downstream = async {
                            let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                            let _ = to_client.shutdown().await;
                        };
                        tokio::join!(upstream, downstream);
                    });
                    links.lock().expect("not poisoned").push(link);
                }
            })
        };
        Proxy { port, sent, hang, hung, open, links, accept }
    }

    /// Hangs the node (nothing it sends reaches Redis any more) once it sent `bytes` more than
    /// so far, unless a proxy sharing `once` hung its node first.
    fn hang_past(&self, bytes: u64, once: &std::sync::Arc<std::sync::atomic::AtomicBool>) {
        let after = self.sent() + bytes;
        *self.hang.lock().expect("not poisoned") = Some(Hang { after, once: once.clone() });
    }

    fn hung(&self) -> bool {
        self.hung.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Bytes the node sent to Redis so far.
    fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Closes every connection and refuses new ones.
    fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().expect("not poisoned").drain(..) {
            link.abort();
        }
    }

    fn heal(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Disarms the hang: the hung connections forward what they held back, and go on.
    fn resume(&self) {
        *self.hang.lock().expect("not poisoned") = None;
        self.hung.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// "Log out everywhere" on a node cut off from Redis whose clock is behind the fleet's
/// generations (here: the fleet's counter 30 s ahead, the same thing seen from the node): the
/// call enforces it at once where it was made, and when the node reconnects Redis gives it a
/// generation after every stamp given meanwhile, so the sessions signed in before the call are
/// refused on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_out_everywhere_on_a_partitioned_node_behind_the_fleet_holds() {
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.port()).await;
    let fleet_node = Node::start(&redis, FailurePolicy::Reject);
    let store = ReplicatedRevocations::builder()
        .prefix(PREFIX)
        .staleness(STALENESS)
        .build(&proxy.url())
        .expect("a valid URL");
    let revocation = Revocation::new(store.clone(), "user").failure_policy(FailurePolicy::Reject);
    let cut_off = Node { store, revocation };
    all_current(&[&fleet_node, &cut_off]).await;
    let before = fleet_node.login("ada").await;

    proxy.cut();
    // The fleet moves on: its generations run 30 s ahead of the cut-off node's clock.
    let mut raw = redis::Client::open(redis.url()).expect("URL").get_connection().expect("up");
    let ahead = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_micros()
        as u64
        + 30_000_000;
    let () = redis::cmd("SET").arg(format!("{PREFIX}gen")).arg(ahead).query(&mut raw).unwrap();
    let other = fleet_node.login("zed").await;
    fleet_node.logout_everywhere("zed").await;
    until_all(&[&fleet_node], &other, REVOKED).await;
    let signed_in_meanwhile = fleet_node.login("ada").await;

    cut_off.logout_everywhere("ada").await;
    assert_eq!(cut_off.verdict(&before), REVOKED, "enforced at once where it was made");
    proxy.heal();
    until_all(&[&fleet_node, &cut_off], &before, REVOKED).await;
    until_all(&[&fleet_node, &cut_off], &signed_in_meanwhile, REVOKED).await;
    let after = fleet_node.login("ada").await;
    until_all(&[&fleet_node, &cut_off], &after, Ok(())).await;
}

/// A node restarted while Redis is down keeps refusing what it knew, from its snapshot (a file
/// of mode 0600, written atomically); a brand-new node, without one, knows nothing and answers
/// by the failure policy (here accept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_while_redis_is_down_enforces_its_snapshot() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("replica");
    let node_with = |redis: &RedisServer, snapshot: Option<&std::path::Path>| {
        let mut builder = ReplicatedRevocations::builder().prefix(PREFIX).staleness(STALENESS);
        if let Some(path) = snapshot {
            builder = builder.snapshot(path);
        }
        let store = builder.build(&redis.url()).expect("a valid URL");
        let revocation = Revocation::new(store.clone(), "user");
        Node { store, revocation }
    };
    let mut redis = RedisServer::start();
    let node = node_with(&redis, Some(&path));
    node.ready().await;
    let logged_out = node.login("ada").await;
    let everywhere = node.login("cy").await;
    let valid = node.login("bob").await;
    node.logout(&logged_out).await;
    node.logout_everywhere("cy").await;
    let started = Instant::now();
    while !path.exists() {
        assert!(started.elapsed() < PATIENCE, "no snapshot written");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Written once per bound: the next one holds both revocations.
    tokio::time::sleep(STALENESS * 2).await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("written").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "it names users");
    }
    drop(node);
    redis.stop();

    let restarted = node_with(&redis, Some(&path));
    let blank = node_with(&redis, None);
    // (session, restarted with its snapshot, brand-new)
    let table =
        [(&logged_out, REVOKED, Ok(())), (&everywhere, REVOKED, Ok(())), (&valid, Ok(()), Ok(()))];
    for (session, with_snapshot, without) in table {
        assert_eq!(restarted.verdict(session), with_snapshot);
        assert_eq!(blank.verdict(session), without);
    }
    assert!(!restarted.store.is_current(), "Redis is down: not current, only what it knew");
}

/// `n` logouts of distinct users written straight to Redis, as the stores write them (a hash per
/// user, its logout as field `l:<lineage>`), under a mark set long ago (an old deployment).
fn seed(redis: &RedisServer, n: usize) {
    write_durably(redis, "seeded", n);
    let mut raw = redis::Client::open(redis.url()).expect("URL").get_connection().expect("up");
    let () =
        redis::cmd("SET").arg(format!("{PREFIX}mark")).arg("seeded 0").query(&mut raw).unwrap();
}

/// `n` logouts of distinct users named `<name>-<i>`, written straight to Redis as the stores
/// write them, without an event: only a node that loads afterwards knows them.
fn write_durably(redis: &RedisServer, name: &str, n: usize) {
    let mut raw = redis::Client::open(redis.url()).expect("URL").get_connection().expect("up");
    let keys = RedisRevocations::builder().prefix(PREFIX).build(&redis.url()).expect("store");
    let until = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() + 3600;
    for start in (0..n).step_by(5_000) {
        let mut pipe = redis::pipe();
        for i in start..n.min(start + 5_000) {
            let subject = rmp_serde::to_vec_named(&format!("{name}-{i}")).expect("encodes");
            let hex: String = subject.iter().map(|b| format!("{b:02x}")).collect();
            let key = keys.subject_key(&subject);
            pipe.cmd("HSET").arg(&key).arg(format!("l:{i:032x}")).arg(until).arg("s").arg(hex);
            pipe.ignore().cmd("EXPIREAT").arg(&key).arg(until).ignore();
        }
        let () = pipe.query(&mut raw).expect("seeded");
    }
}

/// How many users' hashes Redis holds.
fn subject_keys(redis: &RedisServer) -> usize {
    let mut raw = redis::Client::open(redis.url()).expect("URL").get_connection().expect("up");
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{PREFIX}sub:*")).query(&mut raw).expect("KEYS");
    keys.len()
}

/// Whether a recovery writer recorded its write-back (`<prefix>recovered` holds a record, not
/// the `writing` mark a writer sets as it begins).
fn recovery_recorded(redis: &RedisServer) -> bool {
    let mut raw = redis::Client::open(redis.url()).expect("URL").get_connection().expect("up");
    let record: Option<String> =
        redis::cmd("GET").arg(format!("{PREFIX}recovered")).query(&mut raw).expect("GET");
    record.is_some_and(|record| !record.contains(" writing "))
}

/// Calls of a command Redis counted since it started (scripts' own calls included).
fn calls(redis: &RedisServer, command: &str) -> u64 {
    let mut raw = redis::Client::open(redis.url()).expect("URL").get_connection().expect("up");
    let stats: String = redis::cmd("INFO").arg("commandstats").query(&mut raw).expect("INFO");
    stats
        .lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// Entries ever added to the stream.
fn stream_events(redis: &RedisServer) -> u64 {
    let mut raw = redis::Client::open(redis.url()).expect("URL").get_connection().expect("up");
    let info: Vec<redis::Value> =
        redis::cmd("XINFO").arg("STREAM").arg(format!("{PREFIX}events")).query(&mut raw).unwrap();
    info.chunks(2)
        .find_map(|pair| match pair {
            [redis::Value::BulkString(name), redis::Value::Int(n)] if name == b"entries-added" => {
                Some(*n as u64)
            }
            _ => None,
        })
        .expect("entries-added")
}

impl Node {
    /// A node reaching Redis at `url` (a proxy).
    fn at(url: &str, policy: FailurePolicy) -> Node {
        Node::at_with(url, policy, STALENESS)
    }

    /// [`Node::at`] with its own staleness bound.
    fn at_with(url: &str, policy: FailurePolicy, staleness: Duration) -> Node {
        let store = ReplicatedRevocations::builder()
            .prefix(PREFIX)
            .staleness(staleness)
            .build(url)
            .expect("a valid URL, inside a runtime");
        let revocation = Revocation::new(store.clone(), "user").failure_policy(policy);
        Node { store, revocation }
    }
}

/// Polls until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE * 2, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An empty restart with three nodes holding the same entries and a fourth holding one more
/// (a revocation it loaded that the others never saw), cut off from Redis meanwhile: one node
/// writes everything back, in bulk, with no event per entry; the others find they hold what it
/// wrote and write nothing. The fourth, back, holds something else: it writes back its own
/// entries, and only the one Redis lacked goes on the stream. Nothing is lost, on any node or
/// on a node started afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_restart_is_written_back_once_and_loses_nothing() {
    const SEEDED: usize = 3_000;
    let mut redis = RedisServer::start();
    seed(&redis, SEEDED);
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(&redis, FailurePolicy::Accept)).collect();
    let fleet: Vec<&Node> = nodes.iter().collect();
    all_current(&fleet).await;
    let valid = nodes[0].login("valid").await;
    let mut revoked = Vec::new();
    for user in 0..12 {
        let session = nodes[user % 3].login(&format!("user-{user}")).await;
        if user % 4 == 0 {
            nodes[user % 3].logout_everywhere(&format!("user-{user}")).await;
        } else {
            nodes[user % 3].logout(&session).await;
        }
        revoked.push(session);
    }
    for session in &revoked {
        until_all(&fleet, session, REVOKED).await;
    }
    // Written durably without an event: only a node that loads afterwards knows it.
    let unseen = nodes[0].login("unseen").await;
    let strict = RedisRevocations::builder().prefix(PREFIX).build(&redis.url()).expect("store");
    let mut ended = unseen.clone();
    ended.purge();
    Revocation::new(strict, "user").revoke_purged(&ended, codec().config()).await.expect("ok");
    let proxy = Proxy::start(redis.port()).await;
    let fourth = Node::at(&proxy.url(), FailurePolicy::Accept);
    fourth.ready().await;
    assert_eq!(fourth.verdict(&unseen), REVOKED);
    assert_eq!(nodes[0].verdict(&unseen), Ok(()), "the others never saw it");
    let held = nodes[0].store.len();
    assert_eq!(fourth.store.len(), held + 1);
    // Past the window in which a node publishes what it applied lately when it notices a loss
    // (twice the bound): what is counted below is the bulk write-back's events alone.
    tokio::time::sleep(STALENESS * 2 + Duration::from_millis(200)).await;

    proxy.cut();
    let port = redis.port();
    redis.stop();
    let redis = RedisServer::start_on(port).expect("the port is still free");
    until("the three write back", || subject_keys(&redis) >= SEEDED + revoked.len()).await;
    all_current(&fleet).await;
    let after_three = (stream_events(&redis), calls(&redis, "hset"));
    proxy.heal();
    until_all(&fleet, &unseen, REVOKED).await;
    fourth.ready().await;

    // One bulk writer: every entry written once, not once per node; the stream carries the
    // writer's closing event and the one entry the others lacked, not an event per entry.
    let entries = held as u64;
    assert!(after_three.0 <= 3, "{} events after the three recovered", after_three.0);
    assert!(after_three.1 < entries * 3 / 2, "{} HSETs for {entries} entries", after_three.1);
    let events = stream_events(&redis);
    assert!(events <= after_three.0 + 2, "{events} events after the fourth wrote back");
    assert_eq!(subject_keys(&redis), SEEDED + revoked.len() + 1);
    let late = Node::start(&redis, FailurePolicy::Reject);
    late.ready().await;
    let everyone: Vec<&Node> = fleet.iter().copied().chain([&fourth, &late]).collect();
    for session in revoked.iter().chain([&unseen]) {
        until_all(&everyone, session, REVOKED).await;
    }
    until_all(&everyone, &valid, Ok(())).await;
    assert_eq!(late.store.len(), fourth.store.len());
}

/// The writer cut off from Redis in the middle of its write-back (as if it died): its lock
/// expires and one of the other nodes, not both, takes over and writes everything back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_lost_mid_recovery_is_taken_over_by_one_node() {
    const SEEDED: usize = 20_000;
    let mut redis = RedisServer::start();
    seed(&redis, SEEDED);
    let proxies = [
        Proxy::start(redis.port()).await,
        Proxy::start(redis.port()).await,
        Proxy::start(redis.port()).await,
    ];
    let nodes: Vec<Node> =
        proxies.iter().map(|proxy| Node::at(&proxy.url(), FailurePolicy::Accept)).collect();
    let fleet: Vec<&Node> = nodes.iter().collect();
    all_current(&fleet).await;
    let revoked = nodes[1].login("ada").await;
    nodes[1].logout(&revoked).await;
    until_all(&fleet, &revoked, REVOKED).await;

    // A write-back sends about 100 bytes per entry; a node that only follows, a few hundred
    // in all. The first node past 200 KB (the writer) hangs there, mid-write.
    let bulk = 200 * 1024;
    let once = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for proxy in &proxies {
        proxy.hang_past(bulk, &once);
    }
    let before: Vec<u64> = proxies.iter().map(Proxy::sent).collect();
    let sent = |i: usize| proxies[i].sent() - before[i];
    let port = redis.port();
    redis.stop();
    let redis = RedisServer::start_on(port).expect("the port is still free");
    until("a writer", || proxies.iter().any(Proxy::hung)).await;
    let writer = (0..3).find(|&i| proxies[i].hung()).expect("one hung");
    assert!(subject_keys(&redis) < SEEDED, "hung before the writer was done");
    proxies[writer].cut();
    until("taken over", || subject_keys(&redis) > SEEDED).await;
    let others: Vec<&Node> = (0..3).filter(|&i| i != writer).map(|i| &nodes[i]).collect();
    all_current(&others).await;
    // One node took over: every entry written once more, not twice (Redis counts the `HSET`s;
    // the hung writer's few reached it before it hung).
    // Writing back 20,000 entries sends about 200 bytes each; loading them, less than half.
    let sent: Vec<u64> = (0..3).map(sent).collect();
    let took_over: Vec<usize> =
        (0..3).filter(|&i| i != writer && sent[i] > SEEDED as u64 * 200).collect();
    assert_eq!(took_over.len(), 1, "one node takes over, not both: sent {sent:?}");
    let written = calls(&redis, "hset");
    let entries = SEEDED as u64 + 1;
    assert!(written < entries * 3 / 2, "{written} HSETs for {entries} entries, sent {sent:?}");
    let late = Node::start(&redis, FailurePolicy::Reject);
    late.ready().await;
    assert_eq!(late.verdict(&revoked), REVOKED);
    assert_eq!(late.store.len(), SEEDED + 1, "Redis holds {}", subject_keys(&redis));
}

/// A writer that hangs midway through its write-back, holding entries no other node has (written
/// to Redis without an event, loaded by it alone): its lock expires, another node takes over,
/// then the hung writer comes back. What it wrote before it hung is in Redis, announced by no
/// event, and the node that took over wrote only what it held: every node must still end up
/// holding everything Redis holds, or it calls itself current and accepts those revoked
/// sessions while a node started afterwards refuses them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_writer_lost_midway_wrote_reaches_every_node() {
    const UNSEEN: usize = 4_000;
    let mut redis = RedisServer::start();
    let proxies = [
        Proxy::start(redis.port()).await,
        Proxy::start(redis.port()).await,
        Proxy::start(redis.port()).await,
    ];
    let others: Vec<Node> =
        proxies[1..].iter().map(|proxy| Node::at(&proxy.url(), FailurePolicy::Accept)).collect();
    let two: Vec<&Node> = others.iter().collect();
    all_current(&two).await;
    let revoked = others[0].login("ada").await;
    others[0].logout(&revoked).await;
    until_all(&two, &revoked, REVOKED).await;
    write_durably(&redis, "unseen", UNSEEN);
    let first = Node::at(&proxies[0].url(), FailurePolicy::Accept);
    first.ready().await;
    assert_eq!(first.store.len(), UNSEEN + 1);
    assert_eq!(others[0].store.len(), 1, "the others never saw them");

    // Only the first node reaches Redis when it is back: it writes back, and hangs midway.
    proxies[1].cut();
    proxies[2].cut();
    let once = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    proxies[0].hang_past(150 * 1024, &once);
    let port = redis.port();
    redis.stop();
    let redis = RedisServer::start_on(port).expect("the port is still free");
    until("the writer hangs", || proxies[0].hung()).await;
    // What the proxy forwarded before it hung may still be on its way through Redis.
    let mut partial = subject_keys(&redis);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = subject_keys(&redis);
        if now == partial {
            break;
        }
        partial = now;
    }
    assert!(partial > 0 && partial < UNSEEN, "hung midway: {partial} written");

    // The others come back, wait out its lease, and one of them takes over.
    proxies[1].heal();
    proxies[2].heal();
    // Taken over: the record is written, which only a writer holding the lock can do (the
    // hung one cannot). Counting keys would not show it: what the others hold may be exactly
    // what the hung writer wrote first.
    until("taken over", || recovery_recorded(&redis)).await;
    all_current(&two).await;
    // The hung writer comes back too.
    proxies[0].cut();
    proxies[0].resume();
    proxies[0].heal();
    first.ready().await;
    until("Redis holds everything again", || subject_keys(&redis) == UNSEEN + 1).await;
    let late = Node::start(&redis, FailurePolicy::Reject);
    late.ready().await;
    assert_eq!(late.store.len(), UNSEEN + 1);
    let settled = Instant::now() + Duration::from_secs(5);
    let lens = || [&first, &others[0], &others[1]].map(|node| node.store.len());
    while lens() != [UNSEEN + 1; 3] && Instant::now() < settled {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    all_current(&[&first, &others[0], &others[1]]).await;
    assert_eq!(lens(), [UNSEEN + 1; 3], "every node current, holding what Redis holds");
}

/// A node cut off past the bound misses a revocation; Redis then restarts empty, and the cut-off
/// node, back first, becomes the recovery writer. It wrote back only what it held: until the
/// node that holds the missed revocation has written it back (moments later, once it is back
/// too), the writer must not call itself current, or it accepts that revoked session while
/// saying it missed nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stale_when_redis_lost_data_is_not_current_before_the_others_wrote_back() {
    let mut redis = RedisServer::start();
    let (to_other, to_laggard) =
        (Proxy::start(redis.port()).await, Proxy::start(redis.port()).await);
    let other = Node::at(&to_other.url(), FailurePolicy::Accept);
    // The laggard holds for its bound while the other node, once back, reconnects and writes
    // back: a bound that leaves a loaded machine room for that.
    let laggard = Node::at_with(&to_laggard.url(), FailurePolicy::Accept, GRACE);
    all_current(&[&other, &laggard]).await;
    let missed = other.login("ada").await;

    to_laggard.cut();
    other.logout(&missed).await;
    until("the revocation written", || other.store.queued() == 0).await;
    until("the laggard stale", || !laggard.store.is_current()).await;
    // Redis restarts empty while the other node is cut off too; the laggard is back first.
    to_other.cut();
    let port = redis.port();
    redis.stop();
    let redis = RedisServer::start_on(port).expect("the port is still free");
    to_laggard.heal();
    let mut raw = redis::Client::open(redis.url()).expect("URL").get_connection().expect("up");
    let recovered = format!("{PREFIX}recovered");
    until("the laggard wrote back", || {
        redis::cmd("EXISTS").arg(&recovered).query::<u64>(&mut raw).expect("EXISTS") == 1
    })
    .await;
    to_other.heal();
    let started = Instant::now();
    loop {
        // Current first: the set only grows, so a revocation unknown afterwards was unknown then.
        let current = laggard.store.is_current();
        let verdict = laggard.verdict(&missed);
        assert!(
            !(current && verdict == Ok(())),
            "current, and accepting a revoked session, {:?} after the other node is back",
            started.elapsed()
        );
        if current && verdict == REVOKED {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "never current with the revocation");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    until_all(&[&other, &laggard], &missed, REVOKED).await;
}

/// Redis loses its data (`FLUSHALL`) while a node started afterwards is in the middle of its
/// full load: it loaded part of what Redis held, and the node that knew everything writes it
/// back. The newcomer must not call itself current before it holds everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loss_during_a_load_is_noticed_before_the_node_calls_itself_current() {
    const SEEDED: usize = 6_000;
    let redis = RedisServer::start();
    seed(&redis, SEEDED);
    let old = Node::start(&redis, FailurePolicy::Accept);
    old.ready().await;
    assert_eq!(old.store.len(), SEEDED);
    // A Redis up for less than the bound would make the newcomer wait anyway.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let proxy = Proxy::start(redis.port()).await;
    let once = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A step of the load asks for 2,000 hashes, about 200 KB: hung in the middle of the first.
    proxy.hang_past(100 * 1024, &once);
    let newcomer = Node::at(&proxy.url(), FailurePolicy::Accept);
    until("the newcomer hangs mid-load", || proxy.hung()).await;
    let mut raw = redis::Client::open(redis.url()).expect("URL").get_connection().expect("up");
    let () = redis::cmd("FLUSHALL").query(&mut raw).expect("FLUSHALL");
    proxy.resume();
    let started = Instant::now();
    loop {
        // Current first: the set only grows, so what it lacks afterwards it lacked then.
        let current = newcomer.store.is_current();
        let held = newcomer.store.len();
        assert!(
            !current || held == SEEDED,
            "current holding {held} of {SEEDED}, {:?} after the flush",
            started.elapsed()
        );
        if current {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "never current");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A node current when Redis lost its data (`FLUSHALL`), which had not yet read the last
/// revocation made on another node before it, becomes the recovery writer. The other node,
/// which holds that revocation, delivers it in its comparison only after the writer is done,
/// and that comparison is held up here (its connection hangs midway, as a long one at 10^6
/// entries would take seconds). The writer must not call itself current while it accepts that
/// session later than the bound after the revocation reached Redis: the other node writes back
/// and publishes what it applied lately as soon as it notices the loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_missed_the_last_revocation_before_a_loss_learns_it_within_the_bound() {
    const SEEDED: usize = 10_000;
    // The other node's reconnection and write-back must fit in the bound on a loaded machine.
    let staleness = Duration::from_millis(3_000);
    let redis = RedisServer::start();
    seed(&redis, SEEDED);
    let (to_writer, to_other) =
        (Proxy::start(redis.port()).await, Proxy::start(redis.port()).await);
    let writer = Node::at_with(&to_writer.url(), FailurePolicy::Accept, staleness);
    let other = Node::at_with(&to_other.url(), FailurePolicy::Accept, staleness);
    all_current(&[&writer, &other]).await;
    let missed = other.login("ada").await;
    let mut raw = redis::Client::open(redis.url()).expect("URL").get_connection().expect("up");
    let events = format!("{PREFIX}events");

    // The writer's connection hangs; an event that revokes nothing wakes a read it may have
    // sent before, so what it sends next (its next read, or asking where the stream ends) is
    // held back and it reads nothing more.
    to_writer.hang_past(0, &std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)));
    until("the writer hangs", || to_writer.hung()).await;
    let _: String =
        redis::cmd("XADD").arg(&events).arg("*").arg("x").arg("1").query(&mut raw).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    other.logout(&missed).await;
    // A write slower than the store's timeout is queued and sent again: wait for it.
    until("the revocation reached Redis", || other.store.queued() == 0).await;
    let reached = Instant::now();
    // The other node hangs too, so that the writer notices first and takes the lock.
    to_other.hang_past(0, &std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let () = redis::cmd("FLUSHALL").query(&mut raw).expect("FLUSHALL");
    assert!(writer.store.is_current(), "the writer is current when Redis loses its data");
    assert_eq!(writer.verdict(&missed), Ok(()), "and has not read the revocation");
    to_writer.resume();
    let recovering = format!("{PREFIX}recovering");
    until("the writer takes the lock", || {
        redis::cmd("EXISTS").arg(&recovering).query::<u64>(&mut raw).expect("EXISTS") == 1
    })
    .await;
    // The other node goes on, and hangs again midway through its comparison's write-back
    // (about 100 bytes an entry): until it resumes, the comparison delivers nothing.
    to_other.resume();
    to_other.hang_past(100 * 1024, &std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let mut current_once = false;
    while reached.elapsed() < staleness + Duration::from_secs(1) {
        // Current first: the set only grows, so a revocation unknown afterwards was unknown then.
        let current = writer.store.is_current();
        let verdict = writer.verdict(&missed);
        current_once |= current;
        assert!(
            !(current && verdict == Ok(()) && reached.elapsed() > staleness),
            "the writer current, and accepting a session revoked {:?} earlier",
            reached.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(current_once, "the writer recovered and called itself current");
    assert!(to_other.hung(), "the other node's comparison was held up throughout");
    to_other.resume();
    until_all(&[&writer, &other], &missed, REVOKED).await;
    all_current(&[&writer, &other]).await;
    let late = Node::start(&redis, FailurePolicy::Reject);
    late.ready().await;
    assert_eq!(late.verdict(&missed), REVOKED);
    assert_eq!(late.store.len(), SEEDED + 1);
}
