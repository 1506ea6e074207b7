//! The holes revocation had, each closed, through the tower layer and the in-memory store (no
//! network): a logout that missed copies taken before a renewal, an entry that expired while
//! the codec still accepted its session, a store anyone could grow, a subject that silently
//! matched nothing, and "log out everywhere" missing sessions of a node whose clock runs ahead.

#![cfg(feature = "axum")]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query as Params, State};
use axum::http::Request;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::routing::get;
use sealed_session::integrations::tower::SessionLayer;
use sealed_session::revocation::{
    BoxFuture, FailurePolicy, MemoryRevocations, Query, Revocation, RevocationStore, RevokeError,
    STAMP_KEY, StoreError, Subject, SubjectError,
};
use sealed_session::{
    Clock as _, Key, KeyRing, ManualClock, RejectReason, Session, SessionCodec, SessionConfig,
    SessionHandle, SessionId,
};
use serde::Serialize;
use tower::ServiceExt as _;

const T0: u64 = 1_800_000_000;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// One hour of absolute lifetime, and an idle timeout as long (so only the absolute expiry
/// matters), one minute of skew.
fn config() -> SessionConfig {
    SessionConfig::builder("app")
        .absolute_timeout(Duration::from_secs(3600))
        .idle_timeout(Duration::from_secs(3600))
        .clock_skew(Duration::from_secs(60))
        .build()
        .expect("a valid configuration")
}

fn codec() -> SessionCodec {
    SessionCodec::new(config(), KeyRing::single(Key::from_bytes([7; 32])))
}

#[derive(Clone)]
struct AppState {
    revocation: Revocation,
    clock: ManualClock,
}

type Form = Params<HashMap<String, String>>;

/// `/login?user=NAME`: renews, stores the user. `/renew`: a new id (privileges changed).
/// `/cart`: writes a value without signing in. `/who`: the user or "". `/logout`: purges.
/// `/forget`: removes the user without purging.
/// `/logout-everywhere`: revokes the user's sessions (at this node's time), then purges.
fn app(revocation: &Revocation, clock: &ManualClock) -> Router {
    async fn login(session: SessionHandle, Params(form): Form) -> &'static str {
        session.renew();
        session.insert("user", &form["user"]).map_or("failed", |()| "in")
    }
    async fn renew(session: SessionHandle) -> &'static str {
        session.renew();
        "renewed"
    }
    async fn cart(session: SessionHandle) -> &'static str {
        session.insert("cart", ["SKU-1"]).map_or("failed", |()| "added")
    }
    async fn who(session: SessionHandle) -> String {
        session.get::<String>("user").ok().flatten().unwrap_or_default()
    }
    async fn logout(session: SessionHandle) -> &'static str {
        session.purge();
        "out"
    }
    // An identity layer that signs out by deleting its keys instead of purging.
    async fn forget(session: SessionHandle) -> &'static str {
        session.with(|session| session.remove_raw("user"));
        "forgotten"
    }
    async fn everywhere(State(state): State<AppState>, session: SessionHandle) -> String {
        let user: String = session.get("user").ok().flatten().unwrap_or_default();
        let now = state.clock.now();
        let config = config();
        match state.revocation.revoke_subject(&user, now, &config).await {
            Ok(()) => {
                session.purge();
                "out everywhere".to_owned()
            }
            Err(error) => error.to_string(),
        }
    }
    // README, "log out my other devices, keep this one": revoke, then replace this session's
    // stamp; the layer stamps it again with the new generation.
    async fn others(State(state): State<AppState>, session: SessionHandle) -> String {
        let user: String = session.get("user").ok().flatten().unwrap_or_default();
        let now = state.clock.now();
        match state.revocation.revoke_subject(&user, now, &config()).await {
            Ok(()) => {
                session.with(|session| session.remove_raw(STAMP_KEY));
                session.renew();
                "others out".to_owned()
            }
            Err(error) => error.to_string(),
        }
    }
    let state = AppState { revocation: revocation.clone(), clock: clock.clone() };
    let layer =
        SessionLayer::new(codec()).with_clock(clock.clone()).with_revocation(revocation.clone());
    Router::new()
        .route("/login", get(login))
        .route("/renew", get(renew))
        .route("/cart", get(cart))
        .route("/who", get(who))
        .route("/logout", get(logout))
        .route("/forget", get(forget))
        .route("/logout-everywhere", get(everywhere))
        .route("/logout-other-devices", get(others))
        .layer(layer)
        .with_state(state)
}

