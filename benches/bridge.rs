//! The per-request cost of the tower-sessions bridge, in process (no network): an axum `Router`
//! called with `tower::ServiceExt::oneshot` behind three session layers, in the same run:
//!
//! * `SessionLayer`: this library's own layer, handlers use `SessionHandle`;
//! * `TowerSessionsLayer`: the bridge, handlers use `tower_sessions::Session`;
//! * tower-sessions' `SessionManagerLayer` with its `MemoryStore` (state on the server).
//!
//! Each holds a corpus state (`signin.json`, small; `history.json`, 5.9 KB) and answers two
//! routes: `read` reads one value, `write` changes one (so the sealed layers seal).
//!
//! Run with `cargo bench --bench bridge --features tower-sessions`: it prints a markdown table
//! of µs per request, the fastest and the median of alternating batches (`common::summaries`).

mod common;

use std::convert::Infallible;
use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{Request, Response, StatusCode};
use axum::routing::{get, post};
use sealed_session::integrations::tower::SessionLayer;
use sealed_session::integrations::tower_sessions::TowerSessionsLayer;
use sealed_session::{Key, KeyRing, SessionCodec, SessionConfig, SessionHandle};
use serde_json::{Map, Value};
use tokio::runtime::Runtime;
use tower::util::BoxCloneService;
use tower::{Layer as _, ServiceExt as _};
use tower_sessions::{MemoryStore, Session, SessionManagerLayer};

/// Alternating batches per request.
const ROUNDS: usize = 21;

/// The corpus states measured.
const FILES: [&str; 2] = ["signin.json", "history.json"];

type App = BoxCloneService<Request<Body>, Response<Body>, Infallible>;

fn state(json: &str) -> Map<String, Value> {
    serde_json::from_str(json).expect("a JSON object")
}

/// The routes on `SessionHandle`: `/seed` stores the state, `/read` reads a value, `/write`
/// changes one.
fn handle_routes(seed: Map<String, Value>) -> Router {
    Router::new()
        .route(
            "/seed",
            post(move |session: SessionHandle| async move {
                for (key, value) in &seed {
                    session.insert(key.clone(), value).expect("encodes");
                }
            }),
        )
        .route(
            "/read",
            get(|session: SessionHandle| async move {
                black_box(session.get::<Value>("n").ok());
            }),
        )
        .route(
            "/write",
            get(|session: SessionHandle| async move {
                let n: u64 = session.get("n").ok().flatten().unwrap_or(0);
                session.insert("n", n + 1).expect("encodes");
            }),
        )
        .with_state(())
}

/// The same routes on `tower_sessions::Session`.
fn tower_routes(seed: Map<String, Value>) -> Router {
    Router::new()
        .route(
            "/seed",
            post(move |session: Session| async move {
                for (key, value) in seed {
                    session.insert(&key, value).await.expect("inserts");
                }
            }),
        )
        .route(
            "/read",
            get(|session: Session| async move {
                black_box(session.get_value("n").await.ok());
            }),
        )
        .route(
            "/write",
            get(|session: Session| async move {
                let n: u64 = session.get("n").await.ok().flatten().unwrap_or(0);
                session.insert("n", n + 1).await.expect("inserts");
            }),
        )
        .with_state(())
}

fn call(runtime: &Runtime, app: &App, method: &str, path: &str, cookies: &str) -> Response<Body> {
    let request = Request::builder().method(method).uri(path).header(COOKIE, cookies);
    let request = request.body(Body::empty()).expect("a request");
    runtime.block_on(app.clone().oneshot(request)).expect("infallible")
}

/// The Cookie header a browser sends after `/seed`.
fn seeded(runtime: &Runtime, app: &App) -> String {
    let response = call(runtime, app, "POST", "/seed", "");
    assert_eq!(response.status(), StatusCode::OK);
    let pairs = response.headers().get_all(SET_COOKIE).iter().map(|value| {
        let value = value.to_str().expect("ASCII");
        value.split(';').next().expect("name=value").to_owned()
    });
    let header = pairs.collect::<Vec<_>>().join("; ");
    assert!(!header.is_empty(), "the seed set cookies");
    header
}

fn main() {
    if !common::summary_requested() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    println!("## Bridge cost (µs per request: fastest / median of {ROUNDS} alternating batches)");
    println!();
    println!(
        "| state | route | `SessionLayer` | `TowerSessionsLayer` | tower-sessions `MemoryStore` |"
    );
    println!("|---|---|---:|---:|---:|");
    for file in FILES {
        let json = std::fs::read_to_string(common::corpus_dir().join(file)).expect("the corpus");
        let seed = state(&json);
        let apps: [App; 3] = [
            BoxCloneService::new(
                SessionLayer::new(codec.clone()).layer(handle_routes(seed.clone())),
            ),
            BoxCloneService::new(
                TowerSessionsLayer::new(codec.clone()).layer(tower_routes(seed.clone())),
            ),
            BoxCloneService::new(
                SessionManagerLayer::new(MemoryStore::default())
                    .with_secure(false)
                    .layer(tower_routes(seed)),
            ),
        ];
        let headers: Vec<String> = apps.iter().map(|app| seeded(&runtime, app)).collect();
        for route in ["/read", "/write"] {
            let mut ops: Vec<Box<dyn FnMut()>> = apps
                .iter()
                .zip(&headers)
                .map(|(app, header)| {
                    let runtime = &runtime;
                    Box::new(move || {
                        let response = call(runtime, app, "GET", route, header);
                        debug_assert_eq!(response.status(), StatusCode::OK);
                        drop(black_box(response));
                    }) as Box<dyn FnMut()>
                })
                .collect();
            let mut refs: Vec<&mut dyn FnMut()> = ops.iter_mut().map(|op| &mut **op as _).collect();
            let summaries = common::summaries(ROUNDS, &mut refs);
            let cells: Vec<String> = summaries
                .iter()
                .map(|s| {
                    let fastest = s.batches.iter().copied().fold(f64::INFINITY, f64::min);
                    format!("{fastest:.2} / {:.2}", s.median)
                })
                .collect();
            println!("| {file} | {route} | {} |", cells.join(" | "));
        }
    }
}
