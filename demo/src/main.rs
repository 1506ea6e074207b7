//! The sealed-session demo: an axum app whose whole state lives in sealed cookies.
//!
//! ```sh
//! cargo run -p sealed-session-demo
//! ```
//!
//! Log in and out, fill a cart and a notes list, and watch the session's cookies (their names,
//! sizes and chunk count) change on every page. Options:
//!
//! * `--port N` (or `PORT`): listen on 127.0.0.1:N (default 3000; 0 picks a free port);
//!   a port in use is reported in one line, naming `--port`;
//! * `--keys FILE` (or `SEALED_SESSION_KEYS_FILE`): seal with that key ring file;
//!   `SEALED_SESSION_KEYS`: the key ring as one environment value. With neither, the demo makes
//!   an ephemeral ring and says so: sessions then end when it stops.
//!
//! * `--redis URL` (or `SEALED_SESSION_REDIS`): keep revocations in Redis (needs the `redis`
//!   feature: `cargo run -p sealed-session-demo --features redis -- --redis redis://127.0.0.1/`), so
//!   several demo processes share them. Without it, revocations live in this process's memory.
//! * `--no-session-layer`: serve only the two load-test routes below, by handlers that never
//!   touch a session, for measuring what the session layer costs (`scripts/load.sh`).
//! * `GET /metrics` (feature `metrics`, on by default): the library's metrics (README,
//!   "Metrics") in Prometheus text, outside the session layer so that scrapes count as no
//!   request.
//!
//! The demo splits cookies at 2,048 bytes (half the browser limit) so that chunking shows at
//! modest sizes; the Cookie header budget is the library's default. Past it, the cart's
//! handlers see it coming (`SessionHandle::size`) and answer a "session full" page, putting the
//! session back exactly as the request found it (the README's restore pattern), so the answer
//! sets no cookie at all; the notes rely on the layer's fallback (`SessionLayer::on_save_error`), which
//! answers the same page and writes nothing. Either way the reason is logged on the console
//! (`tracing`, on stderr).
//!
//! Every form carries the session's CSRF token (a hidden `csrf_token` field; scripts send it in
//! the `x-csrf-token` header, from the page's `csrf-token` meta tag or `/api/session`), and
//! every route that changes the session checks it with `require_csrf_headers(..)?`, which
//! answers 403 without it. Only `POST /bench/write`, a load-test route no page links to, takes
//! none.
//!
//! Logging out revokes the session, so a copy of its cookies taken before is worthless after.
//! "Log out everywhere" (`POST /logout-everywhere`) revokes every session of the user signed in
//! before the click, on every device, whatever the nodes' clocks say: the session layer stamps
//! each login with the store's revocation generation, and the revocation takes a greater one.
//! A login made right after is stamped with that generation and is never caught by it.
//!
//! Two routes exist for load tests, with and without the session layer; their bodies are the
//! same size either way:
//!
//! * `GET /bench/read`: reads `user` from the session and answers `hello, USER` (without the
//!   layer: `hello, bench`; `scripts/load.sh` logs in as `bench`);
//! * `POST /bench/write`: increments the session's `hits` counter, so the session is sealed
//!   again, and answers the new count in 20 columns (without the layer: a process-wide counter).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::extract::{Form, State};
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router, ServiceExt};
use sealed_session::integrations::tower::SessionLayer;
use sealed_session::revocation::{MemoryRevocations, Revocation};
use sealed_session::{
    CSRF_FIELD, Key, KeyRing, SealError, SessionCodec, SessionConfig, SessionError, SessionHandle,
    SessionSize, SharedKeyRing, ValueError,
};
use serde::{Deserialize, Serialize};
use tower::Layer as _;

/// One line of the cart.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CartItem {
    sku: String,
    name: String,
    qty: u32,
    price_cents: u32,
}

/// The application's state, shared by every request (cloning it clones one `Arc`).
#[derive(Clone)]
struct App(Arc<AppState>);

struct AppState {
    cookie_name: String,
    config: SessionConfig,
    revocation: Revocation,
}

