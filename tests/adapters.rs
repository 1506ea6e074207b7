//! The acceptance suite of the framework adapters: one set of tests, written once as functions
//! generic over [`TestServer`], run against the axum, actix-web and Poem adapters through real
//! servers on 127.0.0.1, driven by a reqwest client with a cookie jar as a browser would.
//!
//! Time is a [`ManualClock`] shared by the test and the server; no test sleeps. The session
//! configuration is the library's secure default (`__Host-` prefix, `Secure`, `HttpOnly`,
//! `SameSite=Lax`; reqwest's cookie store treats 127.0.0.1 as a secure context) except that
//! cookies are split at 2,048 bytes, so that a session spans three cookies within the default
//! Cookie header budget.

#![cfg(any(feature = "axum", feature = "actix-web", feature = "poem"))]

#[path = "common/servers.rs"]
mod servers;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::cookie::{CookieStore as _, Jar};
use reqwest::{Client, Url};
use sealed_session::{
    Clock as _, Key, KeyId, KeyRing, ManualClock, RejectReason, SessionCodec, SessionConfig,
    SharedKeyRing,
};
use serde_json::Value;
use servers::{
    LOGOUT_FAILS_ROUTE, LOGOUT_FAILS_STATUS, QUESTION_CSRF_ROUTE, QUESTION_ROUTE, Running,
    SAVE_ERROR_BODY, SAVE_ERROR_STATUS, THEME_COOKIE, TOO_BIG_BYTES, TestServer, filler,
};

/// The session's first cookie; further chunks are `NAME.1`, `NAME.2`, ...
const NAME: &str = "__Host-app";
/// The token header (the default).
const TOKEN_HEADER: &str = "x-session-token";
/// Bytes of filler that seal into exactly three cookies of at most 2,048 bytes.
const THREE_CHUNKS: usize = 7_000;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

fn config() -> SessionConfig {
    SessionConfig::builder("app").max_cookie_line(2048).build().expect("a valid configuration")
}

fn fixed_key(byte: u8) -> Key {
    Key::from_bytes([byte; 32])
}

fn codec() -> SessionCodec {
    SessionCodec::new(config(), KeyRing::single(Key::generate()))
}

/// Whether `name` is one of the session's cookies (`NAME` or `NAME.<n>`).
fn is_session_cookie(name: &str) -> bool {
    name == NAME
        || name
            .strip_prefix(NAME)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
}

/// The names `NAME`, `NAME.1`, ... of a session in `n` cookies.
fn chunk_names(n: usize) -> Vec<String> {
    (0..n).map(|i| if i == 0 { NAME.to_owned() } else { format!("{NAME}.{i}") }).collect()
}

/// `(name, value)` pairs of a Cookie request header.
fn pairs(header: &str) -> Vec<(String, String)> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// One response, read whole.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// Every Set-Cookie header, in order.
    set_cookies: Vec<String>,
    /// The token header, if the response has one.
    token: Option<String>,
    /// The Cache-Control header, if the response has one.
    cache_control: Option<String>,
    body: String,
}

impl Reply {
    async fn read(response: reqwest::Response) -> Reply {
        let headers = response.headers();
        let set_cookies = headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ASCII Set-Cookie").to_owned())
            .collect();
        let header = |name| headers.get(name).map(|v| v.to_str().expect("ASCII").to_owned());
        let (token, cache_control) = (header(TOKEN_HEADER), header("cache-control"));
        let status = response.status().as_u16();
        let body = response.text().await.expect("a body");
        Reply { status, set_cookies, token, cache_control, body }
    }

    fn json(&self) -> Value {
        assert_eq!(self.status, 200, "{self:?}");
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    /// The session's Set-Cookie headers, parsed.
    fn session_set_cookies(&self) -> Vec<cookie::Cookie<'static>> {
        self.set_cookies
            .iter()
            .map(|v| cookie::Cookie::parse(v.clone()).expect("a valid Set-Cookie"))
            .filter(|c| is_session_cookie(c.name()))
            .collect()
    }

    /// Names of the session cookies this response sets (not removals), in order.
    fn stored(&self) -> Vec<String> {
        let cookies = self.session_set_cookies().into_iter();
        cookies
            .filter(|c| c.max_age() != Some(cookie::time::Duration::ZERO))
            .map(|c| c.name().to_owned())
            .collect()
    }

    /// Names of the session cookies this response removes (`Max-Age=0`), in order.
    fn removed(&self) -> Vec<String> {
        let cookies = self.session_set_cookies().into_iter();
        cookies
            .filter(|c| c.max_age() == Some(cookie::time::Duration::ZERO))
            .map(|c| c.name().to_owned())
            .collect()
    }
}

/// A browser: a client with a cookie jar we can look into, talking to one server, and the
/// clock the server reads.
struct Browser {
    server: Running,
    client: Client,
    jar: Arc<Jar>,
    clock: ManualClock,
    origin: Url,
}

impl Browser {
    fn start<S: TestServer>(codec: SessionCodec) -> Browser {
        Browser::start_with::<S>(codec, false)
    }

    /// A browser on a server that answers a page of its own for a session it cannot save.
    fn start_with<S: TestServer>(codec: SessionCodec, save_error_page: bool) -> Browser {
        let clock = ManualClock::new(t0());
        let server = S::start_with(codec, clock.clone(), save_error_page);
        let jar = Arc::new(Jar::default());
        let client = Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .no_proxy()
            .build()
            .expect("a reqwest client");
        let origin = Url::parse(&server.url("/")).expect("a URL");
        Browser { server, client, jar, clock, origin }
    }

    async fn post(&self, path: &str) -> Reply {
        let response = self.client.post(self.server.url(path)).send().await;
        Reply::read(response.expect("the server answers")).await
    }

    async fn get(&self, path: &str) -> Reply {
        let response = self.client.get(self.server.url(path)).send().await;
        Reply::read(response.expect("the server answers")).await
    }

    /// `GET /whoami`: the session as the server saw it, and the reply.
    async fn whoami(&self) -> (Value, Reply) {
        let reply = self.get("/whoami").await;
        (reply.json(), reply)
    }

