//! A bridge to `tower-sessions` 0.14 (feature `tower-sessions`), so that `axum-login`,
//! `axum-messages` and any handler written against `tower_sessions::Session` run on sealed
//! cookies.
//!
//! [`TowerSessionsLayer`] opens the session exactly as
//! [`SessionLayer`](super::tower::SessionLayer) does (same codec, key ring, revocation check)
//! and gives the request a `tower_sessions::Session` whose store is a record holder for this one
//! request. After the handler, the record is written back onto the sealed session, which is
//! stored as `SessionLayer` stores it: chunking, the Cookie header budget, staged rotation and
//! revocation all apply, and nothing is kept on the server.
//!
//! ```no_run
//! use axum::{Router, ServiceExt, extract::Request, routing::get};
//! use sealed_session::integrations::tower_sessions::TowerSessionsLayer;
//! use sealed_session::{Key, KeyRing, SessionCodec, SessionConfig};
//! use tower::Layer as _;
//! use tower_sessions::Session;
//!
//! async fn count(session: Session) -> String {
//!     let n: u64 = session.get("n").await.ok().flatten().unwrap_or(0) + 1;
//!     session.insert("n", n).await.ok();
//!     format!("visit {n}")
//! }
//!
//! # async fn run() {
//! let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
//! let app = TowerSessionsLayer::new(codec).layer(Router::new().route("/", get(count)));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
//! axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await.unwrap();
//! # }
//! ```
//!
//! With `axum-login`, put `AuthManager` inside this layer (its own `AuthManagerLayer` insists on
//! a `SessionManagerLayer`): `tower::layer::layer_fn(|inner| AuthManager::new(inner,
//! backend.clone(), "axum-login.data"))`. The README's "Using axum-login" has a whole app.
//!
//! # How the record maps onto the sealed session
//!
//! | tower-sessions | sealed session |
//! |---|---|
//! | a value (`serde_json::Value`) | the same value as MessagePack, decoded when the record is first read |
//! | `Id` (`i128`) | the 16-byte session id, little-endian; `None` until the session is first sealed |
//! | `cycle_id` (axum-login at login) | the old session ends (revoked, with revocation on) and its values move to a new id |
//! | `flush`, `delete` (axum-login at logout) | [`purge`](crate::Session::purge): every cookie removed, the session revoked |
//! | `save` called by the handler | the record is written back and sealed on trial: `Err` names the sizes when it is past the budget |
//! | `Expiry`, `set_expiry` | not honoured: the idle and absolute timeouts and `persistent` come from [`SessionConfig`](crate::SessionConfig) |
//!
//! A value the core API stored in a form JSON cannot hold (MessagePack binary, say) is left
//! out of the record and kept as it is. The `Id` of a session created or cycled during a request
//! is provisional: the session is sealed under a fresh random id, which the next request sees.
//!
//! # Errors and sizes
//!
//! A tampered, expired or revoked cookie becomes a fresh session and a `tracing` warning, as with
//! `SessionLayer`. A session past the budget cannot be sealed: call `session.save().await`
//! before answering to get that as an `Err` (`tower_sessions::session::Error::Store`, its text
//! naming the sizes, never a value) and answer as you choose; otherwise the layer answers an
//! empty 500 and logs the reason, as `SessionLayer` does.
//!
//! # Versions
//!
//! This bridge implements `tower-sessions-core` 0.14, the version `axum-login` 0.18 and
//! `axum-messages` 0.8 use. Cargo treats 0.15 as another crate: when those crates move to it,
//! their `Session` is a different type from the one this layer inserts, and their middleware
//! answers 500 ("session not found"). Stay on their 0.14 releases until this feature follows.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http::header::COOKIE;
use http::{HeaderName, Request, Response};
use pin_project_lite::pin_project;
use serde_json::Value;
use tower_layer::Layer;
use tower_service::Service;
use tower_sessions_core::Session as TowerSession;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, SessionStore};

use super::Shared;
use super::tower::respond_plain as respond;
use crate::clock::Clock;
use crate::codec::SessionCodec;
use crate::revocation::Revocation;
use crate::session::{Session, SessionId};

/// Gives every request a `tower_sessions::Session` sealed by this library. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct TowerSessionsLayer {
    shared: Shared,
}

impl TowerSessionsLayer {
    /// A layer sealing and opening sessions with `codec`, reading the system clock.
    pub fn new(codec: SessionCodec) -> TowerSessionsLayer {
        TowerSessionsLayer { shared: Shared::new(codec) }
    }