impl std::ops::Deref for App {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.0
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The library logs rejected cookies (warn) and sessions it cannot save (error) with
    // `tracing`: show them on the console.
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    let args: Vec<String> = std::env::args().collect();
    let arg = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1));
    let port: u16 = match arg("--port").cloned().or_else(|| std::env::var("PORT").ok()) {
        Some(port) => match port.parse() {
            Ok(port) => port,
            Err(_) => exit(&format!("--port (or PORT) must be a port number, not {port:?}")),
        },
        None => 3000,
    };

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => exit(&format!(
            "port {port} is in use; pick another with --port N (or PORT=N; 0 picks a free one)"
        )),
        Err(error) => exit(&format!("cannot listen on {addr}: {error}")),
    };
    let addr = listener.local_addr()?;
    if args.iter().any(|a| a == "--no-session-layer") {
        let app = Router::new()
            .route("/bench/read", get(bench_read_plain))
            .route("/bench/write", post(bench_write_plain));
        println!("sealed-session demo: --no-session-layer serves /bench/* only, without sessions");
        println!("sealed-session demo listening on http://{addr}/");
        axum::serve(listener, app).await?;
        return Ok(());
    }

    // Before anything records: the recorder is process-wide.
    #[cfg(feature = "metrics")]
    let metrics = prometheus()?;
    let (ring, source, file) = key_ring(arg("--keys").cloned())?;
    let keys = SharedKeyRing::new(ring);
    // A key ring file is watched: a rotation rolled out by rewriting it needs no restart, and
    // an invalid new file keeps the last good ring in service. The ring keeps its own watch,
    // for as long as the codec below holds it: there is no watcher to keep alive.
    if let Some(path) = file {
        keys.keep_watching_file(path, Duration::from_secs(1));
    }
    let config = SessionConfig::builder("demo").max_cookie_line(2048).build()?;
    let cookie_name = config.cookie_name().to_owned();
    let app_config = config.clone();
    let codec = SessionCodec::new(config, keys);
    let (revocation, revocations) = revocation(arg("--redis").cloned()).await?;
    println!("sealed-session demo: revocations {revocations}");

    let app = Router::new()
        .route("/", get(index))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
        .route("/cart/add", post(cart_add))
        .route("/cart/grow", post(cart_grow))
        .route("/cart/shrink", post(cart_shrink))
        .route("/notes/add", post(notes_add))
        .route("/api/session", get(api_session))
        .route("/bench/read", get(bench_read))
        .route("/bench/write", post(bench_write))
        .with_state(App(Arc::new(AppState {
            cookie_name,
            config: app_config,
            revocation: revocation.clone(),
        })));
    // The layer wraps the whole router: one session per request whatever the route.
    // (`Router::layer` works too, but wraps each route on its own, which costs a little more.)
    // A session grown past its budget where no handler checked: the same page, nothing written.
    let app = SessionLayer::new(codec)
        .with_revocation(revocation)
        .on_save_error(|error: &SealError| session_full(&seal_error_reason(error)))
        .layer(app);
    #[cfg(feature = "metrics")]
    let app = Router::new()
        .route("/metrics", get(move || std::future::ready(prometheus_text(&metrics))))
        .fallback_service(app);

    println!("sealed-session demo: keys from {source}");
    println!("sealed-session demo listening on http://{addr}/");
    axum::serve(listener, ServiceExt::<axum::extract::Request>::into_make_service(app)).await?;
    Ok(())
}

/// Installs a Prometheus recorder for the library's metrics, with buckets for its two
/// histograms (without them they would export as summaries), and keeps it trimmed.
#[cfg(feature = "metrics")]
fn prometheus() -> Result<metrics_exporter_prometheus::PrometheusHandle, Box<dyn std::error::Error>>
{
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    use sealed_session::metrics::{COOKIE_BYTES, COOKIE_CHUNKS};

    let bytes = [256.0, 512.0, 1024.0, 2048.0, 3072.0, 4096.0, 5120.0, 6144.0];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(COOKIE_BYTES.into()), &bytes)?
        .set_buckets_for_metric(Matcher::Full(COOKIE_CHUNKS.into()), &[1.0, 2.0, 3.0, 4.0, 8.0])?
        .install_recorder()?;
    sealed_session::metrics::describe();
    // The exporter's histograms keep their samples until the upkeep folds them in.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// `GET /metrics`: the Prometheus text format.