/// Calls `path` with `cookie` (a `name=value` pair, or ""): the body, and the session cookie
/// set, if any.
async fn call(app: &Router, path: &str, cookie: &str) -> (String, Option<String>) {
    let request = Request::get(path).header(COOKIE, cookie).body(Body::empty()).expect("valid");
    let response = app.clone().oneshot(request).await.expect("Router is infallible");
    assert!(response.status().is_success(), "{path}: {}", response.status());
    let set = response.headers().get_all(SET_COOKIE).iter().next().map(|value| {
        let value = value.to_str().expect("ASCII");
        value.split(';').next().expect("a name=value pair").to_owned()
    });
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.expect("a body");
    (String::from_utf8(bytes.to_bytes().to_vec()).expect("UTF-8"), set)
}

async fn login(app: &Router, user: &str) -> String {
    let (body, cookie) = call(app, &format!("/login?user={user}"), "").await;
    assert_eq!(body, "in");
    cookie.expect("a login sets the session cookie")
}

async fn who(app: &Router, cookie: &str) -> String {
    call(app, "/who", cookie).await.0
}

/// The app over an in-memory store, both on a manual clock at T0.
fn memory_app() -> (ManualClock, Router) {
    let clock = ManualClock::new(at(T0));
    let revocation = Revocation::new(MemoryRevocations::with_clock(clock.clone()), "user");
    let app = app(&revocation, &clock);
    (clock, app)
}

/// Hole 2: logout revoked only the current id, so a copy taken before `renew()` (another id)
/// stayed valid. Now the session's lineage, kept across renewals, is revoked.
#[tokio::test]
async fn logout_revokes_copies_taken_before_a_renewal() {
    let (_, app) = memory_app();
    let before_renewal = login(&app, "ada").await;
    let (_, renewed) = call(&app, "/renew", &before_renewal).await;
    let renewed = renewed.expect("a renewal reseals");
    assert_ne!(renewed, before_renewal);
    let other_device = login(&app, "ada").await;
    for cookie in [&before_renewal, &renewed, &other_device] {
        assert_eq!(who(&app, cookie).await, "ada");
    }

    call(&app, "/logout", &renewed).await;
    assert_eq!(who(&app, &renewed).await, "", "the logged-out cookie");
    assert_eq!(who(&app, &before_renewal).await, "", "the copy taken before the renewal");
    assert_eq!(who(&app, &other_device).await, "ada", "another login of the same user");
}

/// Hole 1: the logout's entry expired at the session's absolute expiry, while every node
/// still accepts the session for `clock_skew` after it. Now the entry outlives that.
#[tokio::test]
async fn a_logged_out_copy_stays_revoked_while_the_codec_accepts_it() {
    let clock = ManualClock::new(at(T0));
    let store_clock = clock.clone();
    let revocation = Revocation::new(MemoryRevocations::with_clock(store_clock), "user");
    let app = app(&revocation, &clock);
    let copy = login(&app, "ada").await;
    call(&app, "/logout", &copy).await;

    let expiry = T0 + config().absolute_timeout().as_secs();
    let skew = config().clock_skew().as_secs();
    // The last second the codec accepts the copy: a node whose clock is `skew` behind.
    for now in [T0 + 1, expiry, expiry + skew] {
        clock.set(at(now));
        let opened = codec().open(&copy, at(now));
        assert!(opened.is_ok(), "at {now}: the codec accepts the copy");
        assert_eq!(who(&app, &copy).await, "", "at {now}: the copy is revoked");
    }
}