    /// Reads the time from `clock` instead of the system clock (for tests).
    pub fn with_clock(mut self, clock: impl Clock) -> TowerSessionsLayer {
        self.shared.clock = Arc::new(clock);
        self
    }

    /// Checks every session against `revocation`, and revokes the sessions `flush`, `delete`
    /// and `cycle_id` end. See [`crate::revocation`].
    pub fn with_revocation(mut self, revocation: Revocation) -> TowerSessionsLayer {
        self.shared.revocation = Some(revocation);
        self
    }
}

impl<S> Layer<S> for TowerSessionsLayer {
    type Service = TowerSessionsService<S>;

    fn layer(&self, inner: S) -> TowerSessionsService<S> {
        let token_header = self.shared.codec.config().token_header();
        let state = State { shared: self.shared.clone(), token_header: token_header.parse().ok() };
        TowerSessionsService { inner, state: Arc::new(state) }
    }
}

/// The service [`TowerSessionsLayer`] wraps around an application.
#[derive(Debug, Clone)]
pub struct TowerSessionsService<S> {
    inner: S,
    state: Arc<State>,
}

/// What a [`TowerSessionsService`] needs besides the service it wraps.
#[derive(Debug)]
struct State {
    shared: Shared,
    /// The token header's name, parsed once (`None` if it is not a valid header name).
    token_header: Option<HeaderName>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for TowerSessionsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let state = Arc::clone(&self.state);
        let mut session = Session::new();
        let headers = request.headers();
        let cookies = headers.get_all(COOKIE).iter().map(http::HeaderValue::as_bytes);
        let token = state.token_header.as_ref().and_then(|name| headers.get(name));
        let token = token.map(http::HeaderValue::as_bytes);
        state.shared.load_into(cookies, token, &mut session);
        let verdict = state.shared.try_check(&session);

        let kind = match verdict {
            // No revocation check, or one answered from memory: the service polled ready is
            // called right away.
            Some(verdict) => {
                state.shared.apply(&mut session, verdict);
                let (tower, store) = RequestStore::bridge(state, session);
                request.extensions_mut().insert(tower.clone());
                Kind::Direct { inner: self.inner.call(request), tower, store }
            }
            // A check that has to wait: the future calls the service polled ready, leaving a
            // fresh clone behind.
            None => Kind::Boxed {
                future: Box::pin({
                    let clone = self.inner.clone();
                    let mut inner = std::mem::replace(&mut self.inner, clone);
                    async move {
                        let session = state.shared.admit(session).await;
                        let (tower, store) = RequestStore::bridge(state, session);
                        request.extensions_mut().insert(tower.clone());
                        let response = inner.call(request).await?;
                        Ok(respond(response, store.finish(tower).await))
                    }
                }),
            },
        };
        ResponseFuture { kind }
    }
}

pin_project! {
    /// The future a [`TowerSessionsService`] returns: the application's response with the
    /// session's headers appended. It boxes nothing when the handler left the session unchanged
    /// and no revocation store has to be waited for.
    pub struct ResponseFuture<F, T> {
        #[pin]
        kind: Kind<F, T>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, T> {
        // The session was admitted without waiting: the application's future, then the record.
        Direct {
            #[pin]
            inner: F,
            tower: TowerSession,
            store: Arc<RequestStore>,
        },
        // A revocation check, a record to write back, or a revocation to record.
        Boxed {
            future: Pin<Box<dyn Future<Output = T> + Send>>,
        },
    }
}

impl<F, T> std::fmt::Debug for ResponseFuture<F, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F, Result<Response<ResBody>, E>>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Default + Send + 'static,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        let (response, tower, store) = match kind.as_mut().project() {
            KindProj::Boxed { future } => return future.as_mut().poll(cx),
            KindProj::Direct { inner, tower, store } => match ready!(inner.poll(cx)) {
                Ok(response) => (response, tower, store),
                Err(error) => return Poll::Ready(Err(error)),
            },
        };
        // The handler did not touch the record, and no logout waits to be recorded: store
        // the session (an idle refresh, say) without a future of our own.
        if !tower.is_modified() {
            let mut bridged = store.lock();
            let shared = &store.state.shared;
            if !shared.finish_waits(&bridged.session) {
                let headers = shared.finish_now(&mut bridged.session);
                return Poll::Ready(Ok(respond(response, headers.map_err(drop))));
            }
        }
        let (tower, store) = (tower.clone(), Arc::clone(store));
        let mut future: Pin<Box<dyn Future<Output = _> + Send>> =
            Box::pin(async move { Ok(respond(response, store.finish(tower).await)) });
        let poll = future.as_mut().poll(cx);
        kind.set(Kind::Boxed { future });
        poll
    }
}

