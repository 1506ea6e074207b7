//! How cost grows: `open` and `seal` time and wire bytes as a realistic state grows from about
//! 100 bytes of JSON to the cookie budget and past it (where `seal` becomes an error), next to
//! `PrivateJar`, the hardware floor and a loopback Redis `GET` of the same state; and as the
//! same state is split across more and more cookies.
//!
//! Series:
//! - `cart`: a shopping cart of N items with varied fields (names, SKUs, prices, options,
//!   times): compressible, as most application state is.
//! - `tokens`: N random 256-bit tokens in base64url: about 6 bits of entropy per byte, so
//!   compression can save at most a quarter (the incompressible case).
//! - `chunks-small`, `chunks-large`: one fixed `tokens` state sealed with `max_cookie_line`
//!   from 4096 down to 512 bytes, so the same token takes more and more cookies: the largest
//!   state that fits one default cookie (about 4 KB, 1 to 9 cookies, default budget), and a
//!   state of about 10 KB (3 to 22 cookies, under a budget raised to 24 KiB).
//!
//! Needs a Redis server: `SEALED_SESSION_BENCH_REDIS=127.0.0.1:PORT` (the bench fails without
//! it); `scripts/bench-report.sh` starts one. A real benchmark run writes the medians to
//! `target/bench-report/growth.json`.

mod common;

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use sealed_session::{SealError, Session, SessionConfig};
use serde_json::{Value, json};

use common::{Floor, Ops, Rng, Sides, State, each_timed, run, summaries};

const ROUNDS: usize = 101;
/// Target JSON sizes: from about 100 bytes (90, so that the empty cart is the first point) up
/// by a factor of √2, until two points past the first one that no longer seals.
const FIRST_SIZE: f64 = 90.0;
const MAX_SIZE: f64 = 200_000.0;
/// Cookie lines for the chunk series.
const LINES: [usize; 8] = [4096, 3072, 2048, 1536, 1024, 768, 640, 512];
/// The default `max_cookie_line`.
const DEFAULT_LINE: usize = 4096;

/// A shopping cart of `items` items.
fn cart(items: usize) -> State {
    const ADJECTIVES: [&str; 12] = [
        "Organic",
        "Recycled",
        "Classic",
        "Slim-fit",
        "Waterproof",
        "Merino",
        "Vintage",
        "Lightweight",
        "Heavy-duty",
        "Linen",
        "Bamboo",
        "Insulated",
    ];
    const NOUNS: [&str; 12] = [
        "t-shirt",
        "hoodie",
        "rain jacket",
        "running shoes",
        "backpack",
        "scarf",
        "chinos",
        "water bottle",
        "beanie",
        "desk lamp",
        "notebook",
        "socks (3 pack)",
    ];
    const COLORS: [&str; 7] =
        ["black", "navy", "forest green", "sand", "burgundy", "white", "grey"];
    const SIZES: [&str; 7] = ["XS", "S", "M", "L", "XL", "EU 42", "one size"];
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let mut state = State::new();
    state.insert("user_id".into(), json!(4_821_337));
    state.insert("locale".into(), json!("de-DE"));
    state.insert("currency".into(), json!("EUR"));
    state.insert("csrf".into(), json!(rng.token(22)));
    let cart: Vec<Value> = (0..items)
        .map(|i| {
            let mut item = json!({
                "sku": format!("SKU-{:06}", rng.below(1_000_000)),
                "name": format!("{} {}", rng.pick(&ADJECTIVES), rng.pick(&NOUNS)),
                "qty": 1 + rng.below(4),
                "unit_price_cents": 199 + rng.below(25_000),
                "options": { "color": rng.pick(&COLORS), "size": rng.pick(&SIZES) },
                "added_at": 1_799_990_000 + 37 * i as u64 + rng.below(30),
            });
            if rng.below(4) == 0 {
                item["gift_wrap"] = json!(true);
            }
            item
        })
        .collect();
    state.insert("cart".into(), Value::Array(cart));
    state
}

/// `count` random 256-bit tokens in base64url (43 characters each).
fn tokens(count: usize) -> State {
    let mut rng = Rng(0x5eed_cafe_f00d_0002);
    let mut state = State::new();
    state.insert("user_id".into(), json!(4_821_337));
    let tokens: Vec<Value> = (0..count).map(|_| json!(rng.token(43))).collect();
    state.insert("tokens".into(), Value::Array(tokens));
    state
}