/// Hole 3: every purged session was recorded, anonymous ones included, so anyone could grow
/// the store with create-and-logout pairs. Now only sessions with a subject are recorded.
#[tokio::test]
async fn anonymous_logouts_record_nothing() {
    let clock = ManualClock::new(at(T0));
    let store = std::sync::Arc::new(MemoryRevocations::with_clock(clock.clone()));
    let test_store = TestStore { store: std::sync::Arc::clone(&store), ..TestStore::default() };
    let revocation = Revocation::new(test_store, "user");
    let app = app(&revocation, &clock);
    for _ in 0..200 {
        let (_, cookie) = call(&app, "/cart", "").await;
        let cookie = cookie.expect("an anonymous session with a cart");
        call(&app, "/logout", &cookie).await;
    }
    assert_eq!(store.len(), 0, "200 anonymous logouts");

    let signed_in = login(&app, "ada").await;
    call(&app, "/logout", &signed_in).await;
    assert_eq!(store.len(), 1, "one logout of a signed-in session");
}

/// An in-memory store shared with the test, to look at its size, and to take down: while
/// `down` is set, every call fails.
#[derive(Default)]
struct TestStore {
    store: std::sync::Arc<MemoryRevocations>,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl TestStore {
    fn answer<'a, T: Send + 'a>(
        &self,
        answer: BoxFuture<'a, Result<T, StoreError>>,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(std::future::ready(Err(StoreError("down".to_owned()))));
        }
        answer
    }
}

impl RevocationStore for TestStore {
    fn is_revoked<'a>(&'a self, query: Query<'a>) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.answer(self.store.is_revoked(query))
    }
    fn try_is_revoked(&self, query: &Query<'_>) -> Option<Result<bool, StoreError>> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        self.store.try_is_revoked(query)
    }
    fn generation(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.answer(self.store.generation())
    }
    fn revoke_lineage<'a>(
        &'a self,
        subject: &'a [u8],
        lineage: SessionId,
        until: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.answer(self.store.revoke_lineage(subject, lineage, until))
    }
    fn revoke_subject<'a>(
        &'a self,
        subject: &'a [u8],
        until: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        self.answer(self.store.revoke_subject(subject, until))
    }
}

#[derive(Serialize)]
struct User {
    id: u64,
    name: &'static str,
}

/// A session of `user`, signed in (stamped) and sealed at T0, as a request brings it back.
async fn signed_in(revocation: &Revocation, user: &User) -> Session {
    let codec = codec();
    let mut session = Session::new();
    session.insert("user", user).expect("a struct encodes");
    revocation.stamp(&mut session).await.expect("the subject has the configured shape");
    let header = codec.seal(&mut session, at(T0)).expect("seals").request_header();
    codec.open(&header, at(T0)).expect("opens")
}

