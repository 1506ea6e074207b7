//! The demo (`demo/`, a package of the workspace) builds as the README says (`cargo run -p
//! sealed-session-demo`), starts, and serves its pages and its metrics: a cookie-jar client
//! logs in, grows the cart until the session spans three cookies, then past its budget (a
//! "session full" page that sets no cookie, the cart kept as it was, a line on the console),
//! fills the notes past it too (the same wording), and logs out. Every form carries the CSRF
//! token, and every post without it is refused with 403. `/metrics` then counts what it did.
//!
//! The demo is built and started by `tests/common/processes.rs` (shared with the browser and
//! fleet tests): cargo builds the example (a no-op when `cargo test` has just built it), the
//! demo listens on a free port (`--port 0`) of 127.0.0.1 and prints its URL, and the child is
//! killed when the test ends, failing or not.

#![cfg(feature = "axum")]

#[path = "common/processes.rs"]
mod processes;

use std::sync::Arc;

use processes::{Demo, build_demo};
use reqwest::cookie::{CookieStore as _, Jar};
use reqwest::{Client, StatusCode, Url};
use serde_json::Value;

/// The demo's first session cookie (`SessionConfig::builder("demo")`).
const NAME: &str = "__Host-demo";

/// The session's cookies in the jar, sorted by name.
fn session_cookies(jar: &Jar, url: &Url) -> Vec<String> {
    let Some(header) = jar.cookies(url) else { return Vec::new() };
    let header = header.to_str().expect("an ASCII Cookie header").to_owned();
    let mut names: Vec<String> = header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(name, _)| name.to_owned())
        .filter(|name| name == NAME || name.starts_with(&format!("{NAME}.")))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn demo_serves_its_pages() {
    let mut demo = Demo::start(&build_demo(), &[]);
    let base = Url::parse(&demo.base).expect("the demo prints a valid URL");
    assert_eq!(base.host_str(), Some("127.0.0.1"), "the demo listens on loopback only");
    let jar = Arc::new(Jar::default());
    let client = Client::builder()
        .cookie_provider(Arc::clone(&jar))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("a reqwest client");
    let session = async || -> Value {
        let response = client.get(demo.url("/api/session")).send().await.expect("the demo answers");
        assert_eq!(response.status(), StatusCode::OK);
        json_of(response).await
    };
    // A form post without the CSRF token, and one with the session's current token.
    let bare = |path: &str, body: &str| {
        client
            .post(demo.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
    };
    let form = async |path: &str, body: &str| {
        let token = session().await["csrf_token"].as_str().expect("a token").to_owned();
        let body = format!("{body}&csrf_token={token}");
        bare(path, &body).send().await.expect("the demo answers")
    };

    let page = client.get(demo.url("/")).send().await.expect("the demo answers");
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.expect("a page");
    assert!(page.contains("<h1>sealed-session demo</h1>"), "{page}");
    assert!(page.contains(r#"id="login""#), "a visitor sees the login form");
    let forms = page.matches("<form ").count();
    assert_eq!(page.matches(r#"name="csrf_token""#).count(), forms, "a form without a token");

    let refused = bare("/login", "user=ada").send().await.expect("the demo answers");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "a login without the CSRF token");
    let login = form("/login", "user=ada").await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    assert_eq!(session_cookies(&jar, &base), [NAME]);
    let state = session().await;
    assert_eq!(state["user"], "ada", "{state}");
    let page = client.get(demo.url("/")).send().await.expect("the demo answers");
    let page = page.text().await.expect("a page");
    assert!(page.contains(r#"<strong id="user">ada</strong>"#), "{page}");
    let forms = page.matches("<form ").count();
    assert_eq!(forms, 6, "{page}");
    assert_eq!(page.matches(r#"name="csrf_token""#).count(), forms, "a form without a token");
    // Every route that changes the session refuses a post without the token, changing nothing.
    let routes = [
        ("/cart/add", "name=tea"),
        ("/cart/grow", "count=10"),
        ("/cart/shrink", "count=10"),
        ("/notes/add", "note=x"),
        ("/logout", ""),
        ("/logout-everywhere", ""),
    ];
    for (path, body) in routes {
        let before = session().await;
        let response = bare(path, body).send().await.expect("the demo answers");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path} without the token");
        let after = session().await;
        assert_eq!((&after["user"], &after["cart"]), (&before["user"], &before["cart"]), "{path}");
        assert_eq!(after["notes"], before["notes"], "{path}");
    }

    // Grow the cart until the session spans three cookies (the demo splits at 2,048 bytes).
    let mut grown = 0;
    let state = loop {
        let grow = form("/cart/grow", "count=10").await;
        assert_eq!(grow.status(), StatusCode::SEE_OTHER, "growing the cart failed");
        grown += 10;
        let state = session().await;
        if state["cookies"].as_array().expect("a cookie list").len() >= 3 {
            break state;
        }
        assert!(grown < 400, "the session never reached three cookies: {state}");
    };
    assert_eq!(state["user"], "ada");
    assert_eq!(state["cart"].as_array().expect("a cart").len(), grown);
    let mut sent: Vec<&str> = state["cookies"]
        .as_array()
        .expect("a cookie list")
        .iter()
        .map(|pair| pair[0].as_str().expect("a name"))
        .collect();
    sent.sort_unstable();
    assert_eq!(sent[..3], [NAME, &format!("{NAME}.1"), &format!("{NAME}.2")]);
    assert_eq!(state["chunks"].as_u64(), Some(sent.len() as u64), "{state}");
    assert_eq!(session_cookies(&jar, &base).len(), sent.len());

    // Past the budget, the demo says so and keeps the cart as it was. The session is put back
    // as the request found it, so the answer sets no cookie (a re-sent 6 KB session would
    // overflow nginx's default proxy_buffer_size: a 502).
    let page = loop {
        let before = session().await["cart"].as_array().expect("a cart").len();
        let grow = form("/cart/grow", "count=10").await;
        if grow.status() == StatusCode::PAYLOAD_TOO_LARGE {
            let set = grow.headers().get_all("set-cookie").iter().count();
            assert_eq!(set, 0, "the session-full answer re-sent {set} cookie(s)");
            let after = session().await["cart"].as_array().expect("a cart").len();
            assert_eq!(after, before, "the refused change was kept");
            break grow.text().await.expect("a page");
        }
        assert_eq!(grow.status(), StatusCode::SEE_OTHER, "growing the cart failed");
        grown += 10;
        assert!(grown < 1000, "the session never filled up");
    };
    assert!(page.contains(r#"id="session-full""#), "{page}");
    assert!(page.contains("not saved"), "{page}");
    assert_eq!(session().await["user"], "ada", "the session survives a refused change");
    // The notes do not check the size: the layer's fallback answers the same page, in the same
    // words.
    let wording = "bytes of cookies, the budget is 6144 bytes";
    assert!(page.contains(wording), "{page}");
    // Letters compression cannot fold: a xorshift stream.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let notes_page = loop {
        let note: String = (0..400)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect();
        let add = form("/notes/add", &format!("note={note}")).await;
        if add.status() == StatusCode::PAYLOAD_TOO_LARGE {
            break add.text().await.expect("a page");
        }
        assert_eq!(add.status(), StatusCode::SEE_OTHER, "adding a note failed");
        assert!(session().await["notes"].as_array().expect("notes").len() < 50, "never full");
    };
    assert!(notes_page.contains(r#"id="session-full""#), "{notes_page}");
    assert!(notes_page.contains(wording), "the two full pages word it differently: {notes_page}");

    let logout = form("/logout", "").await;
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert_eq!(session_cookies(&jar, &base), Vec::<String>::new(), "cookies left after logout");
    let state = session().await;
    assert_eq!(state["user"], Value::Null, "{state}");
    assert_eq!(state["cookies"], serde_json::json!([]), "{state}");

    // The library's metrics, in Prometheus text, outside the session layer (no cookie, and a
    // scrape is no session). The notes overflowed through the layer: one save over budget.
    let metrics = client.get(demo.url("/metrics")).send().await.expect("the demo answers");
    assert_eq!(metrics.status(), StatusCode::OK);
    assert_eq!(metrics.headers().get_all("set-cookie").iter().count(), 0);
    let text = metrics.text().await.expect("a body");
    let value = |series: &str| -> f64 {
        let line = text.lines().find(|line| line.starts_with(&format!("{series} ")));
        line.and_then(|line| line.rsplit_once(' ')?.1.parse().ok()).unwrap_or(0.0)
    };
    assert!(value(r#"sealed_session_sessions_total{outcome="opened"}"#) > 10.0, "{text}");
    assert_eq!(value(r#"sealed_session_saves_total{result="over_budget"}"#), 1.0, "{text}");
    assert!(value(r#"sealed_session_cookie_chunks_bucket{le="2"}"#) >= 1.0, "{text}");
    assert!(value(r#"sealed_session_key_used_total{op="open",key_id="1"}"#) > 10.0, "{text}");

    // The refusal was logged on the console.
    let console = demo.kill();
    assert!(console.contains("cart change refused"), "{console}");
}

/// The body of a response as JSON (reqwest's `json` feature is not enabled).
async fn json_of(response: reqwest::Response) -> Value {
    let text = response.text().await.expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
}
