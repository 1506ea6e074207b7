//! The per-request work of the peers' HTTP benchmark (`peers/`), without the network, for
//! counting instructions: a session holding the peers' login state (`user`, a 10-line `cart`,
//! a sensitive `csrf` token) is sealed once, then each request either reads it (`read`: open,
//! get `user`) or writes it (`write`: open, get and insert the counter `n`, seal).
//!
//! `scripts/hot-path.sh` runs all four cases under callgrind and prints instructions per
//! request (`BENCHMARKS.md`, "Instructions per request"); by hand:
//!
//! ```text
//! cargo build --release --example hot_path --features axum
//! valgrind --tool=callgrind --toggle-collect='*hot_path::requests_*' \
//!     target/release/examples/hot_path codec read 1000
//! callgrind_annotate --inclusive=yes callgrind.out.<pid>
//! ```
//!
//! The first argument is the path: `codec` calls `SessionCodec::load` and `store_headers`
//! directly; `tower` sends each request through `SessionLayer` around an axum `Router`, as
//! the peers' sealed-session server does (a current-thread tokio runtime, no sockets). The
//! second is the route, `read` or `write`; the third the number of requests. Only the loop
//! (`requests_codec`, `requests_tower`) is counted under `--toggle-collect`: divide its
//! instructions by the count for a cost per request that does not depend on the machine's
//! load. The clock is the system's, read as the adapters read it. Built with the `metrics`
//! feature, it installs a Prometheus recorder first, so the count includes recording the
//! metrics (`scripts/hot-path.sh --metrics` compares both).

use std::hint::black_box;
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{Request, Response};
use axum::routing::get;
use sealed_session::integrations::tower::{SessionLayer, SessionService};
use sealed_session::{Key, KeyRing, Session, SessionCodec, SessionConfig, SessionHandle};
use tokio::runtime::Runtime;
use tower::{Layer as _, ServiceExt as _};

/// The peers' user (`peers/src/state.rs`).
// The peers' state itself (`peers/src/state.rs`), so that this example measures what the peers'
// servers store.
#[allow(dead_code)]
#[path = "../peers/src/state.rs"]
mod state;
use state::{CSRF_TOKEN, USER, cart};

/// The Cookie header a browser sends after the peers' login.
fn login_cookie(codec: &SessionCodec) -> String {
    let mut session = Session::new();
    session.insert("user", USER).expect("a string encodes");
    session.insert("cart", cart()).expect("the cart encodes");
    session.insert_sensitive("csrf", CSRF_TOKEN).expect("a string encodes");
    codec.seal(&mut session, SystemTime::now()).expect("the state fits").request_header()
}

/// What a route's handler does with the session: the peers' handlers.
fn handle(session: &mut Session, write: bool) {
    if write {
        let n: u64 = session.get("n").ok().flatten().unwrap_or(0) + 1;
        session.insert("n", n).expect("a number encodes");
    } else {
        let user: Option<String> = session.get("user").ok().flatten();
        black_box(user);
    }
}

/// The counted loop through the codec: load, handle, store, as the adapters do.
#[inline(never)]
fn requests_codec(codec: &SessionCodec, header: &str, write: bool, count: usize) -> usize {
    let mut headers = 0;
    for _ in 0..count {
        let mut session = codec.load([black_box(header)], None, SystemTime::now());
        handle(&mut session, write);
        let out = codec.store_headers(&mut session, SystemTime::now()).expect("seals");
        headers += black_box(out).len();
    }
    headers
}

async fn read_route(session: SessionHandle) -> String {
    session.with(|session| handle(session, false));
    "hello".to_owned()
}

async fn write_route(session: SessionHandle) -> String {
    session.with(|session| handle(session, true));
    "written".to_owned()
}

/// The counted loop through the tower layer.
#[inline(never)]
fn requests_tower(
    runtime: &Runtime,
    app: &SessionService<Router>,
    header: &str,
    count: usize,
) -> usize {
    let mut headers = 0;
    for _ in 0..count {
        let request = Request::get("/")
            .header(COOKIE, black_box(header))
            .body(Body::empty())
            .expect("a valid request");
        let response: Response<Body> =
            runtime.block_on(app.clone().oneshot(request)).expect("infallible");
        headers += response.headers().get_all(SET_COOKIE).iter().count();
    }
    headers
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: hot_path codec|tower read|write COUNT";
    let [path, route, count] = args.as_slice() else { panic!("{usage}") };
    let write = match route.as_str() {
        "read" => false,
        "write" => true,
        _ => panic!("{usage}"),
    };
    let count: usize = count.parse().expect(usage);

    // With the `metrics` feature, a real recorder, so the counts include recording.
    #[cfg(feature = "metrics")]
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder");
    let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    let header = login_cookie(&codec);
    let headers = match path.as_str() {
        "codec" => requests_codec(&codec, &header, write, count),
        "tower" => {
            let runtime =
                tokio::runtime::Builder::new_current_thread().build().expect("a tokio runtime");
            let router = match write {
                false => Router::new().route("/", get(read_route)),
                true => Router::new().route("/", get(write_route)),
            };
            let app = SessionLayer::new(codec).layer(router.with_state(()));
            requests_tower(&runtime, &app, &header, count)
        }
        _ => panic!("{usage}"),
    };
    // A read seals nothing; a write sets one cookie.
    assert_eq!(headers, if write { count } else { 0 }, "the requests did what they say");
    #[cfg(feature = "metrics")]
    {
        let opened = format!("{}{{outcome=\"opened\"}} {count}", sealed_session::metrics::SESSIONS);
        let text = recorder.render();
        assert!(text.lines().any(|line| line == opened), "the recorder counted them:\n{text}");
    }
    println!("{path} {route}: {count} requests, cookie header of {} bytes", header.len());
}
