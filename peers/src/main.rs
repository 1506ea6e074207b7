//! The peer comparison servers: the same four routes served by sealed-session and by the session
//! libraries a user would pick instead, one contender per process, for `scripts/peers.sh`.
//!
//! ```sh
//! peers CONTENDER [--redis redis://127.0.0.1:PORT/]
//! ```
//!
//! Listens on a free port of 127.0.0.1 and prints `peers CONTENDER listening on http://ADDR/`.
//! Every contender answers the same bodies:
//!
//! * `POST /login`: a new session holding `user` (`bench`), a 10-line cart (about 575 bytes of
//!   JSON) and a CSRF token (32 bytes, hex);
//! * `GET /read`: reads `user` and answers `hello, bench`; changes nothing;
//! * `POST /write`: increments `n` and saves the session;
//! * `POST /probe`: stores the request body (JSON) under `blob`: what the contender does with a
//!   state that does not fit one cookie.
//!
//! `peers delay-proxy UPSTREAM MS` is a TCP proxy adding MS milliseconds each way (see
//! [`delay_proxy`]): the Redis peers behind a network round trip.
//!
//! `peers live-sessions URL --pid PID ...` is the load driver of `scripts/live-sessions.sh`
//! (see [`live_sessions`]): logins until 10^3 to 10^6 sessions are live, and what each level
//! costs.
//!
//! Each server runs one worker (the script pins it to one CPU). The session layers wrap the
//! whole router (axum) or app (actix-web) the same way for every contender.

mod actix_servers;
mod axum_servers;
mod delay_proxy;
mod live_sessions;
mod state;

use std::net::SocketAddr;

/// The servers this binary can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    /// sealed-session's tower layer on axum.
    SealedAxum,
    /// tower-sessions with its `MemoryStore`.
    TowerMemory,
    /// tower-sessions with tower-sessions-redis-store.
    TowerRedis,
    /// tower-sessions-cookie-store, private (encrypted) cookies.
    TowerCookie,
    /// axum-extra's `PrivateCookieJar` holding the state as one JSON cookie.
    AxumPrivateJar,
    /// axum without sessions.
    AxumPlain,
    /// sealed-session's actix-web middleware.
    SealedActix,
    /// actix-session with `CookieSessionStore`.
    ActixCookie,
    /// actix-session with `RedisSessionStore`.
    ActixRedis,
    /// actix-web without sessions.
    ActixPlain,
}

/// Every contender with its command-line name.
const CONTENDERS: [(&str, Contender); 10] = [
    ("sealed-axum", Contender::SealedAxum),
    ("tower-memory", Contender::TowerMemory),
    ("tower-redis", Contender::TowerRedis),
    ("tower-cookie", Contender::TowerCookie),
    ("axum-private-jar", Contender::AxumPrivateJar),
    ("axum-plain", Contender::AxumPlain),
    ("sealed-actix", Contender::SealedActix),
    ("actix-cookie", Contender::ActixCookie),
    ("actix-redis", Contender::ActixRedis),
    ("actix-plain", Contender::ActixPlain),
];

impl Contender {
    fn name(self) -> &'static str {
        CONTENDERS.iter().find(|(_, c)| *c == self).map_or("?", |(name, _)| name)
    }

    fn needs_redis(self) -> bool {
        matches!(self, Contender::TowerRedis | Contender::ActixRedis)
    }

    fn on_actix(self) -> bool {
        matches!(
            self,
            Contender::SealedActix
                | Contender::ActixCookie
                | Contender::ActixRedis
                | Contender::ActixPlain
        )
    }
}

/// Tells the script where the server listens (it reads this line).
fn announce(contender: Contender, addr: SocketAddr) {
    println!("peers {} listening on http://{addr}/", contender.name());
}

fn usage() -> ! {
    let names: Vec<&str> = CONTENDERS.iter().map(|(name, _)| *name).collect();
    eprintln!("usage: peers CONTENDER [--redis URL]");
    eprintln!("       peers delay-proxy UPSTREAM ONE_WAY_MS");
    eprintln!(
        "       peers live-sessions URL --pid PID [--hz HZ] [--redis-port PORT --redis-pid PID]"
    );
    eprintln!(
        "             [--levels 1000,10000] [--connections 8] [--batch 50000] [--reserve-mb 3072]"
    );
    eprintln!("contenders: {}", names.join(", "));
    std::process::exit(2)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("delay-proxy") {
        let (Some(upstream), Some(ms)) = (args.get(1), args.get(2)) else { usage() };
        let ms: f64 = ms.parse()?;
        return delay_proxy::serve(upstream, std::time::Duration::from_secs_f64(ms / 1000.0));
    }
    if args.first().map(String::as_str) == Some("live-sessions") {
        return live_sessions::run(&args[1..]).map_err(|e| e as Box<dyn std::error::Error>);
    }
    let Some(contender) = args
        .first()
        .and_then(|arg| CONTENDERS.iter().find(|(name, _)| name == arg))
        .map(|(_, c)| *c)
    else {
        usage()
    };
    let redis = args.iter().position(|a| a == "--redis").and_then(|i| args.get(i + 1)).cloned();
    if contender.needs_redis() && redis.is_none() {
        return Err(format!("{} needs --redis URL", contender.name()).into());
    }
    if contender.on_actix() {
        actix_servers::serve(contender, redis)
    } else {
        axum_servers::serve(contender, redis)
    }
}
