//! One test application, served by each adapter on a real socket (127.0.0.1, port 0), for the
//! acceptance suite in `tests/adapters.rs`.
//!
//! The application's behaviour is written once, framework-free, in [`respond`]; each adapter
//! only translates its request into a call to it and the [`Reply`] back into a response. The
//! server runs on a thread of its own with its own runtime, so the test's runtime drives only
//! the client, and the test that started a server stops it with [`Running::stop`] (dropping a
//! [`Running`] also signals the server to stop, for tests that fail half-way).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

use sealed_session::{CSRF_FIELD, ManualClock, SessionCodec, SessionHandle, ValueError};
use serde_json::json;

/// The paths the test application answers (any method).
pub const ROUTES: &[&str] = &[
    "/login",
    "/whoami",
    "/grow",
    "/grow-checked",
    "/shrink",
    "/logout",
    "/theme",
    "/echo",
    "/too-big",
    "/count",
    "/uncount",
    "/csrf",
    "/guarded",
    "/flash",
    "/flashes",
];

/// The route answered by a handler that uses `?` on session operations ([`question`]).
pub const QUESTION_ROUTE: &str = "/question";
/// The same behind `require_csrf_headers(..)?` (axum) or `require_csrf_request(..)?`
/// (actix-web), the handler returning `SessionError`: the token in the `x-csrf-token` header
/// or the `csrf_token` query field.
pub const QUESTION_CSRF_ROUTE: &str = "/question-csrf";

/// The route answered by a handler that logs out and then fails with its framework's error
/// (502): the logout must still remove the cookies.
pub const LOGOUT_FAILS_ROUTE: &str = "/logout-fails";
/// The status [`LOGOUT_FAILS_ROUTE`] fails with.
pub const LOGOUT_FAILS_STATUS: u16 = 502;

/// The status and body of the save-error page servers started with one answer.
pub const SAVE_ERROR_STATUS: u16 = 507;
pub const SAVE_ERROR_BODY: &str = "session full: nothing was saved";

/// The application's own cookie, sent by `/theme` next to the session's. Compared byte for byte.
pub const THEME_COOKIE: &str = "theme=dark; Path=/; Max-Age=3600; SameSite=Lax";

/// The body `/too-big` answers with; it must never reach the client, as the session cannot be
/// saved.
pub const TOO_BIG_BODY: &str = "this body must not reach the client";

/// The state `/too-big` tries to store: far past the Cookie header budget even compressed.
pub const TOO_BIG_BYTES: usize = 40_000;

/// What the application answers.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// A Set-Cookie header of the application's own.
    pub set_cookie: Option<&'static str>,
}

impl Reply {
    fn ok(body: impl Into<String>) -> Reply {
        Reply::status(200, body)
    }

    fn status(status: u16, body: impl Into<String>) -> Reply {
        Reply { status, body: body.into(), set_cookie: None }
    }

    /// A redirect (303) to `location`, which the adapters send as the `Location` header: the
    /// body of a 303 is its location.
    fn redirect(location: &str) -> Reply {
        Reply::status(303, location)
    }

    /// Where a redirect goes.
    pub fn location(&self) -> Option<&str> {
        (self.status == 303).then_some(self.body.as_str())
    }
}

/// The handler behind [`QUESTION_ROUTE`], written with `?`: reads `user` (a string once
/// logged in) as a number, which fails to decode for a logged-in user.
pub fn question(session: &SessionHandle) -> Result<String, ValueError> {
    let n: u64 = session.get_or_default("user")?;
    Ok(format!("user number {n}"))
}

/// `len` bytes of hexadecimal text derived from a counter by a mixing function: as close to
/// incompressible as text in a session gets (zstd can only take it down to about half).
pub fn filler(len: usize) -> String {
    let mut out = String::with_capacity(len + 16);
    let mut counter = 0u64;
    while out.len() < len {
        out.push_str(&format!("{:016x}", splitmix64(counter)));
        counter += 1;
    }
    out.truncate(len);
    out
}

fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The value of `name` in a query string (no percent-decoding: the tests send plain values).
fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').filter_map(|pair| pair.split_once('=')).find(|(k, _)| *k == name).map(|p| p.1)
}