/// The store behind one request's `tower_sessions::Session`: it holds that request's sealed
/// session, answers `load` from it, and writes `save`d records back onto it.
struct RequestStore {
    state: Arc<State>,
    bridged: Mutex<Bridged>,
}

/// The sealed session as the bridge holds it during a request.
struct Bridged {
    session: Session,
    /// The id tower-sessions knows the opened session by; `None` for a new session and once
    /// the opened one is ended (`delete`, `flush`, `cycle_id`).
    id: Option<Id>,
    /// Keys of values JSON cannot hold: left out of the record, kept in the session.
    hidden: Vec<String>,
    /// The layer is writing the record back after the handler: the seal itself follows, so no
    /// trial seal.
    finishing: bool,
}

impl RequestStore {
    /// The `tower_sessions::Session` presenting `session`, and the store behind it.
    fn bridge(state: Arc<State>, session: Session) -> (TowerSession, Arc<RequestStore>) {
        let id = session.id().map(tower_id);
        let bridged = Bridged { session, id, hidden: Vec::new(), finishing: false };
        let store = Arc::new(RequestStore { state, bridged: Mutex::new(bridged) });
        (TowerSession::new(id, Arc::clone(&store), None), store)
    }

    fn lock(&self) -> MutexGuard<'_, Bridged> {
        // Every method leaves `Bridged` consistent between two statements that could panic.
        self.bridged.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After the handler: writes a changed record back (as tower-sessions' own manager saves
    /// it), then stores the session. `Err` means it could not be saved (already logged).
    async fn finish(&self, tower: TowerSession) -> Result<Vec<(String, String)>, ()> {
        // An emptied session without an id (flushed, or never written) has nothing to save;
        // the `delete` that emptied it has already ended the sealed session.
        if tower.is_modified() && !tower.is_empty().await {
            self.lock().finishing = true;
            if let Err(error) = tower.save().await {
                tracing::error!(%error, "tower-sessions record could not be written back");
                return Err(());
            }
        }
        let session = std::mem::take(&mut self.lock().session);
        // A seal error is already logged by the codec.
        self.state.shared.finish(session).await.map_err(drop)
    }

    /// The record of the sealed session `id` names, its values decoded to JSON.
    fn read(&self, id: &Id) -> Option<Record> {
        let mut bridged = self.lock();
        let Bridged { session, id: opened, hidden, .. } = &mut *bridged;
        if *opened != Some(*id) {
            return None;
        }
        hidden.clear();
        let mut data = HashMap::with_capacity(session.len());
        for (key, bytes, _) in session.values.iter() {
            match rmp_serde::from_slice::<Value>(bytes) {
                Ok(value) => {
                    data.insert(key.to_owned(), value);
                }
                Err(_) => hidden.push(key.to_owned()),
            }
        }
        let idle = self.state.shared.codec.config().idle_timeout();
        Some(Record { id: *id, data, expiry_date: expiry_date(session, idle).into() })
    }

    /// Writes `record`'s values onto the sealed session: changed values are re-encoded (a
    /// value stored sensitive stays sensitive), removed ones removed, hidden ones kept.
    fn write(&self, record: &Record) -> session_store::Result<()> {
        let mut bridged = self.lock();
        let Bridged { session, hidden, finishing, .. } = &mut *bridged;
        for (key, value) in &record.data {
            let written = if session.is_sensitive(key) {
                session.insert_sensitive(key.as_str(), value)
            } else {
                session.insert(key.as_str(), value)
            };
            written.map_err(|error| session_store::Error::Encode(error.to_string()))?;
        }
        let gone: Vec<String> = session
            .keys()
            .filter(|key| !record.data.contains_key(*key) && !hidden.iter().any(|h| h == key))
            .map(str::to_owned)
            .collect();
        for key in gone {
            session.remove_raw(&key);
        }
        if *finishing {
            return Ok(());
        }
        // The handler saved on its own: tell it now whether the session can be sealed, so it
        // can answer as it chooses instead of the layer's 500.
        self.state.probe(session).map_err(session_store::Error::Backend)
    }

    /// Ends the sealed session if `id` names it (`delete`, `flush`, the old id of `cycle_id`).
    /// A record created during this request (saved by the handler, then flushed) only loses
    /// its values: nothing of it was sealed yet.
    fn delete(&self, id: &Id) {
        let mut bridged = self.lock();
        match bridged.id {
            Some(opened) if opened == *id => {
                bridged.session.purge();
                bridged.id = None;
                bridged.hidden.clear();
            }
            Some(_) => {}
            None => bridged.session.clear(),
        }
    }
}

impl State {
    /// Seals a copy of `session` to find out whether it can be: the reason when it cannot
    /// (sizes only, never a value).
    fn probe(&self, session: &Session) -> Result<(), String> {
        let codec = &self.shared.codec;
        let mut copy = session.clone();
        let now = self.shared.clock.now();
        let sealed = if copy.via_token {
            codec.seal_token(&mut copy, now).map(drop)
        } else {
            codec.save(&mut copy, now).map(drop)
        };
        sealed.map_err(|error| error.to_string())
    }
}

impl std::fmt::Debug for RequestStore {
    /// Shows nothing of the session: it may hold secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestStore").finish_non_exhaustive()
    }
}

