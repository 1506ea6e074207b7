//! A shared cache in front of the application must never hand one user's session to another.
//!
//! nginx (`proxy_cache`, keyed by URL as by default) sits in front of the axum test application
//! (`tests/common/servers.rs`). User A logs in, waits until the session's idle refresh is due,
//! and loads `/whoami`: that response carries a refreshed session (Set-Cookie lines, or the
//! token header). User B, with no session, then loads the same URL through the cache. Every
//! response carrying the session says `Cache-Control: private, no-store`, so the cache keeps
//! none of them and B gets a fresh answer of its own.
//!
//! | row | transport | nginx | without the header |
//! |---|---|---|---|
//! | token | token header | defaults, `proxy_cache_valid 200` | B receives A's token |
//! | cookie | cookies | `proxy_ignore_headers Set-Cookie` (a "cache everything" set-up) | B receives A's cookies |
//!
//! nginx must be installed (`bash scripts/install-deps.sh`): when it is missing the test fails,
//! it does not skip.

#![cfg(feature = "axum")]

#[path = "common/nginx.rs"]
mod nginx;
#[path = "common/processes.rs"]
mod processes;
#[path = "common/servers.rs"]
mod servers;

use std::time::{Duration, SystemTime};

use nginx::Nginx;
use reqwest::header::{CACHE_CONTROL, HeaderMap, SET_COOKIE};
use sealed_session::{Key, KeyRing, ManualClock, SessionCodec, SessionConfig};
use servers::{Axum, TestServer as _};

const TOKEN_HEADER: &str = "x-session-token";
const NAME: &str = "__Host-app";

/// How a client carries its session.
#[derive(Debug, Clone, Copy)]
enum Transport {
    Cookie,
    Token,
}

struct Row {
    name: &'static str,
    transport: Transport,
    /// nginx directives added to the cached location.
    nginx: &'static str,
}

const ROWS: &[Row] = &[
    Row { name: "token, nginx defaults", transport: Transport::Token, nginx: "" },
    Row {
        name: "cookies, Set-Cookie ignored by the cache",
        transport: Transport::Cookie,
        nginx: "proxy_ignore_headers Set-Cookie;",
    },
];

/// The session cookies of a response's Set-Cookie lines, as a Cookie header (`None` if none).
fn session_cookies(headers: &HeaderMap) -> Option<String> {
    let pairs: Vec<String> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| cookie::Cookie::parse(v.to_str().ok()?.to_owned()).ok())
        .filter(|c| c.name().starts_with(NAME) && !c.value().is_empty())
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect();
    (!pairs.is_empty()).then(|| pairs.join("; "))
}

/// The session a response hands out, in either transport.
fn session_in(headers: &HeaderMap) -> Option<String> {
    let token = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()).filter(|t| !t.is_empty());
    token.map(str::to_owned).or_else(|| session_cookies(headers))
}

#[tokio::test]
async fn a_cache_never_hands_one_users_session_to_another() {
    for row in ROWS {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let config = SessionConfig::builder("app").build().expect("a valid configuration");
        let codec = SessionCodec::new(config, KeyRing::single(Key::generate()));
        let app = Axum::start(codec, clock.clone());
        let upstream = app.base.trim_start_matches("http://").to_owned();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let d = dir.path().display();
        let site = format!(
            "proxy_cache_path {d}/cache levels=1 keys_zone=sessions:1m;
    server {{
        listen 127.0.0.1:{{port}};
        location / {{
            proxy_pass http://{upstream};
            proxy_buffer_size 8k;
            proxy_cache sessions;
            proxy_cache_valid 200 10m;
            {}
            add_header X-Cache $upstream_cache_status always;
        }}
    }}",
            row.nginx
        );
        let proxy = Nginx::start(dir.path(), &site);
        let client = reqwest::Client::builder().no_proxy().build().expect("a client");

        // A logs in (a POST: never cached), then waits until a refresh is due.
        let login = client.post(proxy.url("/login?user=ada"));
        let login = match row.transport {
            Transport::Token => login.header(TOKEN_HEADER, ""),
            Transport::Cookie => login,
        };
        let login = login.send().await.expect("nginx answers");
        let a = session_in(login.headers()).expect("A's session");
        clock.advance(Duration::from_secs(120));

        // A loads the page: the refreshed session comes back in the response.
        let page = client.get(proxy.url("/whoami"));
        let page = match row.transport {
            Transport::Token => page.header(TOKEN_HEADER, &a),
            Transport::Cookie => page.header("cookie", &a),
        };
        let page = page.send().await.expect("nginx answers");
        let cache_control =
            page.headers().get(CACHE_CONTROL).map(|v| v.to_str().unwrap().to_owned());
        assert!(session_in(page.headers()).is_some(), "{}: no refresh for A: {page:?}", row.name);

        // B, without a session, loads the same URL through the cache.
        let other = client.get(proxy.url("/whoami")).send().await.expect("nginx answers");
        let cached = other.headers().get("x-cache").map(|v| v.to_str().unwrap().to_owned());
        let handed = session_in(other.headers());
        let body = other.text().await.expect("a body");
        assert_eq!(handed, None, "{}: B received a session (cache {cached:?})", row.name);
        assert!(body.contains("\"user\":null"), "{}: B saw A's page: {body}", row.name);
        assert_eq!(cache_control.as_deref(), Some("private, no-store"), "{}", row.name);
        assert!(!proxy.error_log().contains("[emerg]"), "{}", proxy.error_log());
        drop(proxy);
        app.stop().await;
    }
}
