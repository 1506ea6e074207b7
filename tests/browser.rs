//! A real browser against the demo: headless Chromium (Debian's `/usr/bin/chromium`) driven
//! through WebDriver (`/usr/bin/chromedriver`, started here on a free port) with `fantoccini`.
//!
//! What only a browser can show: that it keeps the `__Host-` + `Secure` + `HttpOnly` chunks on
//! `http://127.0.0.1` (a secure context to Chromium), that it sends them all back and the session
//! opens whole, that it drops removed chunks, that scripts cannot see them, and that the largest
//! session the default budget allows survives a reload. The browser's own cookie jar is read
//! through WebDriver (`get_all_cookies` sees HttpOnly cookies too).
//!
//! Chromium and chromedriver must be installed (`bash scripts/install-deps.sh`): when they are
//! missing the test fails, it does not skip. A screenshot of the demo page is kept in
//! `target/artifacts/demo.png`.

#![cfg(feature = "axum")]

#[path = "common/processes.rs"]
mod processes;

use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use processes::{Demo, Guard, build_demo, free_port, require_tool, target_dir, wait_for_port};
use sealed_session::DEFAULT_COOKIE_BUDGET;
use serde_json::{Value, json};

/// The demo's first session cookie (`SessionConfig::builder("demo")`).
const NAME: &str = "__Host-demo";
/// The longest a browser step (a page load, a script) may take before the test fails.
const STEP: Duration = Duration::from_secs(30);

/// chromedriver in a process group of its own; the whole group (chromedriver and the Chromium
/// it started) is killed when this drops, so a failing test leaves no browser behind.
struct Driver {
    process: Guard,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.process.pid());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        self.process.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_keeps_the_whole_session() {
    let chromium = require_tool("/usr/bin/chromium", "chromium");
    let chromedriver = require_tool("/usr/bin/chromedriver", "chromium-driver");
    let demo = Demo::start(&build_demo(), &[]);

    let port = free_port();
    let mut command = Command::new(&chromedriver);
    command.arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null());
    command.process_group(0);
    let _driver = Driver { process: Guard::spawn(command, "chromedriver") };
    wait_for_port(port, Duration::from_secs(20), "chromedriver");

    let profile = tempfile::tempdir().expect("a temporary directory");
    let mut capabilities = Capabilities::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic", "--window-size=1100,4000",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with headless Chromium");

    // The journey runs in a task of its own so that, failing or not, the browser is closed.
    let journey = tokio::spawn(journey(client.clone(), demo.base.clone()));
    let outcome = tokio::time::timeout(Duration::from_secs(300), journey).await;
    let _ = client.close().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Ok(Err(error)) => panic!("the browser journey did not finish: {error}"),
        Err(_) => panic!("the browser journey took longer than 300 s"),
    }
}

