//! The demo (`demo/`, a package of the workspace) builds as the README says (`cargo run -p
//! sealed-session-demo`), starts, and serves its pages: a cookie-jar client logs in, grows the cart until the
//! session spans three cookies, then past its budget (a "session full" page, the cart kept as
//! it was, a line on the console), and logs out.
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
    let form = |path: &str, body: &'static str| {
        client
            .post(demo.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let session = async || -> Value {
        let response = client.get(demo.url("/api/session")).send().await.expect("the demo answers");
        assert_eq!(response.status(), StatusCode::OK);
        json_of(response).await
    };

    let page = client.get(demo.url("/")).send().await.expect("the demo answers");
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.expect("a page");
    assert!(page.contains("<h1>sealed-session demo</h1>"), "{page}");
    assert!(page.contains(r#"id="login""#), "a visitor sees the login form");

    let login = form("/login", "user=ada").send().await.expect("the demo answers");
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    assert_eq!(session_cookies(&jar, &base), [NAME]);
    let state = session().await;
    assert_eq!(state["user"], "ada", "{state}");
    let page = client.get(demo.url("/")).send().await.expect("the demo answers");
    let page = page.text().await.expect("a page");
    assert!(page.contains(r#"<strong id="user">ada</strong>"#), "{page}");

    // Grow the cart until the session spans three cookies (the demo splits at 2,048 bytes).
    let mut grown = 0;
    let state = loop {
        let grow = form("/cart/grow", "count=10").send().await.expect("the demo answers");
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

    // Past the budget, the demo says so and keeps the cart as it was.
    let page = loop {
        let before = session().await["cart"].as_array().expect("a cart").len();
        let grow = form("/cart/grow", "count=10").send().await.expect("the demo answers");
        if grow.status() == StatusCode::PAYLOAD_TOO_LARGE {
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

    let logout = form("/logout", "").send().await.expect("the demo answers");
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert_eq!(session_cookies(&jar, &base), Vec::<String>::new(), "cookies left after logout");
    let state = session().await;
    assert_eq!(state["user"], Value::Null, "{state}");
    assert_eq!(state["cookies"], serde_json::json!([]), "{state}");

    // The refusal was logged on the console.
    let console = demo.kill();
    assert!(console.contains("cart change refused"), "{console}");
}

/// The body of a response as JSON (reqwest's `json` feature is not enabled).
async fn json_of(response: reqwest::Response) -> Value {
    let text = response.text().await.expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
}
