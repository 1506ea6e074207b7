//! The example app (`examples/app.rs`) driven over HTTP by two browsers (cookie-jar clients
//! following redirects): login through a CSRF-protected form, a flash after the redirect shown
//! once, the typed user extractor, a CSRF-refused post, "log out everywhere" (the other device
//! is signed out, a login right after is not), and logout.

#[path = "../examples/app.rs"]
#[allow(dead_code, unreachable_pub)]
mod example;

use std::sync::Arc;

use reqwest::Client;
use reqwest::cookie::Jar;
use sealed_session::{Key, KeyRing, SessionCodec, SessionConfig};

/// Serves the example on 127.0.0.1 (a free port) until the returned sender is dropped or used.
async fn serve() -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
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