fn json_len(state: &State) -> usize {
    serde_json::to_string(state).expect("serializes").len()
}

/// One measured point of a series.
struct Point {
    label: String,
    items: usize,
    /// The `max_cookie_line` it was sealed with.
    line: usize,
    state: State,
    json_len: usize,
    msgpack: Vec<u8>,
    /// Ours, when it seals.
    sealed: Option<Sealed>,
    /// Why it does not seal.
    error: Option<String>,
    peer_header: String,
    peer_wire: usize,
    floor_value: String,
    redis_key: String,
}

struct Sealed {
    session: Session,
    header: String,
    wire: usize,
    header_share: usize,
    chunks: usize,
}

fn point(
    sides: &Sides,
    floor: &Floor,
    redis: &mut redis::Connection,
    label: String,
    items: usize,
    line: usize,
    state: State,
) -> Point {
    let json_len = json_len(&state);
    let msgpack = rmp_serde::to_vec_named(&state).expect("encodes");
    let mut session = Sides::session_of(&state);
    let (sealed, error) = match sides.codec.seal(&mut session, sides.now) {
        Ok(cookies) => {
            let header = cookies.request_header();
            assert_eq!(sides.open_and_read(&header), state, "{label}: round trip");
            let sealed = Sealed {
                wire: cookies.cookies().iter().map(|c| c.value().len()).sum(),
                header_share: cookies.request_header_share(),
                chunks: cookies.len(),
                header,
                session,
            };
            (Some(sealed), None)
        }
        Err(
            error @ (SealError::TooLarge { .. }
            | SealError::TooManyCookies { .. }
            | SealError::StateTooLarge { .. }),
        ) => (None, Some(error.to_string())),
        Err(error) => panic!("{label}: unexpected seal error {error}"),
    };
    let (peer_header, peer_wire) = sides.peer_header(&state);
    assert_eq!(sides.peer_open(&peer_header), state, "{label}: PrivateJar round trip");
    let floor_value = floor.seal(&msgpack);
    let redis_key = format!("sealed-session-bench:growth:{label}");
    common::redis_set(redis, &redis_key, &msgpack);
    Point {
        label,
        items,
        line,
        state,
        json_len,
        msgpack,
        sealed,
        error,
        peer_header,
        peer_wire,
        floor_value,
        redis_key,
    }
}

/// The points of a growing series: the smallest item count reaching each target size, until
/// two points past the first that does not seal; and where exactly sealing starts to fail.
fn growth_series(
    name: &str,
    sides: &Sides,
    floor: &Floor,
    redis: &mut redis::Connection,
    make: fn(usize) -> State,
) -> (Vec<Point>, Value) {
    let mut points: Vec<Point> = Vec::new();
    let mut failed = 0;
    let mut items = 0;
    let mut target = FIRST_SIZE;
    while failed < 3 && target <= MAX_SIZE {
        while json_len(&make(items)) < target as usize {
            items += 1;
        }
        if points.last().is_none_or(|p| p.items != items) {
            let label = format!("{name}-{items}");
            let point = point(sides, floor, redis, label, items, DEFAULT_LINE, make(items));
            failed += usize::from(point.sealed.is_none());
            points.push(point);
        }
        target *= std::f64::consts::SQRT_2;
    }
    let limit = seal_limit(sides, make, &points);
    (points, limit)
}

/// The largest item count that still seals and the error of the next one.
fn seal_limit(sides: &Sides, make: fn(usize) -> State, points: &[Point]) -> Value {
    let fits = |items: usize| {
        let state = make(items);
        let mut session = Sides::session_of(&state);
        sides.codec.seal(&mut session, sides.now).map(|cookies| (state, cookies))
    };
    let last_ok = points.iter().rev().find(|p| p.sealed.is_some()).map_or(0, |p| p.items);
    let Some(first_bad) = points.iter().find(|p| p.sealed.is_none()).map(|p| p.items) else {
        return Value::Null;
    };
    let (mut good, mut bad) = (last_ok, first_bad);
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if fits(mid).is_ok() { good = mid } else { bad = mid }
    }
    let (state, cookies) = fits(good).expect("the last fitting count seals");
    let bad_state = make(bad);
    let error = fits(bad).expect_err("the first count past the limit fails");
    json!({
        "last_ok": {
            "items": good,
            "json_bytes": json_len(&state),
            "msgpack_bytes": rmp_serde::to_vec_named(&state).expect("encodes").len(),
            "wire_bytes": cookies.cookies().iter().map(|c| c.value().len()).sum::<usize>(),
            "header_share": cookies.request_header_share(),
            "chunks": cookies.len(),
        },
        "first_error": {
            "items": bad,
            "json_bytes": json_len(&bad_state),
            "msgpack_bytes": rmp_serde::to_vec_named(&bad_state).expect("encodes").len(),
            "error": error.to_string(),
        },
        "budget": sides.codec.config().cookie_budget(),
    })
}

