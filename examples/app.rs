//! A small axum app built the way the README recommends: a login form, CSRF-protected posts,
//! flash messages after redirects, a typed user extractor, a cart with an "over budget" page,
//! logout, "log out everywhere", and a key ring reloaded when its file changes. It has no error
//! type and no CSRF helper of its own: every handler returns `sealed_session::SessionError`, and
//! `require_csrf_headers(..)?` answers 403.
//!
//! ```sh
//! cargo run --example app --features axum                  # ephemeral keys, http://127.0.0.1:3001/
//! cargo run --example app --features axum -- keys.json     # a ring file, reloaded on change
//! ```
//!
//! `tests/app.rs` drives it over HTTP. It keeps revocations in memory; a fleet shares them
//! through Redis.

use std::time::{Duration, SystemTime};

use axum::extract::{Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Router, ServiceExt};
use sealed_session::integrations::tower::{SessionLayer, SessionService};
use sealed_session::revocation::{MemoryRevocations, Revocation};
use sealed_session::{
    CSRF_FIELD, Key, KeyRing, Rejected, SealError, SessionCodec, SessionConfig, SessionError,
    SessionHandle, SharedKeyRing,
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
/// The session key of the cart (item names).
const CART: &str = "cart";

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
            Err(error) => Err(SessionError::from(error).into_response()),
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
        .route("/cart", post(add_to_cart))
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
    // With a ring file, rotations (`sealed-session keys rotate`) reach the app without a restart.
    let keys = match std::env::args_os().nth(1) {
        Some(path) => SharedKeyRing::watching_file(path, Duration::from_secs(5))?,
        None => SharedKeyRing::new(KeyRing::single(Key::generate())),
    };
    let codec = SessionCodec::new(SessionConfig::default(), keys);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    println!("app listening on http://{}/", listener.local_addr()?);
    let app = ServiceExt::<axum::extract::Request>::into_make_service(app(codec));
    axum::serve(listener, app).await?;
    Ok(())
}

/// The page when a session grew too large to keep: nothing was saved. A fallback for handlers
/// that do not check the size themselves (the cart does).
fn too_large(_: &SealError) -> Response {
    over_budget()
}

/// The over-budget page, one wording for both paths.
fn over_budget() -> Response {
    let page = r#"<p id="over-budget">Your session is full: that change was not saved.</p>"#;
    (StatusCode::PAYLOAD_TOO_LARGE, Html(page)).into_response()
}

async fn index(session: SessionHandle) -> Result<Html<String>, SessionError> {
    let token = session.csrf_token()?;
    let mut page = String::new();
    if session.rejected() == Some(Rejected::Expired) {
        page.push_str(r#"<p id="notice">Your session expired, please sign in again.</p>"#);
    } else if session.rejected() == Some(Rejected::Revoked) {
        page.push_str(r#"<p id="notice">You were signed out.</p>"#);
    }
    for message in session.take_flashes()? {
        page.push_str(&format!(r#"<p class="flash">{}</p>"#, escape(&message)));
    }
    let hidden = format!(r#"<input type="hidden" name="{CSRF_FIELD}" value="{token}">"#);
    match session.get::<User>(USER)? {
        Some(user) => {
            page.push_str(&format!(r#"<p id="hello">Hello, {}.</p><ul>"#, escape(&user.name)));
            for note in &user.notes {
                page.push_str(&format!(r#"<li class="note">{}</li>"#, escape(note)));
            }
            page.push_str("</ul><ul>");
            for item in session.get_or_default::<Vec<String>>(CART)? {
                page.push_str(&format!(r#"<li class="item">{}</li>"#, escape(&item)));
            }
            page.push_str(&format!(
                r#"</ul><form method="post" action="/cart">{hidden}<input name="item"><button>Add to cart</button></form>
<form method="post" action="/notes">{hidden}<input name="note"><button>Add</button></form>
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
) -> Result<Response, SessionError> {
    session.require_csrf_headers(&headers, form.csrf_token.as_deref())?;
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
) -> Result<Response, SessionError> {
    session.require_csrf_headers(&headers, form.csrf_token.as_deref())?;
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
) -> Result<Response, SessionError> {
    session.require_csrf_headers(&headers, form.csrf_token.as_deref())?;
    // The layer revokes the purged session: a copy of its cookies is worthless from now on.
    session.purge();
    Ok(Redirect::to("/").into_response())
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
) -> Result<Response, SessionError> {
    session.require_csrf_headers(&headers, form.csrf_token.as_deref())?;
    app.revocation.revoke_subject(&user.name, SystemTime::now(), &app.config).await?;
    session.purge();
    Ok(Redirect::to("/").into_response())
}

#[derive(Deserialize)]
struct CartForm {
    item: String,
    csrf_token: Option<String>,
}

/// Adds an item to the cart, checking before answering that the session still fits its
/// cookies. If it does not, the session is put back exactly as the request found it, so the
/// response writes no cookie at all (the browser keeps what it has) and the page says why.
async fn add_to_cart(
    _: CurrentUser,
    session: SessionHandle,
    headers: HeaderMap,
    Form(form): Form<CartForm>,
) -> Result<Response, SessionError> {
    session.require_csrf_headers(&headers, form.csrf_token.as_deref())?;
    let before = session.with(|s| s.clone());
    session.update(CART, |cart: &mut Vec<String>| cart.push(form.item))?;
    if session.size().is_some_and(|size| !size.fits()) {
        *session.lock() = before;
        return Ok(over_budget());
    }
    session.flash("Added to your cart.")?;
    Ok(Redirect::to("/").into_response())
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