/// Hole 4: with a struct stored under the subject key, `revoke_subject(&user.id)` returned
/// `Ok(())` and revoked nothing. Now a struct subject is named by a field, and every mismatch
/// is an error.
#[tokio::test]
async fn a_struct_subject_is_named_by_a_field_and_mismatches_are_refused() {
    let ada = User { id: 7, name: "ada" };
    let config = config();

    // Configured by field: the id revokes.
    let by_field = Revocation::new(MemoryRevocations::new(), Subject::field("user", "id"));
    let session = signed_in(&by_field, &ada).await;
    assert_eq!(by_field.check(&session).await, Ok(()));
    by_field.revoke_subject(&7u32, at(T0), &config).await.expect("an id");
    assert_eq!(by_field.check(&session).await, Err(RejectReason::Revoked));

    // Passing the struct where an id is expected: refused, whichever way it is configured.
    let whole = Revocation::new(MemoryRevocations::new(), "user");
    for revocation in [&by_field, &whole] {
        let refused = revocation.revoke_subject(&ada, at(T0), &config).await;
        assert!(
            matches!(refused, Err(RevokeError::Subject(SubjectError::NotAnId))),
            "{revocation:?}: {refused:?}"
        );
    }

    // Configured by key while sessions hold a struct: stamping fails, and checking is an
    // error the failure policy decides on, never a silent "not revoked".
    let mut session = Session::new();
    session.insert("user", &ada).expect("a struct encodes");
    let stamped = whole.stamp(&mut session).await;
    assert!(matches!(stamped, Err(RevokeError::Subject(SubjectError::NotAnId))), "{stamped:?}");
    let opened = {
        let codec = codec();
        codec.open(&codec.seal(&mut session, at(T0)).expect("seals").request_header(), at(T0))
    }
    .expect("opens");
    let strict = whole.clone().failure_policy(FailurePolicy::Reject);
    assert_eq!(strict.check(&opened).await, Err(RejectReason::RevocationUnavailable));
    let missing = Revocation::new(MemoryRevocations::new(), Subject::field("user", "email"))
        .failure_policy(FailurePolicy::Reject);
    assert_eq!(missing.check(&opened).await, Err(RejectReason::RevocationUnavailable));
}

/// "Log out everywhere" when the node that issued a session runs 30 s ahead of the node that
/// handles the click: the session is revoked, and a login made right after, on either node,
/// is not.
#[tokio::test]
async fn log_out_everywhere_holds_when_the_issuing_node_runs_ahead() {
    let slow = ManualClock::new(at(T0));
    let fast = ManualClock::new(at(T0 + 30));
    let revocation = Revocation::new(MemoryRevocations::with_clock(slow.clone()), "user");
    let (on_slow, on_fast) = (app(&revocation, &slow), app(&revocation, &fast));
    let from_fast = login(&on_fast, "ada").await;
    let from_slow = login(&on_slow, "ada").await;
    let bob = login(&on_fast, "bob").await;

    let (body, _) = call(&on_slow, "/logout-everywhere", &from_slow).await;
    assert_eq!(body, "out everywhere");
    let after_on_fast = login(&on_fast, "ada").await;
    let after_on_slow = login(&on_slow, "ada").await;

    let table = [
        (&from_fast, "", "issued by the fast node before"),
        (&from_slow, "", "issued by the slow node before"),
        (&after_on_fast, "ada", "a login right after, on the fast node"),
        (&after_on_slow, "ada", "a login right after, on the slow node"),
        (&bob, "bob", "another user"),
    ];
    for (cookie, expected, what) in table {
        for (node, app) in [("slow", &on_slow), ("fast", &on_fast)] {
            assert_eq!(who(app, cookie).await, expected, "{what}, checked on the {node} node");
        }
    }
}

/// "Log out my other devices, keep this one" (issue 16, the README's recipe): every other
/// session of the user, and copies of this one taken before, are revoked; this device stays
/// signed in, and so does a login made after.
#[tokio::test]
async fn log_out_other_devices_keeps_this_one() {
    let (_, app) = memory_app();
    let laptop = login(&app, "ada").await;
    let phone = login(&app, "ada").await;
    let bob = login(&app, "bob").await;

    let (body, kept) = call(&app, "/logout-other-devices", &laptop).await;
    assert_eq!(body, "others out");
    let kept = kept.expect("this device gets a new cookie");
    let later = login(&app, "ada").await;

    let table = [
        (&kept, "ada", "this device, after the click"),
        (&later, "ada", "a login after the click"),
        (&phone, "", "another device"),
        (&laptop, "", "this device's cookie from before the click"),
        (&bob, "bob", "another user"),
    ];
    for (cookie, expected, what) in table {
        assert_eq!(who(&app, cookie).await, expected, "{what}");
    }
}

/// A store that records the times it is given.
#[derive(Default)]
struct Recording {
    untils: Mutex<Vec<u64>>,
}