async fn journey(browser: Client, base: String) {
    let b = Browser { client: browser, base };

    // Log in through the form.
    b.goto("/").await;
    assert_eq!(b.client.title().await.expect("a title"), "sealed-session demo");
    b.find("#user-input").await.send_keys("ada").await.expect("typing a name");
    b.find("#login").await.click().await.expect("clicking Log in");
    b.wait_text("#user", "ada").await;
    let jar = b.session_cookies().await;
    assert_eq!(names(&jar), [NAME], "one cookie after login: {jar:?}");
    // Chromium keeps `__Host-` + Secure cookies from http://127.0.0.1: loopback is a secure
    // context to it. And the attributes are the ones the library sets.
    let first = &jar[0];
    assert_eq!(first["secure"], true, "{first}");
    assert_eq!(first["httpOnly"], true, "{first}");
    assert_eq!(first["path"], "/", "{first}");
    assert_eq!(first["domain"], "127.0.0.1", "a host-only cookie: {first}");
    assert!(matches!(first["sameSite"].as_str(), Some("Lax" | "Strict")), "{first}");

    // A note, through its form.
    b.find("input[name=note]").await.send_keys("remember the milk").await.expect("typing");
    b.find("#note-add").await.click().await.expect("clicking Add note");
    b.wait_count("#notes li", 1).await;

    // Grow the cart with the page's button until the session spans three cookies.
    let mut items = 0;
    while b.session_cookies().await.len() < 3 {
        assert!(items < 400, "the session never reached three cookies");
        b.find("#cart-grow").await.click().await.expect("clicking Add 10 items");
        items += 10;
        b.wait_text("#cart-count", &items.to_string()).await;
    }
    let jar = b.session_cookies().await;
    assert_eq!(names(&jar), chunk_names(jar.len()), "{jar:?}");
    println!("cart of {items} items: {} cookies, {} bytes", jar.len(), share(&jar));

    // Reload: the browser sends every chunk back and the whole session opens.
    b.client.refresh().await.expect("reloading");
    b.check_page("ada", items, &["remember the milk"]).await;
    assert_eq!(b.find_text("#chunk-count").await, jar.len().to_string(), "chunks sent back");
    let state = b.api_session().await;
    assert_eq!(state["chunks"].as_u64(), Some(jar.len() as u64), "{state}");
    assert_eq!(state["cart"].as_array().map(Vec::len), Some(items), "{state}");

    // The screenshot: the demo page as a browser renders it, with a cart over three cookies.
    let png = b.client.screenshot().await.expect("a screenshot");
    let artifacts = target_dir().join("artifacts");
    std::fs::create_dir_all(&artifacts).expect("creating target/artifacts");
    std::fs::write(artifacts.join("demo.png"), &png).expect("writing target/artifacts/demo.png");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");

    // Scripts see none of the session's cookies: they are HttpOnly.
    let script_view = b.client.execute("return document.cookie", vec![]).await.expect("a script");
    assert_eq!(script_view, json!(""), "document.cookie shows the session");
    assert_eq!(b.find_text("#js-cookies").await, "", "the page's own script saw cookies");

    // Shrink the cart with the page's button until one cookie is left: every removed chunk
    // leaves the jar as the session shrinks.
    let mut removed_some = false;
    while items > 0 {
        let before = b.session_cookies().await.len();
        b.find("#cart-shrink").await.click().await.expect("clicking Remove 10 items");
        items -= 10;
        b.wait_text("#cart-count", &items.to_string()).await;
        let jar = b.session_cookies().await;
        let state = b.api_session().await;
        let chunks = state["chunks"].as_u64().expect("a chunk count") as usize;
        assert_eq!(names(&jar), chunk_names(chunks), "stale chunks in the jar: {state}");
        removed_some |= jar.len() < before;
        if jar.len() == 1 {
            break;
        }
    }
    assert!(removed_some, "shrinking never removed a chunk");
    b.client.refresh().await.expect("reloading");
    b.check_page("ada", items, &["remember the milk"]).await;

    // The largest session the default budget allows: grow (10 items at a time, then one at a
    // time) until a grow is refused with the demo's "session full" page (413: over budget,
    // the cart put back as it was), then reload.
    for step in [10, 1] {
        loop {
            let status = b.grow(step).await;
            if status == 413 {
                break;
            }
            assert_eq!(status, 303, "growing by {step} answered {status}");
            items += step;
            assert!(items < 2000, "the budget was never reached");
        }
    }
    let refused = b.session_cookies().await;
    b.client.refresh().await.expect("reloading");
    b.check_page("ada", items, &["remember the milk"]).await;
    let jar = b.session_cookies().await;
    assert_eq!(names(&jar), names(&refused), "the refused grow changed the jar");
    let bytes = share(&jar);
    println!(
        "largest session: {items} items, {} cookies, {bytes} bytes of the Cookie header \
         (budget {DEFAULT_COOKIE_BUDGET})",
        jar.len()
    );
    assert!(bytes <= DEFAULT_COOKIE_BUDGET, "{bytes} bytes is over the budget");
    assert!(bytes + 512 > DEFAULT_COOKIE_BUDGET, "{bytes} bytes is far below the budget");
    let state = b.api_session().await;
    assert_eq!(state["cart"].as_array().map(Vec::len), Some(items), "{state}");
    assert_eq!(names(&jar), chunk_names(jar.len()));

    // Log out: every cookie of the session is gone from the jar. The login page it lands on
    // holds a CSRF token, so the visitor has a new session of one small cookie, and no user.
    let before = jar[0]["value"].clone();
    b.find("#logout").await.click().await.expect("clicking Log out");
    b.find("#login").await;
    let jar = b.session_cookies().await;
    assert_eq!(names(&jar), [NAME], "cookies left after logout: {jar:?}");
    assert_ne!(jar[0]["value"], before, "the old session's cookie is still there");
    assert!(share(&jar) < 300, "the visitor's session is not a small one: {jar:?}");
    let state = b.api_session().await;
    assert_eq!(state["user"], Value::Null, "{state}");
}

/// The browser, on the demo.
struct Browser {
    client: Client,
    base: String,
}

