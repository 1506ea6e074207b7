//! The per-request cost the tower/axum adapter adds, in process (no network): an axum `Router`
//! called with `tower::ServiceExt::oneshot`, with and without `SessionLayer`, for each state of
//! `../shared/corpus/` held in the session.
//!
//! Three requests, each carrying the Cookie header a browser would send for that state:
//!
//! * `plain`: a handler that ignores the session, without the layer (the baseline);
//! * `read`: with the layer, a handler that reads the session: open only, nothing is sealed;
//! * `write`: with the layer, a handler that changes the session: open, then seal.
//!
//! The layer wraps the whole router (`SessionLayer::layer(router)`); the summary also times
//! `read` with the layer applied by `Router::layer`, which wraps each route instead.
//!
//! Run with `cargo bench --bench adapter --features axum`. Criterion reports each request per
//! corpus file; the bench then prints markdown tables of µs per request and the cost the layer
//! adds over `plain`, timed with `Instant` in alternating batches (as `benches/codec.rs` does):
//! the fastest batch, which a busy machine disturbs least, and the median.

mod common;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{Request, Response, StatusCode};
use axum::routing::get;
use criterion::{BenchmarkId, Criterion};
use sealed_session::integrations::tower::{SessionLayer, SessionService};
use sealed_session::{
    Key, KeyRing, ManualClock, Session, SessionCodec, SessionConfig, SessionHandle,
};
use serde_json::{Map, Value};
use tokio::runtime::Runtime;
use tower::{Layer as _, Service, ServiceExt as _};

/// The summary's timing: `ROUNDS` alternating batches of each request (see `common::summaries`).
const ROUNDS: usize = 51;

/// A key no corpus state holds, so that writing it always changes the session.
const TOUCHED: &str = "bench.touched";

/// One corpus file as a session: the Cookie header that carries it.
struct Case {
    file: String,
    json_len: usize,
    cookie_header: String,
    cookies: usize,
}

/// The applications, the runtime that drives them, and the clock the layer reads. The layer
/// wraps the whole router, as the module docs of `integrations::tower` advise; `read_routed`
/// applies it with `Router::layer` instead, to show what that costs.
struct Apps {
    runtime: Runtime,
    plain: Router,
    read: SessionService<Router>,
    write: SessionService<Router>,
    read_routed: Router,
}

async fn plain() -> &'static str {
    "ok"
}

async fn read(session: SessionHandle) -> &'static str {
    black_box(session.with(|session| session.len()));
    "ok"
}

async fn write(session: SessionHandle) -> &'static str {
    session.insert(TOUCHED, true).expect("a bool encodes");
    "ok"
}

impl Apps {
    fn new(codec: &SessionCodec, clock: &ManualClock) -> Apps {
        let layer = || SessionLayer::new(codec.clone()).with_clock(clock.clone());
        Apps {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a tokio runtime"),
            // `with_state` turns handlers into routes once, as `axum::serve` does; without it
            // the router would rebuild each route (and apply the layer) on every request.
            plain: Router::new().route("/", get(plain)).with_state(()),
            read: layer().layer(Router::new().route("/", get(read)).with_state(())),
            write: layer().layer(Router::new().route("/", get(write)).with_state(())),
            read_routed: Router::new().route("/", get(read)).layer(layer()).with_state(()),
        }
    }

    /// One request through `app`, as a browser holding the session would send it.
    fn call<S>(&self, app: &S, cookie_header: &str) -> Response<Body>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone,
    {
        let request = Request::get("/")
            .header(COOKIE, cookie_header)
            .body(Body::empty())
            .expect("a valid request");
        self.runtime.block_on(app.clone().oneshot(request)).expect("infallible")
    }
}

fn load_cases(codec: &SessionCodec, now: SystemTime) -> Vec<Case> {
    common::corpus_files()
        .into_iter()
        .map(|(file, json)| {
            let state: Map<String, Value> = serde_json::from_str(&json)
                .unwrap_or_else(|error| panic!("{file} is not a JSON object: {error}"));
            let mut session = Session::new();
            for (key, value) in &state {
                session.insert(key.clone(), value).expect("a JSON value encodes");
            }
            let cookies = codec.seal(&mut session, now).expect("the corpus fits the budget");
            Case {
                file,
                json_len: json.len(),
                cookie_header: cookies.request_header(),
                cookies: cookies.len(),
            }
        })
        .collect()
}

