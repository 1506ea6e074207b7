//! The axum contenders: sealed-session's layer, tower-sessions (memory, Redis, cookie store),
//! axum-extra's `PrivateCookieJar`, and no session at all.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{FromRef, Request};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum_extra::extract::cookie::{Cookie, Key, PrivateCookieJar, SameSite};
use sealed_session::integrations::tower::SessionLayer;
use sealed_session::{KeyRing, SessionCodec, SessionConfig, SessionHandle};
use tower::Layer;
use tower_sessions::{MemoryStore, SessionManagerLayer};
use tower_sessions_cookie_store::{CookieSessionConfig, CookieSessionManagerLayer};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};

use crate::state::{self, Whole};
use crate::{Contender, announce};

type Served = Result<(), Box<dyn std::error::Error>>;

/// Runs `contender` on a one-worker tokio runtime until the process is stopped.
pub fn serve(contender: Contender, redis: Option<String>) -> Served {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(run(contender, redis))
}

async fn run(contender: Contender, redis: Option<String>) -> Served {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    // Each session layer wraps the whole router, the same way for every contender.
    let app: Router = match contender {
        Contender::SealedAxum => {
            let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(sealed_key()));
            let router = Router::new()
                .route("/login", post(sealed::login))
                .route("/read", get(sealed::read))
                .route("/write", post(sealed::write))
                .route("/probe", post(sealed::probe));
            announce(contender, addr);
            let app = SessionLayer::new(codec).layer(router);
            axum::serve(listener, axum::ServiceExt::<Request>::into_make_service(app)).await?;
            return Ok(());
        }
        Contender::TowerMemory => {
            let layer = SessionManagerLayer::new(MemoryStore::default()).with_secure(false);
            return serve_wrapped(
                listener,
                contender,
                layer.layer(tower_sessions_handlers::routes()),
            )
            .await;
        }
        Contender::TowerRedis => {
            let url = redis.ok_or("--redis is required")?;
            // One multiplexed connection, as actix-session's Redis store has.
            let pool = Pool::new(Config::from_url(&url)?, None, None, None, 1)?;
            let _connection = pool.connect();
            pool.wait_for_connect().await?;
            let layer = SessionManagerLayer::new(RedisStore::new(pool)).with_secure(false);
            return serve_wrapped(
                listener,
                contender,
                layer.layer(tower_sessions_handlers::routes()),
            )
            .await;
        }
        Contender::TowerCookie => {
            let layer =
                CookieSessionManagerLayer::private(tower_sessions_cookie_store::Key::generate())
                    .with_config(CookieSessionConfig::default().with_secure(false));
            return serve_wrapped(
                listener,
                contender,
                layer.layer(tower_sessions_handlers::routes()),
            )
            .await;
        }
        Contender::AxumPrivateJar => Router::new()
            .route("/login", post(jar::login))
            .route("/read", get(jar::read))
            .route("/write", post(jar::write))
            .route("/probe", post(jar::probe))
            .with_state(jar::JarState { key: Key::generate() }),
        Contender::AxumPlain => Router::new()
            .route("/login", post(|| async { state::LOGIN_BODY }))
            .route(
                "/read",
                get(|| async { state::read_body(Some(std::hint::black_box(state::USER))) }),
            )
            .route("/write", post(plain_write))
            .route("/probe", post(|| async { state::PROBE_BODY })),
        _ => return Err(format!("{} is not an axum contender", contender.name()).into()),
    };
    announce(contender, addr);
    axum::serve(listener, app).await?;
    Ok(())
}

/// Serves a router wrapped by a layer (a service that is no longer a `Router`).
async fn serve_wrapped<S>(listener: tokio::net::TcpListener, contender: Contender, app: S) -> Served
where
    S: tower::Service<
            Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
{
    announce(contender, listener.local_addr()?);
    axum::serve(listener, axum::ServiceExt::<Request>::into_make_service(app)).await?;
    Ok(())
}

fn sealed_key() -> sealed_session::Key {
    sealed_session::Key::generate()
}

async fn plain_write() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    state::write_body(N.fetch_add(1, Ordering::Relaxed) + 1)
}

/// sealed-session's handlers (the CSRF token goes in the uncompressed section, as its docs
/// advise for secrets).
mod sealed {
    use super::*;

