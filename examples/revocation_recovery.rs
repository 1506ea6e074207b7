//! Recovery after Redis lost its data: one `ReplicatedRevocations` node holding N entries (one
//! logout each of a distinct user), then `FLUSHALL`; times how long until the node noticed
//! (its first write), then until Redis holds all N again (the pipelined write-back), and the
//! node's full load of N entries before. Default staleness bound (5 s): the node looks for
//! lost data every third of it. The
//! node answers from memory throughout (the staleness bound is a grace period).
//!
//! Redis: a `redis-server` this example starts on a free port (and kills at the end). Sizes:
//! the arguments (default `10000 100000 1000000`).
//!
//! Run with `cargo run --release --example revocation_recovery --features redis [N...]`.

#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant, SystemTime};

use sealed_session::revocation::{RedisRevocations, ReplicatedRevocations};

/// Users' hashes written per pipelined round trip while seeding.
const SEED_BATCH: usize = 10_000;

/// How many users' hashes Redis holds under `prefix`.
fn subjects(raw: &mut redis::Connection, prefix: &str) -> redis::RedisResult<usize> {
    let mut cursor = 0u64;
    let mut count = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}sub:*"))
            .arg("COUNT")
            .arg(10_000)
            .query(raw)?;
        count += keys.len();
        cursor = next;
        if cursor == 0 {
            return Ok(count);
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<usize> =
        std::env::args().skip(1).map(|n| n.parse()).collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() { vec![10_000, 100_000, 1_000_000] } else { sizes };
    let server = redis_server::RedisServer::start();
    let url = server.url();
    let mut raw = redis::Client::open(url.as_str())?.get_connection()?;
    let until = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_secs() + 3600;
    println!("| entries | full load | FLUSHALL noticed after | write-back |");
    println!("|---|---|---|---|");
    for n in sizes {
        let () = redis::cmd("FLUSHALL").query(&mut raw)?;
        let prefix = format!("recovery-{n}:");
        // Seeded as the stores write them: a hash per user, its logout as field `l:<lineage>`.
        let keys = RedisRevocations::builder().prefix(prefix.as_str()).build(&url)?;
        for start in (0..n).step_by(SEED_BATCH) {
            let mut pipe = redis::pipe();
            for i in start..n.min(start + SEED_BATCH) {
                let subject = rmp_serde::to_vec_named(&format!("user-{i:07}"))?;
                let hex: String = subject.iter().map(|b| format!("{b:02x}")).collect();
                let key = keys.subject_key(&subject);
                pipe.cmd("HSET").arg(&key).arg(format!("l:{i:032x}")).arg(until).arg("s");
                pipe.arg(hex).ignore();
                pipe.cmd("EXPIREAT").arg(&key).arg(until).ignore();
            }
            let () = pipe.query(&mut raw)?;
        }
        // A mark set long ago: a node that finds none takes itself for a newcomer after a flush
        // and waits the bound before answering, which is not what is measured here.
        let () = redis::cmd("SET").arg(format!("{prefix}mark")).arg("seeded 0").query(&mut raw)?;
        let started = Instant::now();
        let node = ReplicatedRevocations::builder()
            .prefix(prefix.as_str())
            .max_entries(n + 1)
            .build(&url)?;
        node.ready(Duration::from_secs(600)).await?;
        let loaded = started.elapsed();
        assert_eq!(node.len(), n);

        let () = redis::cmd("FLUSHALL").query(&mut raw)?;
        let flushed = Instant::now();
        // `DBSIZE` while it is far from done (cheap), then a count of the users' hashes.
        let mut noticed = None;
        loop {
            assert!(flushed.elapsed() < Duration::from_secs(1_200), "no recovery");
            let size: usize = redis::cmd("DBSIZE").query(&mut raw)?;
            if noticed.is_none() && size > 0 {
                noticed = Some(flushed.elapsed());
            }
            if size >= n && subjects(&mut raw, &prefix)? >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let recovered = flushed.elapsed();
        let noticed = noticed.unwrap_or(recovered);
        println!(
            "| {n} | {:.2} s | {:.2} s | {:.2} s |",
            loaded.as_secs_f64(),
            noticed.as_secs_f64(),
            (recovered - noticed).as_secs_f64()
        );
        drop(node);
    }
    Ok(())
}
