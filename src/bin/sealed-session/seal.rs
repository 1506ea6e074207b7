//! `seal`: a JSON state on stdin in, Set-Cookie values out.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::time::{Duration, SystemTime};

use clap::Args;
use sealed_session::{Lifetime, Session, SessionConfig};

use crate::codec::CodecArgs;
use crate::failure::{Failure, Kind};
use crate::output;

/// Seal a JSON object read on stdin into cookies; print one Set-Cookie value a line.
///
/// Each top-level key of the object becomes a session value. The output is what a server sends
/// for a new session with that state, with the library's default attributes (Path=/, Secure,
/// HttpOnly, SameSite=Lax), e.g.:
///
///   echo '{"user": "ada", "csrf": "k9"}' | sealed-session seal --keys ring.json --name session --sensitive csrf
#[derive(Debug, Args)]
#[command(after_help = crate::EXIT_CODES)]
pub struct SealArgs {
    #[command(flatten)]
    codec: CodecArgs,

    /// The session's absolute lifetime, sealed into it as its expiry. The idle timeout is not
    /// sealed: whoever opens the cookie applies its own (see `open --idle-timeout`).
    #[arg(long, value_name = "DURATION", default_value_t = default_ttl())]
    ttl: humantime::Duration,

    /// Store this top-level key as a sensitive value: in the section that is never compressed
    /// (for CSRF and OAuth tokens). Repeat for several keys.
    #[arg(long, value_name = "KEY")]
    sensitive: Vec<String>,

    /// The session's own lifetime, sealed into it (what `Session::set_lifetime` or the
    /// tower-sessions bridge's `set_expiry` seal): `configured` (the default), `browser-session`
    /// (no Max-Age), `idle=DURATION` (an idle timeout of its own, e.g. `idle=7days`) or
    /// `until=TIME` (an end at an RFC 3339 time, never past `--ttl`).
    #[arg(long, value_name = "LIFETIME", value_parser = parse_lifetime, default_value = "configured")]
    lifetime: Lifetime,
}

/// `--lifetime`'s forms.
fn parse_lifetime(text: &str) -> Result<Lifetime, String> {
    match text.split_once('=') {
        None if text == "configured" => Ok(Lifetime::Configured),
        None if text == "browser-session" => Ok(Lifetime::BrowserSession),
        Some(("idle", duration)) => {
            let idle: Duration = duration
                .parse::<humantime::Duration>()
                .map_err(|error| format!("idle=DURATION: {error}"))?
                .into();
            if idle < Duration::from_secs(1) {
                return Err("idle=DURATION: at least one second".to_owned());
            }
            Ok(Lifetime::Idle(idle))
        }
        Some(("until", time)) => output::parse_time(time).map(Lifetime::Until),
        _ => Err("expected configured, browser-session, idle=DURATION or until=TIME".to_owned()),
    }
}

/// The most stdin `seal` reads (1 MiB): far past any state that fits a cookie budget, and a
/// bound on what an input piped in by mistake (`/dev/zero`) can take.
const MAX_INPUT: u64 = 1 << 20;

/// The library's default absolute timeout.
fn default_ttl() -> humantime::Duration {
    SessionConfig::default().absolute_timeout().into()
}

/// Runs `seal`.
///
/// # Errors
///
/// Usage (2) for stdin that is not a JSON object, key ring (3), too large (6).
pub fn run(args: SealArgs) -> Result<(), Failure> {
    // The state may hold secrets: wiped once parsed.
    let mut input = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .take(MAX_INPUT + 1)
        .read_to_string(&mut input)
        .map_err(|error| Failure::new(Kind::Usage, format!("cannot read stdin: {error}")))?;
    if input.len() as u64 > MAX_INPUT {
        let message = format!("stdin is over {MAX_INPUT} bytes: no state that large fits a cookie");
        return Err(Failure::new(Kind::TooLarge, message));
    }
    // serde_json's own message quotes the value it did not expect (a token piped in by
    // mistake): say only where and what kind of error.
    let state: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&input).map_err(|error| {
            let kind = match error.classify() {
                serde_json::error::Category::Io => "read",
                serde_json::error::Category::Syntax => "syntax",
                serde_json::error::Category::Data => "not an object",
                serde_json::error::Category::Eof => "unexpected end",
            };
            let (line, column) = (error.line(), error.column());
            let message =
                format!("stdin must be a JSON object ({kind} at line {line}, column {column})");
            Failure::new(Kind::Usage, message)
        })?;

    let sensitive: BTreeSet<&str> = args.sensitive.iter().map(String::as_str).collect();
    if let Some(missing) = sensitive.iter().find(|key| !state.contains_key(**key)) {
        return Err(Failure::new(
            Kind::Usage,
            format!("--sensitive {missing}: no such top-level key in the JSON state"),
        ));
    }
    let mut session = Session::new();
    session.set_lifetime(args.lifetime);
    for (key, value) in &state {
        let inserted = if sensitive.contains(key.as_str()) {
            session.insert_sensitive(key.as_str(), value)
        } else {
            session.insert(key.as_str(), value)
        };
        inserted.map_err(|error| Failure::new(Kind::Usage, error.to_string()))?;
    }

    let ttl = *args.ttl;
    let codec = args.codec.codec(SystemTime::now(), |builder| builder.absolute_timeout(ttl))?;
    let cookies = codec.seal(&mut session, SystemTime::now())?;
    let mut text = String::new();
    for line in cookies.header_values() {
        text.push_str(&line);
        text.push('\n');
    }
    output::print(&text)
}
