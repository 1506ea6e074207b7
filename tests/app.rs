//! The example app (`examples/app.rs`) driven over HTTP by two browsers (cookie-jar clients
//! following redirects): login through a CSRF-protected form, a flash after the redirect shown
//! once, the typed user extractor, a CSRF-refused post, "log out everywhere" (the other device
//! is signed out, a login right after is not), and logout; the cart's over-budget page (403 and
//! 413 answered through `?` and the size check, no cookie re-sent); a key rotation written to
//! the ring file while users are signed in (hot reload, nobody signed out).

#[path = "../examples/app.rs"]
#[allow(dead_code, unreachable_pub)]
mod example;

use std::sync::Arc;

use reqwest::Client;
use reqwest::cookie::Jar;
use std::time::{Duration, SystemTime};

use sealed_session::keys::file::KeyRingFile;
use sealed_session::{Key, KeyId, KeyRing, SessionCodec, SessionConfig, SharedKeyRing};

/// Serves the example on 127.0.0.1 (a free port) on an ephemeral ring.
async fn serve() -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    serve_with(SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()))).await
}

/// Serves the example with `codec` until the returned sender is dropped or used.
async fn serve_with(
    codec: SessionCodec,
) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let app = axum::ServiceExt::<axum::extract::Request>::into_make_service(example::app(codec));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let signal = async move {
            let _ = stopped.await;
        };
        axum::serve(listener, app).with_graceful_shutdown(signal).await.expect("serves");
    });
    (base, stop, server)
}

/// A browser: a cookie jar, following redirects.
struct Browser {
    client: Client,
    base: String,
}

impl Browser {
    fn new(base: &str) -> Browser {
        let client = Client::builder()
            .cookie_provider(Arc::new(Jar::default()))
            .no_proxy()
            .build()
            .expect("a reqwest client");
        Browser { client, base: base.to_owned() }
    }

    async fn page(&self) -> String {
        let response = self.client.get(format!("{}/", self.base)).send().await.expect("answers");
        assert_eq!(response.status(), 200);
        response.text().await.expect("a page")
    }

