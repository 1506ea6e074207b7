//! Revocation: the semantics of the in-memory store (always), and the strict Redis store
//! through the adapters against a real `redis-server` (features `redis` and `axum`; the fleet
//! also runs an actix-web node when `actix-web` is on).
//!
//! Each Redis test starts its own `redis-server` (127.0.0.1, a free port, no persistence) and
//! kills it when it ends, failing or not. A missing `redis-server` fails the test, with the
//! command that installs it; it never skips.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sealed_session::revocation::{
    BoxFuture, FailurePolicy, MemoryRevocations, Query, Revocation, RevocationStore, StoreError,
};
use sealed_session::{
    Key, KeyRing, ManualClock, RejectReason, Session, SessionCodec, SessionConfig, SessionId,
};

const T0: u64 = 1_800_000_000;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn id(byte: u8) -> SessionId {
    SessionId([byte; 16])
}

fn query(lineage: SessionId, subject: &[u8], generation: u64) -> Query<'_> {
    Query { lineage, subject, generation }
}

async fn revoked(store: &MemoryRevocations, query: Query<'_>) -> bool {
    store.is_revoked(query).await.expect("the memory store always answers")
}

#[tokio::test]
async fn memory_lineage_revoked_until_its_time_then_forgotten() {
    let clock = ManualClock::new(at(T0));
    let store = MemoryRevocations::with_clock(clock.clone());
    store.revoke_lineage(b"ada", id(1), T0 + 60).await.expect("recorded");
    assert!(revoked(&store, query(id(1), b"ada", 0)).await);
    assert!(!revoked(&store, query(id(2), b"ada", 0)).await, "only that lineage");
    assert!(!revoked(&store, query(id(1), b"bob", 0)).await, "only for that subject");

    clock.set(at(T0 + 60));
    assert!(revoked(&store, query(id(1), b"ada", 0)).await, "until inclusive");
    clock.set(at(T0 + 61));
    assert!(!revoked(&store, query(id(1), b"ada", 0)).await, "expired with the session");
    assert_eq!(store.len(), 1, "expired entries are dropped on the next write");
    store.revoke_lineage(b"bob", id(3), T0 + 120).await.expect("recorded");
    assert_eq!(store.len(), 1, "the expired entry was dropped");
}

#[tokio::test]
async fn memory_subject_revokes_smaller_generations() {
    let clock = ManualClock::new(at(T0));
    let store = MemoryRevocations::with_clock(clock.clone());
    assert_eq!(store.generation().await.expect("answers"), 0);
    let generation = store.revoke_subject(b"ada", T0 + 3600).await.expect("recorded");
    assert!(generation >= T0 * 1_000_000, "from the store's clock, in microseconds");
    assert_eq!(store.generation().await.expect("answers"), generation);

    let table: [(&[u8], u64, bool, &str); 5] = [
        (b"ada", 0, true, "never stamped"),
        (b"ada", generation - 1, true, "signed in before"),
        (b"ada", generation, false, "signed in after"),
        (b"bob", 0, false, "another subject"),
        (b"ada", u64::MAX, false, "a later generation"),
    ];
    for (subject, stamped, expected, what) in table {
        assert_eq!(revoked(&store, query(id(1), subject, stamped)).await, expected, "{what}");
    }
    clock.set(at(T0 + 3601));
    assert!(!revoked(&store, query(id(1), b"ada", 0)).await, "entry expired");
}

#[tokio::test]
async fn memory_generations_grow_and_keep_the_later_time() {
    let clock = ManualClock::new(at(T0));
    let store = MemoryRevocations::with_clock(clock.clone());
    let first = store.revoke_subject(b"ada", T0 + 100).await.expect("recorded");
    // The same microsecond, a shorter entry: a greater generation, the later time kept.
    let second = store.revoke_subject(b"ada", T0 + 50).await.expect("recorded");
    assert!(second > first, "{second} > {first}");
    assert!(revoked(&store, query(id(1), b"ada", first)).await);
    clock.set(at(T0 + 80));
    assert!(revoked(&store, query(id(1), b"ada", first)).await, "the later time");
    assert_eq!(store.len(), 1);
}

/// A store that records what it is asked to write and answers checks with `answer`.
#[derive(Default)]
struct Recording {
    answer: Option<bool>,
    subjects: Mutex<Vec<(Vec<u8>, u64)>>,
}

impl RevocationStore for Recording {
    fn is_revoked<'a>(&'a self, _: Query<'a>) -> BoxFuture<'a, Result<bool, StoreError>> {
        let answer = self.answer.ok_or_else(|| StoreError("down".to_owned()));
        Box::pin(std::future::ready(answer))
    }