    pub async fn login(session: SessionHandle) -> Result<&'static str, StatusCode> {
        session.renew();
        session.insert("user", state::USER).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        session.insert("cart", &state::cart()).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        session
            .insert_sensitive("csrf", state::CSRF_TOKEN)
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        Ok(state::LOGIN_BODY)
    }

    pub async fn read(session: SessionHandle) -> String {
        let user: Option<String> = session.get("user").ok().flatten();
        state::read_body(user.as_deref())
    }

    pub async fn write(session: SessionHandle) -> Result<String, StatusCode> {
        let n: u64 = session.get("n").ok().flatten().unwrap_or(0) + 1;
        session.insert("n", &n).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        Ok(state::write_body(n))
    }

    pub async fn probe(session: SessionHandle, body: String) -> Result<&'static str, StatusCode> {
        let blob: serde_json::Value =
            serde_json::from_str(&body).map_err(|_| StatusCode::BAD_REQUEST)?;
        session.insert("blob", &blob).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        Ok(state::PROBE_BODY)
    }
}

/// tower-sessions' handlers, shared by its memory, Redis and cookie stores.
mod tower_sessions_handlers {
    use super::*;
    use tower_sessions::Session;

    pub fn routes() -> Router {
        Router::new()
            .route("/login", post(login))
            .route("/read", get(read))
            .route("/write", post(write))
            .route("/probe", post(probe))
    }

    async fn login(session: Session) -> Result<&'static str, StatusCode> {
        let failed = |_| StatusCode::INTERNAL_SERVER_ERROR;
        session.cycle_id().await.map_err(failed)?;
        session.insert("user", state::USER).await.map_err(failed)?;
        session.insert("cart", state::cart()).await.map_err(failed)?;
        session.insert("csrf", state::CSRF_TOKEN).await.map_err(failed)?;
        Ok(state::LOGIN_BODY)
    }

    async fn read(session: Session) -> String {
        let user: Option<String> = session.get("user").await.ok().flatten();
        state::read_body(user.as_deref())
    }

    async fn write(session: Session) -> Result<String, StatusCode> {
        let n: u64 = session.get("n").await.ok().flatten().unwrap_or(0) + 1;
        session.insert("n", n).await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        Ok(state::write_body(n))
    }

    async fn probe(session: Session, body: String) -> Result<&'static str, StatusCode> {
        let blob: serde_json::Value =
            serde_json::from_str(&body).map_err(|_| StatusCode::BAD_REQUEST)?;
        session.insert("blob", blob).await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        Ok(state::PROBE_BODY)
    }
}

/// axum-extra's `PrivateCookieJar`, the whole state as one JSON cookie, as an application
/// without a session library would keep it.
mod jar {
    use super::*;

    const COOKIE: &str = "state";

    #[derive(Clone)]
    pub struct JarState {
        pub key: Key,
    }

    impl FromRef<JarState> for Key {
        fn from_ref(state: &JarState) -> Key {
            state.key.clone()
        }
    }

    fn load(jar: &PrivateCookieJar) -> Option<Whole> {
        serde_json::from_str(jar.get(COOKIE)?.value()).ok()
    }

    fn store(jar: PrivateCookieJar, whole: &Whole) -> Result<PrivateCookieJar, StatusCode> {
        let json = serde_json::to_string(whole).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let cookie =
            Cookie::build((COOKIE, json)).path("/").http_only(true).same_site(SameSite::Lax);
        Ok(jar.add(cookie))
    }

    pub async fn login(
        jar: PrivateCookieJar,
    ) -> Result<(PrivateCookieJar, &'static str), StatusCode> {
        Ok((store(jar, &Whole::login())?, state::LOGIN_BODY))
    }

    pub async fn read(jar: PrivateCookieJar) -> String {
        state::read_body(load(&jar).as_ref().map(|whole| whole.user.as_str()))
    }

    pub async fn write(jar: PrivateCookieJar) -> Result<(PrivateCookieJar, String), StatusCode> {
        let mut whole = load(&jar).ok_or(StatusCode::UNAUTHORIZED)?;
        whole.n += 1;
        let n = whole.n;
        Ok((store(jar, &whole)?, state::write_body(n)))
    }

    pub async fn probe(
        jar: PrivateCookieJar,
        body: String,
    ) -> Result<(PrivateCookieJar, &'static str), StatusCode> {
        let mut whole = load(&jar).ok_or(StatusCode::UNAUTHORIZED)?;
        whole.blob = Some(serde_json::from_str(&body).map_err(|_| StatusCode::BAD_REQUEST)?);
        Ok((store(jar, &whole)?, state::PROBE_BODY))
    }
}
