//! A session's own lifetime, through real axum servers on 127.0.0.1 (port 0) with an injected
//! clock: tower-sessions' `Session::set_expiry` under `TowerSessionsLayer` (the expectations of
//! tower-sessions 0.14's own expiry tests, plus the sealed bounds), and
//! `SessionHandle::set_lifetime` under `SessionLayer`. A client that keeps its cookie past the
//! `Max-Age` it was given (or edits it) replays the same value: the tests replay each cookie at
//! the edge of its sealed bound and one second past it.
#![cfg(feature = "tower-sessions")]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, Request};
use axum::routing::{get, post};
use axum::{Json, Router, ServiceExt};
use cookie::time::{Duration as TimeDuration, OffsetDateTime};
use reqwest::{Client, StatusCode, Url};
use sealed_session::integrations::tower::SessionLayer;
use sealed_session::integrations::tower_sessions::TowerSessionsLayer;
use sealed_session::revocation::{MemoryRevocations, Revocation};
use sealed_session::{
    Key, KeyRing, Lifetime, ManualClock, Rejected, SessionCodec, SessionConfig, SessionHandle,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tower_sessions::{Expiry, Session};

const NAME: &str = "__Host-app";
const IDLE: u64 = 1800;
const SKEW: u64 = 60;
const ABSOLUTE: u64 = 7 * 24 * 3600;
const DAY: u64 = 24 * 3600;

/// Sessions idle out after 30 minutes and end after 7 days; browser-session cookies unless a
/// session says otherwise (`persistent` off, the default).
fn codec() -> SessionCodec {
    let config = SessionConfig::builder("app")
        .idle_timeout(Duration::from_secs(IDLE))
        .absolute_timeout(Duration::from_secs(ABSOLUTE))
        .build()
        .expect("a valid configuration");
    SessionCodec::new(config, KeyRing::single(Key::generate()))
}

/// A running axum server; [`Server::stop`] shuts it down and waits for it.
struct Server {
    base: Url,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start<L>(layer: L, router: Router) -> Server
    where
        L: tower::Layer<Router>,
        L::Service: tower::Service<
                Request,
                Response = axum::response::Response,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<Request>>::Future: Send,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr: SocketAddr = listener.local_addr().expect("an address");
        let app = ServiceExt::<Request>::into_make_service(layer.layer(router));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app);
            serve.with_graceful_shutdown(async { stopped.await.ok().unwrap_or(()) }).await.ok();
        });
        Server { base: Url::parse(&format!("http://{addr}/")).expect("a URL"), stop, task }
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("a URL")
    }

    /// Sends `cookie` (a Cookie header, maybe empty) and returns the response's session
    /// cookies as `(Cookie header to send back, Max-Age of each line)`, and the body.
    async fn call(&self, method: &str, path: &str, cookie: &str) -> (Written, String) {
        let request = match method {
            "POST" => Client::new().post(self.url(path)),
            _ => Client::new().get(self.url(path)),
        };
        let response = request.header("cookie", cookie).send().await.expect("a response");
        assert_eq!(response.status(), StatusCode::OK, "{method} {path}");
        let written = Written::of(&response);
        (written, response.text().await.expect("a body"))
    }

    async fn stop(self) {
        self.stop.send(()).ok();
        self.task.await.expect("the server task ends cleanly");
    }
}

/// The session cookies a response sets (removals left out).
#[derive(Debug, Default)]
struct Written {
    /// `name=value; ...` as a browser sends them back; empty when the response set none.
    header: String,
    /// Each line's `Max-Age` in seconds, `None` for a browser-session cookie.
    max_ages: Vec<Option<i64>>,
}