    /// The Cookie header `GET /echo` received.
    async fn echoed(&self) -> Vec<(String, String)> {
        let reply = self.get("/echo").await;
        let headers: Vec<String> = serde_json::from_value(reply.json()).expect("an array");
        headers.iter().flat_map(|header| pairs(header)).collect()
    }

    /// Every cookie the jar would send to the server now.
    fn jar(&self) -> Vec<(String, String)> {
        self.jar
            .cookies(&self.origin)
            .map_or_else(Vec::new, |header| pairs(header.to_str().expect("an ASCII Cookie header")))
    }

    /// The session's cookies in the jar, sorted by name.
    fn session_jar(&self) -> Vec<(String, String)> {
        let mut cookies: Vec<_> =
            self.jar().into_iter().filter(|(n, _)| is_session_cookie(n)).collect();
        cookies.sort();
        cookies
    }

    fn session_jar_names(&self) -> Vec<String> {
        self.session_jar().into_iter().map(|(name, _)| name).collect()
    }

    /// The jar's session cookies as one Cookie header, as the codec reads it.
    fn session_header(&self) -> String {
        let pairs = self.session_jar().into_iter().map(|(n, v)| format!("{n}={v}"));
        pairs.collect::<Vec<_>>().join("; ")
    }

    async fn login(&self, user: &str) -> Reply {
        let reply = self.post(&format!("/login?user={user}")).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        reply
    }

    async fn stop(self) {
        drop(self.client);
        self.server.stop().await;
    }
}

/// A client without a cookie jar, for hand-built Cookie and token headers.
fn bare_client() -> Client {
    Client::builder().no_proxy().build().expect("a reqwest client")
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    Reply::read(request.send().await.expect("the server answers")).await
}

// ---------------------------------------------------------------------------------------------
// The suite.
// ---------------------------------------------------------------------------------------------

/// A login persists across requests, under a new id, in cookies with the secure defaults.
async fn login_persists_across_requests<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    let (anonymous, _) = browser.whoami().await;
    assert_eq!(anonymous["user"], Value::Null);
    assert_eq!(anonymous["id"], Value::Null);

    // A session exists before login: the id planted then must not survive login.
    browser.post("/theme?session=1").await;
    let (before, _) = browser.whoami().await;
    let id_before = before["id"].as_str().expect("a session id").to_owned();

    let reply = browser.login("ada").await;
    assert_eq!(reply.stored(), [NAME], "{} login: {reply:?}", S::NAME);
    for cookie in reply.session_set_cookies() {
        assert_eq!(cookie.secure(), Some(true), "{cookie}");
        assert_eq!(cookie.http_only(), Some(true), "{cookie}");
        assert_eq!(cookie.same_site(), Some(cookie::SameSite::Lax), "{cookie}");
        assert_eq!(cookie.path(), Some("/"), "{cookie}");
        assert_eq!(cookie.domain(), None, "{cookie}");
    }
    assert_eq!(browser.session_jar_names(), [NAME]);

    for _ in 0..3 {
        let (me, _) = browser.whoami().await;
        assert_eq!(me["user"], "ada", "{}", S::NAME);
        assert_eq!(me["theme"], "dark", "values from before login are kept");
        let id = me["id"].as_str().expect("a session id");
        assert_ne!(id, id_before, "{}: login must renew the session id", S::NAME);
    }
    browser.stop().await;
}

/// A session grown past one cookie travels in NAME, NAME.1, NAME.2 and comes back whole.
async fn grown_session_spans_several_cookies<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    browser.login("ada").await;
    let reply = browser.post(&format!("/grow?bytes={THREE_CHUNKS}")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.stored(), chunk_names(3), "{}: {reply:?}", S::NAME);
    assert_eq!(browser.session_jar_names(), chunk_names(3));

    // What the server receives is what the jar holds.
    let mut sent: Vec<_> =
        browser.echoed().await.into_iter().filter(|(n, _)| is_session_cookie(n)).collect();
    sent.sort();
    assert_eq!(sent, browser.session_jar());
    let total: usize = sent.iter().map(|(n, v)| n.len() + 1 + v.len() + 2).sum();
    assert!(total <= config().cookie_budget(), "{total} bytes of Cookie header");

    for _ in 0..2 {
        let (me, _) = browser.whoami().await;
        assert_eq!(me["user"], "ada");
        assert_eq!(me["chunks"], 3);
        assert_eq!(me["blob"].as_str(), Some(filler(THREE_CHUNKS).as_str()), "{}", S::NAME);
    }
    browser.stop().await;
}

/// Shrinking a three-cookie session removes the two chunks it no longer needs from the jar.
async fn shrinking_removes_stale_chunks<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    browser.login("ada").await;
    browser.post(&format!("/grow?bytes={THREE_CHUNKS}")).await;
    assert_eq!(browser.session_jar_names(), chunk_names(3));

    let reply = browser.post("/shrink").await;
    assert_eq!(reply.stored(), [NAME], "{}: {reply:?}", S::NAME);
    assert_eq!(reply.removed(), [format!("{NAME}.1"), format!("{NAME}.2")], "{reply:?}");
    assert_eq!(browser.session_jar_names(), [NAME], "{}: stale chunks left in the jar", S::NAME);

    let sent: Vec<String> = browser.echoed().await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(sent, [NAME], "{}: the next request sends only the first cookie", S::NAME);
    let (me, reply) = browser.whoami().await;
    assert_eq!(me["user"], "ada");
    assert_eq!(me["blob"], Value::Null);
    assert_eq!(me["chunks"], 1);
    assert!(reply.set_cookies.is_empty(), "{reply:?}");
    browser.stop().await;
}

