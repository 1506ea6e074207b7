//! The bridges to other session APIs, through real servers on 127.0.0.1 (port 0): axum-login
//! and axum-messages on `TowerSessionsLayer`; actix-identity and actix-web-flash-messages on
//! `ActixSessionMiddleware`. Each test starts one server, drives it with a few requests, and
//! stops it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::cookie::{CookieStore as _, Jar};
use reqwest::{Client, StatusCode, Url};
use sealed_session::revocation::{MemoryRevocations, Revocation, Subject};
use sealed_session::{Key, KeyRing, SessionCodec, SessionConfig};
use serde_json::Value;

/// The session's first cookie; further chunks are `NAME.1`, `NAME.2`, ...
const NAME: &str = "__Host-app";

fn config() -> SessionConfig {
    SessionConfig::builder("app").build().expect("a valid configuration")
}

fn codec(config: SessionConfig) -> SessionCodec {
    SessionCodec::new(config, KeyRing::single(Key::generate()))
}

/// A client with a cookie jar, as a browser; the jar is returned to read and copy cookies.
fn browser() -> (Client, Arc<Jar>) {
    let jar = Arc::new(Jar::default());
    let client = Client::builder().cookie_provider(Arc::clone(&jar)).build().expect("a client");
    (client, jar)
}

/// POSTs `body` as JSON.
async fn post_json(client: &Client, url: Url, body: &impl serde::Serialize) -> reqwest::Response {
    let body = serde_json::to_string(body).expect("JSON");
    let request = client.post(url).header("content-type", "application/json").body(body);
    request.send().await.expect("a response")
}

/// The Cookie header the jar would send to `base`.
fn cookie_header(jar: &Jar, base: &Url) -> String {
    let header = jar.cookies(base).expect("the jar holds cookies");
    header.to_str().expect("ASCII").to_owned()
}

/// Names of the session cookies a response sets (not removals).
fn stored_chunks(response: &reqwest::Response) -> Vec<String> {
    let values = response.headers().get_all(reqwest::header::SET_COOKIE).iter();
    values
        .filter_map(|v| cookie::Cookie::parse(v.to_str().ok()?.to_owned()).ok())
        .filter(|c| c.name().starts_with(NAME) && !c.value().is_empty())
        .map(|c| c.name().to_owned())
        .collect()
}

/// The `Max-Age` of each session cookie a response sets, in seconds.
fn max_ages(response: &reqwest::Response) -> Vec<i64> {
    let values = response.headers().get_all(reqwest::header::SET_COOKIE).iter();
    values
        .filter_map(|v| cookie::Cookie::parse(v.to_str().ok()?.to_owned()).ok())
        .filter(|c| c.name().starts_with(NAME) && !c.value().is_empty())
        .filter_map(|c| c.max_age().map(|age| age.whole_seconds()))
        .collect()
}

/// `len` hexadecimal digits from a linear congruential generator: text compression can only
/// halve it.
fn noise(len: usize) -> String {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        out.push_str(&format!("{:08x}", x >> 32));
    }
    out.truncate(len);
    out
}

/// The 5.9 KB browsing-history state of the shared corpus, as a JSON object.
fn history() -> serde_json::Map<String, Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/history.json");
    let text = std::fs::read_to_string(path).expect("the shared corpus beside the repository");
    match serde_json::from_str(&text).expect("JSON") {
        Value::Object(map) => map,
        _ => panic!("the history state is a JSON object"),
    }
}

mod axum_side {
    use axum::extract::{Query, Request};
    use axum::response::{IntoResponse, Redirect};
    use axum::routing::{get, post};
    use axum::{Json, Router, ServiceExt};
    use axum_login::{AuthManager, AuthSession, AuthUser, AuthnBackend, UserId, login_required};
    use axum_messages::{Messages, MessagesManagerLayer};
    use sealed_session::integrations::tower_sessions::TowerSessionsLayer;
    use tokio::sync::oneshot;
    use tower::Layer as _;
    use tower_sessions::Session;

    use super::*;

