//! A fleet: three demo instances on loopback behind nginx (Debian's package, default header
//! buffers, plain round robin), sharing one key ring, each from its own copy of the ring file.
//!
//! Thirty users with cookie jars run journeys concurrently (log in, add cart items and notes,
//! check `/api/session` against what they did after every step), while the test kills one
//! instance (SIGKILL) and rolls a staged key rotation out to the two that remain, one node at a
//! time (each node's copy of the file is replaced atomically; the demo's watcher picks it up
//! within a second), then lets the new key activate and the journeys go on under it. Round robin
//! sends every user's requests to every node in turn, so any node that could not open a session
//! sealed by another would show up as a user logged out. No session may be lost or rejected.
//!
//! Then the largest session the default budget allows goes through nginx's default 8 KB header
//! line: grown through nginx until a grow is refused as over budget, the last good state still
//! round-trips with a 200.
//!
//! nginx must be installed (`bash scripts/install-deps.sh`): when it is missing the test fails,
//! it does not skip. It is started here on a free port of 127.0.0.1 and stopped at the end.

#![cfg(all(feature = "axum", feature = "cli"))]

#[path = "common/nginx.rs"]
mod nginx;
#[path = "common/processes.rs"]
mod processes;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use nginx::Nginx;
use processes::{Demo, build_demo};
use reqwest::cookie::{CookieStore as _, Jar};
use reqwest::{Client, StatusCode, Url};
use sealed_session::DEFAULT_COOKIE_BUDGET;
use serde_json::Value;

/// Concurrent users.
const USERS: usize = 30;
/// Steps (each a change and a check) in one journey; a user runs journeys until the run ends.
const STEPS: usize = 12;
/// The new key's activation delay: long enough to roll the ring out to every node first, with
/// room for a CLI run and two copies on a machine loaded by the users (4.4 s of it is waiting).
const ACTIVATE_IN: Duration = Duration::from_secs(12);
/// How long a node may take to pick up a new ring file (its watcher polls every second).
const WATCH: Duration = Duration::from_millis(2200);
/// nginx's default `large_client_header_buffers 4 8k`: the longest request header line.
const NGINX_HEADER_LINE: usize = 8192;

/// nginx in front of the demo instances on `upstreams`: plain round robin, request header
/// buffers left at their defaults (1k, then 4 x 8k).
fn start_nginx(dir: &Path, upstreams: &[u16]) -> Nginx {
    let servers: String =
        upstreams.iter().map(|p| format!("        server 127.0.0.1:{p};\n")).collect();
    let site = format!(
        "    upstream demo {{
{servers}    }}
    server {{
        listen 127.0.0.1:{{port}};
        proxy_next_upstream error timeout;
        proxy_connect_timeout 2s;
        add_header X-Upstream $upstream_addr always;
        location / {{
            proxy_pass http://demo;
            # The upstream's response headers must fit one buffer of this size; the default is
            # one memory page (4k), less than the Set-Cookie lines of a session near the
            # default budget (502, upstream sent too big header).
            proxy_buffer_size 8k;
        }}
        # The same, with nginx's default proxy_buffer_size.
        location /stock/ {{
            proxy_pass http://demo/;
        }}
    }}"
    );
    Nginx::start(dir, &site)
}

