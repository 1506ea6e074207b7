//! The cheapest encrypted cookie session there can be, served over HTTP for
//! `scripts/load.sh`: it answers `GET /bench/read` as the demo does (`hello, USER`), reading
//! `USER` from a cookie that is only base64url(nonce ‖ AES-256-GCM(MessagePack state)), with
//! one cipher created at start (key schedule and GHASH key cached). No expiry, no key ring, no
//! key id, no per-message key, no framing, no compression, no size limits, no chunks, no
//! associated data, no session handle: the handler opens the cookie itself. It is **not a
//! session library** (nothing here is safe to copy: a cookie never expires and nothing bounds
//! what it decodes); it is the floor the demo's read route is measured against, so that the
//! load figures say how much of the session layer's cost any encrypted cookie would pay.
//!
//! ```sh
//! cargo run --release --example load_floor --features axum -- --port 0
//! curl -c jar -d user=bench http://127.0.0.1:PORT/login
//! curl -b jar http://127.0.0.1:PORT/bench/read        # hello, bench
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use aes_gcm::aead::{AeadInOut, Nonce, Tag};
use aes_gcm::{Aes256Gcm, KeyInit};
use axum::extract::{Form, Request, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, serve};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The cookie's name.
const NAME: &str = "floor";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The state the cookie carries: the demo's `user`.
#[derive(Serialize, Deserialize)]
struct Floor<'a> {
    user: &'a str,
}

#[derive(Deserialize)]
struct Login {
    user: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let port = match args.iter().position(|a| a == "--port").and_then(|i| args.get(i + 1)) {
        Some(port) => port.parse()?,
        None => 3002,
    };
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)?;
    let cipher = Arc::new(Aes256Gcm::new(&key.into()));
    let app = Router::new()
        .route("/login", post(login))
        .route("/bench/read", get(read))
        .with_state(cipher);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("sealed-session load floor listening on http://{}/", listener.local_addr()?);
    serve(listener, app).await?;
    Ok(())
}

/// `POST /login`: a cookie holding `{user}`.
async fn login(State(cipher): State<Arc<Aes256Gcm>>, Form(login): Form<Login>) -> Response {
    let mut token = vec![0u8; NONCE_LEN];
    if getrandom::fill(&mut token).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let Ok(()) = rmp_serde::encode::write_named(&mut token, &Floor { user: &login.user }) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let (nonce, body) = token.split_at_mut(NONCE_LEN);
    let nonce = Nonce::<Aes256Gcm>::try_from(&*nonce).expect("12 bytes");
    let Ok(tag) = cipher.encrypt_inout_detached(&nonce, &[], body.into()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    token.extend_from_slice(&tag);
    let cookie = format!("{NAME}={}; Path=/; HttpOnly", URL_SAFE_NO_PAD.encode(&token));
    let mut response = "ok\n".into_response();
    response.headers_mut().insert(SET_COOKIE, HeaderValue::try_from(cookie).expect("ASCII"));
    response
}

/// `GET /bench/read`: opens the cookie and answers `hello, USER` (`nobody` without one).
async fn read(State(cipher): State<Arc<Aes256Gcm>>, request: Request) -> String {
    let value = request
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|header| header.to_str().ok())
        .flat_map(|header| header.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(NAME)?.strip_prefix('='));
    let mut token = value.and_then(|value| URL_SAFE_NO_PAD.decode(value).ok()).unwrap_or_default();
    let user =
        open(&cipher, &mut token).and_then(|state| rmp_serde::from_slice::<Floor>(state).ok());
    format!("hello, {}\n", user.map_or("nobody", |state| state.user))
}

/// Decrypts `nonce ‖ ciphertext ‖ tag` in place; the plaintext, if authentic.
fn open<'t>(cipher: &Aes256Gcm, token: &'t mut [u8]) -> Option<&'t [u8]> {
    if token.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, rest) = token.split_at_mut(NONCE_LEN);
    let (body, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
    let nonce = Nonce::<Aes256Gcm>::try_from(&*nonce).ok()?;
    let tag = Tag::<Aes256Gcm>::try_from(&*tag).ok()?;
    cipher.decrypt_inout_detached(&nonce, &[], body.into(), &tag).ok()?;
    Some(body)
}