    /// A running axum server; [`Server::stop`] shuts it down and waits for it.
    pub struct Server {
        pub base: Url,
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Server {
        pub async fn start(layer: TowerSessionsLayer, router: Router) -> Server {
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

        pub fn url(&self, path: &str) -> Url {
            self.base.join(path).expect("a URL")
        }

        pub async fn stop(self) {
            self.stop.send(()).ok();
            self.task.await.expect("the server task ends cleanly");
        }
    }

    #[derive(Debug, Clone)]
    pub struct User {
        id: u64,
        name: &'static str,
        /// What axum-login compares to keep a session valid: here the password itself.
        password: &'static str,
    }

    impl AuthUser for User {
        type Id = u64;

        fn id(&self) -> u64 {
            self.id
        }

        fn session_auth_hash(&self) -> &[u8] {
            self.password.as_bytes()
        }
    }

    #[derive(Debug, Clone)]
    pub struct Backend {
        users: Vec<User>,
    }

    impl Backend {
        fn new() -> Backend {
            Backend { users: vec![User { id: 1, name: "ada", password: "lovelace" }] }
        }
    }

    #[derive(Debug, Clone, serde::Deserialize)]
    pub struct Credentials {
        name: String,
        password: String,
    }

    impl AuthnBackend for Backend {
        type User = User;
        type Credentials = Credentials;
        type Error = std::convert::Infallible;

        async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, Self::Error> {
            let found = self.users.iter().find(|u| u.name == creds.name);
            Ok(found.filter(|u| u.password == creds.password).cloned())
        }

        async fn get_user(&self, id: &UserId<Self>) -> Result<Option<User>, Self::Error> {
            Ok(self.users.iter().find(|u| u.id == *id).cloned())
        }
    }

    async fn login(mut auth: AuthSession<Backend>, Query(creds): Query<Credentials>) -> StatusCode {
        match auth.authenticate(creds).await {
            Ok(Some(user)) if auth.login(&user).await.is_ok() => StatusCode::OK,
            Ok(_) => StatusCode::UNAUTHORIZED,
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    async fn logout(mut auth: AuthSession<Backend>) -> StatusCode {
        match auth.logout().await {
            Ok(_) => StatusCode::OK,
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    async fn protected(auth: AuthSession<Backend>) -> String {
        auth.user.map(|user| user.name.to_owned()).unwrap_or_default()
    }

    /// Writes a value, so that an anonymous visitor gets a sealed session.
    async fn visit(session: Session) -> StatusCode {
        match session.insert("visited", true).await {
            Ok(()) => StatusCode::OK,
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The tower-sessions id of the request's session (empty for a new one).
    async fn id(session: Session) -> String {
        session.id().map(|id| id.to_string()).unwrap_or_default()
    }

    fn auth_app() -> Router {
        let backend = Backend::new();
        Router::new()
            .route("/protected", get(protected))
            .route_layer(login_required!(Backend))
            .route("/login", post(login))
            .route("/logout", post(logout))
            .route("/visit", post(visit))
            .route("/id", get(id))
            .layer(tower::layer::layer_fn(move |inner| {
                AuthManager::new(inner, backend.clone(), "axum-login.data")
            }))
    }

    /// A length oracle through the bridge (CRIME): the app keeps a secret under a key and
    /// reflects attacker text into the same session. Where the key is sensitive (axum-login's
    /// data key by default, or one the configuration names), a right and a wrong guess of the
    /// secret give cookies of the same length; a key nobody named sensitive is the control, and
    /// there the right guess compresses shorter, which is what the attacker measures.
    #[tokio::test]
    async fn a_secret_beside_reflected_text_leaks_no_length_through_the_bridge() {
        const SECRET: &str = "k9QmT2vX8pL4rW7nZ1sB6yH3cF5jD0aE";
        const WRONG: &str = "Jx4bN8qR1tV5yZ9cF3hL7pS2wA6dG0mU";
        #[derive(serde::Deserialize)]
        struct Params {
            key: String,
            note: String,
        }
        async fn store(session: Session, Query(p): Query<Params>) -> StatusCode {
            // A page of text around the reflected note, so the body is compressed.
            let page = format!("{} {} {}", noise(300), p.note, "search results ".repeat(30));
            let ok = session.insert(&p.key, SECRET).await.is_ok()
                && session.insert("note", page).await.is_ok();
            if ok { StatusCode::OK } else { StatusCode::INTERNAL_SERVER_ERROR }
        }
        let config = SessionConfig::builder("app").sensitive_key("oauth_token").build().unwrap();
        let layer = TowerSessionsLayer::new(codec(config));
        let server = Server::start(layer, Router::new().route("/store", get(store))).await;
        let length = async |key: &str, guess: &str| {
            let url = server.url(&format!("/store?key={key}&note={guess}"));
            let response = reqwest::get(url).await.expect("a response");
            assert_eq!(response.status(), StatusCode::OK);
            let values = response.headers().get_all(reqwest::header::SET_COOKIE).iter();
            let cookies = values.filter_map(|v| cookie::Cookie::parse(v.to_str().ok()?).ok());
            cookies.filter(|c| c.name().starts_with(NAME)).map(|c| c.value().len()).sum::<usize>()
        };
        for (key, sensitive) in [("axum-login.data", true), ("oauth_token", true), ("plain", false)]
        {
            let (right, wrong) = (length(key, SECRET).await, length(key, WRONG).await);
            if sensitive {
                assert_eq!(right, wrong, "{key}: the length tells a right guess from a wrong one");
            } else {
                assert!(right < wrong, "control {key}: right {right}, wrong {wrong}");
            }
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn axum_login_signs_in_and_out_on_sealed_cookies() {
        // axum-login keeps `{ user_id, auth_hash }` under its data key: the subject is the id.
        let subject = Subject::field("axum-login.data", "user_id");
        let revocation = Revocation::new(MemoryRevocations::new(), subject);
        let layer = TowerSessionsLayer::new(codec(config())).with_revocation(revocation);
        let server = Server::start(layer, auth_app()).await;
        let (client, jar) = browser();
        let status = |path: &'static str| {
            let (client, url) = (client.clone(), server.url(path));
            async move { client.get(url).send().await.expect("a response").status() }
        };
        let text = |path: &'static str| {
            let (client, url) = (client.clone(), server.url(path));
            async move { client.get(url).send().await.expect("a response").text().await.unwrap() }
        };
        let post = |path: &'static str| {
            let (client, url) = (client.clone(), server.url(path));
            async move { client.post(url).send().await.expect("a response").status() }
        };

        assert_eq!(status("/protected").await, StatusCode::UNAUTHORIZED, "before login");
        assert_eq!(post("/visit").await, StatusCode::OK);
        let anonymous_id = text("/id").await;
        assert!(!anonymous_id.is_empty(), "the visit sealed a session");
        let anonymous = cookie_header(&jar, &server.base);

        assert_eq!(post("/login?name=ada&password=wrong").await, StatusCode::UNAUTHORIZED);
        assert_eq!(post("/login?name=ada&password=lovelace").await, StatusCode::OK);
        assert_eq!(text("/protected").await, "ada", "after login");
        let signed_in_id = text("/id").await;
        assert!(!signed_in_id.is_empty() && signed_in_id != anonymous_id, "fixation: a new id");
        let signed_in = cookie_header(&jar, &server.base);

        assert_eq!(post("/logout").await, StatusCode::OK);
        assert_eq!(status("/protected").await, StatusCode::UNAUTHORIZED, "after logout");

        // Replayed by another client: the cookie copied before logout is revoked; the one
        // planted before login (fixation) never signs anyone in.
        for (copied, what) in [(signed_in, "signed-in"), (anonymous, "pre-login")] {
            let replay = Client::new().get(server.url("/protected")).header("cookie", copied);
            let status = replay.send().await.expect("a response").status();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "a copied {what} cookie is refused");
        }
        server.stop().await;
    }

    async fn flash(messages: Messages) -> Redirect {
        messages.info("saved");
        Redirect::to("/show")
    }

    async fn show(messages: Messages) -> String {
        messages.into_iter().map(|message| message.message).collect::<Vec<_>>().join(",")
    }

    #[tokio::test]
    async fn an_axum_messages_message_is_shown_once_after_a_redirect() {
        let router = Router::new()
            .route("/flash", post(flash))
            .route("/show", get(show))
            .layer(MessagesManagerLayer);
        let server = Server::start(TowerSessionsLayer::new(codec(config())), router).await;
        let (client, _jar) = browser();

        // reqwest follows the redirect with the cookies it set, as a browser does.
        let shown = client.post(server.url("/flash")).send().await.expect("a response");
        assert_eq!(shown.url().path(), "/show");
        assert_eq!(shown.text().await.expect("a body"), "saved");
        let again = client.get(server.url("/show")).send().await.expect("a response");
        assert_eq!(again.text().await.expect("a body"), "", "a message is shown once");
        server.stop().await;
    }

    /// Stores every field of the posted JSON object as a value; with `check`, saves first and
    /// answers 413 with the error when the session cannot be sealed.
    async fn store(
        session: Session,
        Query(query): Query<HashMap<String, String>>,
        Json(state): Json<serde_json::Map<String, Value>>,
    ) -> impl IntoResponse {
        let keys: Vec<String> = state.keys().cloned().collect();
        for (key, value) in state {
            if session.insert(&key, value).await.is_err() {
                return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
            }
        }
        if query.contains_key("check") {
            if let Err(error) = session.save().await {
                // Handled: the values go, the session stays as it was.
                for key in keys {
                    session.remove_value(&key).await.ok();
                }
                return (StatusCode::PAYLOAD_TOO_LARGE, error.to_string());
            }
        }
        (StatusCode::OK, String::new())
    }

    /// The values under the requested keys, as a JSON object.
    async fn load(
        session: Session,
        Query(query): Query<HashMap<String, String>>,
    ) -> Json<serde_json::Map<String, Value>> {
        let mut out = serde_json::Map::new();
        for key in query.get("keys").map(String::as_str).unwrap_or("").split(',') {
            if let Ok(Some(value)) = session.get_value(key).await {
                out.insert(key.to_owned(), value);
            }
        }
        Json(out)
    }

    fn state_app() -> Router {
        Router::new().route("/store", post(store)).route("/load", get(load))
    }

    async fn cycle(session: Session) -> StatusCode {
        session.cycle_id().await.expect("cycles");
        StatusCode::OK
    }

    async fn flush(session: Session) -> StatusCode {
        session.flush().await.expect("flushes");
        StatusCode::OK
    }

    async fn fails_after_insert(session: Session) -> StatusCode {
        session.insert("user", "mallory").await.expect("inserts");
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// As tower-sessions' own manager, the bridge writes nothing back when the response is a
    /// server error: a handler that changed the session and then failed (half a login, say)
    /// leaves the browser's session as it was. Before, the change was sealed and set.
    #[tokio::test]
    async fn a_server_error_saves_nothing_through_the_bridge() {
        let router = state_app().route("/fails", post(fails_after_insert));
        let server = Server::start(TowerSessionsLayer::new(codec(config())), router).await;
        let (client, _jar) = browser();
        let state = serde_json::json!({ "user": "ada" });
        let stored = post_json(&client, server.url("/store"), &state).await;
        assert_eq!(stored.status(), StatusCode::OK);

        let failed = client.post(server.url("/fails")).send().await.unwrap();
        assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(stored_chunks(&failed), Vec::<String>::new(), "the failed change was set");
        let loaded = client.get(server.url("/load?keys=user")).send().await.unwrap();
        assert_eq!(loaded.text().await.unwrap(), r#"{"user":"ada"}"#);
        server.stop().await;
    }

    /// A request that opened the session before a logout and calls `cycle_id` after it (here:
    /// the cookie copied before the logout, sent again; the server cannot tell the two apart)
    /// answers removals: `cycle_id` writes the old values back under a new id, which must not
    /// sign the user in again (README "Revocation", SECURITY.md issue 28 item 7). Before, the
    /// response set a new session holding the logged-out user.
    #[tokio::test]
    async fn a_cycle_id_in_flight_cannot_undo_a_logout() {
        let router = state_app().route("/cycle", post(cycle)).route("/logout", post(flush));
        let server = Server::start(TowerSessionsLayer::new(codec(config())), router).await;
        let (client, jar) = browser();
        let state = serde_json::json!({ "user": "ada" });
        let stored = post_json(&client, server.url("/store"), &state).await;
        assert_eq!(stored.status(), StatusCode::OK);
        let before_logout = cookie_header(&jar, &server.base);
        let logout = client.post(server.url("/logout")).send().await.unwrap();
        assert!(stored_chunks(&logout).is_empty(), "the logout removes the session");

        let in_flight = Client::new().post(server.url("/cycle")).header("cookie", &before_logout);
        let response = in_flight.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(stored_chunks(&response), Vec::<String>::new(), "the user signed in again");
        server.stop().await;
    }

    #[tokio::test]
    async fn a_5_kb_state_spans_several_cookies_through_the_bridge() {
        // Uncompressed, so that the 5.9 KB state needs more than one 4 KB cookie.
        let config = SessionConfig::builder("app").compression_threshold(None).build().unwrap();
        let server = Server::start(TowerSessionsLayer::new(codec(config)), state_app()).await;
        let (client, _jar) = browser();
        let state = history();

        let stored = post_json(&client, server.url("/store"), &state).await;
        assert_eq!(stored.status(), StatusCode::OK);
        assert_eq!(stored_chunks(&stored), [NAME.to_owned(), format!("{NAME}.1")]);
        let keys = state.keys().cloned().collect::<Vec<_>>().join(",");
        let loaded = client.get(server.url(&format!("/load?keys={keys}"))).send().await;
        let loaded = loaded.unwrap().text().await.unwrap();
        let loaded: serde_json::Map<String, Value> = serde_json::from_str(&loaded).unwrap();
        assert_eq!(loaded, state);
        server.stop().await;
    }

    #[tokio::test]
    async fn bad_cookies_and_oversized_sessions_through_the_bridge() {
        let server = Server::start(TowerSessionsLayer::new(codec(config())), state_app()).await;
        let (client, jar) = browser();
        let small = serde_json::json!({ "user": "ada" });
        let stored = post_json(&client, server.url("/store"), &small).await;
        assert_eq!(stored.status(), StatusCode::OK);
        let header = cookie_header(&jar, &server.base);

        // A changed byte in the sealed value: a fresh session, not an error page.
        let (name, value) = header.split_once('=').expect("name=value");
        let middle = value.len() / 2;
        let flipped = if &value[middle..=middle] == "A" { "B" } else { "A" };
        let tampered = format!("{name}={}{flipped}{}", &value[..middle], &value[middle + 1..]);
        let response = Client::new()
            .get(server.url("/load?keys=user"))
            .header("cookie", tampered)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "{}", "the tampered session is not read");

        // Past the budget even compressed: the handler that saves gets the error and answers
        // with it; the one that does not gets the layer's empty 500. No cookie either way.
        let noise = noise(20_000);
        let big = serde_json::json!({ "blob": noise });
        for (path, status) in [
            ("/store?check=1", StatusCode::PAYLOAD_TOO_LARGE),
            ("/store", StatusCode::INTERNAL_SERVER_ERROR),
        ] {
            let response = post_json(&client, server.url(path), &big).await;
            assert_eq!(response.status(), status, "{path}");
            let chunks = stored_chunks(&response);
            let body = response.text().await.unwrap();
            assert!(!body.contains(&noise[..32]), "{path}: no value in the answer");
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                assert!(body.contains("budget"), "{path}: the error names the budget: {body}");
            } else {
                assert_eq!((body.as_str(), chunks.len()), ("", 0), "{path}: an empty 500");
            }
        }
        // The session saved before is still there.
        let loaded = client.get(server.url("/load?keys=user")).send().await.unwrap();
        let loaded: Value = serde_json::from_str(&loaded.text().await.unwrap()).unwrap();
        assert_eq!(loaded, small);
        server.stop().await;
    }
}

mod actix_side {
    use std::sync::mpsc;

    use actix_identity::{Identity, IdentityMiddleware};
    use actix_web::http::header::LOCATION;
    use actix_web::{App, HttpMessage as _, HttpRequest, HttpResponse, HttpServer, web};
    use actix_web_flash_messages::{FlashMessage, FlashMessagesFramework, IncomingFlashMessages};
    use std::time::{Duration, SystemTime};

    use sealed_session::integrations::actix_flash::SealedMessageStore;
    use sealed_session::integrations::actix_session::ActixSessionMiddleware;
    use sealed_session::{ManualClock, SessionHandle};

    use super::*;

    /// A running actix-web server on a thread of its own; [`Server::stop`] shuts it down.
    pub struct Server {
        pub base: Url,
        handle: actix_web::dev::ServerHandle,
        thread: std::thread::JoinHandle<()>,
    }

    impl Server {
        /// The test application: actix-identity and flash messages on the bridge.
        pub fn start(sessions: ActixSessionMiddleware) -> Server {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
            let addr: SocketAddr = listener.local_addr().expect("an address");
            let (handle_tx, handle_rx) = mpsc::channel();
            let thread = std::thread::spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let flash = FlashMessagesFramework::builder(SealedMessageStore::default());
                    let flash = flash.build();
                    let server = HttpServer::new(move || {
                        App::new()
                            .wrap(IdentityMiddleware::default())
                            .wrap(flash.clone())
                            .wrap(sessions.clone())
                            .route("/login", web::post().to(login))
                            .route("/me", web::get().to(me))
                            .route("/logout", web::post().to(logout))
                            .route("/visit", web::post().to(visit))
                            .route("/id", web::get().to(id))
                            .route("/flash", web::post().to(flash_then_redirect))
                            .route("/show", web::get().to(show))
                            .route("/big", web::post().to(big))
                            .route("/status/{op}", web::post().to(status))
                            .route("/both", web::post().to(both))
                            .route("/csrf", web::post().to(csrf))
                    })
                    .workers(1)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .listen(listener)
                    .expect("listening")
                    .run();
                    handle_tx.send(server.handle()).expect("the test waits for the handle");
                    server.await.expect("the server runs");
                });
            });
            let handle = handle_rx.recv().expect("the server started");
            Server { base: Url::parse(&format!("http://{addr}/")).unwrap(), handle, thread }
        }

        pub fn url(&self, path: &str) -> Url {
            self.base.join(path).expect("a URL")
        }

        pub async fn stop(self) {
            self.handle.stop(true).await;
            self.thread.join().expect("the server thread ends cleanly");
        }
    }

    async fn login(request: HttpRequest) -> HttpResponse {
        match Identity::login(&request.extensions(), "ada".into()) {
            Ok(_) => HttpResponse::Ok().finish(),
            Err(_) => HttpResponse::InternalServerError().finish(),
        }
    }

    async fn me(identity: Option<Identity>) -> HttpResponse {
        match identity.and_then(|identity| identity.id().ok()) {
            Some(id) => HttpResponse::Ok().body(id),
            None => HttpResponse::Unauthorized().finish(),
        }
    }

    async fn logout(identity: Identity) -> HttpResponse {
        identity.logout();
        HttpResponse::Ok().finish()
    }

    /// Writes a value through `actix_session::Session`: an anonymous visitor gets a session.
    async fn visit(session: actix_session::Session) -> HttpResponse {
        match session.insert("visited", true) {
            Ok(()) => HttpResponse::Ok().finish(),
            Err(_) => HttpResponse::InternalServerError().finish(),
        }
    }

    async fn id(session: SessionHandle) -> String {
        session.id().map(|id| id.to_string()).unwrap_or_default()
    }

    /// Stores far more than the Cookie header budget, even compressed.
    async fn big(session: actix_session::Session) -> HttpResponse {
        match session.insert("blob", noise(20_000)) {
            Ok(()) => HttpResponse::Ok().body("stored"),
            Err(_) => HttpResponse::BadRequest().finish(),
        }
    }

    /// Does `op` through `actix_session::Session` (`true` and `false` insert that value under
    /// `visited`) and answers the status it reports then.
    async fn status(session: actix_session::Session, op: web::Path<String>) -> HttpResponse {
        let done = match op.as_str() {
            "read" => session.get::<bool>("visited").map(drop).map_err(drop),
            "true" => session.insert("visited", true).map_err(drop),
            "false" => session.insert("visited", false).map_err(drop),
            "renew" => {
                session.renew();
                Ok(())
            }
            _ => Err(()),
        };
        match done {
            Ok(()) => HttpResponse::Ok().body(format!("{:?}", session.status())),
            Err(()) => HttpResponse::BadRequest().finish(),
        }
    }

    /// What `actix_session::Session` lacks, from the `SessionHandle` of the same session: a
    /// value written through one read through the other, the CSRF token, the size.
    async fn both(session: actix_session::Session, handle: SessionHandle) -> HttpResponse {
        let visited = handle.get::<bool>("visited").ok().flatten();
        let fits = handle.size().map(|size| size.fits());
        match (handle.csrf_token(), session.insert("seen_by_both", true)) {
            (Ok(token), Ok(())) => HttpResponse::Ok().body(format!("{visited:?} {fits:?} {token}")),
            _ => HttpResponse::InternalServerError().finish(),
        }
    }

    /// Whether the request passes the CSRF check (its token in the `x-csrf-token` header).
    async fn csrf(request: HttpRequest, handle: SessionHandle) -> String {
        handle.verify_csrf_request(&request, None).to_string()
    }

    async fn flash_then_redirect() -> HttpResponse {
        FlashMessage::info("saved").send();
        HttpResponse::SeeOther().insert_header((LOCATION, "/show")).finish()
    }

    async fn show(messages: IncomingFlashMessages) -> String {
        messages.iter().map(|m| m.content().to_owned()).collect::<Vec<_>>().join(",")
    }

    #[tokio::test]
    async fn actix_identity_signs_in_and_out_on_sealed_cookies() {
        // actix-identity keeps the user's id, a string, under `actix_identity.user_id`.
        let revocation = Revocation::new(MemoryRevocations::new(), "actix_identity.user_id");
        let server =
            Server::start(ActixSessionMiddleware::new(codec(config())).with_revocation(revocation));
        let (client, jar) = browser();
        let get = |path: &'static str| {
            let (client, url) = (client.clone(), server.url(path));
            async move {
                let response = client.get(url).send().await.expect("a response");
                (response.status(), response.text().await.expect("a body"))
            }
        };
        let post = |path: &'static str| {
            let (client, url) = (client.clone(), server.url(path));
            async move { client.post(url).send().await.expect("a response").status() }
        };

