//! The strict Redis store against a Redis Cluster of three masters on loopback, started by the
//! test (`redis-server --cluster-enabled yes` three times, then `redis-cli --cluster create`)
//! and stopped at the end: every command names one key, so the cluster routes each.

#![cfg(feature = "redis")]

#[path = "common/redis_server.rs"]
mod redis_server;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use redis_server::RedisServer;
use sealed_session::revocation::{FailurePolicy, RedisRevocations, Revocation};
use sealed_session::{Key, KeyRing, RejectReason, Session, SessionCodec, SessionConfig};

/// Three masters, their cluster formed; each node's config file in its own temporary dir.
fn start_cluster() -> (Vec<RedisServer>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = |port: &str| dir.path().join(format!("nodes-{port}.conf"));
    let nodes: Vec<RedisServer> = (0..3)
        .map(|_| {
            let file = config("{port}").to_string_lossy().into_owned();
            RedisServer::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &file,
                "--cluster-node-timeout",
                "2000",
            ])
        })
        .collect();
    let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addresses)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli is installed with redis-server");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stdout));
    let started = Instant::now();
    for node in &nodes {
        let mut raw = redis::Client::open(node.url()).expect("URL").get_connection().expect("up");
        loop {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut raw).expect("INFO");
            if info.contains("cluster_state:ok") {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "the cluster never formed");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    (nodes, dir)
}

#[tokio::test]
async fn the_strict_store_works_on_a_cluster() {
    let (nodes, _dir) = start_cluster();
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let store = RedisRevocations::builder().build_cluster(&urls).expect("valid URLs");
    let revocation = Revocation::new(store, "user").failure_policy(FailurePolicy::Reject);
    let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    let now = SystemTime::now();
    let mut sessions = Vec::new();
    // Enough users that their hashes land on every master.
    for i in 0..30 {
        let mut session = Session::new();
        session.insert("user", format!("user-{i}")).expect("encodes");
        revocation.stamp(&mut session).await.expect("stamped");
        let header = codec.seal(&mut session, now).expect("seals").request_header();
        sessions.push(codec.open(&header, now).expect("opens"));
    }
    for session in &sessions {
        assert_eq!(revocation.check(session).await, Ok(()));
    }
    for (i, session) in sessions.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        let mut ended = session.clone();
        ended.purge();
        revocation.revoke_purged(&ended, codec.config()).await.expect("recorded");
        let user = format!("user-{}", i + 1);
        revocation.revoke_subject(&user, now, codec.config()).await.expect("recorded");
    }
    for (i, session) in sessions.iter().enumerate() {
        let expected = if i % 3 == 2 { Ok(()) } else { Err(RejectReason::Revoked) };
        assert_eq!(revocation.check(session).await, expected, "user-{i}");
    }
    // The keys are spread over the masters.
    let mut holding = 0;
    for node in &nodes {
        let mut raw = redis::Client::open(node.url()).expect("URL").get_connection().expect("up");
        let keys: usize = redis::cmd("DBSIZE").query(&mut raw).expect("DBSIZE");
        holding += usize::from(keys > 0);
    }
    assert_eq!(holding, 3, "every master holds some of the keys");
}

/// One application node's replicated store on the cluster (a short staleness bound, so the
/// tests do not wait long) and its revocation check under `Reject`.
fn replica_on(
    nodes: &[RedisServer],
) -> (sealed_session::revocation::ReplicatedRevocations, Revocation) {
    let urls: Vec<String> = nodes.iter().map(RedisServer::url).collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let store = sealed_session::revocation::ReplicatedRevocations::builder()
        .staleness(Duration::from_millis(600))
        .build_cluster(&urls)
        .expect("valid URLs");
    (store.clone(), Revocation::new(store, "user").failure_policy(FailurePolicy::Reject))
}