/// The test application. `cookie_headers` are the request's Cookie headers as received.
///
/// * `/login?user=NAME`: renews the session (a new id) and stores the user;
/// * `/whoami`: reads the session, changes nothing; answers it as JSON;
/// * `/grow?bytes=N`: stores `N` bytes of [`filler`] under `blob`;
/// * `/shrink`: removes `blob`;
/// * `/logout`: purges the session;
/// * `/theme[?session=1]`: sets the application's own cookie [`THEME_COOKIE`], and with
///   `session=1` also stores `theme` in the session;
/// * `/echo`: answers the Cookie headers it received, as a JSON array; leaves the session alone;
/// * `/too-big`: stores more than the budget allows and answers [`TOO_BIG_BODY`];
/// * `/grow-checked?bytes=N`: as `/grow`, but checks the size first: a session that would not
///   fit is put back as it was and the answer is 413 with the sizes;
/// * `/count`, `/uncount`: `update` the counter `n` and answer it; `remove` it and answer the
///   old value as JSON;
/// * `/csrf`: answers the session's CSRF token; `/guarded`: 200 when the `x-csrf-token` header
///   (`csrf`) or the `csrf_token` query field carries it, 403 otherwise;
/// * `/flash?msg=M`: adds a flash message and redirects (303) to `/flashes`, which answers the
///   pending messages as JSON (taking them).
pub fn respond(
    path: &str,
    query: &str,
    cookie_headers: &[String],
    session: &SessionHandle,
) -> Reply {
    respond_to(path, query, cookie_headers, None, session)
}

/// [`respond`], with the request's `x-csrf-token` header.
pub fn respond_to(
    path: &str,
    query: &str,
    cookie_headers: &[String],
    csrf: Option<&str>,
    session: &SessionHandle,
) -> Reply {
    match path {
        "/login" => {
            let user = param(query, "user").unwrap_or("ada");
            session.renew();
            session.insert("user", user).expect("a string encodes");
            Reply::ok("logged in")
        }
        "/whoami" => Reply::ok(session.with(|s| {
            json!({
                "user": s.get::<String>("user").expect("user decodes"),
                "blob": s.get::<String>("blob").expect("blob decodes"),
                "theme": s.get::<String>("theme").expect("theme decodes"),
                "id": s.id().map(|id| id.to_string()),
                "key_id": s.key_id().map(|id| id.0),
                "chunks": s.chunk_count(),
                "rejected": s.rejected().map(|why| format!("{why:?}")),
            })
            .to_string()
        })),
        "/grow" => {
            let bytes = param(query, "bytes").and_then(|n| n.parse().ok()).unwrap_or(1000);
            session.insert("blob", filler(bytes)).expect("a string encodes");
            Reply::ok("grown")
        }
        "/grow-checked" => {
            let before = session.with(|s| s.clone());
            let bytes = param(query, "bytes").and_then(|n| n.parse().ok()).unwrap_or(1000);
            session.insert("blob", filler(bytes)).expect("a string encodes");
            let size = session.size().expect("an adapter's handle measures");
            if size.fits() {
                Reply::ok("grown")
            } else {
                *session.lock() = before;
                Reply::status(413, format!("{} of {}", size.cookie_bytes, size.cookie_budget))
            }
        }
        "/count" => {
            let n = session
                .update("n", |n: &mut u64| {
                    *n += 1;
                    *n
                })
                .expect("n decodes");
            Reply::ok(n.to_string())
        }
        "/uncount" => Reply::ok(json!(session.remove::<u64>("n").expect("n decodes")).to_string()),
        "/csrf" => Reply::ok(session.csrf_token().expect("random bytes")),
        "/guarded" => {
            let submitted = csrf.or_else(|| param(query, CSRF_FIELD));
            match session.verify_csrf(submitted) {
                true => Reply::ok("accepted"),
                false => Reply::status(403, "refused"),
            }
        }
        "/flash" => {
            session.flash(param(query, "msg").unwrap_or("saved")).expect("flashes encode");
            Reply::redirect("/flashes")
        }
        "/flashes" => Reply::ok(json!(session.take_flashes().expect("flashes decode")).to_string()),
        "/shrink" => {
            session.remove_raw("blob");
            Reply::ok("shrunk")
        }
        "/logout" => {
            session.purge();
            Reply::ok("logged out")
        }
        "/theme" => {
            if param(query, "session") == Some("1") {
                session.insert("theme", "dark").expect("a string encodes");
            }
            Reply { set_cookie: Some(THEME_COOKIE), ..Reply::ok("themed") }
        }
        "/echo" => Reply::ok(json!(cookie_headers).to_string()),
        "/too-big" => {
            session.insert("blob", filler(TOO_BIG_BYTES)).expect("a string encodes");
            Reply::ok(TOO_BIG_BODY)
        }
        _ => Reply::status(404, ""),
    }
}

/// A framework serving the test application through its sealed-session adapter.
pub trait TestServer {
    /// The adapter's name, for messages.
    const NAME: &'static str;