impl Written {
    fn of(response: &reqwest::Response) -> Written {
        let lines = response.headers().get_all(reqwest::header::SET_COOKIE).iter();
        let cookies: Vec<_> = lines
            .filter_map(|v| cookie::Cookie::parse(v.to_str().ok()?.to_owned()).ok())
            .filter(|c| c.name().starts_with(NAME) && !c.value().is_empty())
            .collect();
        assert!(cookies.iter().all(|c| c.expires().is_none()), "Max-Age only, never Expires");
        Written {
            header: cookies
                .iter()
                .map(|c| format!("{}={}", c.name(), c.value()))
                .collect::<Vec<_>>()
                .join("; "),
            max_ages: cookies.iter().map(|c| c.max_age().map(|age| age.whole_seconds())).collect(),
        }
    }
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

// -- tower-sessions' `Session` under `TowerSessionsLayer`.

#[derive(Deserialize)]
struct SetExpiry {
    kind: String,
    secs: Option<i64>,
    at: Option<i64>,
}

fn expiry_of(query: &SetExpiry) -> Option<Expiry> {
    match query.kind.as_str() {
        "none" => None,
        "end" => Some(Expiry::OnSessionEnd),
        "idle" => Some(Expiry::OnInactivity(TimeDuration::seconds(query.secs.expect("secs")))),
        "at" => {
            let at = OffsetDateTime::from_unix_timestamp(query.at.expect("at")).expect("a date");
            Some(Expiry::AtDateTime(at))
        }
        other => panic!("unknown expiry {other}"),
    }
}

fn tower_app() -> Router {
    async fn insert(session: Session) {
        session.insert("user", "ada").await.expect("inserted");
        session.insert("cart", 42).await.expect("inserted");
    }
    async fn logout(session: Session) {
        session.flush().await.expect("flushed");
    }
    async fn set_expiry(session: Session, Query(query): Query<SetExpiry>) {
        session.set_expiry(expiry_of(&query));
    }
    /// The value, and what the getters say: the expiry, its date and age in seconds.
    async fn show(session: Session) -> Json<Value> {
        let cart: Option<u64> = session.get("cart").await.expect("a value");
        let expiry = match session.expiry() {
            None => json!("none"),
            Some(Expiry::OnSessionEnd) => json!("end"),
            Some(Expiry::OnInactivity(idle)) => json!({ "idle": idle.whole_seconds() }),
            Some(Expiry::AtDateTime(at)) => json!({ "at": at.unix_timestamp() }),
        };
        let (date, age) = (session.expiry_date(), session.expiry_age());
        let (date, age) = (date.unix_timestamp(), age.whole_seconds());
        Json(json!({ "cart": cart, "expiry": expiry, "date": date, "age": age }))
    }
    Router::new()
        .route("/insert", post(insert))
        .route("/set_expiry", get(set_expiry))
        .route("/show", get(show))
        .route("/logout", get(logout))
}

async fn tower_server(clock: &ManualClock) -> Server {
    Server::start(TowerSessionsLayer::new(codec()).with_clock(clock.clone()), tower_app()).await
}

/// Each `Expiry`, set on a stored session by a request that changes nothing else: the
/// response writes the cookies with the `Max-Age` it asks for (clamped to the configured
/// absolute end), the next request's getters report it, and the sealed bound holds when the
/// cookie is replayed: at its edge (bound + clock skew) it opens, one second later it is a
/// fresh session, whatever `Max-Age` the client kept.
#[tokio::test]
async fn each_expiry_is_written_reported_and_sealed() {
    let start = SystemTime::now();
    let t0 = unix(start) as i64;
    let (absolute, day) = (ABSOLUTE as i64, DAY as i64);
    // (query, Max-Age written, what `expiry()` reports next, the sealed bound in seconds)
    let rows: [(String, Option<i64>, Value, u64); 7] = [
        // A browser-session cookie, bounded by the configured idle timeout inside the seal.
        ("kind=end".into(), None, json!("end"), IDLE),
        // Back to the configuration's own (persistent off): no Max-Age, configured idle.
        ("kind=none".into(), None, json!("none"), IDLE),
        // Shorter and longer than the configured idle timeout: the session's own holds.
        ("kind=idle&secs=600".into(), Some(600), json!({ "idle": 600 }), 600),
        ("kind=idle&secs=172800".into(), Some(2 * day), json!({ "idle": 2 * day }), 2 * DAY),
        // Longer than the absolute timeout: cut to it.
        ("kind=idle&secs=2592000".into(), Some(absolute), json!({ "idle": absolute }), ABSOLUTE),
        // A fixed end, with no idle timeout (upstream's `AtDateTime`)...
        (
            format!("kind=at&at={}", t0 + 2 * day),
            Some(2 * day),
            json!({ "at": t0 + 2 * day }),
            2 * DAY,
        ),
        // ...never past the configured absolute end.
        (
            format!("kind=at&at={}", t0 + 30 * day),
            Some(absolute),
            json!({ "at": t0 + absolute }),
            ABSOLUTE,
        ),
    ];
    for (query, max_age, reported, bound) in rows {
        let clock = ManualClock::new(start);
        let server = tower_server(&clock).await;
        let (stored, _) = server.call("POST", "/insert", "").await;
        assert_eq!(stored.max_ages, [None], "{query}: a stored session, persistent off");

        let (set, _) = server.call("GET", &format!("/set_expiry?{query}"), &stored.header).await;
        assert_eq!(set.max_ages, [max_age], "{query}: set_expiry writes the cookie");

        let (_, shown) = server.call("GET", "/show", &set.header).await;
        let shown: Value = serde_json::from_str(&shown).expect("JSON");
        assert_eq!((&shown["cart"], &shown["expiry"]), (&json!(42), &reported), "{query}");
        if let Some(max_age) = max_age {
            // The getters count from the real time, the cookie from the server's clock (still
            // at `start`): apart by at most the real time since `start`, which a loaded
            // machine stretches, so it is measured rather than assumed.
            let slack = unix(SystemTime::now()) as i64 - t0 + 1;
            let age = shown["age"].as_i64().expect("an age");
            assert!((max_age - slack..=max_age).contains(&age), "{query}: expiry_age {age}");
            let date = shown["date"].as_i64().expect("a date");
            let dates = t0 + max_age..=t0 + max_age + slack;
            assert!(dates.contains(&date), "{query}: date {date}");
        }

        // The cookie `set_expiry` wrote, replayed at the edge of its sealed bound and past it.
        for (later, alive) in [(bound + SKEW, true), (bound + SKEW + 1, false)] {
            clock.set(start + Duration::from_secs(later));
            let (_, shown) = server.call("GET", "/show", &set.header).await;
            let shown: Value = serde_json::from_str(&shown).expect("JSON");
            let cart = if alive { json!(42) } else { Value::Null };
            assert_eq!(shown["cart"], cart, "{query}: {later} s after it was set");
        }
        server.stop().await;
    }
}

/// tower-sessions 0.14's `set_expiry` and `change_expiry_type` route tests, on one session:
/// each change writes the cookie with the `Max-Age` the new expiry asks for; an idle timeout
/// set late gets the time left to the absolute end when that is less.
#[tokio::test]
async fn expiry_changes_on_one_session_as_upstream() {
    let start = SystemTime::now();
    let t0 = unix(start) as i64;
    let clock = ManualClock::new(start);
    let server = tower_server(&clock).await;
    let (mut written, _) = server.call("POST", "/insert", "").await;
    assert_eq!(written.max_ages, [None]);
    let day = DAY as i64;
    // (seconds after the start, query, Max-Age written)
    let rows = [
        (0, "kind=idle&secs=3600".to_owned(), Some(3600)),
        (0, format!("kind=at&at={}", t0 + day), Some(day)),
        (0, "kind=end".to_owned(), None),
        (0, "kind=idle&secs=3600".to_owned(), Some(3600)),
        // The same expiry again: upstream writes the cookie all the same.
        (0, "kind=idle&secs=3600".to_owned(), Some(3600)),
        (0, "kind=none".to_owned(), None),
        (0, format!("kind=at&at={}", t0 + 30 * day), Some(ABSOLUTE as i64)),
        // Six days on (no idle timeout with a fixed end), one day is left of the seven.
        (6 * DAY, "kind=idle&secs=172800".to_owned(), Some(day)),
        (6 * DAY, "kind=end".to_owned(), None),
    ];
    for (later, query, max_age) in rows {
        clock.set(start + Duration::from_secs(later));
        let (set, _) = server.call("GET", &format!("/set_expiry?{query}"), &written.header).await;
        assert_eq!(set.max_ages, [max_age], "{query} after {later} s");
        written = set;
    }
    server.stop().await;
}

/// An empty session that only sets an expiry writes nothing, as upstream (which saves no
/// empty session): not even a removal.
#[tokio::test]
async fn an_empty_session_that_sets_an_expiry_writes_nothing() {
    let clock = ManualClock::new(SystemTime::now());
    let server = tower_server(&clock).await;
    let url = server.url("/set_expiry?kind=idle&secs=600");
    let response = Client::new().get(url).send().await.expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let lines = response.headers().get_all(reqwest::header::SET_COOKIE).iter().count();
    assert_eq!(lines, 0, "no Set-Cookie line");
    server.stop().await;
}

/// A logout revokes every copy of the session's cookies, also when its end was brought
/// forward after a copy was taken: the copy (an idle timeout of two days) is refused two hours
/// later, though the cookie that logged out ended after one.
#[tokio::test]
async fn a_logout_after_a_fixed_end_revokes_earlier_copies() {
    let start = SystemTime::now();
    let t0 = unix(start) as i64;
    let clock = ManualClock::new(start);
    let revocation = Revocation::new(MemoryRevocations::with_clock(clock.clone()), "user");
    let layer = TowerSessionsLayer::new(codec()).with_clock(clock.clone());
    let server = Server::start(layer.with_revocation(revocation), tower_app()).await;
    let (login, _) = server.call("POST", "/insert", "").await;
    let (copy, _) = server.call("GET", "/set_expiry?kind=idle&secs=172800", &login.header).await;
    let query = format!("/set_expiry?kind=at&at={}", t0 + 3600);
    let (short, _) = server.call("GET", &query, &copy.header).await;
    assert_eq!(short.max_ages, [Some(3600)]);
    server.call("GET", "/logout", &short.header).await;
    // (seconds after the start, the copy's value then)
    for (later, cart) in [(60, Value::Null), (2 * 3600, Value::Null)] {
        clock.set(start + Duration::from_secs(later));
        let (_, shown) = server.call("GET", "/show", &copy.header).await;
        let shown: Value = serde_json::from_str(&shown).expect("JSON");
        assert_eq!(shown["cart"], cart, "the copy, {later} s on");
    }
    server.stop().await;
}

// -- The library's own `SessionHandle` under `SessionLayer`: "remember me".

fn handle_app() -> Router {
    #[derive(Deserialize)]
    struct Login {
        remember: bool,
    }
    async fn login(session: SessionHandle, Query(login): Query<Login>) {
        session.insert("user", "ada").expect("inserted");
        session.renew();
        if login.remember {
            session.set_lifetime(Lifetime::Idle(Duration::from_secs(30 * DAY)));
        }
    }
    async fn me(session: SessionHandle) -> Json<Value> {
        let user: Option<String> = session.get("user").expect("a value");
        let rejected = session.rejected().map(|r| match r {
            Rejected::Expired => "expired",
            _ => "other",
        });
        Json(json!({ "user": user, "rejected": rejected }))
    }
    Router::new().route("/login", post(login)).route("/me", get(me))
}

/// "Remember me" in a plain axum app: a remembered login outlives the configured idle timeout
/// (up to the absolute end), a plain one does not; past its bound the cookie is a fresh
/// session and the handler is told it expired.
#[tokio::test]
async fn remember_me_with_the_session_handle() {
    let start = SystemTime::now();
    // (remember, Max-Age written, seconds idle, signed in then, the rejection)
    let rows = [
        (false, None, IDLE + SKEW, true, None),
        (false, None, IDLE + SKEW + 1, false, Some("expired")),
        (true, Some(ABSOLUTE as i64), 3 * DAY, true, None),
        (true, Some(ABSOLUTE as i64), ABSOLUTE + SKEW + 1, false, Some("expired")),
    ];
    for (remember, max_age, later, signed_in, rejected) in rows {
        let clock = ManualClock::new(start);
        let layer = SessionLayer::new(codec()).with_clock(clock.clone());
        let server = Server::start(layer, handle_app()).await;
        let (login, _) = server.call("POST", &format!("/login?remember={remember}"), "").await;
        assert_eq!(login.max_ages, [max_age], "remember {remember}");
        clock.set(start + Duration::from_secs(later));
        let (_, me) = server.call("GET", "/me", &login.header).await;
        let me: Value = serde_json::from_str(&me).expect("JSON");
        let user = if signed_in { json!("ada") } else { Value::Null };
        assert_eq!(me["user"], user, "remember {remember}, {later} s idle");
        assert_eq!(me["rejected"], json!(rejected), "remember {remember}, {later} s idle");
        server.stop().await;
    }
}