#[async_trait]
impl SessionStore for RequestStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // The record keeps the provisional id tower-sessions gave it: the sealed id is drawn
        // when the session is sealed.
        self.write(record)
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.write(record)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self.read(id))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        RequestStore::delete(self, id);
        Ok(())
    }
}

/// The tower-sessions id of a sealed session: its 16 bytes, little-endian (so `Id`'s base64
/// display shows the bytes in order).
fn tower_id(id: SessionId) -> Id {
    Id(i128::from_le_bytes(id.0))
}

/// When the session expires unless refreshed: the end of its idle window or its absolute
/// expiry, whichever comes first.
fn expiry_date(session: &Session, idle: Duration) -> SystemTime {
    let idle_end = session.last_refresh().map(|at| at + idle);
    match (idle_end, session.expires_at()) {
        (Some(idle_end), Some(expires_at)) => idle_end.min(expires_at),
        (at, None) | (None, at) => at.unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{Key, KeyRing, SessionConfig};

    /// A request's store holding a sealed session with `values`, as the layer builds it.
    fn opened(values: impl FnOnce(&mut Session)) -> (Arc<RequestStore>, Id) {
        let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
        let shared = Shared::new(codec);
        let mut session = Session::new();
        values(&mut session);
        let header = shared.codec.seal(&mut session, SystemTime::now()).unwrap().request_header();
        let mut opened = Session::new();
        shared.load_into([header.as_bytes()], None, &mut opened);
        let state = Arc::new(State { shared, token_header: None });
        let (_, store) = RequestStore::bridge(state, opened);
        let id = store.lock().id.expect("an opened session has an id");
        (store, id)
    }

    impl RequestStore {
        fn with<R>(&self, f: impl FnOnce(&Session) -> R) -> R {
            f(&self.lock().session)
        }
    }

    #[test]
    fn values_json_cannot_hold_are_kept_out_of_the_record_and_in_the_session() {
        let (store, id) = opened(|session| {
            session.insert("name", "ada").unwrap();
            // A map with integer keys: MessagePack holds it, a JSON object cannot.
            session.insert("by_id", BTreeMap::from([(7u32, 1u32)])).unwrap();
            session.insert_sensitive("csrf", "token").unwrap();
        });
        let mut record = store.read(&id).expect("the opened session's record");
        let mut keys: Vec<&str> = record.data.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["csrf", "name"]);

        record.data.remove("name");
        record.data.insert("csrf".into(), Value::from("rotated"));
        store.lock().finishing = true;
        store.write(&record).expect("written back");
        let bridged = store.lock();
        let session = &bridged.session;
        assert_eq!(session.keys().collect::<Vec<_>>(), ["by_id", "csrf"]);
        assert_eq!(
            session.get::<BTreeMap<u32, u32>>("by_id").unwrap(),
            Some(BTreeMap::from([(7, 1)]))
        );
        assert_eq!(session.get::<String>("csrf").unwrap().as_deref(), Some("rotated"));
        assert!(session.is_sensitive("csrf"), "a sensitive value stays sensitive");
    }

    #[test]
    fn delete_ends_the_opened_session_and_only_it() {
        let (store, id) = opened(|session| session.insert("name", "ada").unwrap());
        store.delete(&Id(id.0 ^ 1));
        let kept = store.with(|session| !session.is_purged() && session.len() == 1);
        assert!(kept, "another id ends nothing");
        store.delete(&id);
        let bridged = store.lock();
        assert!(bridged.session.is_purged() && bridged.session.ended().is_some());
        assert_eq!(bridged.id, None, "the record is gone");
    }

    #[test]
    fn a_tower_sessions_id_shows_the_sealed_id_bytes_in_order() {
        let bytes: [u8; 16] = std::array::from_fn(|i| i as u8);
        let id = tower_id(SessionId(bytes));
        // tower-sessions displays an id as the base64url of its little-endian bytes.
        assert_eq!(id.to_string(), "AAECAwQFBgcICQoLDA0ODw");
    }
}
