//! The actix-web contenders: sealed-session's middleware, actix-session (cookie and Redis
//! stores), and no session at all.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_session::storage::{CookieSessionStore, RedisSessionStore};
use actix_web::cookie::Key;
use actix_web::{App, HttpResponse, HttpServer, web};
use sealed_session::{KeyRing, SessionCodec, SessionConfig, SessionHandle};

use crate::state;
use crate::{Contender, announce};

type Served = Result<(), Box<dyn std::error::Error>>;

/// Runs `contender` with one actix-web worker until the process is stopped.
pub fn serve(contender: Contender, redis: Option<String>) -> Served {
    actix_web::rt::System::new().block_on(run(contender, redis))
}

async fn run(contender: Contender, redis: Option<String>) -> Served {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    let server = match contender {
        Contender::SealedActix => {
            let codec = SessionCodec::new(
                SessionConfig::default(),
                KeyRing::single(sealed_session::Key::generate()),
            );
            let middleware = sealed_session::integrations::actix::SessionMiddleware::new(codec);
            HttpServer::new(move || App::new().wrap(middleware.clone()).configure(sealed::routes))
                .workers(1)
                .listen(listener)?
                .run()
        }
        Contender::ActixCookie => {
            let key = Key::generate();
            HttpServer::new(move || {
                let middleware = actix_session::SessionMiddleware::builder(
                    CookieSessionStore::default(),
                    key.clone(),
                )
                .cookie_secure(false)
                .build();
                App::new().wrap(middleware).configure(actix_session_handlers::routes)
            })
            .workers(1)
            .listen(listener)?
            .run()
        }
        Contender::ActixRedis => {
            let url = redis.ok_or("--redis is required")?;
            let store = RedisSessionStore::new(url).await?;
            let key = Key::generate();
            HttpServer::new(move || {
                let middleware =
                    actix_session::SessionMiddleware::builder(store.clone(), key.clone())
                        .cookie_secure(false)
                        .build();
                App::new().wrap(middleware).configure(actix_session_handlers::routes)
            })
            .workers(1)
            .listen(listener)?
            .run()
        }
        Contender::ActixPlain => HttpServer::new(|| {
            App::new()
                .route("/login", web::post().to(|| async { state::LOGIN_BODY }))
                .route(
                    "/read",
                    web::get()
                        .to(|| async { state::read_body(Some(std::hint::black_box(state::USER))) }),
                )
                .route("/write", web::post().to(plain_write))
                .route("/probe", web::post().to(|| async { state::PROBE_BODY }))
        })
        .workers(1)
        .listen(listener)?
        .run(),
        _ => return Err(format!("{} is not an actix-web contender", contender.name()).into()),
    };
    announce(contender, addr);
    server.await?;
    Ok(())
}

async fn plain_write() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    state::write_body(N.fetch_add(1, Ordering::Relaxed) + 1)
}

fn server_error() -> HttpResponse {
    HttpResponse::InternalServerError().finish()
}

/// sealed-session's handlers (the CSRF token goes in the uncompressed section, as its docs
/// advise for secrets).
mod sealed {
    use super::*;

    pub fn routes(config: &mut web::ServiceConfig) {
        config
            .route("/login", web::post().to(login))
            .route("/read", web::get().to(read))
            .route("/write", web::post().to(write))
            .route("/probe", web::post().to(probe));
    }

    async fn login(session: SessionHandle) -> HttpResponse {
        session.renew();
        let stored = session.insert("user", state::USER).is_ok()
            && session.insert("cart", &state::cart()).is_ok()
            && session.insert_sensitive("csrf", state::CSRF_TOKEN).is_ok();
        if stored { HttpResponse::Ok().body(state::LOGIN_BODY) } else { server_error() }
    }

    async fn read(session: SessionHandle) -> String {
        let user: Option<String> = session.get("user").ok().flatten();
        state::read_body(user.as_deref())
    }

    async fn write(session: SessionHandle) -> HttpResponse {
        let n: u64 = session.get("n").ok().flatten().unwrap_or(0) + 1;
        match session.insert("n", &n) {
            Ok(()) => HttpResponse::Ok().body(state::write_body(n)),
            Err(_) => server_error(),
        }
    }

    async fn probe(session: SessionHandle, body: web::Bytes) -> HttpResponse {
        let Ok(blob) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return HttpResponse::BadRequest().finish();
        };
        match session.insert("blob", &blob) {
            Ok(()) => HttpResponse::Ok().body(state::PROBE_BODY),
            Err(_) => server_error(),
        }
    }
}

/// actix-session's handlers, shared by its cookie and Redis stores.
mod actix_session_handlers {
    use super::*;
    use actix_session::Session;

    pub fn routes(config: &mut web::ServiceConfig) {
        config
            .route("/login", web::post().to(login))
            .route("/read", web::get().to(read))
            .route("/write", web::post().to(write))
            .route("/probe", web::post().to(probe));
    }

    async fn login(session: Session) -> HttpResponse {
        session.renew();
        let stored = session.insert("user", state::USER).is_ok()
            && session.insert("cart", state::cart()).is_ok()
            && session.insert("csrf", state::CSRF_TOKEN).is_ok();
        if stored { HttpResponse::Ok().body(state::LOGIN_BODY) } else { server_error() }
    }

    async fn read(session: Session) -> String {
        let user: Option<String> = session.get("user").ok().flatten();
        state::read_body(user.as_deref())
    }

    async fn write(session: Session) -> HttpResponse {
        let n: u64 = session.get("n").ok().flatten().unwrap_or(0) + 1;
        match session.insert("n", n) {
            Ok(()) => HttpResponse::Ok().body(state::write_body(n)),
            Err(_) => server_error(),
        }
    }

    async fn probe(session: Session, body: web::Bytes) -> HttpResponse {
        let Ok(blob) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return HttpResponse::BadRequest().finish();
        };
        match session.insert("blob", blob) {
            Ok(()) => HttpResponse::Ok().body(state::PROBE_BODY),
            Err(_) => server_error(),
        }
    }
}