/// Logout removes every cookie of the session, chunks included.
async fn logout_leaves_no_session_cookie<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    browser.login("ada").await;
    browser.post(&format!("/grow?bytes={THREE_CHUNKS}")).await;
    browser.post("/theme").await;
    assert_eq!(browser.session_jar_names(), chunk_names(3));

    let reply = browser.post("/logout").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.stored(), Vec::<String>::new(), "{}: {reply:?}", S::NAME);
    assert_eq!(reply.removed(), chunk_names(3), "{}: {reply:?}", S::NAME);
    assert_eq!(browser.session_jar(), [], "{}: the jar still holds the session", S::NAME);
    // The application's own cookie is not the session's to remove.
    assert!(browser.jar().contains(&("theme".to_owned(), "dark".to_owned())));

    let sent = browser.echoed().await;
    assert!(sent.iter().all(|(n, _)| !is_session_cookie(n)), "{sent:?}");
    let (me, reply) = browser.whoami().await;
    assert_eq!(me["user"], Value::Null);
    assert_eq!(me["id"], Value::Null);
    assert!(reply.set_cookies.is_empty(), "{reply:?}");
    browser.stop().await;
}

/// A session idle for longer than the idle timeout (30 minutes, plus the 60 s of allowed clock
/// skew) is gone: the next request sees a fresh session and the stale cookie is removed.
async fn idle_session_expires<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    browser.login("ada").await;
    browser.clock.advance(minutes(29));
    let (me, _) = browser.whoami().await;
    assert_eq!(me["user"], "ada", "{}: expired too early", S::NAME);

    // The request at 29 min refreshed the window; 32 min of idleness end it.
    browser.clock.advance(minutes(32));
    let (me, reply) = browser.whoami().await;
    assert_eq!(me["user"], Value::Null, "{}: an idle session must expire", S::NAME);
    assert_eq!(me["id"], Value::Null);
    assert_eq!(reply.removed(), [NAME], "{}: {reply:?}", S::NAME);
    assert_eq!(browser.session_jar(), []);
    browser.stop().await;
}

/// Requests every 20 minutes keep a session alive well past 30 minutes: each refreshes the
/// idle window (refresh is due after 60 s), and the id stays the same.
async fn refreshed_session_outlives_idle_timeout<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    browser.login("ada").await;
    let (me, _) = browser.whoami().await;
    let id = me["id"].clone();
    for step in 1..=5 {
        browser.clock.advance(minutes(20));
        let (me, reply) = browser.whoami().await;
        assert_eq!(me["user"], "ada", "{}: logged out after {} min", S::NAME, step * 20);
        assert_eq!(me["id"], id, "a refresh keeps the id");
        assert_eq!(reply.stored(), [NAME], "{}: a due refresh must reseal: {reply:?}", S::NAME);
    }
    // And without the refreshes, the same 20-minute gap twice over would have ended it.
    browser.clock.advance(minutes(40));
    let (me, _) = browser.whoami().await;
    assert_eq!(me["user"], Value::Null);
    browser.stop().await;
}

/// A cookie with one character changed gives a fresh session (200, empty), and the bad
/// cookies are removed: for a one-cookie session and for a chunk of a three-cookie one.
async fn tampered_cookie_yields_fresh_session<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    let client = bare_client();
    for (grow, tamper_index) in [(None, 0), (Some(THREE_CHUNKS), 1)] {
        browser.login("ada").await;
        if let Some(bytes) = grow {
            browser.post(&format!("/grow?bytes={bytes}")).await;
        }
        let mut cookies = browser.session_jar();
        let chunks = cookies.len();
        assert_eq!(chunks, if grow.is_some() { 3 } else { 1 });
        let header = |cookies: &[(String, String)]| {
            cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
        };

        // The untouched cookies open.
        let reply =
            send(client.get(browser.server.url("/whoami")).header("cookie", header(&cookies)))
                .await;
        assert_eq!(reply.json()["user"], "ada");

        let value = &mut cookies[tamper_index].1;
        let middle = value.len() / 2;
        let flipped = if value.as_bytes()[middle] == b'A' { "B" } else { "A" };
        value.replace_range(middle..=middle, flipped);
        let reply =
            send(client.get(browser.server.url("/whoami")).header("cookie", header(&cookies)))
                .await;
        assert_eq!(reply.status, 200, "{}: a tampered cookie is not an error: {reply:?}", S::NAME);
        let me = reply.json();
        assert_eq!(me["user"], Value::Null, "{}: a tampered cookie opened", S::NAME);
        assert_eq!(me["id"], Value::Null);
        assert_eq!(reply.stored(), Vec::<String>::new());
        assert_eq!(reply.removed(), chunk_names(chunks), "{}: {reply:?}", S::NAME);
    }
    browser.stop().await;
}

/// A session too large to save is a 500 with an empty body (the handler's body might reveal
/// half-written state), and the client's previous session is left as it was.
async fn over_budget_session_is_an_empty_500<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    browser.login("ada").await;
    let before = browser.session_jar();

    let reply = browser.post("/too-big").await;
    assert_eq!(reply.status, 500, "{}: {reply:?}", S::NAME);
    assert_eq!(reply.body, "", "{}: the 500 must have an empty body", S::NAME);
    assert!(reply.set_cookies.is_empty(), "{reply:?}");
    assert_eq!(browser.session_jar(), before);

    let (me, _) = browser.whoami().await;
    assert_eq!(me["user"], "ada");
    assert_eq!(me["blob"], Value::Null);
    browser.stop().await;
}

/// The application's own Set-Cookie headers reach the client byte for byte, whether or not the
/// session is saved on the same response.
async fn application_set_cookies_survive<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    browser.login("ada").await;

    // Session unchanged: the application's cookie alone.
    let reply = browser.post("/theme").await;
    assert_eq!(reply.set_cookies, [THEME_COOKIE], "{}: {reply:?}", S::NAME);

    // Session changed: both, the application's untouched.
    let reply = browser.post("/theme?session=1").await;
    let theirs: Vec<&String> =
        reply.set_cookies.iter().filter(|v| v.starts_with("theme=")).collect();
    assert_eq!(theirs, [THEME_COOKIE], "{}: {reply:?}", S::NAME);
    assert_eq!(reply.stored(), [NAME], "{reply:?}");
    assert_eq!(reply.set_cookies.len(), 2, "{reply:?}");

    assert!(browser.jar().contains(&("theme".to_owned(), "dark".to_owned())));
    let (me, _) = browser.whoami().await;
    assert_eq!((me["user"].as_str(), me["theme"].as_str()), (Some("ada"), Some("dark")));
    browser.stop().await;
}

