//! The demo (`examples/demo.rs`) builds as the README says (`cargo run --example demo --features
//! axum`), starts, and serves its pages: a cookie-jar client logs in, grows the cart until the
//! session spans three cookies, and logs out.
//!
//! The test builds the example with cargo itself (a no-op when `cargo test` has just built it)
//! and takes the binary's path from cargo's JSON messages, so it finds the right binary whatever
//! the target directory or profile. The demo listens on a free port (`--port 0`) of 127.0.0.1
//! and prints its URL; the child is killed when the test ends, failing or not.

#![cfg(feature = "axum")]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use reqwest::cookie::{CookieStore as _, Jar};
use reqwest::{Client, StatusCode, Url};
use serde_json::Value;

/// The demo's first session cookie (`SessionConfig::builder("demo")`).
const NAME: &str = "__Host-demo";
/// What the demo prints once it listens.
const LISTENING: &str = "sealed-session demo listening on ";
/// How long the demo may take to print its URL once built.
const STARTUP: Duration = Duration::from_secs(30);

/// The example binary, built by cargo with the features this test was built with (which
/// include `axum`, the README's; with the same features, the build is a no-op after `cargo test`
/// built the examples), in this test's target directory and profile.
fn build_demo() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    // Every feature of the package (keep the list complete): another set of features would
    // build the library and the demo a second time.
    let optional = [
        ("actix-web", cfg!(feature = "actix-web")),
        ("cli", cfg!(feature = "cli")),
        ("redis", cfg!(feature = "redis")),
    ];
    let mut features = vec!["axum"];
    features.extend(optional.iter().filter(|(_, on)| *on).map(|(name, _)| *name));
    let mut command = Command::new(env!("CARGO"));
    command.arg("build").arg("--manifest-path").arg(&manifest);
    command.args(["--example", "demo", "--message-format", "json-render-diagnostics"]);
    command.arg("--features").arg(features.join(","));
    // This test runs from `<target>/<profile>/deps/`: build the demo there too.
    let exe = std::env::current_exe().expect("the test's own path");
    let deps = exe.parent().filter(|dir| dir.ends_with("deps"));
    if let Some(profile_dir) = deps.and_then(Path::parent) {
        if profile_dir.ends_with("release") {
            command.arg("--release");
        }
        if let Some(target_dir) = profile_dir
            .parent()
            .filter(|_| profile_dir.ends_with("debug") || profile_dir.ends_with("release"))
        {
            command.arg("--target-dir").arg(target_dir);
        }
    }
    let output = command.stderr(Stdio::inherit()).output().expect("running cargo build");
    assert!(output.status.success(), "cargo build --example demo failed: {:?}", output.status);
    let stdout = String::from_utf8(output.stdout).expect("cargo prints UTF-8");
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "demo")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .expect("cargo reports the demo's executable")
}

/// The running demo; killed (and reaped) when dropped.
struct Demo {
    child: Child,
    base: Url,
    stderr: mpsc::Receiver<String>,
}

impl Demo {
    fn start(binary: &Path) -> Demo {
        let mut child = Command::new(binary)
            .args(["--port", "0"])
            // An ephemeral key ring, whatever the environment holds.
            .env_remove("SEALED_SESSION_KEYS")
            .env_remove("SEALED_SESSION_KEYS_FILE")
            .env_remove("PORT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", binary.display()));

        // Read both pipes on threads, so that a silent or stuck demo fails the test in time
        // rather than blocking it, and the demo never blocks on a full pipe.
        let stdout = child.stdout.take().expect("piped stdout");
        let (url_tx, url_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix(LISTENING) {
                    let _ = url_tx.send(url.trim().to_owned());
                }
            }
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            let _ = err_tx.send(text);
        });

        let mut demo =
            Demo { child, base: Url::parse("http://127.0.0.1/").expect("a URL"), stderr: err_rx };
        match url_rx.recv_timeout(STARTUP) {
            Ok(url) => demo.base = Url::parse(&url).expect("the demo prints a valid URL"),
            Err(_) => {
                let _ = demo.child.kill();
                let _ = demo.child.wait();
                let stderr = demo.stderr.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
                panic!(
                    "the demo did not print \"{LISTENING}URL\" within {STARTUP:?}; stderr:\n{stderr}"
                );
            }
        }
        demo
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("a valid path")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    let demo = Demo::start(&build_demo());
    assert_eq!(demo.base.host_str(), Some("127.0.0.1"), "the demo listens on loopback only");
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
    assert_eq!(session_cookies(&jar, &demo.base), [NAME]);
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
    assert_eq!(session_cookies(&jar, &demo.base).len(), sent.len());

    let logout = form("/logout", "").send().await.expect("the demo answers");
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        session_cookies(&jar, &demo.base),
        Vec::<String>::new(),
        "cookies left after logout"
    );
    let state = session().await;
    assert_eq!(state["user"], Value::Null, "{state}");
    assert_eq!(state["cookies"], serde_json::json!([]), "{state}");
}

/// The body of a response as JSON (reqwest's `json` feature is not enabled).
async fn json_of(response: reqwest::Response) -> Value {
    let text = response.text().await.expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
}