        assert_eq!(get("/me").await.0, StatusCode::UNAUTHORIZED, "before login");
        assert_eq!(post("/visit").await, StatusCode::OK);
        let (_, anonymous_id) = get("/id").await;
        assert!(!anonymous_id.is_empty(), "the visit sealed a session");

        assert_eq!(post("/login").await, StatusCode::OK);
        assert_eq!(get("/me").await, (StatusCode::OK, "ada".to_owned()), "after login");
        let (_, signed_in_id) = get("/id").await;
        assert!(!signed_in_id.is_empty() && signed_in_id != anonymous_id, "fixation: a new id");
        let signed_in = cookie_header(&jar, &server.base);

        assert_eq!(post("/logout").await, StatusCode::OK);
        assert_eq!(get("/me").await.0, StatusCode::UNAUTHORIZED, "after logout");
        let replay = Client::new().get(server.url("/me")).header("cookie", signed_in);
        let status = replay.send().await.expect("a response").status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a cookie copied before logout is revoked");
        server.stop().await;
    }

    #[tokio::test]
    async fn an_actix_flash_message_is_shown_once_after_a_redirect() {
        let server = Server::start(ActixSessionMiddleware::new(codec(config())));
        let (client, _jar) = browser();

        let shown = client.post(server.url("/flash")).send().await.expect("a response");
        assert_eq!(shown.url().path(), "/show");
        assert_eq!(shown.text().await.expect("a body"), "saved");
        let again = client.get(server.url("/show")).send().await.expect("a response");
        assert_eq!(again.text().await.expect("a body"), "", "a message is shown once");
        server.stop().await;
    }

