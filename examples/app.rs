//! A small axum app built the way the README recommends: a login form, a CSRF-protected post,
//! flash messages after redirects, a typed user extractor, logout, and "log out everywhere".
//!
//! ```sh
//! cargo run --example app --features axum   # http://127.0.0.1:3001/
//! ```
//!
//! `tests/app.rs` drives it over HTTP. It runs on an ephemeral key ring and keeps revocations in
//! memory; a real app loads its ring with `keys::file::load_file` and shares revocations
//! through Redis.

use std::time::SystemTime;

use axum::extract::{Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Router, ServiceExt};
use sealed_session::integrations::tower::{SessionLayer, SessionService};
use sealed_session::revocation::{MemoryRevocations, Revocation};
use sealed_session::{
    CSRF_FIELD, Key, KeyRing, Rejected, SealError, SessionCodec, SessionConfig, SessionHandle,
    ValueError,
};
use serde::{Deserialize, Serialize};
use tower::Layer as _;

/// The signed-in user, stored in the session under [`USER`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    /// Added after the first release: `default` keeps older cookies decoding.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// The session key of the [`User`].
const USER: &str = "user";
/// The session key of the user's name, the subject "log out everywhere" revokes.
const SUBJECT: &str = "uid";

/// The logged-in user, extracted from the session: handlers that take it send visitors to the
/// login page, and a user value that does not decode answers an empty 500 (logged).
pub struct CurrentUser(pub User);

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let session = SessionHandle::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        match session.get::<User>(USER) {
            Ok(Some(user)) => Ok(CurrentUser(user)),
            Ok(None) => Err(Redirect::to("/").into_response()),
            Err(error) => Err(error.into_response()),
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct App {
    revocation: Revocation,
    config: SessionConfig,
}

/// The app, sessions included, with `codec`'s configuration.
pub fn app(codec: SessionCodec) -> SessionService<Router> {
    let revocation = Revocation::new(MemoryRevocations::new(), SUBJECT);
    let state = App { revocation: revocation.clone(), config: codec.config().clone() };
    let router = Router::new()
        .route("/", get(index))
        .route("/login", post(login))
        .route("/notes", post(add_note))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
        .with_state(state);
    let layer = SessionLayer::new(codec).with_revocation(revocation).on_save_error(too_large);
    layer.layer(router)
}

#[allow(dead_code)] // `tests/app.rs` includes this file and serves `app` itself.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    println!("app listening on http://{}/", listener.local_addr()?);
    let app = ServiceExt::<axum::extract::Request>::into_make_service(app(codec));
    axum::serve(listener, app).await?;
    Ok(())
}

/// The page when a session grew too large to keep: nothing was saved.
fn too_large(_: &SealError) -> Response {
    (StatusCode::PAYLOAD_TOO_LARGE, Html("<p>Too much data: that change was not saved.</p>"))
        .into_response()
}

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, "invalid CSRF token").into_response()
}

async fn index(session: SessionHandle) -> Result<Html<String>, Response> {
    let error = |e: ValueError| e.into_response();
    let token = session.csrf_token().map_err(IntoResponse::into_response)?;
    let mut page = String::new();
    if session.rejected() == Some(Rejected::Expired) {
        page.push_str(r#"<p id="notice">Your session expired, please sign in again.</p>"#);
    } else if session.rejected() == Some(Rejected::Revoked) {
        page.push_str(r#"<p id="notice">You were signed out.</p>"#);
    }
    for message in session.take_flashes().map_err(error)? {
        page.push_str(&format!(r#"<p class="flash">{}</p>"#, escape(&message)));
    }
    let hidden = format!(r#"<input type="hidden" name="{CSRF_FIELD}" value="{token}">"#);
    match session.get::<User>(USER).map_err(error)? {
        Some(user) => {
            page.push_str(&format!(r#"<p id="hello">Hello, {}.</p><ul>"#, escape(&user.name)));
            for note in &user.notes {
                page.push_str(&format!(r#"<li class="note">{}</li>"#, escape(note)));
            }
            page.push_str(&format!(
                r#"</ul><form method="post" action="/notes">{hidden}<input name="note"><button>Add</button></form>
<form method="post" action="/logout">{hidden}<button>Log out</button></form>
<form method="post" action="/logout-everywhere">{hidden}<button>Log out everywhere</button></form>"#
            ));
        }
        None => page.push_str(&format!(
            r#"<form method="post" action="/login">{hidden}<input name="name"><button>Log in</button></form>"#
        )),
    }
    Ok(Html(page))
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    csrf_token: Option<String>,
}

async fn login(
    session: SessionHandle,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, ValueError> {
    if !session.verify_csrf_headers(&headers, form.csrf_token.as_deref()) {
        return Ok(forbidden());
    }
    let name = form.name.trim();
    if name.is_empty() {
        session.flash("Please enter a name.")?;
        return Ok(Redirect::to("/").into_response());
    }
    // A new id (and CSRF token) at login, against session fixation.
    session.renew();
    session.insert(USER, User { name: name.to_owned(), notes: Vec::new() })?;
    session.insert(SUBJECT, name)?;
    session.flash(format!("Welcome, {name}."))?;
    Ok(Redirect::to("/").into_response())
}

#[derive(Deserialize)]
struct NoteForm {
    note: String,
    csrf_token: Option<String>,
}

async fn add_note(
    CurrentUser(mut user): CurrentUser,
    session: SessionHandle,
    headers: HeaderMap,
    Form(form): Form<NoteForm>,
) -> Result<Response, ValueError> {
    if !session.verify_csrf_headers(&headers, form.csrf_token.as_deref()) {
        return Ok(forbidden());
    }
    user.notes.push(form.note.chars().take(200).collect());
    session.insert(USER, user)?;
    session.flash("Note saved.")?;
    Ok(Redirect::to("/").into_response())
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf_token: Option<String>,
}

async fn logout(
    session: SessionHandle,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !session.verify_csrf_headers(&headers, form.csrf_token.as_deref()) {
        return forbidden();
    }
    // The layer revokes the purged session: a copy of its cookies is worthless from now on.
    session.purge();
    Redirect::to("/").into_response()
}

/// Revokes every session of the user signed in before now, on every node whatever its clock,
/// then purges this one. The session layer stamps each login with the revocation store's
/// generation and the revocation takes a greater one, so a login made right after it is not
/// revoked (`tests/app.rs`).
async fn logout_everywhere(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    session: SessionHandle,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !session.verify_csrf_headers(&headers, form.csrf_token.as_deref()) {
        return forbidden();
    }
    if app.revocation.revoke_subject(&user.name, SystemTime::now(), &app.config).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
    }
    session.purge();
    Redirect::to("/").into_response()
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