impl Browser {
    async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base.trim_end_matches('/'));
        self.client.goto(&url).await.unwrap_or_else(|e| panic!("loading {url}: {e}"));
    }

    /// The element, waiting for it to appear.
    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(STEP)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
    }

    async fn find_text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap_or_else(|e| panic!("the text of {css}: {e}"))
    }

    /// Waits until the page (after a navigation) shows `expected` in the element.
    async fn wait_text(&self, css: &str, expected: &str) {
        let deadline = Instant::now() + STEP;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                if let Ok(text) = element.text().await {
                    if text == expected {
                        return;
                    }
                    last = text;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css} shows {last:?}, not {expected:?}, after {STEP:?}");
    }

    /// Waits until the page holds `count` elements matching `css`.
    async fn wait_count(&self, css: &str, count: usize) {
        let deadline = Instant::now() + STEP;
        while Instant::now() < deadline {
            if self.client.find_all(Locator::Css(css)).await.ok().map(|all| all.len())
                == Some(count)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the page never held {count} of {css}");
    }

    /// Checks the page shows this user, cart size and notes.
    async fn check_page(&self, user: &str, items: usize, notes: &[&str]) {
        self.wait_text("#user", user).await;
        assert_eq!(self.find_text("#cart-count").await, items.to_string(), "cart size");
        // The cart is the page's second section.
        let rows = self.client.find_all(Locator::Css("section:nth-of-type(2) tr td:first-child"));
        assert_eq!(rows.await.expect("the cart table").len(), items, "cart rows");
        if items > 0 {
            let source = self.client.source().await.expect("the page source");
            assert!(source.contains(&format!("SKU-{items:05}")), "the last item is missing");
        }
        let mut shown = Vec::new();
        for note in self.client.find_all(Locator::Css("#notes li")).await.expect("notes") {
            shown.push(note.text().await.expect("a note"));
        }
        assert_eq!(shown, notes, "notes");
    }

    /// The session's cookies in the browser's jar (HttpOnly ones included), sorted by name, as
    /// WebDriver describes them.
    async fn session_cookies(&self) -> Vec<Value> {
        let cookies = self.client.get_all_cookies().await.expect("the browser's cookies");
        let mut ours: Vec<Value> = cookies
            .iter()
            .filter(|c| c.name() == NAME || c.name().starts_with(&format!("{NAME}.")))
            .map(|c| {
                json!({
                    "name": c.name(),
                    "value": c.value(),
                    "secure": c.secure().unwrap_or(false),
                    "httpOnly": c.http_only().unwrap_or(false),
                    "path": c.path(),
                    "domain": c.domain(),
                    "sameSite": c.same_site().map(|s| format!("{s:?}")),
                })
            })
            .collect();
        ours.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        ours
    }

    /// `/api/session` as the page's script fetches it (with the browser's cookies).
    async fn api_session(&self) -> Value {
        let script = "return fetch('/api/session').then(r => r.json())";
        self.client.execute(script, vec![]).await.expect("fetching /api/session")
    }

    /// `POST /cart/grow` from the page's script, with the session's CSRF token in the
    /// `x-csrf-token` header (from `/api/session`); the browser stores what the answer sets.
    /// The redirect is not followed, so a success is a 303.
    async fn grow(&self, count: usize) -> u16 {
        let script = "const count = arguments[0]; \
                      return fetch('/api/session').then(r => r.json()) \
                      .then(s => fetch('/cart/grow', { method: 'POST', redirect: 'manual', \
                      headers: { 'content-type': 'application/x-www-form-urlencoded', \
                      'x-csrf-token': s.csrf_token }, body: 'count=' + count })) \
                      .then(r => r.type === 'opaqueredirect' ? 303 : r.status)";
        let status = self.client.execute(script, vec![json!(count)]).await.expect("a fetch");
        status.as_u64().and_then(|s| u16::try_from(s).ok()).expect("a status")
    }
}

/// The cookies' names.
fn names(jar: &[Value]) -> Vec<String> {
    jar.iter().map(|c| c["name"].as_str().expect("a name").to_owned()).collect()
}

/// The names of a session's cookies when it spans `count` of them, sorted.
fn chunk_names(count: usize) -> Vec<String> {
    let mut all: Vec<String> =
        (0..count).map(|i| if i == 0 { NAME.to_owned() } else { format!("{NAME}.{i}") }).collect();
    all.sort();
    all
}

/// The share of the Cookie request header these cookies take, counted as the budget counts it:
/// `name=value` plus a two-byte separator each.
fn share(jar: &[Value]) -> usize {
    jar.iter()
        .map(|c| {
            let name = c["name"].as_str().expect("a name");
            let value = c["value"].as_str().expect("a value");
            name.len() + 1 + value.len() + 2
        })
        .sum()
}