    /// Serves the test application on 127.0.0.1 (a free port), opening and sealing sessions
    /// with `codec` and reading the time from `clock`.
    fn start(codec: SessionCodec, clock: ManualClock) -> Running {
        Self::start_with(codec, clock, false)
    }

    /// [`start`](TestServer::start), with the adapter answering [`SAVE_ERROR_STATUS`] and
    /// [`SAVE_ERROR_BODY`] for a session it cannot save when `save_error_page` is set.
    fn start_with(codec: SessionCodec, clock: ManualClock, save_error_page: bool) -> Running;
}

/// How to tell a running server to stop.
enum Stop {
    /// A server that stops when the channel says so, or is dropped (axum, Poem).
    Channel(mpsc::Sender<()>),
    #[cfg(feature = "actix-web")]
    Actix(actix_web::dev::ServerHandle),
}

/// A server running on its own thread.
pub struct Running {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base: String,
    stop: Option<Stop>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// The URL of `path` (which starts with `/`) on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server gracefully and waits for its thread to end.
    ///
    /// # Panics
    ///
    /// If the server's thread panicked.
    pub async fn stop(mut self) {
        match self.stop.take().expect("stopped once") {
            Stop::Channel(stop) => {
                // The server may already be gone (then its thread's result tells why).
                let _ = stop.send(());
            }
            #[cfg(feature = "actix-web")]
            Stop::Actix(handle) => handle.stop(true).await,
        }
        let thread = self.thread.take().expect("joined once");
        let joined = tokio::task::spawn_blocking(move || thread.join()).await;
        assert!(matches!(joined, Ok(Ok(()))), "the server's thread panicked");
    }
}

impl Drop for Running {
    /// A test that fails before [`Running::stop`] still signals its server to stop (without
    /// waiting for it).
    fn drop(&mut self) {
        match self.stop.take() {
            Some(Stop::Channel(stop)) => drop(stop.send(())),
            // `stop` sends the command at once; its future only waits for completion.
            #[cfg(feature = "actix-web")]
            Some(Stop::Actix(handle)) => drop(handle.stop(false)),
            None => {}
        }
    }
}

fn bind_loopback() -> (std::net::TcpListener, SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    let addr = listener.local_addr().expect("a bound socket has an address");
    (listener, addr)
}

/// What tells a server on a thread to stop gracefully: resolves when the test calls
/// [`Running::stop`] or drops the [`Running`].
#[cfg(any(feature = "axum", feature = "poem"))]
type Signal = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Runs `serve` on a thread of its own with a current-thread tokio runtime, on a bound
/// (non-blocking) loopback listener, until its [`Signal`].
#[cfg(any(feature = "axum", feature = "poem"))]
fn serve_on_thread<F>(
    serve: impl FnOnce(std::net::TcpListener, Signal) -> F + Send + 'static,
) -> Running
where
    F: std::future::Future<Output = ()>,
{
    let (listener, addr) = bind_loopback();
    listener.set_nonblocking(true).expect("a non-blocking listener");
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(async move {
            let signal = Box::pin(async move {
                let _ = tokio::task::spawn_blocking(move || stopped.recv()).await;
            });
            serve(listener, signal).await;
        });
    });
    Running {
        base: format!("http://{addr}"),
        stop: Some(Stop::Channel(stop)),
        thread: Some(thread),
    }
}

/// The axum adapter: `sealed_session::integrations::tower::SessionLayer`.
#[cfg(feature = "axum")]
pub struct Axum;

#[cfg(feature = "axum")]
impl TestServer for Axum {
    const NAME: &'static str = "axum";

    fn start_with(codec: SessionCodec, clock: ManualClock, save_error_page: bool) -> Running {
        use axum::Router;
        use axum::routing::any;
        use sealed_session::integrations::tower::SessionLayer;

        serve_on_thread(move |listener, signal| async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
            let mut router = Router::new()
                .route(QUESTION_ROUTE, any(axum_question))
                .route(QUESTION_CSRF_ROUTE, any(axum_question_csrf))
                .route(LOGOUT_FAILS_ROUTE, any(axum_logout_fails));
            for route in ROUTES {
                router = router.route(route, any(axum_handler));
            }
            let mut layer = SessionLayer::new(codec).with_clock(clock);
            if save_error_page {
                layer = layer.on_save_error(|_: &sealed_session::SealError| {
                    use axum::response::IntoResponse;
                    let status = axum::http::StatusCode::from_u16(SAVE_ERROR_STATUS);
                    (status.expect("a status"), SAVE_ERROR_BODY).into_response()
                });
            }
            axum::serve(listener, router.layer(layer))
                .with_graceful_shutdown(signal)
                .await
                .expect("axum::serve never fails");
        })
    }
}