/// The `sealed-session` CLI on a key ring file.
fn cli(args: &[&str], file: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_sealed-session"))
        .args(args)
        .arg("--file")
        .arg(file)
        .output()
        .expect("running sealed-session");
    assert!(
        output.status.success(),
        "sealed-session {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Replaces `to` with a copy of `from` atomically (a private temporary file, then a rename), as
/// a deploy would: the node's watcher never sees a half-written file.
fn install_ring(from: &Path, to: &Path) {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).expect("copying the key ring");
    std::fs::rename(&tmp, to).expect("replacing the node's key ring");
}

/// What the run counted.
#[derive(Default)]
struct Counts {
    journeys: AtomicUsize,
    requests: AtomicUsize,
    /// Requests that failed in transport or with a 502 (a node killed with the request in
    /// flight) and were sent again. The state lives in the cookies, which a lost response never
    /// changed, so sending again is safe.
    retried: AtomicUsize,
    lost: AtomicUsize,
    rejected: AtomicUsize,
    /// Journeys whose jar still held a session cookie after logging out.
    left_after_logout: AtomicUsize,
    /// Journeys that saw both the old and the new key: sessions carried across the rotation.
    carried: AtomicUsize,
    sessions: Mutex<BTreeSet<String>>,
    keys: Mutex<BTreeSet<String>>,
    upstreams: Mutex<BTreeMap<String, usize>>,
    problems: Mutex<Vec<String>>,
}

impl Counts {
    fn problem(&self, counter: &AtomicUsize, text: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut problems = self.problems.lock().expect("not poisoned");
        if problems.len() < 20 {
            problems.push(text);
        }
    }
}

/// One user on the fleet: each journey starts with a fresh cookie jar (a new browser).
struct User {
    name: String,
    base: Url,
    counts: Arc<Counts>,
}

impl User {
    /// Sends a request (a form POST when `form` is given), again on a transport error or a 502;
    /// answers the status and the body, or None when the fleet refused it.
    async fn send(
        &self,
        client: &Client,
        path: &str,
        form: Option<String>,
    ) -> Option<(StatusCode, String)> {
        let url = self.base.join(path).expect("a path");
        for _ in 0..5 {
            let request = match &form {
                Some(body) => client
                    .post(url.clone())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.clone()),
                None => client.get(url.clone()),
            };
            self.counts.requests.fetch_add(1, Ordering::Relaxed);
            match request.send().await {
                Ok(response) if response.status() != StatusCode::BAD_GATEWAY => {
                    if let Some(node) = response.headers().get("x-upstream") {
                        let node = node.to_str().unwrap_or("?").to_owned();
                        let mut upstreams = self.counts.upstreams.lock().expect("not poisoned");
                        *upstreams.entry(node).or_default() += 1;
                    }
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    return Some((status, body));
                }
                Ok(_) | Err(_) => {
                    self.counts.retried.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        None
    }

    /// A request that must answer `expected`; anything else counts as rejected. A form carries
    /// the session's CSRF token, as the demo's pages do: fetched from `/api/session` first.
    async fn expect(
        &self,
        client: &Client,
        path: &str,
        form: Option<String>,
        expected: StatusCode,
    ) -> bool {
        let form = match form {
            Some(body) => {
                let Some((StatusCode::OK, state)) = self.send(client, "/api/session", None).await
                else {
                    let text = format!("{}: no CSRF token for {path}", self.name);
                    self.counts.problem(&self.counts.rejected, text);
                    return false;
                };
                Some(format!("{body}&csrf_token={}", csrf_token(&state)))
            }
            None => None,
        };
        match self.send(client, path, form).await {
            Some((status, _)) if status == expected => true,
            other => {
                let text = format!("{}: {path} answered {other:?}", self.name);
                self.counts.problem(&self.counts.rejected, text);
                false
            }
        }
    }

    /// One journey in a new browser: log in, change and check the session `STEPS` times, log
    /// out.
    async fn journey(&self, round: usize) {
        self.counts.journeys.fetch_add(1, Ordering::Relaxed);
        let jar = Arc::new(Jar::default());
        let client = &client(&jar);
        let user = format!("{}-{round}", self.name);
        let login = Some(format!("user={user}"));
        if !self.expect(client, "/login", login, StatusCode::SEE_OTHER).await {
            return;
        }
        let (mut cart, mut notes) = (Vec::<String>::new(), Vec::<String>::new());
        let mut keys = BTreeSet::new();
        let mut session_id = None;
        for step in 0..STEPS {
            let (path, form) = if step % 3 == 2 {
                let note = format!("note-{user}-{step}");
                notes.push(note.clone());
                ("/notes/add", format!("note={note}"))
            } else {
                let item = format!("item-{user}-{step}");
                cart.push(item.clone());
                ("/cart/add", format!("name={item}&qty={}", 1 + step % 3))
            };
            if !self.expect(client, path, Some(form), StatusCode::SEE_OTHER).await {
                return;
            }
            let Some((status, body)) = self.send(client, "/api/session", None).await else {
                self.counts.problem(&self.counts.rejected, format!("{user}: no /api/session"));
                return;
            };
            if status != StatusCode::OK {
                let text = format!("{user}: /api/session answered {status}");
                self.counts.problem(&self.counts.rejected, text);
                return;
            }
            let state: Value = serde_json::from_str(&body).expect("/api/session is JSON");
            let shown_cart: Vec<&str> = state["cart"]
                .as_array()
                .map(|items| items.iter().filter_map(|i| i["name"].as_str()).collect())
                .unwrap_or_default();
            let shown_notes: Vec<&str> = state["notes"]
                .as_array()
                .map(|notes| notes.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if state["user"].as_str() != Some(user.as_str())
                || shown_cart != cart
                || shown_notes != notes
                || (session_id.is_some() && state["session_id"].as_str() != session_id.as_deref())
            {
                let expected = format!("cart {cart:?} and notes {notes:?}");
                let text = format!("{user} after step {step}: expected {expected}, got {state}");
                self.counts.problem(&self.counts.lost, text);
                return;
            }
            session_id = state["session_id"].as_str().map(str::to_owned);
            if let Some(key) = state["key_id"].as_str() {
                keys.insert(key.to_owned());
                self.counts.keys.lock().expect("not poisoned").insert(key.to_owned());
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        if let Some(id) = session_id {
            self.counts.sessions.lock().expect("not poisoned").insert(id);
        }
        if keys.len() > 1 {
            self.counts.carried.fetch_add(1, Ordering::Relaxed);
        }
        if self.expect(client, "/logout", Some(String::new()), StatusCode::SEE_OTHER).await
            && jar.cookies(&self.base).is_some_and(|c| c.to_str().unwrap_or("").contains("demo"))
        {
            let text = format!("{user}: session cookies left after logout");
            self.counts.problem(&self.counts.left_after_logout, text);
        }
    }
}

/// The CSRF token in an `/api/session` answer.
fn csrf_token(state: &str) -> String {
    let state: Value = serde_json::from_str(state).expect("/api/session is JSON");
    state["csrf_token"].as_str().expect("a CSRF token").to_owned()
}

/// The session's CSRF token, from `/api/session` under `base`.
async fn fetch_token(client: &Client, base: &Url) -> String {
    let response = client.get(base.join("api/session").expect("a path")).send().await;
    csrf_token(&response.expect("nginx answers").text().await.expect("a body"))
}

fn client(jar: &Arc<Jar>) -> Client {
    Client::builder()
        .cookie_provider(Arc::clone(jar))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("a reqwest client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_loses_no_session_when_a_node_dies_mid_rotation() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let demo = build_demo();

    // One ring, made by the CLI; every node gets its own copy.
    let master = dir.path().join("ring.json");
    cli(&["keys", "init"], &master);
    let copies: Vec<PathBuf> = (1..=3).map(|i| dir.path().join(format!("node{i}.json"))).collect();
    for copy in &copies {
        install_ring(&master, copy);
    }
    let mut nodes: Vec<Demo> = copies
        .iter()
        .map(|copy| Demo::start(&demo, &["--keys", copy.to_str().expect("a UTF-8 path")]))
        .collect();
    let ports: Vec<u16> = nodes.iter().map(|node| node.port).collect();
    let nginx_dir = dir.path().join("nginx");
    std::fs::create_dir(&nginx_dir).expect("creating the nginx directory");
    let nginx = start_nginx(&nginx_dir, &ports);

    // The users: each runs journeys until the run is over.
    let counts = Arc::new(Counts::default());
    let done = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for u in 0..USERS {
        let user = User {
            name: format!("user{u:02}"),
            base: Url::parse(&nginx.url("/")).expect("a URL"),
            counts: Arc::clone(&counts),
        };
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move {
            let mut round = 0;
            // Every user finishes at least two journeys, and the last one that started.
            while round < 2 || !done.load(Ordering::Relaxed) {
                user.journey(round).await;
                round += 1;
            }
        }));
    }

    // While they run: kill a node, roll a staged rotation out to the others, let it activate.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed = nodes[0].port;
    let _ = nodes[0].kill();
    println!("killed the node on port {killed} (SIGKILL)");
    let rotated_at = SystemTime::now();
    cli(&["keys", "rotate", "--activate-in", &format!("{}s", ACTIVATE_IN.as_secs())], &master);
    for (node, copy) in nodes.iter().zip(&copies).skip(1) {
        install_ring(&master, copy);
        tokio::time::sleep(WATCH).await;
        println!("node on port {} has the new ring", node.port);
    }
    let rolled_out = rotated_at.elapsed().unwrap_or_default();
    assert!(
        rolled_out + Duration::from_secs(1) < ACTIVATE_IN,
        "the roll-out took {rolled_out:?}, too close to the activation ({ACTIVATE_IN:?}): the \
         test cannot show a staged rotation on a machine this slow"
    );
    let wait = (ACTIVATE_IN + Duration::from_millis(1500)).saturating_sub(rolled_out);
    tokio::time::sleep(wait).await;
    println!("the new key is active; journeys go on for 3 s");
    tokio::time::sleep(Duration::from_secs(3)).await;
    done.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a user's task");
    }

    let journeys = counts.journeys.load(Ordering::Relaxed);
    let requests = counts.requests.load(Ordering::Relaxed);
    let sessions = counts.sessions.lock().expect("not poisoned").len();
    let lost = counts.lost.load(Ordering::Relaxed);
    let rejected = counts.rejected.load(Ordering::Relaxed);
    let retried = counts.retried.load(Ordering::Relaxed);
    let carried = counts.carried.load(Ordering::Relaxed);
    let left_after_logout = counts.left_after_logout.load(Ordering::Relaxed);
    let keys = counts.keys.lock().expect("not poisoned").clone();
    let upstreams = counts.upstreams.lock().expect("not poisoned").clone();
    println!(
        "journeys={journeys} requests={requests} sessions={sessions} lost={lost} \
         rejected={rejected}"
    );
    println!(
        "retried={retried} (transport errors and 502s around the kill) carried_across_rotation=\
         {carried} keys_seen={keys:?} answers_per_node={upstreams:?}"
    );
    let problems = counts.problems.lock().expect("not poisoned").clone();
    assert!(
        lost == 0 && rejected == 0 && left_after_logout == 0,
        "lost={lost} rejected={rejected} left_after_logout={left_after_logout}:\n{}\n\
         nginx error log:\n{}",
        problems.join("\n"),
        nginx.error_log()
    );
    assert!(journeys >= 2 * USERS, "journeys={journeys}");
    assert_eq!(keys.len(), 2, "sessions sealed with both keys: {keys:?}");
    assert!(carried > 0, "no journey carried its session across the rotation");
    // Round robin spread the answers over all three nodes, then over the two left.
    for port in &ports {
        let node = format!("127.0.0.1:{port}");
        assert!(upstreams.keys().any(|k| k.contains(&node)), "{node} answered nothing");
    }

    // The largest session the default budget allows, through nginx's default 8 KB header line.
    let jar = Arc::new(Jar::default());
    let browser = client(&jar);
    let base = Url::parse(&nginx.url("/")).expect("a URL");
    let post = async |path: &str, body: String| {
        let token = fetch_token(&browser, &base).await;
        browser
            .post(base.join(path).expect("a path"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("{body}&csrf_token={token}"))
            .send()
            .await
    };
    let login = post("/login", "user=big".to_owned()).await.expect("nginx answers");
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let mut items = 0;
    for step in [10, 1] {
        loop {
            let grow = post("/cart/grow", format!("count={step}")).await.expect("nginx answers");
            match grow.status() {
                StatusCode::SEE_OTHER => items += step,
                // The demo's "session full" page: over budget, nothing stored.
                StatusCode::PAYLOAD_TOO_LARGE => break,
                other => panic!(
                    "growing through nginx answered {other}; nginx error log:\n{}",
                    nginx.error_log()
                ),
            }
            assert!(items < 2000, "the budget was never reached");
        }
    }
    let header = jar.cookies(&base).expect("cookies for the fleet");
    let header_line = "Cookie: ".len() + header.len();
    for path in ["/", "/api/session"] {
        let response = browser.get(base.join(path).expect("a path")).send().await;
        let response = response.expect("nginx answers");
        assert_eq!(response.status(), StatusCode::OK, "{path} with the largest session");
        if path == "/api/session" {
            let state: Value = serde_json::from_str(&response.text().await.expect("a body"))
                .expect("/api/session is JSON");
            assert_eq!(state["user"], "big", "{state}");
            assert_eq!(state["cart"].as_array().map(Vec::len), Some(items), "{state}");
        }
    }
    println!(
        "largest session through nginx: {items} items, Cookie header line {header_line} bytes \
         (session budget {DEFAULT_COOKIE_BUDGET}, nginx's default line limit {NGINX_HEADER_LINE})"
    );
    assert!(header_line <= NGINX_HEADER_LINE);

    // With nginx's default proxy_buffer_size (one page, 4k), the response that sets a session
    // this large is refused: the Set-Cookie lines outgrow the buffer for the upstream's headers.
    // Printed, not asserted (the default depends on the page size).
    let stock_jar = Arc::new(Jar::default());
    let stock = client(&stock_jar);
    let stock_base = base.join("/stock/").expect("a path");
    let stock_post = async |path: &str, body: String| {
        let token = fetch_token(&stock, &stock_base).await;
        stock
            .post(base.join(path).expect("a path"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("{body}&csrf_token={token}"))
            .send()
            .await
    };
    let login = stock_post("/stock/login", "user=stock".to_owned()).await.expect("nginx answers");
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let (mut stock_items, mut stock_share) = (0, 0);
    let refused_with = loop {
        let grow = stock_post("/stock/cart/grow", "count=10".to_owned());
        let status = grow.await.expect("nginx answers").status();
        if status != StatusCode::SEE_OTHER {
            break status;
        }
        stock_items += 10;
        stock_share = stock_jar.cookies(&base).map_or(0, |h| h.len());
        assert!(stock_items < 2000, "the budget was never reached");
    };
    println!(
        "with nginx's default proxy_buffer_size: the last write that passed set a session of \
         {stock_items} items ({stock_share} bytes of Cookie header); the next answered \
         {refused_with} ({})",
        if nginx.error_log().contains("upstream sent too big header") {
            "nginx: upstream sent too big header"
        } else {
            "over the session budget"
        }
    );

    // And the limit is real: a Cookie line past 8 KB is refused by nginx itself.
    let too_long = format!("other={}", "x".repeat(NGINX_HEADER_LINE));
    let refused = reqwest::Client::builder().no_proxy().build().expect("a client");
    let response = refused
        .get(base.join("/api/session").expect("a path"))
        .header("cookie", too_long)
        .send()
        .await
        .expect("nginx answers");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "nginx took a 8 KB+ Cookie line");

    drop(nginx);
    for mut node in nodes {
        let _ = node.kill();
    }
}