impl RevocationStore for Recording {
    fn is_revoked<'a>(&'a self, _: Query<'a>) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(std::future::ready(Ok(false)))
    }
    fn generation(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(std::future::ready(Ok(0)))
    }
    fn revoke_lineage<'a>(
        &'a self,
        _: &'a [u8],
        _: SessionId,
        until: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.untils.lock().expect("not poisoned").push(until);
        Box::pin(std::future::ready(Ok(())))
    }
    fn revoke_subject<'a>(
        &'a self,
        _: &'a [u8],
        until: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        self.untils.lock().expect("not poisoned").push(until);
        Box::pin(std::future::ready(Ok(1)))
    }
}

/// Issue 14, item 8: `absolute_timeout + clock_skew` overflowed with huge values (a panic in
/// debug builds, a wrapped, already-past expiry in release). The times saturate now.
#[tokio::test]
async fn huge_timeouts_saturate() {
    let huge = Duration::from_secs(u64::MAX / 2 + 1);
    let store = std::sync::Arc::new(Recording::default());
    struct Via(std::sync::Arc<Recording>);
    impl RevocationStore for Via {
        fn is_revoked<'a>(&'a self, q: Query<'a>) -> BoxFuture<'a, Result<bool, StoreError>> {
            self.0.is_revoked(q)
        }
        fn generation(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
            self.0.generation()
        }
        fn revoke_lineage<'a>(
            &'a self,
            s: &'a [u8],
            l: SessionId,
            u: u64,
        ) -> BoxFuture<'a, Result<(), StoreError>> {
            self.0.revoke_lineage(s, l, u)
        }
        fn revoke_subject<'a>(
            &'a self,
            s: &'a [u8],
            u: u64,
        ) -> BoxFuture<'a, Result<u64, StoreError>> {
            self.0.revoke_subject(s, u)
        }
    }
    let revocation = Revocation::new(Via(std::sync::Arc::clone(&store)), "user");
    let table = [
        (huge, Duration::from_secs(60)),
        (Duration::from_secs(3600), huge),
        (huge, huge),
        (Duration::MAX, Duration::MAX),
    ];
    for (absolute, skew) in table {
        let config = SessionConfig::builder("app")
            .absolute_timeout(absolute)
            .clock_skew(skew)
            .build()
            .expect("a valid configuration");
        revocation.revoke_subject(&"ada", at(T0), &config).await.expect("recorded");
        let untils = std::mem::take(&mut *store.untils.lock().expect("not poisoned"));
        let exact =
            u128::from(T0) + u128::from(absolute.as_secs()) + 2 * u128::from(skew.as_secs());
        let expected = u64::try_from(exact).unwrap_or(u64::MAX);
        assert_eq!(untils, vec![expected], "absolute {absolute:?}, skew {skew:?}");
    }
}

/// A copy renewed before the logout (a route that calls `renew()` reached with the stolen
/// cookie) got a lifetime of its own, starting then: the logout's entry must outlive it. It
/// was kept only until the logged-out session's own end (plus twice the skew), and the
/// renewed copy opened again from then (T0 + 63 min here) until its own end (T0 + 110 min).
#[tokio::test]
async fn a_copy_renewed_before_the_logout_stays_revoked_for_its_whole_lifetime() {
    let (clock, app) = memory_app();
    let victim = login(&app, "ada").await;
    clock.set(at(T0 + 50 * 60));
    let (_, renewed) = call(&app, "/renew", &victim).await;
    let renewed = renewed.expect("a renewal reseals");
    clock.set(at(T0 + 51 * 60));
    call(&app, "/logout", &victim).await;

    let ends = T0 + 50 * 60 + config().absolute_timeout().as_secs();
    let skew = config().clock_skew().as_secs();
    // Minutes after T0, up to the last second the codec accepts the renewed copy.
    for now in [T0 + 62 * 60, T0 + 63 * 60, T0 + 90 * 60, ends, ends + skew] {
        clock.set(at(now));
        assert!(codec().open(&renewed, at(now)).is_ok(), "at {now}: the codec accepts the copy");
        assert_eq!(who(&app, &renewed).await, "", "at T0 + {} s: the renewed copy", now - T0);
    }
}