/// The chunk series: one `tokens` state of `count` tokens under each of `LINES`.
fn chunk_series(
    floor: &Floor,
    redis: &mut redis::Connection,
    count: usize,
    budget: usize,
) -> Vec<(Sides, Point)> {
    LINES
        .iter()
        .map(|&line| {
            let config = SessionConfig::builder("session")
                .max_cookie_line(line)
                .cookie_budget(budget)
                .build()
                .expect("a valid configuration");
            let sides = Sides::with_config(config);
            let label = format!("chunks-{count}-line-{line}");
            let point = point(&sides, floor, redis, label, count, line, tokens(count));
            assert!(point.sealed.is_some(), "{}: {:?}", point.label, point.error);
            (sides, point)
        })
        .collect()
}

/// The largest token count that fits one default 4096-byte line.
fn one_chunk_tokens(sides: &Sides) -> usize {
    let chunks = |count: usize| {
        let mut session = Sides::session_of(&tokens(count));
        sides.codec.seal(&mut session, sides.now).map_or(usize::MAX, |cookies| cookies.len())
    };
    (1..).find(|&count| chunks(count + 1) > 1).expect("some count needs two chunks")
}

/// An operation's function and parameter (as in a criterion id).
type OpName = (&'static str, &'static str);

/// Ours open and seal, then PrivateJar open and seal, floor open and Redis GET; the ones
/// that apply to `point`.
const OPS: [OpName; 6] = [
    ("open", "sealed-session"),
    ("seal", "sealed-session"),
    ("open", "privatejar"),
    ("seal", "privatejar"),
    ("open", "floor"),
    ("open", "redis-get"),
];

