//! The test application of `servers.rs`, served by an adapter with revocation on, for
//! `tests/revocation.rs`. One extra route, `/logout-everywhere`, revokes every session of the
//! session's user signed in before it (`revoke_subject(user, now)`, as the demo does) and
//! purges the session.
//!
//! The [`Revocation`] is made on the server's own thread, inside its runtime, by a closure the
//! test passes: a Redis store's connection lives on the runtime that creates it, and each node
//! of a fleet has its own, as separate processes would.

#![allow(dead_code)]

use std::sync::mpsc;
use std::thread::JoinHandle;

use sealed_session::revocation::Revocation;
use sealed_session::{Clock as _, ManualClock, SessionCodec, SessionConfig, SessionHandle};

use crate::servers::{ROUTES, Reply, respond};

/// Makes a node's revocation check, on the node's thread.
pub type MakeRevocation = Box<dyn FnOnce() -> Revocation + Send>;

/// An adapter a node can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    Axum,
    #[cfg(feature = "actix-web")]
    Actix,
}

impl Adapter {
    /// Every adapter this test build has.
    pub fn all() -> Vec<Adapter> {
        #[allow(unused_mut)]
        let mut all = vec![Adapter::Axum];
        #[cfg(feature = "actix-web")]
        all.push(Adapter::Actix);
        all
    }
}

/// What the `/logout-everywhere` handler needs.
#[derive(Clone)]
struct State {
    revocation: Revocation,
    clock: ManualClock,
    config: SessionConfig,
}

impl State {
    /// Revokes every session of the session's user signed in before now, then purges it.
    async fn logout_everywhere(&self, session: &SessionHandle) -> Reply {
        let user = session.with(|s| s.get::<String>("user").expect("user decodes"));
        let Some(user) = user else {
            return Reply { status: 400, body: "not logged in".to_owned(), set_cookie: None };
        };
        let now = self.clock.now();
        if let Err(error) = self.revocation.revoke_subject(&user, now, &self.config).await {
            return Reply { status: 503, body: error.to_string(), set_cookie: None };
        }
        session.purge();
        Reply { status: 200, body: "logged out everywhere".to_owned(), set_cookie: None }
    }
}

/// A server running on its own thread; told to stop when dropped.
pub struct Node {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base: String,
    pub adapter: Adapter,
    stop: Option<Stop>,
    thread: Option<JoinHandle<()>>,
}

enum Stop {
    Axum(mpsc::Sender<()>),
    #[cfg(feature = "actix-web")]
    Actix(actix_web::dev::ServerHandle),
}

impl Node {
    /// Serves the test application through `adapter` on a free port of 127.0.0.1, with the
    /// revocation check `revocation` makes.
    pub fn start(
        adapter: Adapter,
        codec: SessionCodec,
        clock: ManualClock,
        revocation: MakeRevocation,
    ) -> Node {
        match adapter {
            Adapter::Axum => start_axum(codec, clock, revocation),
            #[cfg(feature = "actix-web")]
            Adapter::Actix => start_actix(codec, clock, revocation),
        }
    }

    /// The URL of `path` (which starts with `/`) on this node.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server and waits for its thread.
    pub async fn stop(mut self) {
        match self.stop.take().expect("stopped once") {
            Stop::Axum(stop) => drop(stop.send(())),
            #[cfg(feature = "actix-web")]
            Stop::Actix(handle) => handle.stop(true).await,
        }
        let thread = self.thread.take().expect("joined once");
        let joined = tokio::task::spawn_blocking(move || thread.join()).await;
        assert!(matches!(joined, Ok(Ok(()))), "the server's thread panicked");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        match self.stop.take() {
            Some(Stop::Axum(stop)) => drop(stop.send(())),
            #[cfg(feature = "actix-web")]
            Some(Stop::Actix(handle)) => drop(handle.stop(false)),
            None => {}
        }
    }
}

