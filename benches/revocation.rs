//! What revocation adds to a request, in process (no HTTP): an axum `Router` called with
//! `tower::ServiceExt::oneshot`, a read-only handler, the same signed-in session each time.
//!
//! * `no layer`: a handler that ignores the session, without `SessionLayer` (the floor);
//! * `no revocation`: `SessionLayer` without revocation: open only;
//! * `memory`: `SessionLayer::with_revocation` over `MemoryRevocations` (holding 2,000 revoked
//!   sessions and 2,000 revoked subjects, none of them this one);
//! * `redis`: the same over `RedisRevocations`, a loopback Redis server, one `HMGET` per request;
//! * `replicated`: the same over `ReplicatedRevocations` (the same entries, replicated into the
//!   node's memory through the loopback Redis): no Redis command per request.
//!
//! Redis: the server at `SEALED_SESSION_BENCH_REDIS` (`127.0.0.1:PORT` or a `redis://` URL)
//! when set (`scripts/bench-report.sh` starts one), otherwise a `redis-server` the bench starts
//! on a free port and kills at the end. It never runs without one: a missing binary stops it.
//!
//! Run with `cargo bench --bench revocation --features axum,redis`. Criterion reports each
//! request; the bench then prints a markdown table of median µs per request, timed with
//! `Instant` in alternating batches (as `benches/adapter.rs` does).

mod common;

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{Request, StatusCode};
use axum::routing::get;
use criterion::{BenchmarkId, Criterion};
use sealed_session::integrations::tower::SessionLayer;
use sealed_session::revocation::{
    MemoryRevocations, RedisRevocations, ReplicatedRevocations, Revocation, RevocationStore,
};
use sealed_session::{
    Key, KeyRing, ManualClock, Session, SessionCodec, SessionConfig, SessionHandle, SessionId,
};
use tokio::runtime::Runtime;
use tower::ServiceExt as _;

#[path = "../tests/common/redis_server.rs"]
mod redis_server;

/// The summary's timing: `ROUNDS` alternating batches of each request (see `common::summaries`).
const ROUNDS: usize = 51;

/// Revoked entries each store holds before the run.
const ENTRIES: u8 = 250;
const ENTRIES_PER_BYTE: u8 = 8;

/// The bench's own key prefix, apart from anything else on a shared server.
const PREFIX: &str = "sealed-session-bench:revocation:";

async fn no_session() -> &'static str {
    "hello, ada"
}

async fn read(session: SessionHandle) -> String {
    let user: Option<String> = session.get("user").ok().flatten();
    format!("hello, {}", user.as_deref().unwrap_or("nobody"))
}

struct Apps {
    runtime: Runtime,
    variants: Vec<(&'static str, Router)>,
}

impl Apps {
    fn call(&self, app: &Router, cookie_header: &str) -> axum::http::Response<Body> {
        let request = Request::get("/")
            .header(COOKIE, cookie_header)
            .body(Body::empty())
            .expect("a valid request");
        self.runtime.block_on(app.clone().oneshot(request)).expect("Router is infallible")
    }

    fn body(&self, app: &Router, cookie_header: &str) -> String {
        let response = self.call(app, cookie_header);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers().get_all(SET_COOKIE).iter().count(), 0, "nothing to seal");
        let bytes = self.runtime.block_on(to_bytes(response.into_body(), 1024)).expect("a body");
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }
}

/// Fills a store with revoked sessions and subjects that are not the bench's.
fn fill(runtime: &Runtime, store: &dyn RevocationStore, until: u64) {
    runtime.block_on(async {
        for a in 0..ENTRIES {
            for b in 0..ENTRIES_PER_BYTE {
                let mut id = [0xee; 16];
                (id[0], id[1]) = (a, b);
                let subject = format!("user-{a}-{b}");
                let subject = rmp_serde::to_vec_named(&subject).expect("a string encodes");
                store.revoke_lineage(&subject, SessionId(id), until).await.expect("recorded");
                let subject = format!("other-{a}-{b}");
                let subject = rmp_serde::to_vec_named(&subject).expect("a string encodes");
                store.revoke_subject(&subject, until).await.expect("recorded");
            }
        }
    });
}

fn redis_url() -> (String, Option<redis_server::RedisServer>) {
    const VAR: &str = "SEALED_SESSION_BENCH_REDIS";
    match std::env::var(VAR) {
        Ok(addr) if addr.starts_with("redis://") => (addr, None),
        Ok(addr) => (format!("redis://{addr}/"), None),
        Err(_) => {
            eprintln!("{VAR} is not set: starting a redis-server for this bench");
            let server = redis_server::RedisServer::start();
            (server.url(), Some(server))
        }
    }
}