    fn generation(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(std::future::ready(Ok(0)))
    }

    fn revoke_lineage<'a>(
        &'a self,
        _: &'a [u8],
        _: SessionId,
        _: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn revoke_subject<'a>(
        &'a self,
        subject: &'a [u8],
        until: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        self.subjects.lock().expect("not poisoned").push((subject.to_vec(), until));
        Box::pin(std::future::ready(Ok(1)))
    }
}

/// A store whose checks fail, with the policy given, as a [`Revocation`].
fn failing(policy: FailurePolicy) -> Revocation {
    Revocation::new(Recording::default(), "user").failure_policy(policy)
}

/// A session of `user`, stamped by `revocation` and sealed at `now`, as a request brings it.
async fn sealed_session(
    codec: &SessionCodec,
    revocation: &Revocation,
    user: &str,
    now: SystemTime,
) -> Session {
    let mut session = Session::new();
    session.insert("user", user).expect("a string encodes");
    revocation.stamp(&mut session).await.expect("a string subject");
    let header = codec.seal(&mut session, now).expect("seals").request_header();
    codec.open(&header, now).expect("opens")
}

fn test_codec() -> SessionCodec {
    SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::from_bytes([7; 32])))
}

#[tokio::test]
async fn failure_policy_decides_when_the_store_cannot_answer() {
    let codec = test_codec();
    let session = sealed_session(&codec, &failing(FailurePolicy::Accept), "ada", at(T0)).await;
    assert_eq!(failing(FailurePolicy::default()).policy(), FailurePolicy::Accept);
    assert_eq!(failing(FailurePolicy::Accept).check(&session).await, Ok(()));
    assert_eq!(
        failing(FailurePolicy::Reject).check(&session).await,
        Err(RejectReason::RevocationUnavailable)
    );
    // A new session (never sealed), or one without a subject, is not looked up at all.
    assert_eq!(failing(FailurePolicy::Reject).check(&Session::new()).await, Ok(()));
    let mut anonymous = Session::new();
    anonymous.insert("cart", ["SKU-1"]).expect("encodes");
    let header = codec.seal(&mut anonymous, at(T0)).expect("seals").request_header();
    let anonymous = codec.open(&header, at(T0)).expect("opens");
    assert_eq!(failing(FailurePolicy::Reject).check(&anonymous).await, Ok(()));
}