#[cfg(feature = "metrics")]
fn prometheus_text(handle: &metrics_exporter_prometheus::PrometheusHandle) -> Response {
    let content_type = [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")];
    (content_type, handle.render()).into_response()
}

/// Prints `message` as the demo's one line of error and exits with status 2.
fn exit(message: &str) -> ! {
    eprintln!("sealed-session demo: {message}");
    std::process::exit(2)
}

/// Why a session could not be saved, in the one wording both "session full" paths use.
fn seal_error_reason(error: &SealError) -> String {
    match error {
        SealError::TooLarge { needed, budget, .. } => cookie_bytes_reason(*needed, *budget),
        SealError::TooManyCookies { chunks, max, .. } => cookie_count_reason(*chunks, *max),
        SealError::StateTooLarge { size, max } => state_reason(*size, *max),
        other => other.to_string(),
    }
}

/// Why a measured session does not fit, in the same wording.
fn size_reason(size: &SessionSize) -> String {
    if size.cookie_bytes > size.cookie_budget {
        cookie_bytes_reason(size.cookie_bytes, size.cookie_budget)
    } else if size.cookies > size.max_cookies {
        cookie_count_reason(size.cookies, size.max_cookies)
    } else {
        state_reason(size.state_bytes, size.max_state_size)
    }
}

fn cookie_bytes_reason(needed: usize, budget: usize) -> String {
    format!("it would need {needed} bytes of cookies, the budget is {budget} bytes")
}

fn cookie_count_reason(cookies: usize, max: usize) -> String {
    format!("it would need {cookies} cookies, a session may span {max}")
}

fn state_reason(size: usize, max: usize) -> String {
    format!("its state would be {size} bytes, the maximum is {max} bytes")
}

/// The page for a change that would make the session too large to keep in cookies: nothing
/// of it was saved.
fn session_full(why: &str) -> Response {
    let page = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Session full</title></head>
<body><h1 id="session-full">Your session is full</h1>
<p>That change would not fit in this browser's cookies, so it was not saved: your session is
as it was before. ({})</p><p><a href="/">Back</a></p></body></html>"#,
        escape(why)
    );
    (axum::http::StatusCode::PAYLOAD_TOO_LARGE, Html(page)).into_response()
}

/// The key ring: a file or environment value when given, otherwise an ephemeral one.
/// The key ring, where it came from, and the file to watch (if any).
type Ring = (KeyRing, String, Option<String>);

fn key_ring(file: Option<String>) -> Result<Ring, Box<dyn std::error::Error>> {
    let file = file.or_else(|| std::env::var("SEALED_SESSION_KEYS_FILE").ok());
    if let Some(path) = file {
        let ring = sealed_session::keys::file::load_file(&path)?;
        return Ok((ring, format!("file {path} (watched for changes)"), Some(path)));
    }
    if let Ok(value) = std::env::var("SEALED_SESSION_KEYS") {
        let ring = sealed_session::keys::file::parse_env(&value)?;
        return Ok((ring, "the SEALED_SESSION_KEYS environment variable".to_owned(), None));
    }
    eprintln!(
        "warning: no key ring given (--keys FILE or SEALED_SESSION_KEYS); using an ephemeral \
         key: every session ends when the demo stops"
    );
    Ok((KeyRing::single(Key::generate()), "an ephemeral key ring".to_owned(), None))
}

/// The revocation check, and where its entries live: Redis when `--redis URL` (or
/// `SEALED_SESSION_REDIS`) is given, this process's memory otherwise. The subject is the
/// session's `user`.
async fn revocation(
    url: Option<String>,
) -> Result<(Revocation, String), Box<dyn std::error::Error>> {
    let Some(url) = url.or_else(|| std::env::var("SEALED_SESSION_REDIS").ok()) else {
        let store = MemoryRevocations::new();
        return Ok((Revocation::new(store, "user"), "in memory (this process only)".to_owned()));
    };
    #[cfg(feature = "redis")]
    {
        let store = sealed_session::revocation::RedisRevocations::new(&url)?;
        // The store connects lazily; say now if Redis is not there. The demo still starts:
        // with the default policy (accept), sessions work and revocations wait for Redis.
        if let Err(error) = store.ping().await {
            eprintln!("warning: {error}; starting anyway (failure policy: accept)");
        }
        // The URL may carry a password: only its host is shown.
        let host = url.rsplit('@').next().unwrap_or_default().trim_start_matches("redis://");
        Ok((Revocation::new(store, "user"), format!("in Redis at {host}")))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = url;
        Err("--redis (or SEALED_SESSION_REDIS) needs the `redis` feature: \
             cargo run -p sealed-session-demo --features redis -- --redis URL"
            .into())
    }
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    csrf_token: Option<String>,
}