/// The requests must do what the table says they do, or the timings compare nothing.
fn check(apps: &Apps, case: &Case) {
    let set_cookies =
        |response: &Response<Body>| response.headers().get_all(SET_COOKIE).iter().count();
    let plain = apps.call(&apps.plain, &case.cookie_header);
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(set_cookies(&plain), 0);
    for read in [
        apps.call(&apps.read, &case.cookie_header),
        apps.call(&apps.read_routed, &case.cookie_header),
    ] {
        assert_eq!(read.status(), StatusCode::OK, "{}", case.file);
        assert_eq!(set_cookies(&read), 0, "{}: a read-only request sealed", case.file);
    }
    let write = apps.call(&apps.write, &case.cookie_header);
    assert_eq!(write.status(), StatusCode::OK, "{}", case.file);
    assert!(set_cookies(&write) >= case.cookies, "{}: a write did not seal", case.file);
}

fn bench_case(criterion: &mut Criterion, apps: &Apps, case: &Case) {
    let mut group = criterion.benchmark_group(format!("adapter/{}", case.file));
    let header = &case.cookie_header;
    group.bench_function(BenchmarkId::new("request", "plain"), |b| {
        b.iter(|| apps.call(&apps.plain, black_box(header)))
    });
    group.bench_function(BenchmarkId::new("request", "read"), |b| {
        b.iter(|| apps.call(&apps.read, black_box(header)))
    });
    group.bench_function(BenchmarkId::new("request", "write"), |b| {
        b.iter(|| apps.call(&apps.write, black_box(header)))
    });
    group.finish();
}

/// Microseconds per call of each operation: the fastest of `ROUNDS` alternating batches, and
/// their median. Each batch is timed whole, so the fastest is the cost with the least
/// interference from the rest of the machine; on a shared machine it moves much less than the
/// median.
fn timings(ops: &mut [&mut dyn FnMut()]) -> Vec<Timing> {
    common::summaries(ROUNDS, ops)
        .into_iter()
        .map(|summary| Timing {
            fastest: summary.batches.iter().copied().fold(f64::INFINITY, f64::min),
            median: summary.median,
        })
        .collect()
}

/// µs per request.
#[derive(Clone, Copy)]
struct Timing {
    fastest: f64,
    median: f64,
}

fn print_summary(apps: &Apps, cases: &[Case]) {
    let rows: Vec<[Timing; 4]> = cases
        .iter()
        .map(|case| {
            let header = case.cookie_header.as_str();
            let times = timings(&mut [
                &mut || drop(black_box(apps.call(&apps.plain, black_box(header)))),
                &mut || drop(black_box(apps.call(&apps.read, black_box(header)))),
                &mut || drop(black_box(apps.call(&apps.write, black_box(header)))),
                &mut || drop(black_box(apps.call(&apps.read_routed, black_box(header)))),
            ]);
            [times[0], times[1], times[2], times[3]]
        })
        .collect();
    for (title, pick) in [
        ("fastest", (|t: Timing| t.fastest) as fn(Timing) -> f64),
        ("median", |t: Timing| t.median),
    ] {
        println!();
        println!("## Adapter cost ({title} of {ROUNDS} alternating batches, µs per request)");
        println!();
        println!(
            "| state | JSON B | cookies | without layer | read (open) | added by read \
             | write (open+seal) | added by write | added by read, `Router::layer` |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (case, row) in cases.iter().zip(&rows) {
            let [plain, read, write, routed] = row.map(pick);
            println!(
                "| {} | {} | {} | {plain:.2} | {read:.2} | +{:.2} | {write:.2} | +{:.2} | +{:.2} |",
                case.file,
                case.json_len,
                case.cookies,
                read - plain,
                write - plain,
                routed - plain,
            );
        }
    }
}

fn main() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    // The clock stands still at the time the cookies were sealed: no refresh is ever due, so a
    // read-only request seals nothing.
    let clock = ManualClock::new(now);
    let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    let cases = load_cases(&codec, now);
    let apps = Apps::new(&codec, &clock);
    for case in &cases {
        check(&apps, case);
    }

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();
    for case in &cases {
        bench_case(&mut criterion, &apps, case);
    }
    criterion.final_summary();

    // The summary only in a real benchmark run: not under `cargo test --benches` (no `--bench`),
    // `-- --test`, `--list` or `--profile-time`.
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|arg| arg == flag);
    if has("--bench") && !has("--test") && !has("--list") && !has("--profile-time") {
        print_summary(&apps, &cases);
    }
}