/// A session signed in without a stamp (sealed before revocation was switched on, here by
/// hand) is checked under its own id as lineage; the layer stamps it at its first change. A
/// logout after that must still cover the copies taken before the stamp. The stamp drew a new
/// lineage, so the logout revoked only that one and the earlier copy stayed signed in.
#[tokio::test]
async fn a_logout_covers_copies_taken_before_the_session_was_first_stamped() {
    let (_, app) = memory_app();
    let mut session = Session::new();
    session.insert("user", "ada").expect("a string encodes");
    let before_stamp = codec().seal(&mut session, at(T0)).expect("seals").request_header();
    assert_eq!(who(&app, &before_stamp).await, "ada");

    let (_, stamped) = call(&app, "/cart", &before_stamp).await;
    let stamped = stamped.expect("the change reseals, stamped");
    call(&app, "/logout", &stamped).await;
    assert_eq!(who(&app, &stamped).await, "", "the logged-out cookie");
    assert_eq!(who(&app, &before_stamp).await, "", "the copy taken before the stamp");
}

/// Under the `Reject` policy a store that cannot answer refuses the session for the request,
/// but it is no verdict on it: the browser keeps its cookies, and they open again once the
/// store answers. The fresh session used to remove them, logging out every signed-in user
/// who made a request during an outage.
#[tokio::test]
async fn an_outage_under_reject_refuses_the_session_but_keeps_its_cookies() {
    let clock = ManualClock::new(at(T0));
    let store = TestStore {
        store: std::sync::Arc::new(MemoryRevocations::with_clock(clock.clone())),
        ..TestStore::default()
    };
    let down = std::sync::Arc::clone(&store.down);
    let revocation = Revocation::new(store, "user").failure_policy(FailurePolicy::Reject);
    let app = app(&revocation, &clock);
    let cookie = login(&app, "ada").await;

    down.store(true, std::sync::atomic::Ordering::SeqCst);
    let (user, set) = call(&app, "/who", &cookie).await;
    assert_eq!(user, "", "refused while the store cannot vouch for it");
    assert_eq!(set, None, "the cookie is kept: nothing is written");
    down.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(who(&app, &cookie).await, "ada", "the same cookie, once the store answers");
}

/// A sign-in ends when its subject changes or goes without a logout (another user signs in on
/// the same browser; an identity layer deletes its keys instead of purging): copies of the
/// session from before must stop opening as the first user, as after a logout. They stayed
/// signed in, outside every logout of that browser. Switching back and forth keeps the
/// browser's own session signed in.
#[tokio::test]
async fn a_sign_in_that_ends_without_a_logout_is_revoked_too() {
    // (case, routes called on the browser's session after the copy was taken, who the
    // browser's session is then, who the copy is then)
    let table: [(&str, &[&str], &str, &str); 4] = [
        ("another user signs in", &["/login?user=bob"], "bob", ""),
        ("the user is removed", &["/forget"], "", ""),
        ("a value changes", &["/cart"], "ada", "ada"),
        ("and back", &["/login?user=bob", "/login?user=ada"], "ada", ""),
    ];
    for (case, routes, browser_is, copy_is) in table {
        let (_, app) = memory_app();
        let copy = login(&app, "ada").await;
        let mut browser = copy.clone();
        for route in routes {
            let (_, set) = call(&app, route, &browser).await;
            browser = set.unwrap_or(browser);
        }
        assert_eq!(who(&app, &browser).await, browser_is, "{case}: the browser's session");
        assert_eq!(who(&app, &copy).await, copy_is, "{case}: the copy taken before");
    }
}