    /// Posts a form; answers the status and body after redirects.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let body: Vec<String> = fields
            .iter()
            .map(|(name, value)| format!("{name}={}", value.replace(' ', "+")))
            .collect();
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"))
            .send()
            .await
            .expect("answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    }
}

/// The CSRF token in a page's forms.
fn token(page: &str) -> String {
    let field = r#"name="csrf_token" value=""#;
    let start = page.find(field).expect("a form with a token") + field.len();
    page[start..].split('"').next().expect("a quoted value").to_owned()
}

#[tokio::test]
async fn login_csrf_flash_typed_user_and_logouts() {
    let (base, stop, server) = serve().await;
    let laptop = Browser::new(&base);
    let phone = Browser::new(&base);

    // Login without the token is refused; with it, the flash shows once after the redirect.
    let page = laptop.page().await;
    let before_login = token(&page);
    let (status, _) = laptop.post("/login", &[("name", "ada")]).await;
    assert_eq!(status, 403);
    let (status, page) =
        laptop.post("/login", &[("name", "ada"), ("csrf_token", &before_login)]).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<p id="hello">Hello, ada.</p>"#), "{page}");
    assert!(page.contains(r#"<p class="flash">Welcome, ada.</p>"#), "{page}");
    let page = laptop.page().await;
    assert!(!page.contains("flash"), "a flash shown twice: {page}");

    // The typed extractor gets the user; the token from before login no longer works.
    let (status, _) =
        laptop.post("/notes", &[("note", "milk"), ("csrf_token", &before_login)]).await;
    assert_eq!(status, 403, "login must rotate the CSRF token");
    // A script sends the token in the `x-csrf-token` header instead of a form field.
    let response = laptop
        .client
        .post(format!("{base}/notes"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-csrf-token", token(&page))
        .body("note=milk")
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("a page");
    assert!(page.contains(r#"<li class="note">milk</li>"#), "{page}");
    assert!(page.contains("Note saved."), "{page}");
    // A visitor posting a note is sent to the login page by the extractor.
    let visitor = Browser::new(&base);
    let (status, page) = visitor.post("/notes", &[("note", "spam")]).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"action="/login""#), "{page}");

    // Another device; then "log out everywhere" from the laptop signs it out.
    let phone_page = phone.page().await;
    phone.post("/login", &[("name", "ada"), ("csrf_token", &token(&phone_page))]).await;
    assert!(phone.page().await.contains("Hello, ada."));
    let page = laptop.page().await;
    let (status, page) = laptop.post("/logout-everywhere", &[("csrf_token", &token(&page))]).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"action="/login""#), "{page}");
    let phone_page = phone.page().await;
    assert!(phone_page.contains("You were signed out."), "{phone_page}");
    assert!(!phone_page.contains("Hello"), "{phone_page}");

    // A login right after "log out everywhere" is not caught by it.
    let (_, page) = laptop.post("/login", &[("name", "ada"), ("csrf_token", &token(&page))]).await;
    assert!(page.contains("Hello, ada."), "{page}");
    let page = laptop.page().await;
    assert!(page.contains("Hello, ada."), "a login right after was revoked: {page}");

    // Logout.
    let (status, page) = laptop.post("/logout", &[("csrf_token", &token(&page))]).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"action="/login""#), "{page}");

    let _ = stop.send(());
    server.await.expect("the server stops");
}

/// Signs a new browser in as `name`; answers its page.
async fn sign_in(browser: &Browser, name: &str) -> String {
    let page = browser.page().await;
    let (status, page) =
        browser.post("/login", &[("name", name), ("csrf_token", &token(&page))]).await;
    assert_eq!(status, 200);
    assert!(page.contains(&format!("Hello, {name}.")), "{page}");
    page
}

/// Text compression cannot fold: a different pseudo-random item per `seed`.
fn item(seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..400)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// The cart checks the session's size before answering: past the budget it answers the
/// over-budget page (413) with no Set-Cookie at all (the README's restore pattern, not a
/// re-`insert` of the old cart, which would re-send every cookie), and the cart stays as it was.
/// A post without the token is refused with 403 through `require_csrf_headers(..)?`.
#[tokio::test]
async fn the_cart_over_budget_keeps_the_session_and_sends_no_cookie() {
    let (base, stop, server) = serve().await;
    let browser = Browser::new(&base);
    let page = sign_in(&browser, "ada").await;

    let (status, _) = browser.post("/cart", &[("item", "tea")]).await;
    assert_eq!(status, 403, "a cart post without the CSRF token");

    let csrf = token(&page);
    let mut added = 0u64;
    let refused = loop {
        assert!(added < 40, "the cart never reached the budget");
        let item = item(added);
        let response = browser
            .client
            .post(format!("{base}/cart"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("item={item}&csrf_token={csrf}"))
            .send()
            .await
            .expect("answers");
        match response.status().as_u16() {
            200 => added += 1,
            413 => break response,
            other => panic!("the cart answered {other}"),
        }
    };
    assert!(added > 3, "only {added} items fit");
    let cookies: Vec<_> = refused.headers().get_all("set-cookie").iter().collect();
    assert!(cookies.is_empty(), "the over-budget answer re-sent {} cookie(s)", cookies.len());
    let body = refused.text().await.expect("a page");
    assert!(body.contains(r#"id="over-budget""#), "{body}");

    let page = browser.page().await;
    let items = page.matches(r#"<li class="item">"#).count();
    assert_eq!(items as u64, added, "the cart changed: {page}");
    assert!(page.contains(&item(added - 1)), "the last accepted item is gone");
    assert!(!page.contains(&item(added)), "the refused item was kept");

    let _ = stop.send(());
    server.await.expect("the server stops");
}

/// A rotation written to the ring file while users are signed in reaches the running app
/// (`SharedKeyRing::watching_file`, as the app's `main` and the README do): a user active after
/// the new key's activation is resealed under it, so retiring the old key from the file signs
/// nobody out who was active in between.
#[tokio::test]
async fn a_rotated_ring_file_is_picked_up_without_a_restart() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("ring.json");
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let write = |ring: &KeyRing| {
        // A new file renamed over the old one, mode 0600, as the CLI writes it.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, KeyRingFile::from_ring(ring).to_json()).expect("written");
        #[cfg(unix)]
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("mode 0600");
        std::fs::rename(&tmp, &path).expect("renamed");
    };
    let (old, new) = (Key::generate(), Key::generate());
    let mut ring = KeyRing::new();
    ring.insert(KeyId(1), old.clone(), now - hour, now - hour).expect("key 1");
    write(&ring);
    let keys = SharedKeyRing::watching_file(&path, Duration::from_millis(10)).expect("loads");
    let (base, stop, server) =
        serve_with(SessionCodec::new(SessionConfig::default(), keys.clone())).await;
    let browser = Browser::new(&base);
    sign_in(&browser, "ada").await;

    // Each step: the file as written, the ring the app must come to serve.
    let steps: [(&[(u32, &Key)], usize); 2] = [(&[(1, &old), (2, &new)], 2), (&[(2, &new)], 1)];
    for (step, (file, len)) in steps.into_iter().enumerate() {
        let mut ring = KeyRing::new();
        for &(id, key) in file {
            let created = if id == 1 { now - hour } else { now };
            ring.insert(KeyId(id), key.clone(), created, created).expect("a key");
        }
        write(&ring);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while keys.snapshot().len() != len || !keys.snapshot().contains(KeyId(2)) {
            assert!(std::time::Instant::now() < deadline, "step {step}: the file was not reloaded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Activity after the new key is in service reseals the session under it.
        let page = browser.page().await;
        let (status, page) = browser
            .post("/notes", &[("note", &format!("step {step}")), ("csrf_token", &token(&page))])
            .await;
        assert_eq!(status, 200, "step {step}");
        assert!(page.contains("Hello, ada."), "step {step}: signed out by the rotation: {page}");
    }

    let _ = stop.send(());
    server.await.expect("the server stops");
}