/// A response whose session did not change carries no Set-Cookie, until a refresh is due
/// (60 s after the last seal). A visitor whose session stays empty never gets one.
async fn unchanged_session_sends_no_set_cookie<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    let (_, reply) = browser.whoami().await;
    assert!(reply.set_cookies.is_empty(), "{}: an empty new session was saved", S::NAME);
    assert!(browser.get("/echo").await.set_cookies.is_empty());

    browser.login("ada").await;
    let (_, reply) = browser.whoami().await;
    assert!(reply.set_cookies.is_empty(), "{}: unchanged but saved: {reply:?}", S::NAME);
    browser.clock.advance(Duration::from_secs(59));
    let (_, reply) = browser.whoami().await;
    assert!(reply.set_cookies.is_empty(), "{}: refreshed before it was due", S::NAME);
    // Writing the value it already holds does not change the session either.
    let reply = browser.post("/login?user=ada").await;
    assert_eq!(reply.stored(), [NAME], "login renews, so it saves");
    let reply = browser.post("/shrink").await;
    assert!(reply.set_cookies.is_empty(), "{}: removing nothing saved: {reply:?}", S::NAME);

    browser.clock.advance(Duration::from_secs(60));
    let (me, reply) = browser.whoami().await;
    assert_eq!(me["user"], "ada");
    assert_eq!(reply.stored(), [NAME], "{}: the refresh was due: {reply:?}", S::NAME);
    let (_, reply) = browser.whoami().await;
    assert!(reply.set_cookies.is_empty(), "{}: refreshed twice: {reply:?}", S::NAME);
    browser.stop().await;
}

/// A session sealed under a key that no longer seals is resealed under the current key on its
/// next response, even when nothing else would save it; a staged key seals only once active.
async fn old_key_session_is_resealed<S: TestServer>() {
    let (old, new) = (KeyId(1), KeyId(2));
    let ring_of = |keys: &[(KeyId, u8, SystemTime)]| {
        let mut ring = KeyRing::new();
        for &(id, byte, activates_at) in keys {
            let created_at = activates_at.min(t0());
            ring.insert(id, fixed_key(byte), created_at, activates_at).expect("distinct ids");
        }
        ring
    };
    let keys = SharedKeyRing::new(ring_of(&[(old, 1, t0() - minutes(24 * 60))]));
    let browser = Browser::start::<S>(SessionCodec::new(config(), keys.clone()));
    browser.login("ada").await;
    let (me, _) = browser.whoami().await;
    assert_eq!(me["key_id"], old.0);

    // Staged: the new key opens at once but seals only from its activation, 30 s from now.
    let activation = t0() + Duration::from_secs(30);
    keys.replace(ring_of(&[(old, 1, t0() - minutes(24 * 60)), (new, 2, activation)]));
    let (me, reply) = browser.whoami().await;
    assert_eq!(me["key_id"], old.0);
    assert!(reply.set_cookies.is_empty(), "{}: resealed under a pending key", S::NAME);

    // Active 30 s later, well before a refresh is due: the next response reseals.
    browser.clock.advance(Duration::from_secs(30));
    let (me, reply) = browser.whoami().await;
    assert_eq!(me["key_id"], old.0, "opened under the old key");
    assert_eq!(me["user"], "ada");
    assert_eq!(reply.stored(), [NAME], "{}: not resealed: {reply:?}", S::NAME);
    let (me, reply) = browser.whoami().await;
    assert_eq!(me["key_id"], new.0, "{}", S::NAME);
    assert_eq!(me["user"], "ada");
    assert!(reply.set_cookies.is_empty(), "{reply:?}");

    // The jar's cookie opens under the new key alone, and no longer under the old one.
    let now = browser.clock.now();
    let header = browser.session_header();
    let new_only = SessionCodec::new(config(), ring_of(&[(new, 2, activation)]));
    let opened = new_only.open(&header, now).expect("opens under the new key alone");
    assert_eq!(opened.get::<String>("user").expect("decodes").as_deref(), Some("ada"));
    let old_only = SessionCodec::new(config(), ring_of(&[(old, 1, t0() - minutes(24 * 60))]));
    let rejected = old_only.open(&header, now).expect_err("sealed under the new key");
    assert_eq!(rejected.reason(), RejectReason::UnknownKey(new));
    browser.stop().await;
}

/// A client without a cookie jar carries the session in the `x-session-token` header: it starts
/// one by sending the header empty, gets each new token back in the same header (and never a
/// Set-Cookie), and an unchanged session sends no new token.
async fn token_header_transport<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    let client = bare_client();
    let url = |path: &str| browser.server.url(path);

    let reply = send(client.post(url("/login?user=ada")).header(TOKEN_HEADER, "")).await;
    assert_eq!(reply.status, 200);
    assert!(reply.set_cookies.is_empty(), "{}: cookies for a token client: {reply:?}", S::NAME);
    let token = reply.token.expect("a token in the response header");
    assert!(!token.is_empty());

    let reply = send(client.get(url("/whoami")).header(TOKEN_HEADER, &token)).await;
    assert_eq!(reply.json()["user"], "ada", "{}", S::NAME);
    assert_eq!(reply.token, None, "unchanged: no new token");
    assert!(reply.set_cookies.is_empty());

    let reply = send(client.post(url("/theme?session=1")).header(TOKEN_HEADER, &token)).await;
    assert_eq!(reply.set_cookies, [THEME_COOKIE], "{reply:?}");
    let token2 = reply.token.expect("a new token for a changed session");
    assert_ne!(token2, token);
    let reply = send(client.get(url("/whoami")).header(TOKEN_HEADER, &token2)).await;
    assert_eq!(reply.json()["theme"], "dark");

    // A due refresh sends a new token.
    browser.clock.advance(minutes(2));
    let reply = send(client.get(url("/whoami")).header(TOKEN_HEADER, &token2)).await;
    assert_eq!(reply.json()["user"], "ada");
    let token3 = reply.token.expect("a refreshed token");
    assert_ne!(token3, token2);

    // A token is not a cookie: the same value in the Cookie header does not open.
    let cookie = format!("{NAME}={token3}");
    let reply = send(client.get(url("/whoami")).header("cookie", cookie)).await;
    assert_eq!(reply.json()["user"], Value::Null, "{}: a token opened as a cookie", S::NAME);

    // Logout answers an empty token.
    let reply = send(client.post(url("/logout")).header(TOKEN_HEADER, &token3)).await;
    assert_eq!(reply.token.as_deref(), Some(""), "{}: {reply:?}", S::NAME);
    assert!(reply.set_cookies.is_empty());
    browser.stop().await;
}