/// The median and the fastest batch of each operation, µs per call.
fn medians(ops: &mut [&mut dyn FnMut()]) -> Vec<(f64, f64)> {
    common::summaries(ROUNDS, ops)
        .into_iter()
        .map(|summary| {
            (summary.median, summary.batches.iter().copied().fold(f64::INFINITY, f64::min))
        })
        .collect()
}

fn main() {
    // Redis expires entries by its own clock: the bench's time is the wall clock, whole seconds,
    // standing still so that no refresh is due and the read-only request seals nothing.
    let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("after 1970");
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs.as_secs());
    let clock = ManualClock::new(now);
    let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    let seal = |user: &str| {
        let mut session = Session::new();
        session.insert("user", user).expect("a string encodes");
        session.insert("cart", vec!["SKU-00001", "SKU-00002", "SKU-00003"]).expect("encodes");
        codec.seal(&mut session, now).expect("seals").request_header()
    };
    let header = seal("ada");
    let revoked = seal("eve");

    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let (url, _server) = redis_url();
    let until = secs.as_secs() + 600;
    let memory = MemoryRevocations::with_clock(clock.clone());
    fill(&runtime, &memory, until);
    let redis = {
        let _entered = runtime.enter();
        RedisRevocations::builder().prefix(PREFIX).build(&url).expect("a Redis URL")
    };
    runtime.block_on(redis.ping()).unwrap_or_else(|error| panic!("Redis at {url}: {error}"));
    fill(&runtime, &redis, until);
    let replicated = {
        let _entered = runtime.enter();
        let prefix = format!("{PREFIX}replicated:");
        ReplicatedRevocations::builder().prefix(prefix).build(&url).expect("a Redis URL")
    };
    runtime.block_on(replicated.ready(Duration::from_secs(10))).expect("the replica loads");
    fill(&runtime, &replicated, until);

    let layer = || SessionLayer::new(codec.clone()).with_clock(clock.clone());
    let with = |store: Revocation| {
        Router::new().route("/", get(read)).layer(layer().with_revocation(store))
    };
    let memory = Revocation::new(memory, "user");
    let redis = Revocation::new(redis, "user");
    let replicated = Revocation::new(replicated, "user");
    let apps = Apps {
        variants: vec![
            ("no layer", Router::new().route("/", get(no_session))),
            ("no revocation", Router::new().route("/", get(read)).layer(layer())),
            ("memory", with(memory.clone())),
            ("redis", with(redis.clone())),
            ("replicated", with(replicated.clone())),
        ],
        runtime,
    };

    // Each variant answers as it should: the session is read, and (with revocation) a revoked
    // one is refused, so the check really runs.
    let mut eve = codec.open(&revoked, now).expect("opens");
    eve.purge();
    for revocation in [&memory, &redis, &replicated] {
        let revoke = revocation.revoke_purged(&eve, codec.config());
        apps.runtime.block_on(revoke).expect("recorded");
    }
    for (name, app) in &apps.variants {
        assert_eq!(apps.body(app, &header), "hello, ada", "{name}");
        let expected = match *name {
            "memory" | "redis" | "replicated" => "hello, nobody",
            "no layer" => "hello, ada",
            _ => "hello, eve",
        };
        // A revoked session is answered as a fresh one, whose cookies are removed.
        let response = apps.call(app, &revoked);
        let bytes = apps.runtime.block_on(to_bytes(response.into_body(), 1024)).expect("a body");
        assert_eq!(bytes, expected.as_bytes(), "{name}: the revoked session");
    }

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();
    let mut group = criterion.benchmark_group("revocation/read");
    for (name, app) in &apps.variants {
        group.bench_function(BenchmarkId::new("request", name), |b| {
            b.iter(|| apps.call(app, black_box(&header)))
        });
    }
    group.finish();
    criterion.final_summary();

    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|arg| arg == flag);
    if has("--bench") && !has("--test") && !has("--list") && !has("--profile-time") {
        let call = |i: usize| {
            let (apps, header) = (&apps, header.as_str());
            move || drop(black_box(apps.call(&apps.variants[i].1, black_box(header))))
        };
        let times =
            medians(&mut [&mut call(0), &mut call(1), &mut call(2), &mut call(3), &mut call(4)]);
        let (base, base_min) = times[1];
        println!();
        println!(
            "## Revocation cost (µs per request: median and fastest of {ROUNDS} alternating \
             batches)"
        );
        println!();
        println!("| request | median | added | fastest batch | added |");
        println!("|---|---:|---:|---:|---:|");
        for ((name, _), (median, min)) in apps.variants.iter().zip(&times) {
            let added = |value: f64, base: f64| {
                if *name == "no layer" { "-".to_owned() } else { format!("{:+.2}", value - base) }
            };
            println!(
                "| {name} | {median:.2} | {} | {min:.2} | {} |",
                added(*median, base),
                added(*min, base_min)
            );
        }
    }
}