#[tokio::test]
async fn revoke_subject_keeps_the_entry_for_the_absolute_timeout_and_twice_the_skew() {
    let store = Arc::new(Recording { answer: Some(false), ..Recording::default() });
    struct Shared(Arc<Recording>);
    impl RevocationStore for Shared {
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
    let config = SessionConfig::default();
    let revocation = Revocation::new(Shared(Arc::clone(&store)), "user");
    revocation.revoke_subject(&"ada", at(T0), &config).await.expect("recorded");
    let subjects = store.subjects.lock().expect("not poisoned").clone();
    let until = T0 + config.absolute_timeout().as_secs() + 2 * config.clock_skew().as_secs();
    let subject = rmp_serde::to_vec_named(&"ada").expect("a string encodes");
    assert_eq!(subjects, vec![(subject, until)]);
}

#[tokio::test]
async fn memory_store_through_revocation_end_to_end() {
    let codec = test_codec();
    let clock = ManualClock::new(at(T0));
    let revocation = Revocation::new(MemoryRevocations::with_clock(clock.clone()), "user");
    let old = sealed_session(&codec, &revocation, "ada", at(T0 - 30)).await;
    let bob = sealed_session(&codec, &revocation, "bob", at(T0 - 30)).await;

    revocation.revoke_subject(&"ada", at(T0), codec.config()).await.expect("recorded");
    assert_eq!(revocation.check(&old).await, Err(RejectReason::Revoked));
    assert_eq!(revocation.check(&bob).await, Ok(()));
    // Signed in right after, in the same second: not revoked.
    let next = sealed_session(&codec, &revocation, "ada", at(T0)).await;
    assert_eq!(revocation.check(&next).await, Ok(()), "a login right after is new");

    let mut logout = bob.clone();
    logout.purge();
    revocation.revoke_purged(&logout, codec.config()).await.expect("recorded");
    assert_eq!(revocation.check(&bob).await, Err(RejectReason::Revoked));
}

#[cfg(all(feature = "redis", feature = "axum"))]
#[path = "common/servers.rs"]
mod servers;

#[cfg(all(feature = "redis", feature = "axum"))]
#[path = "common/redis_server.rs"]
mod redis_server;

#[cfg(all(feature = "redis", feature = "axum"))]
#[path = "common/revoking.rs"]
mod revoking;

#[cfg(all(feature = "redis", feature = "axum"))]
mod redis {
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};

    use reqwest::cookie::{CookieStore as _, Jar};
    use reqwest::header::COOKIE;
    use reqwest::{Client, Url};
    use sealed_session::revocation::{
        DEFAULT_KEY_PREFIX, FailurePolicy, Query, RedisRevocations, Revocation, RevocationStore,
    };
    use sealed_session::{
        Key, KeyRing, ManualClock, Session, SessionCodec, SessionConfig, SessionId,
    };
    use serde_json::Value;

    use crate::redis_server::RedisServer;
    use crate::revoking::{Adapter, MakeRevocation, Node};
    use crate::servers::TestServer as _;

    /// A request to a node whose store is down must still answer within this: a hang check,
    /// not a speed target (the store's own bound is 200 ms by default).
    const BOUND: Duration = Duration::from_secs(2);

    fn config() -> SessionConfig {
        SessionConfig::builder("app").build().expect("a valid configuration")
    }

    /// Every node of a fleet seals with the same ring.
    fn codec() -> SessionCodec {
        SessionCodec::new(config(), KeyRing::single(Key::from_bytes([42; 32])))
    }

    /// The wall clock, in whole seconds: Redis expires keys by its own (real) clock.
    fn real_now() -> SystemTime {
        let secs =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("after 1970").as_secs();
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn unix(time: SystemTime) -> u64 {
        time.duration_since(SystemTime::UNIX_EPOCH).expect("after 1970").as_secs()
    }

    fn redis_revocation(url: String, policy: FailurePolicy) -> MakeRevocation {
        Box::new(move || {
            let store = RedisRevocations::new(&url).expect("a valid URL, inside a runtime");
            Revocation::new(store, "user").failure_policy(policy)
        })
    }

    /// A raw connection, to look at the keys the store wrote.
    fn raw(server: &RedisServer) -> redis::Connection {
        let client = redis::Client::open(server.url()).expect("a valid URL");
        client.get_connection().expect("connecting to the test's redis-server")
    }

    /// A browser: a client with a cookie jar. The jar keys cookies by host, not port, so one
    /// browser talks to every node of a fleet with the same cookies, as behind a load balancer.
    struct Browser {
        client: Client,
        jar: Arc<Jar>,
    }

    impl Browser {
        fn new() -> Browser {
            let jar = Arc::new(Jar::default());
            let client = Client::builder()
                .cookie_provider(Arc::clone(&jar))
                .no_proxy()
                .build()
                .expect("a reqwest client");
            Browser { client, jar }
        }

        async fn post(&self, node: &Node, path: &str) -> (u16, String) {
            let response = self.client.post(node.url(path)).send().await.expect("the node answers");
            let status = response.status().as_u16();
            (status, response.text().await.expect("a body"))
        }

        async fn login(&self, node: &Node, user: &str) {
            let (status, body) = self.post(node, &format!("/login?user={user}")).await;
            assert_eq!((status, body.as_str()), (200, "logged in"), "login on {:?}", node.adapter);
        }

        async fn whoami(&self, node: &Node) -> Value {
            let response =
                self.client.get(node.url("/whoami")).send().await.expect("the node answers");
            assert_eq!(response.status(), 200);
            serde_json::from_str(&response.text().await.expect("a body")).expect("JSON")
        }

        /// The Cookie header this browser sends to `node`: what a thief copies.
        fn cookie_header(&self, node: &Node) -> String {
            let url = Url::parse(&node.url("/")).expect("a URL");
            let header = self.jar.cookies(&url).expect("the browser holds cookies");
            header.to_str().expect("ASCII").to_owned()
        }
    }

    /// `GET /whoami` with `cookies` and no jar (a replayed copy): the user it sees, and how
    /// long the request took.
    async fn replay(node: &Node, cookies: &str) -> (Option<String>, Duration) {
        let client = Client::builder().no_proxy().build().expect("a reqwest client");
        let started = Instant::now();
        let response = client
            .get(node.url("/whoami"))
            .header(COOKIE, cookies)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("the node answers");
        assert_eq!(response.status(), 200, "{:?}", node.adapter);
        let body: Value =
            serde_json::from_str(&response.text().await.expect("a body")).expect("a JSON body");
        (body["user"].as_str().map(str::to_owned), started.elapsed())
    }

    async fn user_seen(node: &Node, cookies: &str) -> Option<String> {
        replay(node, cookies).await.0
    }

    /// (a) Logout revokes: a copy of the cookies taken before logout is a fresh, anonymous
    /// session afterwards, on each adapter.
    #[tokio::test]
    async fn copied_cookie_replayed_after_logout_is_rejected() {
        let redis = RedisServer::start();
        for adapter in Adapter::all() {
            let clock = ManualClock::new(real_now());
            let make = redis_revocation(redis.url(), FailurePolicy::Accept);
            let node = Node::start(adapter, codec(), clock.clone(), make);
            let browser = Browser::new();
            browser.login(&node, "ada").await;
            let copy = browser.cookie_header(&node);
            assert_eq!(user_seen(&node, &copy).await.as_deref(), Some("ada"), "{adapter:?}");

            assert_eq!(browser.post(&node, "/logout").await, (200, "logged out".to_owned()));
            assert_eq!(browser.whoami(&node).await["user"], Value::Null, "{adapter:?}");
            assert_eq!(user_seen(&node, &copy).await, None, "{adapter:?}: replayed after logout");
            let pattern = format!("{DEFAULT_KEY_PREFIX}sub:*");
            let keys: Vec<String> =
                redis::cmd("KEYS").arg(&pattern).query(&mut raw(&redis)).expect("KEYS");
            assert_eq!(keys.len(), 1, "{adapter:?}: ada's key: {keys:?}");
            let fields: Vec<String> =
                redis::cmd("HKEYS").arg(&keys[0]).query(&mut raw(&redis)).expect("HKEYS");
            assert!(fields.iter().any(|f| f.starts_with("l:")), "{adapter:?}: {fields:?}");
            node.stop().await;
        }
    }

    /// The gap (a) closes: without revocation, the same replay is accepted.
    #[tokio::test]
    async fn without_revocation_the_replay_is_accepted() {
        let clock = ManualClock::new(real_now());
        let server = crate::servers::Axum::start(codec(), clock);
        let jar = Arc::new(Jar::default());
        let client =
            Client::builder().cookie_provider(jar.clone()).no_proxy().build().expect("a client");
        client.post(server.url("/login?user=ada")).send().await.expect("login");
        let url = Url::parse(&server.url("/")).expect("a URL");
        let copy = jar.cookies(&url).expect("cookies").to_str().expect("ASCII").to_owned();
        client.post(server.url("/logout")).send().await.expect("logout");
        let plain = Client::builder().no_proxy().build().expect("a client");
        let response =
            plain.get(server.url("/whoami")).header(COOKIE, copy).send().await.expect("answers");
        let body: Value =
            serde_json::from_str(&response.text().await.expect("a body")).expect("JSON");
        assert_eq!(body["user"], "ada", "a stateless session outlives logout without revocation");
        server.stop().await;
    }

    /// The adapters of a three-node fleet, mixing adapters when both are built.
    fn fleet_adapters() -> [Adapter; 3] {
        let all = Adapter::all();
        [all[0], all[all.len() - 1], all[0]]
    }

    /// (b) "Log out everywhere" on one node rejects every earlier session of the subject on
    /// every node; other subjects and a later login are unaffected.
    #[tokio::test]
    async fn log_out_everywhere_reaches_every_node() {
        let redis = RedisServer::start();
        let clock = ManualClock::new(real_now() - Duration::from_secs(3600));
        let nodes: Vec<Node> = fleet_adapters()
            .into_iter()
            .map(|adapter| {
                let make = redis_revocation(redis.url(), FailurePolicy::Reject);
                Node::start(adapter, codec(), clock.clone(), make)
            })
            .collect();

        // Ada logs in on three devices, one per node, minutes apart; Bob on one.
        let mut ada = Vec::new();
        for node in &nodes {
            let device = Browser::new();
            device.login(node, "ada").await;
            ada.push(device.cookie_header(node));
            clock.advance(Duration::from_secs(300));
        }
        let bob = Browser::new();
        bob.login(&nodes[1], "bob").await;
        let bob = bob.cookie_header(&nodes[1]);
        for node in &nodes {
            for copy in &ada {
                assert_eq!(user_seen(node, copy).await.as_deref(), Some("ada"));
            }
        }

        // From a fourth device, on the middle node.
        let device = Browser::new();
        device.login(&nodes[1], "ada").await;
        ada.push(device.cookie_header(&nodes[1]));
        let (status, body) = device.post(&nodes[1], "/logout-everywhere").await;
        assert_eq!((status, body.as_str()), (200, "logged out everywhere"));

        for (n, node) in nodes.iter().enumerate() {
            for (d, copy) in ada.iter().enumerate() {
                let seen = user_seen(node, copy).await;
                assert_eq!(seen, None, "ada's device {d} on node {n} ({:?})", node.adapter);
            }
            assert_eq!(user_seen(node, &bob).await.as_deref(), Some("bob"), "node {n}");
            assert_eq!(device.whoami(node).await["user"], Value::Null, "node {n}");
        }

        // A login right after, in the same second, is new.
        let again = Browser::new();
        again.login(&nodes[2], "ada").await;
        let fresh = again.cookie_header(&nodes[2]);
        for (n, node) in nodes.iter().enumerate() {
            assert_eq!(user_seen(node, &fresh).await.as_deref(), Some("ada"), "node {n}");
            assert_eq!(user_seen(node, &ada[0]).await, None, "node {n}: still revoked");
        }
        for node in nodes {
            node.stop().await;
        }
    }

    /// The replicated store through the adapters: a logout on one node of a mixed fleet
    /// reaches the others (polled: propagation takes milliseconds), a later login does not.
    #[tokio::test]
    async fn the_replicated_store_through_the_adapters() {
        use sealed_session::revocation::ReplicatedRevocations;

        let redis = RedisServer::start();
        let clock = ManualClock::new(real_now());
        let nodes: Vec<Node> = fleet_adapters()
            .into_iter()
            .map(|adapter| {
                let url = redis.url();
                let make: MakeRevocation = Box::new(move || {
                    let store = ReplicatedRevocations::new(&url).expect("a URL, in a runtime");
                    Revocation::new(store, "user").failure_policy(FailurePolicy::Accept)
                });
                Node::start(adapter, codec(), clock.clone(), make)
            })
            .collect();
        let browser = Browser::new();
        browser.login(&nodes[0], "ada").await;
        let copy = browser.cookie_header(&nodes[0]);
        for node in &nodes {
            assert_eq!(user_seen(node, &copy).await.as_deref(), Some("ada"), "{:?}", node.adapter);
        }
        assert_eq!(browser.post(&nodes[1], "/logout").await, (200, "logged out".to_owned()));
        let started = Instant::now();
        for (n, node) in nodes.iter().enumerate() {
            while user_seen(node, &copy).await.is_some() {
                assert!(started.elapsed() < Duration::from_secs(10), "node {n} still accepts");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let again = Browser::new();
        again.login(&nodes[2], "ada").await;
        let fresh = again.cookie_header(&nodes[2]);
        for node in &nodes {
            assert_eq!(user_seen(node, &fresh).await.as_deref(), Some("ada"), "{:?}", node.adapter);
        }
        for node in nodes {
            node.stop().await;
        }
    }

    /// Logs in, then checks the session is accepted by `accept` and `reject`, each request
    /// within [`BOUND`]; returns the copy of the cookies.
    async fn expect_outcome(accept: &Node, reject: &Node, cookies: &str, phase: &str) {
        for _ in 0..3 {
            let (seen, took) = replay(accept, cookies).await;
            assert!(took < BOUND, "{phase}: accept-policy request took {took:?}");
            assert_eq!(seen.as_deref(), Some("ada"), "{phase}: policy Accept accepts");
            let (seen, took) = replay(reject, cookies).await;
            assert!(took < BOUND, "{phase}: reject-policy request took {took:?}");
            assert_eq!(seen, None, "{phase}: policy Reject rejects");
        }
    }

    /// Polls until the reject-policy node accepts the session again (Redis is back).
    async fn wait_for_recovery(reject: &Node, cookies: &str, phase: &str) {
        let started = Instant::now();
        loop {
            let (seen, took) = replay(reject, cookies).await;
            assert!(took < BOUND, "{phase}: request took {took:?}");
            if seen.as_deref() == Some("ada") {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{phase}: no recovery in 10 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// (c) Redis hangs, then dies, mid-test: each policy does what it says, every request
    /// answers within [`BOUND`], and the store reconnects when Redis is back.
    #[tokio::test]
    async fn store_outage_follows_the_failure_policy_without_hanging() {
        let mut redis = RedisServer::start();
        let port = redis.port();
        let clock = ManualClock::new(real_now());
        let adapters = fleet_adapters();
        let make = |policy| redis_revocation(redis.url(), policy);
        let accept = Node::start(adapters[0], codec(), clock.clone(), make(FailurePolicy::Accept));
        let reject = Node::start(adapters[1], codec(), clock.clone(), make(FailurePolicy::Reject));
        let browser = Browser::new();
        browser.login(&accept, "ada").await;
        let copy = browser.cookie_header(&accept);
        assert_eq!(user_seen(&accept, &copy).await.as_deref(), Some("ada"));
        assert_eq!(user_seen(&reject, &copy).await.as_deref(), Some("ada"), "Redis is up");

        // Hung: connections stay open, nothing is answered (the response timeout).
        redis.pause();
        expect_outcome(&accept, &reject, &copy, "Redis paused").await;
        redis.resume();
        wait_for_recovery(&reject, &copy, "Redis resumed").await;

        // Dead: connections closed, new ones refused.
        redis.stop();
        expect_outcome(&accept, &reject, &copy, "Redis stopped").await;
        // Logging out still answers at once; only the revocation is lost (and logged).
        let started = Instant::now();
        assert_eq!(browser.post(&accept, "/logout").await, (200, "logged out".to_owned()));
        assert!(started.elapsed() < BOUND, "logout took {:?}", started.elapsed());
        assert_eq!(browser.whoami(&accept).await["user"], Value::Null, "this browser is out");

        // Back on the same port (empty: no persistence): the nodes reconnect on their own.
        let _redis = RedisServer::start_on(port).expect("the port is still free");
        wait_for_recovery(&reject, &copy, "Redis restarted").await;
        accept.stop().await;
        reject.stop().await;
    }

    /// (d) Entries expire when the sessions they concern would have, by Redis's own expiry,
    /// and only grow: the larger generation, the later time.
    #[tokio::test]
    async fn entries_expire_with_the_sessions_they_concern() {
        let redis = RedisServer::start();
        let mut raw = raw(&redis);
        let store = RedisRevocations::builder().prefix("t:").build(&redis.url()).expect("a store");
        store.ping().await.expect("Redis answers");
        let ttl = |raw: &mut redis::Connection, key: &str| -> i64 {
            redis::cmd("TTL").arg(key).query(raw).expect("TTL")
        };
        let field = |raw: &mut redis::Connection, key: &str, field: &str| -> Option<String> {
            redis::cmd("HGET").arg(key).arg(field).query(raw).expect("HGET")
        };
        let config = config();
        let absolute = config.absolute_timeout().as_secs() as i64;
        let skew = config.clock_skew().as_secs() as i64;
        let codec = codec();
        let now = real_now();
        let revocation = Revocation::new(store.clone(), "user");
        let subject = rmp_serde::to_vec_named(&"ada").expect("a string encodes");
        let key = store.subject_key(&subject);
        assert!(key.starts_with("t:sub:{") && key.len() == "t:sub:{}".len() + 64, "{key}");

        // Logout: the lineage, until the session's absolute expiry and twice the skew.
        let mut session = Session::new();
        session.insert("user", "ada").expect("a string encodes");
        revocation.stamp(&mut session).await.expect("stamped");
        let header = codec.seal(&mut session, now).expect("seals").request_header();
        let mut opened = codec.open(&header, now).expect("opens");
        opened.purge();
        revocation.revoke_purged(&opened, &config).await.expect("recorded");
        let full = absolute + 2 * skew;
        let left = ttl(&mut raw, &key);
        assert!((full - 10..=full).contains(&left), "TTL {left}, expected about {full}");

        // Log out everywhere: a generation, kept as long.
        revocation.revoke_subject(&"ada", now, &config).await.expect("recorded");
        let first = field(&mut raw, &key, "g").expect("recorded");
        let (generation, until) = first.split_once(' ').expect("generation until");
        let generation: u64 = generation.parse().expect("a number");
        assert_eq!(until.parse::<u64>().expect("a number"), unix(now) + full as u64);
        assert_eq!(store.generation().await.expect("answers"), generation);

        // Earlier and shorter: a greater generation, the later time kept.
        let earlier = now - Duration::from_secs(600);
        revocation.revoke_subject(&"ada", earlier, &config).await.expect("recorded");
        let second = field(&mut raw, &key, "g").expect("recorded");
        let (later, kept) = second.split_once(' ').expect("generation until");
        assert!(later.parse::<u64>().expect("a number") > generation, "{first} then {second}");
        assert_eq!(kept, until, "the later time is kept");
        let left = ttl(&mut raw, &key);
        assert!((full - 10..=full).contains(&left), "the later expiry is kept: TTL {left}");

        // And they do go away.
        let soon = unix(real_now()) + 1;
        store.revoke_lineage(b"\xa3bob", SessionId([1; 16]), soon).await.expect("recorded");
        let bob = store.subject_key(b"\xa3bob");
        let started = Instant::now();
        while field(&mut raw, &bob, "l:01010101010101010101010101010101").is_some() {
            assert!(started.elapsed() < Duration::from_secs(5), "the entry never expired");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A check is one round trip on one key: one `HMGET`, nothing else (so it works on a
    /// Redis Cluster).
    #[tokio::test]
    async fn a_check_is_one_hmget() {
        let redis = RedisServer::start();
        let mut raw = raw(&redis);
        let store = RedisRevocations::new(&redis.url()).expect("a store");
        store.ping().await.expect("connected");
        let () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut raw).expect("RESETSTAT");
        let query = Query { lineage: SessionId([3; 16]), subject: b"\xa3ada", generation: 10 };
        assert!(!store.is_revoked(query).await.expect("answers"));
        let stats: String =
            redis::cmd("INFO").arg("commandstats").query(&mut raw).expect("INFO commandstats");
        let commands: Vec<&str> = stats
            .lines()
            .filter_map(|line| line.strip_prefix("cmdstat_"))
            .filter(|line| !line.starts_with("config|") && !line.starts_with("info:"))
            .collect();
        assert_eq!(commands.len(), 1, "{commands:?}");
        assert!(commands[0].starts_with("hmget:calls=1,"), "{commands:?}");
        assert_eq!(store.prefix(), DEFAULT_KEY_PREFIX);
    }

    /// The generation counter lost while a subject's "log out everywhere" stays (a shard
    /// restarted empty, an eviction, a stray `DEL`): new sign-ins were stamped 0, below the
    /// revocation, and refused one login after another until the next "log out everywhere"
    /// anywhere. The counter now starts again at Redis's clock.
    #[tokio::test]
    async fn a_lost_generation_counter_does_not_refuse_new_sign_ins() {
        let redis = RedisServer::start();
        let mut raw = raw(&redis);
        let codec = codec();
        let store = RedisRevocations::new(&redis.url()).expect("a store");
        let revocation = Revocation::new(store, "user");
        let now = real_now();
        revocation.revoke_subject(&"ada", now, codec.config()).await.expect("recorded");
        let key = format!("{DEFAULT_KEY_PREFIX}gen");
        let deleted: u64 = redis::cmd("DEL").arg(&key).query(&mut raw).expect("DEL");
        assert_eq!(deleted, 1, "the counter was there");
        for login in 1..=3 {
            let mut session = Session::new();
            session.insert("user", "ada").expect("a string encodes");
            revocation.stamp(&mut session).await.expect("stamped");
            let header = codec.seal(&mut session, now).expect("seals").request_header();
            let opened = codec.open(&header, now).expect("opens");
            assert_eq!(revocation.check(&opened).await, Ok(()), "login {login} after the loss");
        }
    }

    /// Store-level failures are errors within the bound: refused, silent, misconfigured.
    #[tokio::test]
    async fn store_failures_are_errors_not_hangs() {
        // Refused: a port nothing listens on.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("an address").port()
        };
        let refused = RedisRevocations::new(&format!("redis://127.0.0.1:{port}/")).expect("lazy");
        // Silent: accepts connections, never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let silent_url = format!("redis://{}/", silent.local_addr().expect("an address"));
        let accepting = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                held.push(stream);
            }
        });
        let silent = RedisRevocations::builder()
            .timeout(Duration::from_millis(50))
            .build(&silent_url)
            .expect("lazy");

        for (name, store) in [("refused", &refused), ("silent", &silent)] {
            for _ in 0..3 {
                let started = Instant::now();
                let query =
                    Query { lineage: SessionId([4; 16]), subject: b"\xa3ada", generation: 1 };
                let error = store.is_revoked(query).await.expect_err(name);
                let took = started.elapsed();
                assert!(took < BOUND, "{name}: {took:?} ({error})");
                store
                    .revoke_lineage(b"x", SessionId([4; 16]), 2_000_000_000)
                    .await
                    .expect_err(name);
                store.revoke_subject(b"x", 2_000_000_000).await.expect_err(name);
                store.generation().await.expect_err(name);
                store.ping().await.expect_err(name);
            }
        }
        accepting.abort();

        let error = RedisRevocations::new("not a url").expect_err("an invalid URL");
        assert!(!error.to_string().contains("not a url"), "{error}");
        let url_with_password = "redis://:hunter2@127.0.0.1:1/";
        let store = RedisRevocations::new(url_with_password).expect("lazy");
        assert!(!format!("{store:?}").contains("hunter2"), "{store:?}");
    }

    #[test]
    fn creating_outside_a_runtime_is_an_error() {
        let error = RedisRevocations::new("redis://127.0.0.1:6379/").expect_err("no runtime");
        assert!(error.to_string().contains("tokio runtime"), "{error}");
    }

    /// The subject's key hashes the subject: no user id appears in Redis.
    #[tokio::test]
    async fn keys_do_not_reveal_the_subject() {
        let redis = RedisServer::start();
        let store = RedisRevocations::new(&redis.url()).expect("a store");
        let revocation = Revocation::new(store, "user");
        revocation.revoke_subject(&"ada@example.com", real_now(), &config()).await.expect("ok");
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut raw(&redis)).expect("KEYS");
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert_eq!(keys[0], "sealed-session:gen", "{keys:?}");
        assert!(keys[1].starts_with("sealed-session:sub:"), "{keys:?}");
        assert!(!keys[1].contains("ada"), "{keys:?}");
    }
}

#[tokio::test]
async fn the_memory_store_answers_without_waiting_and_agrees_with_check() {
    let codec = test_codec();
    let clock = ManualClock::new(at(T0));
    let revocation = Revocation::new(MemoryRevocations::with_clock(clock.clone()), "user");
    let ada = sealed_session(&codec, &revocation, "ada", at(T0)).await;
    let bob = sealed_session(&codec, &revocation, "bob", at(T0)).await;
    revocation.revoke_subject(&"ada", at(T0), codec.config()).await.expect("recorded");
    for session in [&ada, &bob, &Session::new()] {
        let now = revocation.try_check(session).expect("the memory store answers at once");
        assert_eq!(now, revocation.check(session).await);
    }
    assert_eq!(revocation.try_check(&ada), Some(Err(RejectReason::Revoked)));
    assert_eq!(revocation.try_check(&bob), Some(Ok(())));
}

#[tokio::test]
async fn a_store_without_an_immediate_answer_is_asked_asynchronously() {
    let codec = test_codec();
    let store = Recording { answer: Some(true), ..Recording::default() };
    let revocation = Revocation::new(store, "user");
    let session = sealed_session(&codec, &revocation, "ada", at(T0)).await;
    assert_eq!(revocation.try_check(&session), None, "the default: no answer without waiting");
    assert_eq!(revocation.check(&session).await, Err(RejectReason::Revoked));
    // A new session needs no store at all.
    assert_eq!(revocation.try_check(&Session::new()), Some(Ok(())));
}

/// Through the tower layer with the in-memory store, which answers without waiting: the layer
/// then checks without a boxed future, and a logout, which has to record the revocation,
/// switches to one. A copy of the cookies taken before the logout must be refused after it.
#[cfg(feature = "axum")]
#[tokio::test]
async fn tower_layer_with_the_memory_store_revokes_at_logout() {
    use axum::Router;
    use axum::body::Body;
    use axum::http::header::{COOKIE, SET_COOKIE};
    use axum::http::{Request, Response};
    use axum::routing::get;
    use sealed_session::SessionHandle;
    use sealed_session::integrations::tower::SessionLayer;
    use tower::ServiceExt as _;

    let codec = test_codec();
    let clock = ManualClock::new(at(T0));
    let revocation = Revocation::new(MemoryRevocations::with_clock(clock.clone()), "user");
    let app = Router::new()
        .route(
            "/login",
            get(|s: SessionHandle| async move {
                s.insert("user", "ada").map(|()| "in").unwrap_or("failed")
            }),
        )
        .route(
            "/logout",
            get(|s: SessionHandle| async move {
                s.purge();
                "out"
            }),
        )
        .route(
            "/who",
            get(|s: SessionHandle| async move {
                s.get::<String>("user").ok().flatten().unwrap_or_default()
            }),
        )
        .layer(SessionLayer::new(codec).with_clock(clock.clone()).with_revocation(revocation))
        .with_state(());
    let call = |path: &'static str, cookie: String| {
        let app = app.clone();
        async move {
            let request = Request::get(path).header(COOKIE, cookie).body(Body::empty()).unwrap();
            app.oneshot(request).await.expect("Router is infallible")
        }
    };
    let cookie_of = |response: &Response<Body>| {
        let values: Vec<_> = response.headers().get_all(SET_COOKIE).iter().collect();
        assert_eq!(values.len(), 1, "one session cookie");
        values[0].to_str().unwrap().split(';').next().unwrap().to_owned()
    };
    let body = |response: Response<Body>| async move {
        let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap();
        String::from_utf8(bytes.to_bytes().to_vec()).unwrap()
    };

    let copied = cookie_of(&call("/login", String::new()).await);
    assert_eq!(body(call("/who", copied.clone()).await).await, "ada");
    let logout = call("/logout", copied.clone()).await;
    assert!(logout.status().is_success());
    assert!(cookie_of(&logout).contains("__Host-session="), "the logout removes the cookie");
    // The copy taken before the logout is now refused: a fresh, empty session.
    assert_eq!(body(call("/who", copied).await).await, "");
}