/// A handler written with `?` compiles, and a session error answers an empty 500 that reveals
/// neither the value nor the reason; the session is untouched.
async fn question_mark_errors_reveal_nothing<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    let reply = browser.get(QUESTION_ROUTE).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "user number 0"), "{}", S::NAME);

    browser.login("ada").await;
    let reply = browser.get(QUESTION_ROUTE).await;
    assert_eq!(reply.status, 500, "{}: {reply:?}", S::NAME);
    assert_eq!(reply.body, "", "{}: the error page must reveal nothing", S::NAME);
    assert!(reply.set_cookies.is_empty(), "{reply:?}");
    let (me, _) = browser.whoami().await;
    assert_eq!(me["user"], "ada");
    browser.stop().await;
}

/// One error for a handler (issue 25, item 7): a handler returning `SessionError` uses `?` on
/// the CSRF check and on a session read. A missing or foreign token answers 403 with the fixed
/// text; a value that does not decode answers an empty 500; neither writes a cookie.
async fn one_error_answers_403_for_csrf_and_500_for_values<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    let token = browser.get("/csrf").await.body;
    let asked = |token: Option<&str>| {
        let url = browser.server.url(QUESTION_CSRF_ROUTE);
        let request = browser.client.post(url);
        send(match token {
            Some(token) => request.header(sealed_session::CSRF_HEADER, token),
            None => request,
        })
    };
    let table: [(Option<&str>, u16, &str); 3] = [
        (None, 403, "invalid CSRF token"),
        (Some("forged"), 403, "invalid CSRF token"),
        (Some(&token), 200, "user number 0"),
    ];
    for (submitted, status, body) in table {
        let reply = asked(submitted).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (status, body),
            "{}: {submitted:?}",
            S::NAME
        );
        assert!(reply.set_cookies.is_empty(), "{}: {reply:?}", S::NAME);
    }

    browser.login("ada").await;
    let token = browser.get("/csrf").await.body;
    let reply = asked(Some(&token)).await;
    assert_eq!((reply.status, reply.body.as_str()), (500, ""), "{}: {reply:?}", S::NAME);
    assert!(reply.set_cookies.is_empty(), "{reply:?}");
    browser.stop().await;
}

/// The second layer of CSRF defence, turned on: a post carrying the right token is still
/// refused when the browser says it came from another origin (`Sec-Fetch-Site`, else `Origin`
/// against `Host`); a trusted origin and requests without either header pass.
async fn origin_check_refuses_cross_origin_posts<S: TestServer>() {
    let config = SessionConfig::builder("app")
        .max_cookie_line(2048)
        .csrf_origin_check(true)
        .csrf_trusted_origin("https://admin.example");
    let browser = Browser::start::<S>(SessionCodec::new(
        config.build().expect("a valid configuration"),
        KeyRing::single(Key::generate()),
    ));
    let token = browser.get("/csrf").await.body;
    let own = browser.server.url("/").trim_end_matches('/').to_owned();
    let table: [(&[(&str, &str)], u16); 8] = [
        (&[], 200),
        (&[("sec-fetch-site", "same-origin")], 200),
        (&[("sec-fetch-site", "none")], 200),
        (&[("sec-fetch-site", "cross-site")], 403),
        (&[("sec-fetch-site", "same-site")], 403),
        (&[("sec-fetch-site", "cross-site"), ("origin", "https://admin.example")], 200),
        (&[("origin", own.as_str())], 200),
        (&[("origin", "https://evil.example")], 403),
    ];
    for (headers, status) in table {
        let mut request = browser.client.post(browser.server.url(QUESTION_CSRF_ROUTE));
        request = request.header(sealed_session::CSRF_HEADER, &token);
        for &(name, value) in headers {
            request = request.header(name, value);
        }
        let reply = send(request).await;
        assert_eq!(reply.status, status, "{}: {headers:?}", S::NAME);
    }
    browser.stop().await;
}

/// A logout cannot be undone by a response already in flight: a request that opened the
/// session before the logout (here: its cookies sent again after it, which the server cannot
/// tell apart) and changes it answers removals, never the old session's cookie again. That
/// holds for a request that opened the session before a renewal too (a second login, say),
/// when the logout came after the renewal: the logout covers the id the session had before.
async fn a_response_in_flight_cannot_undo_a_logout<S: TestServer>() {
    // (case, logins before the logout; the request in flight opened the session of the first)
    for (case, logins) in [("same id", 1), ("renewed since", 2), ("renewed twice", 3)] {
        let browser = Browser::start::<S>(codec());
        browser.login("ada").await;
        let in_flight = browser.session_header();
        for _ in 1..logins {
            browser.login("ada").await;
        }
        let reply = browser.post("/logout").await;
        let logged_out = reply.stored().is_empty() && !reply.removed().is_empty();
        assert!(logged_out, "{} {case}: {reply:?}", S::NAME);

        let url = browser.server.url("/count");
        let reply = send(bare_client().post(url).header("cookie", &in_flight)).await;
        assert_eq!(reply.status, 200, "{} {case}: {reply:?}", S::NAME);
        let stored = reply.stored();
        assert!(stored.is_empty(), "{} {case}: the old session set again: {reply:?}", S::NAME);
        assert!(!reply.removed().is_empty(), "{} {case}: its cookies removed once more", S::NAME);
        browser.stop().await;
    }
}