/// The replicated store on a cluster: a revocation on one node reaches the others through the
/// stream, and a node started afterwards loads every entry by scanning every primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replicated_store_works_on_a_cluster() {
    let (nodes, _dir) = start_cluster();
    let start = || replica_on(&nodes);
    let fleet: Vec<_> = (0..3).map(|_| start()).collect();
    for (store, _) in &fleet {
        store.ready(Duration::from_secs(15)).await.expect("follows the cluster");
    }
    let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    let now = SystemTime::now();
    let mut sessions = Vec::new();
    for i in 0..30 {
        let mut session = Session::new();
        session.insert("user", format!("user-{i}")).expect("encodes");
        fleet[i % 3].1.stamp(&mut session).await.expect("stamped");
        let header = codec.seal(&mut session, now).expect("seals").request_header();
        sessions.push(codec.open(&header, now).expect("opens"));
    }
    for (i, session) in sessions.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        let mut ended = session.clone();
        ended.purge();
        fleet[i % 3].1.revoke_purged(&ended, codec.config()).await.expect("recorded");
    }
    let late = start();
    late.0.ready(Duration::from_secs(15)).await.expect("loads from every primary");
    let started = Instant::now();
    for (i, session) in sessions.iter().enumerate() {
        let expected = if i % 2 == 0 { Err(RejectReason::Revoked) } else { Ok(()) };
        for (n, (_, revocation)) in fleet.iter().chain([&late]).enumerate() {
            while revocation.try_check(session) != Some(expected) {
                assert!(started.elapsed() < Duration::from_secs(15), "user-{i} on node {n}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// One shard of the cluster loses its data on its own (`FLUSHALL` on that node; its run id is
/// unchanged, and it holds neither the stream nor the generation counter): every primary has
/// its own mark, so the nodes notice, write back what that shard held, and a node started
/// afterwards refuses every revoked session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_that_lost_its_data_is_noticed_and_written_back() {
    let (nodes, _dir) = start_cluster();
    let start = || replica_on(&nodes);
    let fleet: Vec<_> = (0..2).map(|_| start()).collect();
    for (store, _) in &fleet {
        store.ready(Duration::from_secs(15)).await.expect("follows the cluster");
    }
    let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    let now = SystemTime::now();
    let mut revoked = Vec::new();
    for i in 0..40 {
        let mut session = Session::new();
        session.insert("user", format!("user-{i}")).expect("encodes");
        fleet[i % 2].1.stamp(&mut session).await.expect("stamped");
        let header = codec.seal(&mut session, now).expect("seals").request_header();
        let session = codec.open(&header, now).expect("opens");
        let mut ended = session.clone();
        ended.purge();
        fleet[i % 2].1.revoke_purged(&ended, codec.config()).await.expect("recorded");
        revoked.push(session);
    }
    // The shard to flush: one holding users' hashes and none of the shared keys.
    let local_keys = |node: &RedisServer| -> Vec<String> {
        let mut raw = redis::Client::open(node.url()).expect("URL").get_connection().expect("up");
        redis::cmd("KEYS").arg("*").query(&mut raw).expect("KEYS")
    };
    let shared = ["sealed-session:events", "sealed-session:gen", "sealed-session:mark"];
    let shard = nodes
        .iter()
        .find(|node| {
            let keys = local_keys(node);
            keys.iter().any(|key| key.contains(":sub:"))
                && !keys.iter().any(|key| shared.contains(&key.as_str()))
        })
        .expect("a shard with users' hashes only");
    let held = local_keys(shard).iter().filter(|key| key.contains(":sub:")).count();
    let mut raw = redis::Client::open(shard.url()).expect("URL").get_connection().expect("up");
    let () = redis::cmd("FLUSHALL").query(&mut raw).expect("FLUSHALL");

    let started = Instant::now();
    loop {
        let back = local_keys(shard).iter().filter(|key| key.contains(":sub:")).count();
        if back == held {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{back} of {held} written back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let late = start();
    late.0.ready(Duration::from_secs(15)).await.expect("loads from every primary");
    for (i, session) in revoked.iter().enumerate() {
        assert_eq!(late.1.try_check(session), Some(Err(RejectReason::Revoked)), "user-{i}");
    }
}