/// A form that carries nothing but the CSRF token.
#[derive(Deserialize)]
struct CsrfForm {
    csrf_token: Option<String>,
}

async fn login(
    session: SessionHandle,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Redirect, SessionError> {
    // Checked at login too: a forged login would sign the visitor in as the attacker.
    session.require_csrf_headers(&headers, form.csrf_token.as_deref())?;
    let user = form.user.trim();
    if user.is_empty() || user.len() > 64 {
        return Ok(Redirect::to("/"));
    }
    // A new id at login: an id planted before it (session fixation) is worth nothing after.
    session.renew();
    session.insert("user", user)?;
    Ok(Redirect::to("/"))
}

/// Purging the session makes the layer revoke it: a copy of its cookies is worthless now.
async fn logout(
    session: SessionHandle,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Redirect, SessionError> {
    session.require_csrf_headers(&headers, form.csrf_token.as_deref())?;
    session.purge();
    Ok(Redirect::to("/"))
}

/// Revokes every session of the user signed in before now, on every device, then purges this
/// one. A login right after is not revoked (see the module docs).
async fn logout_everywhere(
    State(app): State<App>,
    session: SessionHandle,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, SessionError> {
    session.require_csrf_headers(&headers, form.csrf_token.as_deref())?;
    let Some(user) = session.get::<String>("user")? else {
        return Ok(Redirect::to("/").into_response());
    };
    if let Err(error) = app.revocation.revoke_subject(&user, SystemTime::now(), &app.config).await {
        eprintln!("log out everywhere failed: {error}");
        let message = "Could not log out everywhere (the revocation store is unavailable); \
                       nothing was changed, try again.";
        return Ok((axum::http::StatusCode::SERVICE_UNAVAILABLE, message).into_response());
    }
    session.purge();
    Ok(Redirect::to("/").into_response())
}

#[derive(Deserialize)]
struct AddForm {
    name: String,
    #[serde(default = "one")]
    qty: u32,
    csrf_token: Option<String>,
}

fn one() -> u32 {
    1
}

async fn cart_add(
    session: SessionHandle,
    headers: HeaderMap,
    Form(form): Form<AddForm>,
) -> Result<Response, SessionError> {
    session.require_csrf_headers(&headers, form.csrf_token.as_deref())?;
    let name = form.name.trim().chars().take(80).collect::<String>();
    if name.is_empty() {
        return Ok(Redirect::to("/").into_response());
    }
    update_cart(&session, |cart| {
        let sku = format!("SKU-{:05}", cart.len() + 1);
        cart.push(CartItem { sku, name, qty: form.qty.clamp(1, 99), price_cents: 1999 });
    })
}

#[derive(Deserialize)]
struct CountForm {
    #[serde(default = "ten")]
    count: usize,
    csrf_token: Option<String>,
}

fn ten() -> usize {
    10
}

/// Adds `count` varied items: enough of them makes the session span several cookies.
async fn cart_grow(
    session: SessionHandle,
    headers: HeaderMap,
    Form(form): Form<CountForm>,
) -> Result<Response, SessionError> {
    session.require_csrf_headers(&headers, form.csrf_token.as_deref())?;
    update_cart(&session, |cart| {
        for _ in 0..form.count.min(200) {
            let n = cart.len() as u32 + 1;
            // Varied names, so compression cannot fold the cart away.
            let tag = n.wrapping_mul(2_654_435_761).rotate_left(7);
            cart.push(CartItem {
                sku: format!("SKU-{n:05}-{tag:08x}"),
                name: format!("Item {n} finish {:x}", tag ^ 0x5bd1_e995),
                qty: 1 + n % 5,
                price_cents: 100 + (tag % 90_000),
            });
        }
    })
}

/// Removes `count` items from the end of the cart.
async fn cart_shrink(
    session: SessionHandle,
    headers: HeaderMap,
    Form(form): Form<CountForm>,
) -> Result<Response, SessionError> {
    session.require_csrf_headers(&headers, form.csrf_token.as_deref())?;
    update_cart(&session, |cart| cart.truncate(cart.len().saturating_sub(form.count)))
}

/// Changes the cart, checking before answering that the session still fits its cookies: if
/// not, the session is put back exactly as the request found it (the README's restore
/// pattern), so the answer re-sends no cookie, and the "session full" page says why. Putting
/// the old cart back with `insert` instead would mark the session changed and re-send every
/// cookie of it: about 6 KB of Set-Cookie, more than nginx's default `proxy_buffer_size`.
fn update_cart(
    session: &SessionHandle,
    change: impl FnOnce(&mut Vec<CartItem>),
) -> Result<Response, SessionError> {
    let before = session.with(|s| s.clone());
    let mut cart: Vec<CartItem> = session.get_or_default("cart")?;
    change(&mut cart);
    if cart.is_empty() {
        session.remove_raw("cart");
    } else {
        session.insert("cart", &cart)?;
    }
    let size = session.size().expect("the layer's handles measure");
    if !size.fits() {
        tracing::warn!(%size, "cart change refused: the session would not fit its cookies");
        *session.lock() = before;
        return Ok(session_full(&size_reason(&size)));
    }
    Ok(Redirect::to("/").into_response())
}

#[derive(Deserialize)]
struct NoteForm {
    note: String,
    csrf_token: Option<String>,
}

/// Adds a note without checking the size: past the budget, the layer's `on_save_error` page
/// answers instead and nothing is written.
async fn notes_add(
    session: SessionHandle,
    headers: HeaderMap,
    Form(form): Form<NoteForm>,
) -> Result<Redirect, SessionError> {
    session.require_csrf_headers(&headers, form.csrf_token.as_deref())?;
    let note = form.note.trim().chars().take(500).collect::<String>();
    if !note.is_empty() {
        session.update("notes", |notes: &mut Vec<String>| notes.push(note))?;
    }
    Ok(Redirect::to("/"))
}

/// `GET /bench/read`: reads the session, changes nothing.
async fn bench_read(session: SessionHandle) -> Result<String, ValueError> {
    let user: Option<String> = session.get("user")?;
    Ok(format!("hello, {}\n", user.as_deref().unwrap_or("nobody")))
}

/// `GET /bench/read` under `--no-session-layer`: the same body for the user `bench`.
async fn bench_read_plain() -> String {
    format!("hello, {}\n", std::hint::black_box("bench"))
}

/// `POST /bench/write`: increments the session's counter, so the session is sealed again.
async fn bench_write(session: SessionHandle) -> Result<String, ValueError> {
    let hits = session.update("hits", |hits: &mut u64| {
        *hits += 1;
        *hits
    })?;
    Ok(format!("{hits:>20}\n"))
}

/// `POST /bench/write` under `--no-session-layer`: a process-wide counter, the same body size.
async fn bench_write_plain() -> String {
    static HITS: AtomicU64 = AtomicU64::new(0);
    let hits = HITS.fetch_add(1, Ordering::Relaxed) + 1;
    format!("{hits:>20}\n")
}

/// The session's own cookies as the browser sent them: `(name, value length)`.
fn session_cookies(headers: &HeaderMap, base: &str) -> Vec<(String, usize)> {
    let values = headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok());
    values
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| {
            *name == base || name.strip_prefix(base).is_some_and(|rest| rest.starts_with('.'))
        })
        .map(|(name, value)| (name.to_owned(), value.len()))
        .collect()
}

#[derive(Serialize)]
struct SessionView {
    user: Option<String>,
    cart: Vec<CartItem>,
    notes: Vec<String>,
    session_id: Option<String>,
    key_id: Option<String>,
    chunks: usize,
    cookies: Vec<(String, usize)>,
    /// For scripts: send it in the `x-csrf-token` header (made on first use).
    csrf_token: String,
}

fn view(
    session: &SessionHandle,
    headers: &HeaderMap,
    app: &App,
) -> Result<SessionView, SessionError> {
    session.with(|s| {
        Ok(SessionView {
            csrf_token: s.csrf_token()?,
            user: s.get("user")?,
            cart: s.get_or_default("cart")?,
            notes: s.get_or_default("notes")?,
            session_id: s.id().map(|id| id.to_string()),
            key_id: s.key_id().map(|id| id.to_string()),
            chunks: s.chunk_count(),
            cookies: session_cookies(headers, &app.cookie_name),
        })
    })
}

/// The hidden field every form carries.
fn csrf_field(token: &str) -> String {
    format!(r#"<input type="hidden" name="{CSRF_FIELD}" value="{}">"#, escape(token))
}

/// The session as JSON, for scripts and tests.
async fn api_session(
    State(app): State<App>,
    session: SessionHandle,
    headers: HeaderMap,
) -> Result<Json<SessionView>, SessionError> {
    Ok(Json(view(&session, &headers, &app)?))
}

async fn index(
    State(app): State<App>,
    session: SessionHandle,
    headers: HeaderMap,
) -> Result<Html<String>, SessionError> {
    let v = view(&session, &headers, &app)?;
    let csrf = csrf_field(&v.csrf_token);
    let account = match &v.user {
        Some(user) => format!(
            r#"<p>Logged in as <strong id="user">{}</strong>.</p>
<form method="post" action="/logout">{csrf}<button id="logout">Log out</button></form>
<form method="post" action="/logout-everywhere">{csrf}<button id="logout-everywhere">Log out everywhere</button></form>"#,
            escape(user)
        ),
        None => format!(
            r#"<form method="post" action="/login">{csrf}<input name="user" id="user-input" placeholder="name" required>
<button id="login">Log in</button></form>"#
        ),
    };
    let cart_rows: String = v
        .cart
        .iter()
        .map(|item| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>",
                escape(&item.sku),
                escape(&item.name),
                item.qty,
                f64::from(item.price_cents) / 100.0
            )
        })
        .collect();
    let notes: String = v.notes.iter().map(|n| format!("<li>{}</li>", escape(n))).collect();
    let total: usize = v.cookies.iter().map(|(name, len)| name.len() + 1 + len).sum();
    let cookie_rows: String = v
        .cookies
        .iter()
        .map(|(name, len)| format!("<tr><td><code>{}</code></td><td>{len}</td></tr>", escape(name)))
        .collect();
    Ok(Html(format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>sealed-session demo</title>
<meta name="csrf-token" content="{csrf_token}">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222 }}
section {{ border: 1px solid #ccc; border-radius: 6px; padding: 0.5rem 1rem; margin: 1rem 0 }}
table {{ border-collapse: collapse }} td, th {{ padding: 0.1rem 0.6rem; text-align: left }}
form {{ display: inline-block; margin: 0.2rem 0.5rem 0.2rem 0 }}
</style></head>
<body>
<h1>sealed-session demo</h1>
<p>Everything below lives in this browser's cookies, sealed with XAES-256-GCM: no server keeps
the session. The one thing a server keeps is the revocation list (in this process's memory, or
in Redis with <code>--redis</code>), so a logged-out session's copied cookies stop working.</p>
<section><h2>Account</h2>{account}</section>
<section><h2>Cart (<span id="cart-count">{cart_count}</span> items)</h2>
<form method="post" action="/cart/add">{csrf}<input name="name" placeholder="item" required>
<input name="qty" type="number" value="1" min="1" max="99"><button id="cart-add">Add</button></form>
<form method="post" action="/cart/grow">{csrf}<input type="hidden" name="count" value="10"><button id="cart-grow">Add 10 items</button></form>
<form method="post" action="/cart/shrink">{csrf}<input type="hidden" name="count" value="10"><button id="cart-shrink">Remove 10 items</button></form>
<table><tr><th>SKU</th><th>Item</th><th>Qty</th><th>Price</th></tr>{cart_rows}</table></section>
<section><h2>Notes</h2>
<form method="post" action="/notes/add">{csrf}<input name="note" placeholder="note" required><button id="note-add">Add note</button></form>
<ul id="notes">{notes}</ul></section>
<section><h2>Session cookies</h2>
<p>The browser sent <strong id="chunk-count">{cookie_count}</strong> session cookie(s),
<strong id="cookie-bytes">{total}</strong> bytes in all (chunk count in the token: {chunks}).
Session id <code id="session-id">{session_id}</code>, key <code>{key_id}</code>.</p>
<table><tr><th>cookie</th><th>value bytes</th></tr>{cookie_rows}</table>
<p>These cookies are <code>HttpOnly</code>: <code>document.cookie</code> sees
"<span id="js-cookies"></span>".</p></section>
<script>document.getElementById("js-cookies").textContent = document.cookie;</script>
</body></html>"#,
        cart_count = v.cart.len(),
        cookie_count = v.cookies.len(),
        chunks = v.chunks,
        session_id = v.session_id.as_deref().unwrap_or("(none yet)"),
        key_id = v.key_id.as_deref().unwrap_or("-"),
        csrf_token = escape(&v.csrf_token),
    )))
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}