/// A response that is an error still finishes the session, on every adapter: a logout whose
/// handler then fails (its framework's error, 502) removes the cookies, and a rejected cookie
/// sent to a path no route answers (404) is removed. In Poem both travel through middleware as
/// `Err`, which skipped the whole finish step before (no removal, no logout recorded).
async fn an_error_response_still_finishes_the_session<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    browser.login("ada").await;
    let reply = browser.post(LOGOUT_FAILS_ROUTE).await;
    assert_eq!(reply.status, LOGOUT_FAILS_STATUS, "{}: {reply:?}", S::NAME);
    let logged_out = reply.stored().is_empty() && !reply.removed().is_empty();
    assert!(logged_out, "{}: the logout removes the cookies: {reply:?}", S::NAME);
    assert_eq!(browser.whoami().await.0["user"], Value::Null, "{}", S::NAME);

    browser.login("ada").await;
    browser.clock.advance(minutes(32));
    let reply = browser.get("/no-such-route").await;
    assert_eq!(reply.status, 404, "{}: {reply:?}", S::NAME);
    assert!(!reply.removed().is_empty(), "{}: the expired cookie is removed: {reply:?}", S::NAME);
    browser.stop().await;
}

/// With a save-error page configured, a session grown past its budget answers that page, writes
/// no cookie, and the browser keeps the state it had before.
async fn over_budget_page_keeps_previous_state<S: TestServer>() {
    let browser = Browser::start_with::<S>(codec(), true);
    browser.login("ada").await;
    browser.post("/grow?bytes=1000").await;
    let before = browser.session_jar();

    let reply = browser.post("/too-big").await;
    assert_eq!(reply.status, SAVE_ERROR_STATUS, "{}: {reply:?}", S::NAME);
    assert_eq!(reply.body, SAVE_ERROR_BODY, "{}", S::NAME);
    assert!(reply.set_cookies.is_empty(), "{}: {reply:?}", S::NAME);
    assert_eq!(browser.session_jar(), before);
    let (me, _) = browser.whoami().await;
    assert_eq!(me["user"], "ada");
    assert_eq!(me["blob"].as_str(), Some(filler(1000).as_str()), "{}", S::NAME);
    browser.stop().await;
}

/// A handler that checks `SessionHandle::size` before returning sees the sizes of a session
/// that would not fit, puts it back, and answers its own page; the browser keeps its state.
async fn handler_sees_the_budget<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    browser.login("ada").await;
    let reply = browser.post("/grow-checked?bytes=1000").await;
    assert_eq!(reply.status, 200, "{}: {reply:?}", S::NAME);
    let before = browser.session_jar();

    let reply = browser.post(&format!("/grow-checked?bytes={TOO_BIG_BYTES}")).await;
    assert_eq!(reply.status, 413, "{}: {reply:?}", S::NAME);
    let (needed, budget) = reply.body.split_once(" of ").expect("sizes");
    let (needed, budget): (usize, usize) = (needed.parse().unwrap(), budget.parse().unwrap());
    assert_eq!(budget, config().cookie_budget());
    assert!(needed > budget, "{}: {reply:?}", S::NAME);
    assert!(reply.set_cookies.is_empty(), "{}: put back, nothing to write: {reply:?}", S::NAME);
    assert_eq!(browser.session_jar(), before);
    let (me, _) = browser.whoami().await;
    assert_eq!(me["blob"].as_str(), Some(filler(1000).as_str()), "{}", S::NAME);
    browser.stop().await;
}

/// The handler sees, coarsely, why the request's cookies were rejected, on that request only.
async fn rejection_is_visible_to_the_handler<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    let rejected = async || browser.whoami().await.0["rejected"].clone();
    assert_eq!(rejected().await, Value::Null, "{}: no cookie is not a rejection", S::NAME);
    browser.login("ada").await;
    assert_eq!(rejected().await, Value::Null);

    browser.clock.advance(minutes(32));
    assert_eq!(rejected().await, "Expired", "{}", S::NAME);
    assert_eq!(rejected().await, Value::Null, "{}: the next request has no cookie", S::NAME);

    browser.login("ada").await;
    // One character of the sealed value changed: a tag byte, so it always changes the token (the
    // last character would not do: `pop` then `ends_with` looked at the one before it, and a
    // quarter of the time put back the very character it removed).
    let mut cookie = browser.session_header();
    let at = cookie.len() - 8;
    let other = if cookie.as_bytes()[at] == b'A' { "B" } else { "A" };
    cookie.replace_range(at..=at, other);
    let reply = send(bare_client().get(browser.server.url("/whoami")).header("cookie", cookie));
    assert_eq!(reply.await.json()["rejected"], "Invalid", "{}", S::NAME);
    browser.stop().await;
}

/// Cookie tossing: an attacker's own valid session planted under our name beside the user's
/// (from a sibling subdomain, or at a deeper path, which browsers send first) never wins: with
/// two different sessions in one Cookie header the request gets neither.
async fn a_planted_session_never_wins<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    // The attacker's session: a login of their own on the same site (without revocation, it
    // stays valid after the login below renews this browser's session).
    browser.login("mallory").await;
    let planted = browser.session_header();
    browser.login("ada").await;
    let ours = browser.session_header();
    let whoami = async |cookie: String| {
        let request = bare_client().get(browser.server.url("/whoami")).header("cookie", cookie);
        send(request).await.json()
    };
    for cookie in [format!("{planted}; {ours}"), format!("{ours}; {planted}")] {
        let me = whoami(cookie).await;
        let seen = (me["user"].clone(), me["rejected"].clone());
        assert_eq!(seen, (Value::Null, Value::from("Invalid")), "{}", S::NAME);
    }
    assert_eq!(whoami(planted).await["user"], "mallory", "{}: each alone opens", S::NAME);
    assert_eq!(whoami(ours).await["user"], "ada", "{}", S::NAME);
    browser.stop().await;
}

