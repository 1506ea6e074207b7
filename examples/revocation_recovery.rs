//! Recovery after Redis lost its data: a fleet of `ReplicatedRevocations` nodes (one process,
//! each with its own connections and follower) holding N entries (one logout each of a distinct
//! user), then Redis killed and restarted empty on the same port. Measured per N:
//!
//! * **load**: the fleet's full load at start (every node loads all N; until all are current);
//! * **noticed**: from the restart until Redis holds users' hashes again (the first written
//!   back);
//! * **write-back**: from then until Redis holds all N again;
//! * **current**: from the restart until every node calls itself current again;
//! * **events**: stream entries added during the recovery (one writer: a handful; every node
//!   writing back with an event per entry: nodes × N);
//! * **writers**: entries each node wrote back (from the store's log line);
//! * Redis's CPU time during the load and during the recovery (`INFO cpu`).
//!
//! Redis: a `redis-server` this example starts on a free port (and kills at the end). Arguments:
//! `[--nodes K] [N...]` (default 3 nodes, `10000 100000 1000000`). The staleness bound is the
//! default (5 s): a node looks for lost data every third of it, and answers from memory
//! throughout (the bound is a grace period).
//!
//! Run with `cargo run --release --example revocation_recovery --features redis -- [args]`.

#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sealed_session::revocation::{RedisRevocations, ReplicatedRevocations};

/// Keys other than users' hashes a recovery writes first (marks, lock, counter, stream...): a
/// `DBSIZE` above this means users' hashes are being written back.
const SHARED_KEYS: usize = 8;

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

/// Redis's CPU seconds so far (user + system).
fn redis_cpu(raw: &mut redis::Connection) -> redis::RedisResult<f64> {
    let info: String = redis::cmd("INFO").arg("cpu").query(raw)?;
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Ok(field("used_cpu_user") + field("used_cpu_sys"))
}

/// This process's CPU seconds so far (user + system, from `/proc/self/stat`; 0 elsewhere).
fn own_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name (in parentheses): state, then 10 fields, then utime and stime.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split(' ').collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(12) + ticks(13)) / 100.0
}

/// The stream's `entries-added` (0 when there is no stream).
fn events(raw: &mut redis::Connection, prefix: &str) -> u64 {
    let info: redis::RedisResult<Vec<redis::Value>> =
        redis::cmd("XINFO").arg("STREAM").arg(format!("{prefix}events")).query(raw);
    let Ok(info) = info else { return 0 };
    info.chunks(2)
        .find_map(|pair| match pair {
            [redis::Value::BulkString(name), redis::Value::Int(n)] if name == b"entries-added" => {
                Some(*n as u64)
            }
            _ => None,
        })
        .unwrap_or(0)
}

/// Redis's time per command (`INFO commandstats`, commands run by scripts included), the
/// costliest first: `name calls µs/call`.
fn command_costs(raw: &mut redis::Connection) -> redis::RedisResult<String> {
    let stats: String = redis::cmd("INFO").arg("commandstats").query(raw)?;
    let mut costs: Vec<(u64, String)> = stats
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| {
                rest.split(',').find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
            };
            let usec: u64 = field("usec")?.parse().ok()?;
            Some((usec, format!("{name} {} {}", field("calls")?, field("usec_per_call")?)))
        })
        .collect();
    costs.sort_unstable_by_key(|cost| std::cmp::Reverse(cost.0));
    Ok(costs.into_iter().take(6).map(|(_, text)| text).collect::<Vec<_>>().join("; "))
}

/// The store's log, kept to read how many entries each node wrote back.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// Entries written back by each write-back logged since the last call.
    fn take_writers(&self) -> Vec<u64> {
        let text =
            String::from_utf8_lossy(&std::mem::take(&mut *self.0.lock().unwrap())).into_owned();
        text.lines()
            .filter(|line| line.contains("wrote back"))
            .inspect(|line| eprintln!("{line}"))
            .filter_map(|line| {
                let at = line.find("entries=")? + "entries=".len();
                line[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
            })
            .collect()
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut fleet = 3;
    if let Some(at) = args.iter().position(|arg| arg == "--nodes") {
        fleet = args.get(at + 1).ok_or("--nodes needs a number")?.parse()?;
        args.drain(at..at + 2);
    }
    let sizes: Vec<usize> = args.iter().map(|n| n.parse()).collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() { vec![10_000, 100_000, 1_000_000] } else { sizes };
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let mut server = redis_server::RedisServer::start();
    let port = server.port();
    let url = server.url();
    let until = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_secs() + 3600;
    println!("{fleet} nodes; in parentheses, CPU time of Redis + of the nodes");
    println!("| entries | load | noticed | write-back | current | events | written back by |");
    println!("|---|---|---|---|---|---|---|");
    for n in sizes {
        let mut raw = redis::Client::open(url.as_str())?.get_connection()?;
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
        let () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut raw)?;
        let cpu = redis_cpu(&mut raw)?;
        let client = own_cpu();
        let started = Instant::now();
        let nodes: Vec<ReplicatedRevocations> = (0..fleet)
            .map(|_| {
                ReplicatedRevocations::builder()
                    .prefix(prefix.as_str())
                    .max_entries(n + 1)
                    .build(&url)
            })
            .collect::<Result<_, _>>()?;
        for node in &nodes {
            node.ready(Duration::from_secs(600)).await?;
        }
        let loaded = started.elapsed();
        let load_cpu = redis_cpu(&mut raw)? - cpu;
        let load_client = own_cpu() - client;
        eprintln!("{n}: Redis per command during the load: {}", command_costs(&mut raw)?);
        for node in &nodes {
            assert_eq!(node.len(), n);
        }
        log.take_writers();

        server.stop();
        server = redis_server::RedisServer::start_on(port).ok_or("the port was taken")?;
        let restarted = Instant::now();
        let client = own_cpu();
        let mut raw = redis::Client::open(url.as_str())?.get_connection()?;
        // `DBSIZE` while it is far from done (cheap), then a count of the users' hashes.
        let (mut noticed, mut written, mut current) = (None, None, None);
        loop {
            assert!(restarted.elapsed() < Duration::from_secs(1_200), "no recovery");
            if written.is_none() {
                let size: usize = redis::cmd("DBSIZE").query(&mut raw)?;
                if noticed.is_none() && size > SHARED_KEYS {
                    noticed = Some(restarted.elapsed());
                }
                if size >= n && subjects(&mut raw, &prefix)? >= n {
                    written = Some(restarted.elapsed());
                }
            }
            if current.is_none() && nodes.iter().all(ReplicatedRevocations::is_current) {
                // Current before the write-back ended would be a node that did not wait.
                current = written.map(|_| restarted.elapsed());
            }
            if written.is_some() && current.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let recovery_cpu = redis_cpu(&mut raw)?;
        let recovery_client = own_cpu() - client;
        let (written, current) = (written.unwrap(), current.unwrap());
        let noticed = noticed.unwrap_or(written);
        let mut writers = log.take_writers();
        writers.resize(fleet.max(writers.len()), 0);
        println!(
            "| {n} | {} ({load_cpu:.1} + {load_client:.1} s) | {} | {} | {} ({recovery_cpu:.1} + \
             {recovery_client:.1} s) | {} | {:?} |",
            seconds(loaded),
            seconds(noticed),
            seconds(written - noticed),
            seconds(current),
            events(&mut raw, &prefix),
            writers,
        );
        eprintln!("{n}: Redis per command during the recovery: {}", command_costs(&mut raw)?);
        drop(nodes);
    }
    Ok(())
}
