//! `open`: a Cookie header in, the session as JSON out.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use clap::Args;
use serde_json::{Map, Value, json};

use sealed_session::{Lifetime, Session, SessionConfig};

use crate::codec::CodecArgs;
use crate::failure::{Failure, Kind};
use crate::output;

/// Open the session in a Cookie header and print it as JSON, or the reason it is rejected.
///
/// The cookies are checked exactly as the server checks them. The JSON holds the values, which
/// keys are sensitive, the session id, key id, times and chunk count. Times are RFC 3339 (UTC);
/// one past year 9999 is shown as `@SECONDS` since the Unix epoch. A rejected session (or no
/// session cookie at all) exits with 1 and the reason on stderr; with `--json`, also as
/// `{"rejected": "REASON"}` on stdout, REASON being a stable name (FORMAT.md section 8:
/// malformed, unsupported_version, wrong_mode, unknown_key, forged, idle_expired,
/// absolute_expired, issued_in_future, too_large, conflicting_sessions; or no_session when no
/// cookie of that name is in the header).
#[derive(Debug, Args)]
#[command(after_help = crate::EXIT_CODES)]
pub struct OpenArgs {
    #[command(flatten)]
    codec: CodecArgs,

    /// The Cookie request header's value (`a=1; __Host-session=...`); a leading `Cookie:` is
    /// ignored.
    #[arg(long, value_name = "HEADER")]
    cookie: String,

    /// The idle timeout the server applies (not sealed in the cookie).
    #[arg(long, value_name = "DURATION", default_value_t = default_idle())]
    idle_timeout: humantime::Duration,

    /// The absolute timeout the server applies today: a session ends at its sealed expiry or
    /// at its issue time plus this, whichever comes first (FORMAT.md section 4.1).
    #[arg(long, value_name = "DURATION", default_value_t = default_absolute())]
    absolute_timeout: humantime::Duration,

    /// Open as of this time (RFC 3339, e.g. 2026-01-31T12:00:00Z) instead of now, to check
    /// when a cookie expires.
    #[arg(long, value_name = "TIME", value_parser = output::parse_time)]
    at: Option<SystemTime>,

    /// For scripts and other implementations: on rejection, also print `{"rejected": REASON}`
    /// on stdout, with REASON a stable name (`forged`, `idle_expired`, ..., or `no_session`).
    #[arg(long)]
    json: bool,
}

/// The stable name `open --json` prints when the header holds no cookie of the session's name
/// (not a rejection to the library, which starts a new session).
const NO_SESSION: &str = "no_session";

/// The library's default idle timeout.
fn default_idle() -> humantime::Duration {
    SessionConfig::default().idle_timeout().into()
}

/// The library's default absolute timeout.
fn default_absolute() -> humantime::Duration {
    SessionConfig::default().absolute_timeout().into()
}

/// Runs `open`.
///
/// # Errors
///
/// Rejected (1) with the reason, key ring (3), usage (2) for an invalid configuration.
pub fn run(args: OpenArgs) -> Result<(), Failure> {
    let (idle, absolute) = (*args.idle_timeout, *args.absolute_timeout);
    let now = args.at.unwrap_or_else(SystemTime::now);
    // The ring as of `--at` too: a vector or a staged key opens as it would at that time.
    let codec =
        args.codec.codec(now, |builder| builder.idle_timeout(idle).absolute_timeout(absolute))?;
    let header = args.cookie.trim();
    let header = match header.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("cookie:") => &header[7..],
        _ => header,
    };
    // Scripts read the stable name on stdout; people read the phrase on stderr.
    let rejected = |code: &str, message: String| {
        if args.json {
            output::print(&format!("{}\n", json!({ "rejected": code })))?;
        }
        Err(Failure::new(Kind::Rejected, message))
    };
    let session = match codec.open(header, now) {
        Ok(session) => session,
        Err(rejection) => {
            let reason = rejection.reason();
            return rejected(reason.code(), format!("rejected: {reason}"));
        }
    };
    if session.id().is_none() {
        // The library opens a new, empty session when its cookie is absent; for a debugging
        // tool that is a failure worth naming (a missing prefix is the usual cause).
        let name = codec.config().cookie_name();
        return rejected(NO_SESSION, format!("rejected: no cookie named {name} in the header"));
    }
    let mut text = serde_json::to_string_pretty(&describe(&session))
        .map_err(|error| Failure::new(Kind::Io, format!("cannot format the session: {error}")))?;
    text.push('\n');
    output::print(&text)
}

/// The session's own lifetime as JSON: its kind, and an idle timeout of its own in seconds
/// (an `until` end is `expires_at`).
fn lifetime(lifetime: Lifetime) -> Value {
    match lifetime {
        Lifetime::Configured => json!({ "kind": "configured" }),
        Lifetime::BrowserSession => json!({ "kind": "browser_session" }),
        Lifetime::Idle(idle) => json!({ "kind": "idle", "idle_timeout_seconds": idle.as_secs() }),
        Lifetime::Until(_) => json!({ "kind": "until" }),
        // The enum is non-exhaustive: a kind added later is still named.
        other => json!({ "kind": format!("{other:?}") }),
    }
}

/// The session as JSON. A value that has no JSON form (MessagePack binary, a map with
/// non-string keys, written by an application rather than by `seal`) goes under `raw`, as its
/// MessagePack bytes in base64url.
fn describe(session: &Session) -> Value {
    let (mut values, mut raw, mut sensitive) = (Map::new(), Map::new(), Vec::new());
    for key in session.keys() {
        match session.get::<Value>(key) {
            Ok(Some(value)) => {
                values.insert(key.to_owned(), value);
            }
            _ => {
                let bytes = session.get_raw(key).unwrap_or_default();
                raw.insert(key.to_owned(), Value::String(BASE64.encode(bytes)));
            }
        }
        if session.is_sensitive(key) {
            sensitive.push(key.to_owned());
        }
    }
    // From the frame's seconds, not `SystemTime`: exact up to 2^64 - 1 (FORMAT.md section 4).
    let times = session.times_unix();
    let mut described = json!({
        "values": values,
        "sensitive": sensitive,
        "session_id": session.id().map(|id| id.to_string()),
        "key_id": session.key_id().map(|id| id.0),
        "issued_at": times.map(|t| output::unix(t.issued_at)),
        "last_refresh": times.map(|t| output::unix(t.last_refresh)),
        "expires_at": times.map(|t| output::unix(t.expires_at)),
        "chunks": session.chunk_count(),
        "lifetime": lifetime(session.lifetime()),
    });
    if !raw.is_empty() {
        described["raw"] = Value::Object(raw);
    }
    described
}