/// Two deployments that share a key ring (staging runs on a copy of production's) but carry
/// different purposes never accept each other's sessions, as a header token or as cookies;
/// each still opens its own.
async fn another_deployments_session_does_not_open<S: TestServer>() {
    let ring = KeyRing::single(fixed_key(41));
    let deployment = |purpose: &str| {
        let config = SessionConfig::builder("app").max_cookie_line(2048).purpose(purpose);
        SessionCodec::new(config.build().expect("a valid configuration"), ring.clone())
    };
    let staging = Browser::start::<S>(deployment("shop/staging"));
    let production = Browser::start::<S>(deployment("shop/production"));
    let client = bare_client();

    let reply = send(client.post(staging.server.url("/login?user=ada")).header(TOKEN_HEADER, ""));
    let token = reply.await.token.expect("a token in the response header");
    staging.login("ada").await;
    let cookies = staging.session_header();
    for (server, user) in [(&staging, "ada"), (&production, "")] {
        let whoami = || client.get(server.server.url("/whoami"));
        let by_token = send(whoami().header(TOKEN_HEADER, &token)).await.json();
        let by_cookie = send(whoami().header("cookie", &cookies)).await.json();
        for (how, me) in [("token", by_token), ("cookies", by_cookie)] {
            let seen = me["user"].as_str().unwrap_or_default().to_owned();
            assert_eq!(seen, user, "{}: staging's {how} at {}", S::NAME, server.server.url("/"));
        }
    }
    production.stop().await;
    staging.stop().await;
}

/// `update` counts in place; `remove` answers the old value, then nothing.
async fn update_and_remove_return_values<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    for (path, expected) in [
        ("/count", "1"),
        ("/count", "2"),
        ("/count", "3"),
        ("/uncount", "3"),
        ("/uncount", "null"),
        ("/count", "1"),
    ] {
        let reply = browser.post(path).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, expected), "{} {path}", S::NAME);
    }
    browser.stop().await;
}

/// A post carrying one of the session's CSRF tokens (header or form field) is accepted; none,
/// another session's, or one from before login (renew rotates it) is refused. Every page gets
/// the token masked afresh (BREACH), and each of them is accepted.
async fn csrf_token_guards_posts<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    let other = Client::builder()
        .cookie_provider(Arc::new(Jar::default()))
        .no_proxy()
        .build()
        .expect("a reqwest client");
    let token = browser.get("/csrf").await.body;
    let others_token = send(other.get(browser.server.url("/csrf"))).await.body;
    assert_ne!(token, others_token);
    let again = browser.get("/csrf").await.body;
    assert_ne!(again, token, "{}: the same token on two pages", S::NAME);

    let guarded = |token: Option<&str>, in_header: bool| {
        // Tokens are base64url: no escaping needed in a query.
        let request = match (token, in_header) {
            (Some(token), false) => {
                browser.client.post(browser.server.url(&format!("/guarded?csrf_token={token}")))
            }
            (Some(token), true) => browser
                .client
                .post(browser.server.url("/guarded"))
                .header(sealed_session::CSRF_HEADER, token),
            (None, _) => browser.client.post(browser.server.url("/guarded")),
        };
        send(request)
    };
    for (submitted, in_header, status) in [
        (Some(token.as_str()), true, 200),
        (Some(token.as_str()), false, 200),
        (Some(again.as_str()), true, 200),
        (Some(again.as_str()), false, 200),
        (None, true, 403),
        (Some(others_token.as_str()), true, 403),
        (Some(others_token.as_str()), false, 403),
        (Some(""), true, 403),
    ] {
        let reply = guarded(submitted, in_header).await;
        assert_eq!(reply.status, status, "{}: {submitted:?} in header {in_header}", S::NAME);
    }

    browser.login("ada").await;
    assert_eq!(guarded(Some(&token), true).await.status, 403, "{}: not rotated", S::NAME);
    let new_token = browser.get("/csrf").await.body;
    assert_ne!(new_token, token);
    assert_eq!(guarded(Some(&new_token), true).await.status, 200);
    browser.stop().await;
}

/// A flash set before a redirect shows on the page after it, once; a page with no flash to
/// show writes nothing.
async fn flash_survives_a_redirect_once<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    browser.login("ada").await;
    let reply = browser.post("/flash?msg=Saved").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, r#"["Saved"]"#), "{}", S::NAME);
    let reply = browser.get("/flashes").await;
    assert_eq!(reply.body, "[]", "{}: shown twice", S::NAME);
    assert!(reply.set_cookies.is_empty(), "{}: {reply:?}", S::NAME);
    browser.stop().await;
}

/// Two requests that change the same session at once: each response carries the whole session
/// as its request saw it, so the one the browser stores last wins and the other's change is lost.
async fn concurrent_changes_last_response_wins<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    browser.login("ada").await;
    let header = browser.session_header();
    let client = bare_client();
    let change = |path: &str| send(client.post(browser.server.url(path)).header("cookie", &header));
    let (grown, themed) = tokio::join!(change("/grow?bytes=100"), change("/theme?session=1"));
    let stored = |reply: &Reply| {
        let cookies = reply.session_set_cookies().into_iter();
        cookies.map(|c| format!("{}={}", c.name(), c.value())).collect::<Vec<_>>().join("; ")
    };
    for (last, blob, theme) in [(&grown, true, false), (&themed, false, true)] {
        let reply = send(client.get(browser.server.url("/whoami")).header("cookie", stored(last)));
        let me = reply.await.json();
        assert_eq!(me["user"], "ada");
        assert_eq!(me["blob"].is_string(), blob, "{}: {me}", S::NAME);
        assert_eq!(me["theme"].is_string(), theme, "{}: {me}", S::NAME);
    }
    browser.stop().await;
}

/// Every response carrying the session (cookies or token, stored or removed) tells caches not
/// to keep it; a response without session headers is left as the application made it.
async fn session_responses_are_kept_out_of_caches<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    let private = Some("private, no-store");
    // (request, whether it carries the session, what the response says to caches)
    let login = browser.login("ada").await;
    let (_, unchanged) = browser.whoami().await;
    let own_cookie_only = browser.get("/theme").await;
    let logout = browser.post("/logout").await;
    let token =
        send(bare_client().post(browser.server.url("/login")).header(TOKEN_HEADER, "")).await;
    let rows = [
        ("login", login, private),
        ("unchanged", unchanged, None),
        ("the application's own cookie", own_cookie_only, None),
        ("logout", logout, private),
        ("token login", token, private),
    ];
    for (what, reply, expected) in rows {
        assert_eq!(reply.cache_control.as_deref(), expected, "{}: {what}: {reply:?}", S::NAME);
    }
    browser.stop().await;
}