    #[tokio::test]
    async fn bad_cookies_and_oversized_sessions_through_the_actix_bridge() {
        let server = Server::start(ActixSessionMiddleware::new(codec(config())));
        let (client, jar) = browser();
        assert_eq!(client.post(server.url("/login")).send().await.unwrap().status(), 200);
        let header = cookie_header(&jar, &server.base);

        // A changed byte in the sealed value: a fresh session (signed out), not an error page.
        let (name, value) = header.split_once('=').expect("name=value");
        let middle = value.len() / 2;
        let flipped = if &value[middle..=middle] == "A" { "B" } else { "A" };
        let tampered = format!("{name}={}{flipped}{}", &value[..middle], &value[middle + 1..]);
        let replay = Client::new().get(server.url("/me")).header("cookie", tampered);
        assert_eq!(replay.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);

        // Past the budget: an empty 500 without a cookie; the session stays as it was.
        let response = client.post(server.url("/big")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(stored_chunks(&response).is_empty(), "no cookie set");
        assert_eq!(response.text().await.unwrap(), "", "an empty 500");
        let me = client.get(server.url("/me")).send().await.unwrap();
        assert_eq!(me.text().await.unwrap(), "ada");
        server.stop().await;
    }

    /// The README's deliberate differences from actix-session: a loaded session reports
    /// `Changed`, a re-insert of the value a key holds writes no cookie, `Renewed` is exact.
    #[tokio::test]
    async fn actix_session_status_and_rewrites_are_as_documented() {
        let server = Server::start(ActixSessionMiddleware::new(codec(config())));
        let (client, _jar) = browser();
        let stranger = Client::new();
        let post = |client: &Client, op: &str| {
            let request = client.post(server.url(&format!("/status/{op}")));
            async move {
                let response = request.send().await.expect("a response");
                let cookies = stored_chunks(&response).len();
                (response.text().await.expect("a body"), cookies > 0)
            }
        };
        assert_eq!(client.post(server.url("/visit")).send().await.unwrap().status(), 200);

        // (who, op, status the handler sees, a cookie written)
        let rows = [
            (&stranger, "read", "Unchanged", false),
            (&client, "read", "Changed", false),
            (&client, "true", "Changed", false),
            (&client, "false", "Changed", true),
            (&client, "renew", "Renewed", true),
        ];
        for (who, op, status, written) in rows {
            let (seen, cookie) = post(who, op).await;
            assert_eq!((seen.as_str(), cookie), (status, written), "{op}");
        }
        server.stop().await;
    }

    /// The README's `Max-Age` difference: a later write counts down to the absolute end, where
    /// actix-session writes its full TTL again; `renew` starts a new session, a new end.
    #[tokio::test]
    async fn max_age_counts_down_to_the_absolute_end_on_later_writes() {
        let config = SessionConfig::builder("app")
            .persistent(true)
            .idle_timeout(Duration::from_secs(1800))
            .absolute_timeout(Duration::from_secs(3600))
            .build()
            .expect("a valid configuration");
        let clock = ManualClock::new(SystemTime::now());
        let server =
            Server::start(ActixSessionMiddleware::new(codec(config)).with_clock(clock.clone()));
        let (client, _jar) = browser();

        // (seconds later, op, the Max-Age it writes: None for no cookie)
        let rows = [
            (0, "true", Some(3600)),
            (5, "true", None),
            (0, "false", Some(3595)),
            (95, "true", Some(3500)),
            (0, "renew", Some(3600)),
        ];
        for (later, op, max_age) in rows {
            clock.advance(Duration::from_secs(later));
            let response = client.post(server.url(&format!("/status/{op}"))).send().await;
            let ages = max_ages(&response.expect("a response"));
            assert_eq!(ages, Vec::from_iter(max_age), "{op} after {later} s");
        }
        server.stop().await;
    }

    /// The README's word on what the bridge lacks: handlers get the `SessionHandle` of the same
    /// session beside `actix_session::Session`, and its CSRF token survives the bridge's write-back.
    #[tokio::test]
    async fn a_handler_gets_the_session_handle_beside_actix_session() {
        let server = Server::start(ActixSessionMiddleware::new(codec(config())));
        let (client, _jar) = browser();
        let both = || {
            let request = client.post(server.url("/both"));
            async move {
                let response = request.send().await.expect("a response");
                assert_eq!(response.status(), StatusCode::OK);
                let body = response.text().await.expect("a body");
                let (seen, token) = body.rsplit_once(' ').expect("seen and a token");
                (seen.to_owned(), token.to_owned())
            }
        };
        assert_eq!(client.post(server.url("/visit")).send().await.unwrap().status(), 200);

        let (seen, token) = both().await;
        assert_eq!(seen, "Some(true) Some(true)", "visited (written via actix-session), fits");
        assert!(token.len() >= 32, "a CSRF token: {token}");
        let check = client.post(server.url("/csrf")).header("x-csrf-token", &token);
        let passes = check.send().await.expect("a response").text().await.expect("a body");
        assert_eq!(passes, "true", "the token was sealed beside actix-session's changes");
        server.stop().await;
    }

    /// The configured CSRF origin check holds for a bridge handler's `SessionHandle` too.
    #[tokio::test]
    async fn the_csrf_origin_check_holds_beside_actix_session() {
        let config = SessionConfig::builder("app").csrf_origin_check(true).build().expect("valid");
        let server = Server::start(ActixSessionMiddleware::new(codec(config)));
        let (client, _jar) = browser();
        let response = client.post(server.url("/both")).send().await.expect("a response");
        let body = response.text().await.expect("a body");
        let (_, token) = body.rsplit_once(' ').expect("a token");

        // (Sec-Fetch-Site, passes)
        let rows = [("same-origin", "true"), ("cross-site", "false"), ("same-site", "false")];
        for (site, passes) in rows {
            let request = client.post(server.url("/csrf")).header("x-csrf-token", token);
            let response = request.header("sec-fetch-site", site).send().await.expect("a response");
            assert_eq!(response.text().await.expect("a body"), passes, "{site}");
        }
        server.stop().await;
    }
}