fn with_ops(
    sides: &Sides,
    floor: &Floor,
    redis: &mut redis::Connection,
    point: &mut Point,
    redis_calls: &RefCell<Vec<f64>>,
    each: &mut dyn FnMut(&[OpName], Ops<'_>),
) {
    let (peer_header, state) = (&point.peer_header, &point.state);
    let (floor_value, key) = (&point.floor_value, point.redis_key.as_str());
    let mut peer_open = run(|| sides.peer_open(black_box(peer_header)));
    let mut peer_seal = run(|| sides.peer_seal(black_box(state)));
    let mut floor_open = run(|| floor.open(black_box(floor_value)));
    let mut get = each_timed(redis_calls, || common::redis_get(redis, black_box(key)));
    match &mut point.sealed {
        Some(sealed) => {
            let header = &sealed.header;
            let session = &mut sealed.session;
            each(
                &OPS,
                &mut [
                    &mut run(|| sides.open(black_box(header))),
                    &mut run(|| sides.seal(black_box(&mut *session))),
                    &mut peer_open,
                    &mut peer_seal,
                    &mut floor_open,
                    &mut get,
                ],
            );
        }
        None => each(&OPS[2..], &mut [&mut peer_open, &mut peer_seal, &mut floor_open, &mut get]),
    }
}

fn criterion_group(
    criterion: &mut Criterion,
    name: &str,
    points: &mut [(&Sides, &mut Point)],
    parameter: fn(&Point) -> String,
) {
    let mut group = criterion.benchmark_group(format!("growth/{name}"));
    for (sides, point) in points.iter_mut() {
        let id = parameter(point);
        group.throughput(Throughput::Bytes(point.json_len as u64));
        let Some(sealed) = &mut point.sealed else { continue };
        let header = &sealed.header;
        group.bench_function(BenchmarkId::new("open", &id), |b| {
            b.iter(|| sides.open(black_box(header)))
        });
        let session = &mut sealed.session;
        group.bench_function(BenchmarkId::new("seal", &id), |b| {
            b.iter(|| sides.seal(black_box(&mut *session)))
        });
    }
    group.finish();
}

fn point_report(
    sides: &Sides,
    floor: &Floor,
    redis: &mut redis::Connection,
    p: &mut Point,
) -> Value {
    let (mut names, mut times) = (Vec::new(), Vec::new());
    let redis_calls = RefCell::default();
    with_ops(sides, floor, redis, p, &redis_calls, &mut |ops_names, ops| {
        names = ops_names.iter().map(|(f, p)| format!("{f}/{p}")).collect();
        times = summaries(ROUNDS, ops);
    });
    let single = [("open/redis-get", &redis_calls)];
    let timing = common::timing(&names, &times, &single);
    let sealed = p.sealed.as_ref();
    let mut report = json!({
        "label": p.label,
        "items": p.items,
        "json_bytes": p.json_len,
        "msgpack_bytes": p.msgpack.len(),
        "max_cookie_line": p.line,
        "wire_bytes": {
            "sealed-session": sealed.map(|s| s.wire),
            "privatejar": p.peer_wire,
            "floor": p.floor_value.len(),
        },
        "header_share": sealed.map(|s| s.header_share),
        "chunks": sealed.map(|s| s.chunks),
        "seal_error": p.error,
    });
    report.as_object_mut().expect("an object").extend(timing);
    report
}

fn main() {
    let sides = Sides::new();
    let floor = Floor::new();
    let mut redis = common::redis_connection();

    let (mut carts, cart_limit) = growth_series("cart", &sides, &floor, &mut redis, cart);
    let (mut toks, token_limit) = growth_series("tokens", &sides, &floor, &mut redis, tokens);
    let small = one_chunk_tokens(&sides);
    let mut small_chunks =
        chunk_series(&floor, &mut redis, small, sides.codec.config().cookie_budget());
    // About 10 KB of cookie value: 3 chunks of 4096 bytes, 22 of 512.
    let mut large_chunks = chunk_series(&floor, &mut redis, 210, 24 * 1024);

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(500))
        .sample_size(20)
        .configure_from_args();
    let by_size = |p: &Point| format!("{}B", p.json_len);
    let by_chunks =
        |p: &Point| format!("line-{}-{}-chunks", p.line, p.sealed.as_ref().map_or(0, |s| s.chunks));
    let mut refs: Vec<(&Sides, &mut Point)> = carts.iter_mut().map(|p| (&sides, p)).collect();
    criterion_group(&mut criterion, "cart", &mut refs, by_size);
    let mut refs: Vec<(&Sides, &mut Point)> = toks.iter_mut().map(|p| (&sides, p)).collect();
    criterion_group(&mut criterion, "tokens", &mut refs, by_size);
    for (name, series) in [("chunks-small", &mut small_chunks), ("chunks-large", &mut large_chunks)]
    {
        let mut refs: Vec<(&Sides, &mut Point)> =
            series.iter_mut().map(|(s, p)| (&*s, p)).collect();
        criterion_group(&mut criterion, name, &mut refs, by_chunks);
    }
    criterion.final_summary();

    if !common::summary_requested() {
        return;
    }
    let mut series = Vec::new();
    for (name, points, limit) in
        [("cart", &mut carts, cart_limit), ("tokens", &mut toks, token_limit)]
    {
        let points: Vec<Value> =
            points.iter_mut().map(|p| point_report(&sides, &floor, &mut redis, p)).collect();
        series.push(json!({ "name": name, "budget": sides.codec.config().cookie_budget(),
                            "points": points, "seal_limit": limit }));
    }
    for (name, points) in [("chunks-small", &mut small_chunks), ("chunks-large", &mut large_chunks)]
    {
        let budget = points[0].0.codec.config().cookie_budget();
        let points: Vec<Value> =
            points.iter_mut().map(|(s, p)| point_report(s, &floor, &mut redis, p)).collect();
        series.push(json!({ "name": name, "budget": budget, "points": points }));
    }
    eprintln!("cart seal limit: {}", series[0]["seal_limit"]);
    eprintln!("tokens seal limit: {}", series[1]["seal_limit"]);
    common::write_report(
        "growth",
        &json!({
            "bench": "growth",
            "rounds": ROUNDS,
            "batch_ms": common::BATCH.as_secs_f64() * 1e3,
            "series": series,
        }),
    );
}