#[cfg(feature = "axum")]
async fn axum_logout_fails(session: SessionHandle) -> Result<String, axum::http::StatusCode> {
    session.purge();
    Err(axum::http::StatusCode::from_u16(LOGOUT_FAILS_STATUS).expect("a status"))
}

#[cfg(feature = "axum")]
async fn axum_question(session: SessionHandle) -> Result<String, ValueError> {
    let answer = question(&session)?;
    Ok(answer)
}

#[cfg(feature = "axum")]
async fn axum_question_csrf(
    session: SessionHandle,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Result<String, sealed_session::SessionError> {
    session.require_csrf_headers(&headers, param(uri.query().unwrap_or(""), CSRF_FIELD))?;
    Ok(question(&session)?)
}

#[cfg(feature = "axum")]
async fn axum_handler(
    session: SessionHandle,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
    use axum::http::{HeaderValue, StatusCode};
    use axum::response::IntoResponse;

    // Lossy: a request may carry bytes that are not ASCII, not even UTF-8 (see
    // `tests/adapters.rs`, `other_cookies_may_hold_any_byte`).
    let cookies: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let csrf = headers.get(sealed_session::CSRF_HEADER).map(|v| v.to_str().expect("ASCII"));
    let reply = respond_to(uri.path(), uri.query().unwrap_or(""), &cookies, csrf, &session);
    let status = StatusCode::from_u16(reply.status).expect("a valid status");
    let location = reply.location().map(|l| HeaderValue::from_str(l).expect("a valid location"));
    let mut response = (status, reply.body).into_response();
    if let Some(cookie) = reply.set_cookie {
        response.headers_mut().append(SET_COOKIE, HeaderValue::from_static(cookie));
    }
    if let Some(location) = location {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

/// The actix-web adapter: `sealed_session::integrations::actix::SessionMiddleware`.
#[cfg(feature = "actix-web")]
pub struct Actix;

#[cfg(feature = "actix-web")]
impl TestServer for Actix {
    const NAME: &'static str = "actix-web";

    fn start_with(codec: SessionCodec, clock: ManualClock, save_error_page: bool) -> Running {
        use actix_web::{App, HttpServer, web};
        use sealed_session::integrations::actix::SessionMiddleware;

        let (listener, addr) = bind_loopback();
        let (handle_tx, handle_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let mut middleware = SessionMiddleware::new(codec).with_clock(clock);
                if save_error_page {
                    middleware = middleware.on_save_error(|_: &sealed_session::SealError| {
                        let status = actix_web::http::StatusCode::from_u16(SAVE_ERROR_STATUS);
                        actix_web::HttpResponse::build(status.expect("a status"))
                            .body(SAVE_ERROR_BODY)
                    });
                }
                let server = HttpServer::new(move || {
                    let mut app = App::new()
                        .wrap(middleware.clone())
                        .route(QUESTION_ROUTE, web::route().to(actix_question))
                        .route(QUESTION_CSRF_ROUTE, web::route().to(actix_question_csrf))
                        .route(LOGOUT_FAILS_ROUTE, web::route().to(actix_logout_fails));
                    for route in ROUTES {
                        app = app.route(route, web::route().to(actix_handler));
                    }
                    app
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(5)
                .listen(listener)
                .expect("listening on the bound socket")
                .run();
                handle_tx.send(server.handle()).expect("the test waits for the handle");
                server.await.expect("the actix server runs");
            });
        });
        let handle = handle_rx.recv().expect("the actix server started");
        Running {
            base: format!("http://{addr}"),
            stop: Some(Stop::Actix(handle)),
            thread: Some(thread),
        }
    }
}

#[cfg(feature = "actix-web")]
async fn actix_logout_fails(session: SessionHandle) -> actix_web::Result<String> {
    session.purge();
    Err(actix_web::error::ErrorBadGateway("upstream failed"))
}

#[cfg(feature = "actix-web")]
async fn actix_question(session: SessionHandle) -> Result<String, ValueError> {
    let answer = question(&session)?;
    Ok(answer)
}

#[cfg(feature = "actix-web")]
async fn actix_question_csrf(
    session: SessionHandle,
    request: actix_web::HttpRequest,
) -> Result<String, sealed_session::SessionError> {
    session.require_csrf_request(&request, param(request.query_string(), CSRF_FIELD))?;
    Ok(question(&session)?)
}

#[cfg(feature = "actix-web")]
async fn actix_handler(
    session: SessionHandle,
    request: actix_web::HttpRequest,
) -> actix_web::HttpResponse {
    use actix_web::http::StatusCode;
    use actix_web::http::header::{COOKIE, SET_COOKIE};

    // Lossy, as for axum.
    let cookies: Vec<String> = request
        .headers()
        .get_all(COOKIE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let csrf = request.headers().get(sealed_session::CSRF_HEADER);
    let csrf = csrf.map(|v| v.to_str().expect("ASCII"));
    let reply = respond_to(request.path(), request.query_string(), &cookies, csrf, &session);
    let mut response =
        actix_web::HttpResponse::build(StatusCode::from_u16(reply.status).expect("a status"));
    if let Some(cookie) = reply.set_cookie {
        response.append_header((SET_COOKIE, cookie));
    }
    if let Some(location) = reply.location() {
        response.append_header((actix_web::http::header::LOCATION, location));
    }
    response.body(reply.body)
}

/// The Poem adapter: `sealed_session::integrations::poem::SessionMiddleware`.
#[cfg(feature = "poem")]
pub struct Poem;

#[cfg(feature = "poem")]
impl TestServer for Poem {
    const NAME: &'static str = "poem";

    fn start_with(codec: SessionCodec, clock: ManualClock, save_error_page: bool) -> Running {
        use poem::listener::TcpAcceptor;
        use poem::{EndpointExt as _, IntoResponse as _, Route, Server};
        use sealed_session::integrations::poem::SessionMiddleware;

        serve_on_thread(move |listener, signal| async move {
            let acceptor = TcpAcceptor::from_std(listener).expect("an acceptor");
            let mut route = Route::new()
                .at(QUESTION_ROUTE, poem_question)
                .at(QUESTION_CSRF_ROUTE, poem_question_csrf)
                .at(LOGOUT_FAILS_ROUTE, poem_logout_fails);
            for path in ROUTES {
                route = route.at(*path, poem_handler);
            }
            let mut middleware = SessionMiddleware::new(codec).with_clock(clock);
            if save_error_page {
                middleware = middleware.on_save_error(|_: &sealed_session::SealError| {
                    let status = poem::http::StatusCode::from_u16(SAVE_ERROR_STATUS);
                    SAVE_ERROR_BODY.with_status(status.expect("a status")).into_response()
                });
            }
            let timeout = Some(std::time::Duration::from_secs(5));
            Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(route.with(middleware), signal, timeout)
                .await
                .expect("the poem server runs");
        })
    }
}

#[cfg(feature = "poem")]
#[poem::handler]
fn poem_logout_fails(session: SessionHandle) -> poem::Result<String> {
    session.purge();
    let status = poem::http::StatusCode::from_u16(LOGOUT_FAILS_STATUS).expect("a status");
    Err(poem::Error::from_status(status))
}

#[cfg(feature = "poem")]
#[poem::handler]
fn poem_question(session: SessionHandle) -> poem::Result<String> {
    let answer = question(&session)?;
    Ok(answer)
}

#[cfg(feature = "poem")]
#[poem::handler]
fn poem_question_csrf(
    session: SessionHandle,
    request: &poem::Request,
) -> Result<String, sealed_session::SessionError> {
    let headers = request.headers();
    let header = headers.get(sealed_session::CSRF_HEADER).and_then(|v| v.to_str().ok());
    let field = param(request.uri().query().unwrap_or(""), CSRF_FIELD);
    let value = |name: &str| headers.get(name).map(|v| v.as_bytes());
    let origin =
        sealed_session::RequestOrigin::new(value("sec-fetch-site"), value("origin"), value("host"));
    session.require_csrf_origin(header.or(field), origin)?;
    Ok(question(&session)?)
}

#[cfg(feature = "poem")]
#[poem::handler]
fn poem_handler(session: SessionHandle, request: &poem::Request) -> poem::Response {
    use poem::http::StatusCode;
    use poem::http::header::{COOKIE, LOCATION, SET_COOKIE};

    // Lossy, as for axum.
    let cookies: Vec<String> = request
        .headers()
        .get_all(COOKIE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let csrf = request.headers().get(sealed_session::CSRF_HEADER);
    let csrf = csrf.map(|v| v.to_str().expect("ASCII"));
    let uri = request.uri();
    let reply = respond_to(uri.path(), uri.query().unwrap_or(""), &cookies, csrf, &session);
    let mut response =
        poem::Response::builder().status(StatusCode::from_u16(reply.status).expect("a status"));
    if let Some(cookie) = reply.set_cookie {
        response = response.header(SET_COOKIE, cookie);
    }
    if let Some(location) = reply.location() {
        response = response.header(LOCATION, location);
    }
    response.body(reply.body)
}
