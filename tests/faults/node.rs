//! One node of the fleet, as its own process: the test binary started again with
//! [`NODE_ENV`] set. It runs one `ReplicatedRevocations` and answers a line protocol on
//! stdin/stdout (one request a line, one answer a line; words separated by spaces):
//!
//! | request | answer |
//! |---|---|
//! | `login USER...` | `ok HEADER...`: a signed-in session of each user, its `Cookie` header |
//! | `logout HEADER...` | `ok`, once every session is logged out (`revoke_purged`) |
//! | `everywhere USER...` | `ok`, once each user is logged out everywhere (`revoke_subject`) |
//! | `check HEADER...` | `CURRENT_BEFORE CURRENT_AFTER VERDICT...` (`1`/`0`; verdicts below) |
//! | `status` | `CURRENT ENTRIES QUEUED` |
//!
//! A verdict is `ok` (not revoked), `revoked`, `refused` (the store could not answer:
//! refused by `FailurePolicy::Reject`), `accepted` (the same, accepted by
//! `FailurePolicy::Accept`) or `invalid` (the cookie did not open). A failed call answers
//! `error MESSAGE`. Headers have their spaces replaced by `+` (cookie values never hold one).
//!
//! The node exits when its stdin closes, so a test that dies leaves no node behind.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use sealed_session::revocation::{FailurePolicy, ReplicatedRevocations, Revocation};
use sealed_session::{Key, KeyRing, RejectReason, Session, SessionCodec, SessionConfig};

/// Set to the Redis URL: this process is a node, not the test.
pub const NODE_ENV: &str = "SEALED_SESSION_FAULTS_NODE";

/// How one node is configured (passed through its environment).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub url: String,
    pub policy: FailurePolicy,
    pub staleness: Duration,
    pub max_entries: usize,
    pub snapshot: Option<PathBuf>,
    pub prefix: String,
}

impl NodeConfig {
    /// The environment a node process reads its configuration from.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let policy = match self.policy {
            FailurePolicy::Accept => "accept",
            FailurePolicy::Reject => "reject",
        };
        let mut env = vec![
            (NODE_ENV, self.url.clone()),
            ("FAULTS_POLICY", policy.to_owned()),
            ("FAULTS_STALENESS_MS", self.staleness.as_millis().to_string()),
            ("FAULTS_MAX_ENTRIES", self.max_entries.to_string()),
            ("FAULTS_PREFIX", self.prefix.clone()),
        ];
        if let Some(path) = &self.snapshot {
            env.push(("FAULTS_SNAPSHOT", path.to_string_lossy().into_owned()));
        }
        env
    }

    fn from_env() -> NodeConfig {
        let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
        NodeConfig {
            url: var(NODE_ENV),
            policy: match var("FAULTS_POLICY").as_str() {
                "reject" => FailurePolicy::Reject,
                _ => FailurePolicy::Accept,
            },
            staleness: Duration::from_millis(var("FAULTS_STALENESS_MS").parse().expect("ms")),
            max_entries: var("FAULTS_MAX_ENTRIES").parse().expect("a count"),
            snapshot: std::env::var("FAULTS_SNAPSHOT").ok().map(PathBuf::from),
            prefix: var("FAULTS_PREFIX"),
        }
    }
}

/// The codec every node shares (one key: any node opens any node's cookie).
fn codec() -> SessionCodec {
    SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::from_bytes([7; 32])))
}

/// Runs a node until its stdin closes.
pub fn run() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .init();
    let config = NodeConfig::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    let mut builder = ReplicatedRevocations::builder()
        .prefix(&config.prefix)
        .staleness(config.staleness)
        .max_entries(config.max_entries);
    if let Some(path) = &config.snapshot {
        builder = builder.snapshot(path);
    }
    let store = builder.build(&config.url).expect("a valid Redis URL");
    // One store call per check: its raw answer (a store error is `RevocationUnavailable` under
    // `Reject`), then the configured policy applied to it, so the test can tell "not revoked"
    // from "accepted because the store could not answer".
    let strict = Revocation::new(store.clone(), "user").failure_policy(FailurePolicy::Reject);
    let codec = codec();
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { return };
        let mut words = line.split_whitespace();
        let command = words.next().unwrap_or_default();
        let args: Vec<&str> = words.collect();
        let answer =
            runtime.block_on(answer(&store, &strict, config.policy, &codec, command, &args));
        let mut out = stdout.lock();
        if writeln!(out, "{answer}").and_then(|()| out.flush()).is_err() {
            return;
        }
    }
}

async fn answer(
    store: &ReplicatedRevocations,
    strict: &Revocation,
    policy: FailurePolicy,
    codec: &SessionCodec,
    command: &str,
    args: &[&str],
) -> String {
    let open = |header: &str| codec.open(&header.replace('+', " "), SystemTime::now()).ok();
    match command {
        "login" => {
            let mut headers = Vec::new();
            for user in args {
                let mut session = Session::new();
                session.insert("user", *user).expect("a string encodes");
                if let Err(error) = strict.stamp(&mut session).await {
                    return format!("error {error}");
                }
                match codec.seal(&mut session, SystemTime::now()) {
                    Ok(cookies) => headers.push(cookies.request_header().replace(' ', "+")),
                    Err(error) => return format!("error {error}"),
                }
            }
            format!("ok {}", headers.join(" "))
        }
        "logout" => {
            for header in args {
                let Some(mut session) = open(header) else { return "error invalid".to_owned() };
                session.purge();
                if let Err(error) = strict.revoke_purged(&session, codec.config()).await {
                    return format!("error {error}");
                }
            }
            "ok".to_owned()
        }
        "everywhere" => {
            for user in args {
                let now = SystemTime::now();
                if let Err(error) = strict.revoke_subject(user, now, codec.config()).await {
                    return format!("error {error}");
                }
            }
            "ok".to_owned()
        }
        "check" => {
            let before = store.is_current();
            let mut verdicts = Vec::with_capacity(args.len());
            for header in args {
                let verdict = match open(header) {
                    None => "invalid",
                    Some(session) => match strict.check(&session).await {
                        Ok(()) => "ok",
                        Err(RejectReason::Revoked) => "revoked",
                        Err(_) if policy == FailurePolicy::Accept => "accepted",
                        Err(_) => "refused",
                    },
                };
                verdicts.push(verdict);
            }
            let after = store.is_current();
            format!("{} {} {}", u8::from(before), u8::from(after), verdicts.join(" "))
        }
        "status" => format!("{} {} {}", u8::from(store.is_current()), store.len(), store.queued()),
        other => format!("error unknown command {other:?}"),
    }
}