/// Runs every test of the suite against one adapter, as `<module>::<test>`.
/// Sends `GET path` over a plain TCP connection with `headers` written byte for byte (HTTP
/// clients refuse to send bytes outside visible ASCII, which browsers and servers pass through),
/// and reads the whole response.
async fn raw_get(server: &Running, path: &str, headers: Vec<(&'static str, Vec<u8>)>) -> Reply {
    use std::io::{Read as _, Write as _};

    let addr = server.base.strip_prefix("http://").expect("an http:// base").to_owned();
    let path = path.to_owned();
    let response = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&addr).expect("connects to the server");
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n").into_bytes();
        for (name, value) in headers {
            request.extend_from_slice(format!("{name}: ").as_bytes());
            request.extend_from_slice(&value);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"Connection: close\r\n\r\n");
        stream.write_all(&request).expect("sends the request");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("reads the response");
        response
    })
    .await
    .expect("the client thread");

    let end = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a header block");
    let head = std::str::from_utf8(&response[..end]).expect("an ASCII response head");
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|line| line.split(' ').nth(1)).expect("a status line");
    let fields: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let field = |wanted: &'static str| {
        fields.iter().filter(move |(name, _)| name == wanted).map(|(_, value)| value.clone())
    };
    assert!(field("transfer-encoding").next().is_none(), "a chunked body: {head}");
    Reply {
        status: status.parse().expect("a numeric status"),
        set_cookies: field("set-cookie").collect(),
        token: field(TOKEN_HEADER).next(),
        cache_control: field("cache-control").next(),
        body: String::from_utf8(response[end + 4..].to_vec()).expect("a UTF-8 body"),
    }
}

/// A byte outside visible ASCII in another cookie (`theme=café`, in UTF-8 or Latin-1, in the
/// same Cookie header or another) does not cost the session: both servers pass such bytes
/// through, and anyone who can set a cookie for the host could otherwise keep users signed out.
async fn other_cookies_may_hold_any_byte<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    browser.login("ada").await;
    let ours = browser.session_header().into_bytes();
    let with = |before: &[u8], after: &[u8]| [before, &ours, after].concat();
    // (what, the request's Cookie headers)
    let cases: [(&str, Vec<Vec<u8>>); 5] = [
        ("UTF-8 before", vec![with("theme=café; ".as_bytes(), b"")]),
        ("Latin-1 before", vec![with(b"theme=caf\xe9; ", b"")]),
        ("not UTF-8 after", vec![with(b"", b"; x=\xff\xfe\x80")]),
        ("in a name", vec![with(b"caf\xe9=1; ", b"")]),
        ("in another header", vec![b"theme=caf\xe9".to_vec(), ours.clone()]),
    ];
    for (what, cookie_headers) in cases {
        let headers = cookie_headers.into_iter().map(|value| ("Cookie", value)).collect();
        let reply = raw_get(&browser.server, "/whoami", headers).await;
        assert_eq!(reply.json()["user"], "ada", "{}: {what}: logged out", S::NAME);
        assert!(reply.set_cookies.is_empty(), "{}: {what}: {reply:?}", S::NAME);
    }
    browser.stop().await;
}

/// A token header that is not ASCII is a rejected token (a fresh session that goes back as a
/// token), never a reason to read the cookies instead; a valid token is unaffected by bytes
/// outside ASCII in the Cookie header.
async fn token_header_bytes_are_the_token<S: TestServer>() {
    let browser = Browser::start::<S>(codec());
    let client = bare_client();
    let reply =
        send(client.post(browser.server.url("/login?user=ada")).header(TOKEN_HEADER, "")).await;
    let token = reply.token.expect("a token");
    browser.login("bob").await;
    let cookies = browser.session_header().into_bytes();

    let headers = vec![(TOKEN_HEADER, b"caf\xe9".to_vec()), ("Cookie", cookies.clone())];
    let reply = raw_get(&browser.server, "/whoami", headers).await;
    assert_eq!(reply.json()["user"], Value::Null, "{}: fell back to the cookies", S::NAME);
    assert!(reply.set_cookies.is_empty(), "{}: cookies for a token client: {reply:?}", S::NAME);

    let other = [b"theme=caf\xe9; ".as_slice(), &cookies].concat();
    let headers = vec![(TOKEN_HEADER, token.into_bytes()), ("Cookie", other)];
    let reply = raw_get(&browser.server, "/whoami", headers).await;
    assert_eq!(reply.json()["user"], "ada", "{}", S::NAME);
    browser.stop().await;
}

/// Runs every test of the suite against one adapter, as `<module>::<test>`.
macro_rules! acceptance_suite {
    ($module:ident, $server:ty, [$($test:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test::<$server>().await;
                }
            )*
        }
    };
}

macro_rules! suite_for {
    ($module:ident, $server:ty) => {
        acceptance_suite!(
            $module,
            $server,
            [
                login_persists_across_requests,
                grown_session_spans_several_cookies,
                shrinking_removes_stale_chunks,
                logout_leaves_no_session_cookie,
                idle_session_expires,
                refreshed_session_outlives_idle_timeout,
                tampered_cookie_yields_fresh_session,
                over_budget_session_is_an_empty_500,
                application_set_cookies_survive,
                unchanged_session_sends_no_set_cookie,
                old_key_session_is_resealed,
                token_header_transport,
                question_mark_errors_reveal_nothing,
                one_error_answers_403_for_csrf_and_500_for_values,
                over_budget_page_keeps_previous_state,
                handler_sees_the_budget,
                rejection_is_visible_to_the_handler,
                update_and_remove_return_values,
                a_planted_session_never_wins,
                another_deployments_session_does_not_open,
                origin_check_refuses_cross_origin_posts,
                a_response_in_flight_cannot_undo_a_logout,
                an_error_response_still_finishes_the_session,
                csrf_token_guards_posts,
                flash_survives_a_redirect_once,
                concurrent_changes_last_response_wins,
                other_cookies_may_hold_any_byte,
                token_header_bytes_are_the_token,
                session_responses_are_kept_out_of_caches,
            ]
        );
    };
}

#[cfg(feature = "axum")]
suite_for!(axum_adapter, crate::servers::Axum);
#[cfg(feature = "actix-web")]
suite_for!(actix_adapter, crate::servers::Actix);
#[cfg(feature = "poem")]
suite_for!(poem_adapter, crate::servers::Poem);
