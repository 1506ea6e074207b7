//! Propagation of revocations across three `ReplicatedRevocations` nodes on loopback: revoke a
//! session on one node (in turn), then time until all three refuse it. Prints p50, p99 and max
//! over `REVOCATIONS` revocations, and the memory one node takes per entry at a million
//! entries.
//!
//! Redis: a `redis-server` this example starts on a free port (and kills at the end), or the
//! server at `SEALED_SESSION_BENCH_REDIS` (`127.0.0.1:PORT` or a `redis://` URL).
//!
//! Run with `cargo run --release --example revocation_propagation --features redis`.

#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant, SystemTime};

use sealed_session::revocation::{
    MemoryRevocations, ReplicatedRevocations, Revocation, RevocationStore,
};
use sealed_session::{Key, KeyRing, RejectReason, Session, SessionCodec, SessionConfig, SessionId};

const REVOCATIONS: usize = 1_500;

/// Entries for the memory measurement.
const ENTRIES: u32 = 1_000_000;

/// This process's resident memory, bytes (Linux: `/proc/self/statm`, pages of 4 KiB).
fn resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Bytes per entry at `ENTRIES` entries, one logout each of a distinct subject (a user id of
/// 12 characters): the set every replicated node keeps (the in-memory store's).
async fn bytes_per_entry() -> Option<f64> {
    let store = MemoryRevocations::new();
    let before = resident()?;
    let until = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs() + 3600;
    for i in 0..ENTRIES {
        let subject = rmp_serde::to_vec_named(&format!("user-{i:07}")).ok()?;
        let mut lineage = [0u8; 16];
        lineage[..4].copy_from_slice(&i.to_be_bytes());
        store.revoke_lineage(&subject, SessionId(lineage), until).await.ok()?;
    }
    let after = resident()?;
    assert_eq!(store.len(), ENTRIES as usize);
    Some((after.saturating_sub(before)) as f64 / f64::from(ENTRIES))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (url, _server) = match std::env::var("SEALED_SESSION_BENCH_REDIS") {
        Ok(addr) if addr.starts_with("redis://") => (addr, None),
        Ok(addr) => (format!("redis://{addr}/"), None),
        Err(_) => {
            let server = redis_server::RedisServer::start();
            (server.url(), Some(server))
        }
    };
    let prefix = format!("sealed-session-propagation:{}:", std::process::id());
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let store = ReplicatedRevocations::builder().prefix(prefix.as_str()).build(&url)?;
        store.ready(Duration::from_secs(10)).await?;
        nodes.push(Revocation::new(store, "user"));
    }
    let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));

    let mut times = Vec::with_capacity(REVOCATIONS);
    for i in 0..REVOCATIONS {
        let origin = &nodes[i % 3];
        let now = SystemTime::now();
        let mut session = Session::new();
        session.insert("user", format!("user-{i}"))?;
        origin.stamp(&mut session).await?;
        let opened = codec.open(&codec.seal(&mut session, now)?.request_header(), now)?;
        let mut ended = opened.clone();
        ended.purge();

        let started = Instant::now();
        origin.revoke_purged(&ended, codec.config()).await?;
        while !nodes.iter().all(|node| node.try_check(&opened) == Some(Err(RejectReason::Revoked)))
        {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(format!("revocation {i} did not reach every node in 10 s").into());
            }
            tokio::task::yield_now().await;
        }
        times.push(started.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("## Revocation propagation (3 nodes, loopback Redis, {REVOCATIONS} revocations)");
    println!();
    println!("| p50 | p99 | max |");
    println!("|---:|---:|---:|");
    println!(
        "| {:.2} ms | {:.2} ms | {:.2} ms |",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times[times.len() - 1])
    );
    println!();
    match bytes_per_entry().await {
        Some(bytes) => println!("Memory: {bytes:.0} bytes per entry at {ENTRIES} entries (RSS)"),
        None => println!("Memory: not measured (no /proc/self/statm)"),
    }
    Ok(())
}