fn bind_loopback() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    let addr = listener.local_addr().expect("a bound socket has an address");
    (listener, format!("http://{addr}"))
}

fn start_axum(codec: SessionCodec, clock: ManualClock, make: MakeRevocation) -> Node {
    use axum::Router;
    use axum::routing::any;
    use sealed_session::integrations::tower::SessionLayer;

    let (listener, base) = bind_loopback();
    listener.set_nonblocking(true).expect("a non-blocking listener");
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
            let revocation = make();
            let state = State {
                revocation: revocation.clone(),
                clock: clock.clone(),
                config: codec.config().clone(),
            };
            let mut router = Router::new();
            for route in ROUTES.iter().copied().chain(["/logout-everywhere"]) {
                router = router.route(route, any(axum_handler));
            }
            let layer = SessionLayer::new(codec).with_clock(clock).with_revocation(revocation);
            let app = router.layer(layer).with_state(state);
            let signal = async move {
                let _ = tokio::task::spawn_blocking(move || stopped.recv()).await;
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
                .expect("axum::serve never fails");
        });
    });
    Node { base, adapter: Adapter::Axum, stop: Some(Stop::Axum(stop)), thread: Some(thread) }
}

async fn axum_handler(
    axum::extract::State(state): axum::extract::State<State>,
    session: SessionHandle,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::http::header::{COOKIE, SET_COOKIE};
    use axum::http::{HeaderValue, StatusCode};
    use axum::response::IntoResponse;

    let reply = if uri.path() == "/logout-everywhere" {
        state.logout_everywhere(&session).await
    } else {
        let cookies: Vec<String> = headers
            .get_all(COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ASCII cookies").to_owned())
            .collect();
        respond(uri.path(), uri.query().unwrap_or(""), &cookies, &session)
    };
    let status = StatusCode::from_u16(reply.status).expect("a valid status");
    let mut response = (status, reply.body).into_response();
    if let Some(cookie) = reply.set_cookie {
        response.headers_mut().append(SET_COOKIE, HeaderValue::from_static(cookie));
    }
    response
}

#[cfg(feature = "actix-web")]
fn start_actix(codec: SessionCodec, clock: ManualClock, make: MakeRevocation) -> Node {
    use actix_web::{App, HttpServer, web};
    use sealed_session::integrations::actix::SessionMiddleware;

    let (listener, base) = bind_loopback();
    let (handle_tx, handle_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let revocation = make();
            let state = State {
                revocation: revocation.clone(),
                clock: clock.clone(),
                config: codec.config().clone(),
            };
            let middleware =
                SessionMiddleware::new(codec).with_clock(clock).with_revocation(revocation);
            let server = HttpServer::new(move || {
                let mut app =
                    App::new().app_data(web::Data::new(state.clone())).wrap(middleware.clone());
                for route in ROUTES.iter().copied().chain(["/logout-everywhere"]) {
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
    Node { base, adapter: Adapter::Actix, stop: Some(Stop::Actix(handle)), thread: Some(thread) }
}

#[cfg(feature = "actix-web")]
async fn actix_handler(
    state: actix_web::web::Data<State>,
    session: SessionHandle,
    request: actix_web::HttpRequest,
) -> actix_web::HttpResponse {
    use actix_web::http::StatusCode;
    use actix_web::http::header::{COOKIE, SET_COOKIE};

    let reply = if request.path() == "/logout-everywhere" {
        state.logout_everywhere(&session).await
    } else {
        let cookies: Vec<String> = request
            .headers()
            .get_all(COOKIE)
            .map(|v| v.to_str().expect("ASCII cookies").to_owned())
            .collect();
        respond(request.path(), request.query_string(), &cookies, &session)
    };
    let mut response =
        actix_web::HttpResponse::build(StatusCode::from_u16(reply.status).expect("a status"));
    if let Some(cookie) = reply.set_cookie {
        response.append_header((SET_COOKIE, cookie));
    }
    response.body(reply.body)
}
