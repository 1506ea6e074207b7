//! Writes and checks `test_vectors/v1.json`, the wire format's test vectors.
//!
//! ```text
//! cargo run --features __testing --example test_vectors -- --write   # regenerate the file
//! cargo run --features __testing --example test_vectors -- --check   # verify it
//! ```
//!
//! (tests/vectors.rs runs the same check. `__testing` is not part of the library's API: it
//! exposes the hidden `SessionCodec::seal_with` for this generator and the fuzz package.)
//!
//! Nothing here is random. Each key's secret is `SHA-256("sealed-session test vectors v1 key "
//! || label)`. The session ids and nonces come from [`SeededEntropy`], SHA-256 in counter mode
//! over [`SEED`] and the vector's name, fed to the hidden `SessionCodec::seal_with`; so a run
//! reproduces the file byte for byte, and adding a vector never changes another. Never seal
//! like this outside test vectors: a predictable nonce destroys the cipher's security.
//!
//! `--check` regenerates the file in memory and requires the file on disk to be identical. Then,
//! reading only the file, it opens every valid vector twice, with the library and with
//! [`reference_decode`] (an independent decoder written from the format's description, as a
//! third party would), and requires both to find the expected state, id, times, key and chunk
//! count; and it requires the library to reject every must-fail vector for its stated reason.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sealed_session::format::{
    FORMAT_VERSION, HEADER_LEN, INFO_ENCRYPTION, INFO_SIGNING, KEY_LEN, MAC_LEN, NONCE_LEN,
    SESSION_ID_LEN, TAG_LEN,
};
use sealed_session::{
    Key, KeyId, KeyRing, Mode, RejectReason, Session, SessionCodec, SessionConfig, SetCookies,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use xaes_256_gcm::aead::AeadInOut as _;
use xaes_256_gcm::{Nonce, Tag, Xaes256Gcm};

/// Where the vectors live, relative to the crate root.
pub const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/test_vectors/v1.json");

/// The seed every nonce and session id is derived from.
pub const SEED: &str = "sealed-session test vectors v1";

/// The reference time of the vectors (2027-01-15T08:00:00Z).
const T0: u64 = 1_800_000_000;

const PRIMARY: KeyDef =
    KeyDef { label: "primary", id: 0x5e55_0001, created_at: T0 - 30 * 86_400, activates_at: 0 };
const SUCCESSOR: KeyDef =
    KeyDef { label: "successor", id: 0x5e55_0002, created_at: T0 - 86_400, activates_at: T0 + 600 };
/// A key id no ring of these vectors holds.
const UNKNOWN_KEY_ID: u32 = 0x5e55_00ff;

/// The stable name of each rejection reason, as `expected_error` spells it.
pub fn reason_name(reason: RejectReason) -> &'static str {
    match reason {
        RejectReason::Malformed(_) => "malformed",
        RejectReason::UnsupportedVersion(_) => "unsupported_version",
        RejectReason::WrongMode => "wrong_mode",
        RejectReason::UnknownKey(_) => "unknown_key",
        RejectReason::Forged => "forged",
        RejectReason::IdleExpired => "idle_expired",
        RejectReason::AbsoluteExpired => "absolute_expired",
        RejectReason::IssuedInFuture => "issued_in_future",
        RejectReason::TooLarge(_) => "too_large",
        // A reason added later must be given a name here before vectors can use it.
        _ => "unnamed",
    }
}

// ---------------------------------------------------------------------------------------------
// The file's schema. Field order is the order in the file.

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorFile {
    pub title: String,
    pub format_version: u8,
    pub generator: String,
    pub seed: String,
    pub notes: Vec<String>,
    pub vectors: Vec<Vector>,
}

/// One vector: everything needed to open `cookie_header` at `now`, and what must come out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vector {
    pub name: String,
    pub description: String,
    /// The key ring of the server that opens the token.
    pub keys: Vec<KeyEntry>,
    /// The full cookie name (prefix included) the server opens under; bound into the AAD.
    pub cookie_name: String,
    /// `"sealed"` or `"signed"`.
    pub mode: String,
    pub config: Limits,
    /// The time the server opens the token at, in Unix seconds.
    pub now: u64,
    /// The Set-Cookie header values the server sent when it sealed the session (before any
    /// tampering, for must-fail vectors).
    pub set_cookie: Vec<String>,
    /// The Cookie request header the browser sends.
    pub cookie_header: String,
    /// The base64url token: the presented chunks' values joined in index order.
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Expected>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_error: Option<String>,
}

/// A key of the ring, with the subkeys HKDF derives from it (to help debug a decoder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub id: u32,
    pub secret_hex: String,
    pub created_at: u64,
    pub activates_at: u64,
    pub encryption_subkey_hex: String,
    pub signing_subkey_hex: String,
}

/// The configuration values that matter for opening.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub idle_timeout_secs: u64,
    pub absolute_timeout_secs: u64,
    pub clock_skew_secs: u64,
    pub max_state_size: usize,
    pub cookie_budget: usize,
    pub max_cookie_header: usize,
    pub max_cookie_line: usize,
    pub compression_threshold: Option<usize>,
}

/// What opening a valid vector yields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// Every value, ordinary and sensitive, as JSON.
    pub state: Map<String, Value>,
    /// The keys of `state` stored in the sensitive section.
    pub sensitive: Vec<String>,
    pub session_id_hex: String,
    pub issued_at: u64,
    pub last_refresh: u64,
    pub expires_at: u64,
    pub key_id: u32,
    pub compressed: bool,
    pub chunks: usize,
    /// The associated data: header || len(cookie_name) || cookie_name.
    pub aad_hex: String,
    /// The authenticated frame (the plaintext, in sealed mode).
    pub frame_hex: String,
}

// ---------------------------------------------------------------------------------------------
// Deterministic inputs.

/// SHA-256 in counter mode: the bytes `SHA-256(seed || "/" || label || be64(0)) ||
/// SHA-256(... || be64(1)) || ...`, handed out in order. `seal_with` draws the session id (16
/// bytes, for a new session) and then the nonce (24 bytes, sealed mode only).
pub struct SeededEntropy {
    seed: Vec<u8>,
    counter: u64,
    pool: Vec<u8>,
}

impl SeededEntropy {
    pub fn new(label: &str) -> SeededEntropy {
        SeededEntropy { seed: format!("{SEED}/{label}").into_bytes(), counter: 0, pool: Vec::new() }
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        while self.pool.len() < out.len() {
            let mut hasher = Sha256::new();
            hasher.update(&self.seed);
            hasher.update(self.counter.to_be_bytes());
            self.pool.extend_from_slice(&hasher.finalize());
            self.counter += 1;
        }
        out.copy_from_slice(&self.pool[..out.len()]);
        self.pool.drain(..out.len());
    }
}

#[derive(Clone, Copy)]
struct KeyDef {
    label: &'static str,
    id: u32,
    created_at: u64,
    /// `0` means "when created".
    activates_at: u64,
}

impl KeyDef {
    fn entry(&self) -> KeyEntry {
        let secret = sha256(format!("{SEED} key {}", self.label).as_bytes());
        let (enc, sig) = subkeys(&secret);
        let activates_at = if self.activates_at == 0 { self.created_at } else { self.activates_at };
        KeyEntry {
            id: self.id,
            secret_hex: to_hex(&secret),
            created_at: self.created_at,
            activates_at,
            encryption_subkey_hex: to_hex(&enc),
            signing_subkey_hex: to_hex(&sig),
        }
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(data));
    out
}

/// The encryption and signing subkeys of a ring key (HKDF-SHA256, no salt).
fn subkeys(secret: &[u8]) -> ([u8; KEY_LEN], [u8; KEY_LEN]) {
    let hkdf = Hkdf::<Sha256>::new(None, secret);
    let (mut enc, mut sig) = ([0u8; KEY_LEN], [0u8; KEY_LEN]);
    hkdf.expand(INFO_ENCRYPTION, &mut enc).expect("32 bytes is a valid HKDF length");
    hkdf.expand(INFO_SIGNING, &mut sig).expect("32 bytes is a valid HKDF length");
    (enc, sig)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Result<Vec<u8>, String> {
    if text.len() % 2 != 0 {
        return Err(format!("odd-length hex {text:?}"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|e| format!("hex {text:?}: {e}")))
        .collect()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn unix(time: Option<SystemTime>) -> Option<u64> {
    time.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs())
}

fn mode_name(mode: Mode) -> &'static str {
    if mode == Mode::Signed { "signed" } else { "sealed" }
}

// ---------------------------------------------------------------------------------------------
// Building a codec from a vector's description: the same path for generating and checking.

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            idle_timeout_secs: 30 * 60,
            absolute_timeout_secs: 12 * 60 * 60,
            clock_skew_secs: 60,
            max_state_size: 64 * 1024,
            cookie_budget: 6 * 1024,
            max_cookie_header: 32 * 1024,
            max_cookie_line: 4096,
            compression_threshold: Some(128),
        }
    }
}

fn build_codec(
    keys: &[KeyEntry],
    cookie_name: &str,
    mode: &str,
    limits: &Limits,
) -> Result<SessionCodec, String> {
    let mode = match mode {
        "sealed" => Mode::Sealed,
        "signed" => Mode::Signed,
        other => return Err(format!("unknown mode {other:?}")),
    };
    // The name is given in full, so the builder must not add the `__Host-` prefix again.
    let config = SessionConfig::builder(cookie_name)
        .host_prefix(false)
        .mode(mode)
        .idle_timeout(Duration::from_secs(limits.idle_timeout_secs))
        .absolute_timeout(Duration::from_secs(limits.absolute_timeout_secs))
        .clock_skew(Duration::from_secs(limits.clock_skew_secs))
        .max_state_size(limits.max_state_size)
        .cookie_budget(limits.cookie_budget)
        .max_cookie_header(limits.max_cookie_header)
        .max_cookie_line(limits.max_cookie_line)
        .compression_threshold(limits.compression_threshold)
        .build()
        .map_err(|e| format!("config: {e}"))?;
    let mut ring = KeyRing::new();
    for key in keys {
        let secret = Key::try_from_slice(&from_hex(&key.secret_hex)?).map_err(|e| e.to_string())?;
        ring.insert(KeyId(key.id), secret, at(key.created_at), at(key.activates_at))
            .map_err(|e| format!("key ring: {e}"))?;
    }
    Ok(SessionCodec::new(config, ring))
}

/// A server: its ring, cookie name, mode and limits.
#[derive(Clone)]
struct Server {
    keys: Vec<KeyEntry>,
    cookie_name: String,
    mode: Mode,
    limits: Limits,
}

impl Server {
    fn new() -> Server {
        Server {
            keys: vec![PRIMARY.entry()],
            cookie_name: "__Host-session".to_owned(),
            mode: Mode::Sealed,
            limits: Limits::default(),
        }
    }

    fn codec(&self) -> SessionCodec {
        build_codec(&self.keys, &self.cookie_name, mode_name(self.mode), &self.limits)
            .expect("the generator's servers are valid")
    }
}

/// A session's values, split as the application stored them.
#[derive(Clone, Default)]
struct State {
    ordinary: Map<String, Value>,
    sensitive: Map<String, Value>,
}

impl State {
    fn new(ordinary: Value) -> State {
        State { ordinary: object(ordinary), sensitive: Map::new() }
    }

    fn with_sensitive(mut self, sensitive: Value) -> State {
        self.sensitive = object(sensitive);
        self
    }

    fn session(&self) -> Session {
        let mut session = Session::new();
        for (key, value) in &self.ordinary {
            session.insert(key.clone(), value).expect("JSON values serialize");
        }
        for (key, value) in &self.sensitive {
            session.insert_sensitive(key.clone(), value).expect("JSON values serialize");
        }
        session
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("a state is a JSON object"),
    }
}

/// What one seal produced.
struct Sealed {
    server: Server,
    session: Session,
    set_cookies: SetCookies,
    entropy_label: String,
}

impl Sealed {
    fn values(&self) -> Vec<String> {
        self.set_cookies.cookies().iter().map(|c| c.value().to_owned()).collect()
    }

    fn token(&self) -> String {
        self.values().concat()
    }
}

/// Seals `session` for `server` at `now`, with entropy labelled `label`.
fn seal(server: &Server, mut session: Session, now: u64, label: &str) -> Sealed {
    let mut entropy = SeededEntropy::new(label);
    let set_cookies = server
        .codec()
        .seal_with(&mut session, at(now), &mut |buf| {
            entropy.fill(buf);
            Ok(())
        })
        .expect("the generator's sessions seal");
    Sealed { server: server.clone(), session, set_cookies, entropy_label: label.to_owned() }
}

/// Opens what `sealed` set at `now` and seals it again (a refresh of the idle window).
fn refresh(sealed: &Sealed, now: u64) -> Sealed {
    let header = sealed.set_cookies.request_header();
    let session = sealed.server.codec().open(&header, at(now)).expect("refresh opens");
    seal(&sealed.server, session, now, &format!("{} refresh at {now}", sealed.entropy_label))
}

/// A vector for `sealed`, opened by `opener` at `now` from `cookie_header` (whose joined chunks
/// are `token`). Valid vectors get their expectations from `state` and the sealed session.
#[allow(clippy::too_many_arguments)]
fn vector(
    name: &str,
    description: &str,
    sealed: &Sealed,
    opener: &Server,
    now: u64,
    cookie_header: String,
    token: String,
    outcome: Result<&State, &str>,
) -> Vector {
    let mut vector = Vector {
        name: name.to_owned(),
        description: description.to_owned(),
        keys: opener.keys.clone(),
        cookie_name: opener.cookie_name.clone(),
        mode: mode_name(opener.mode).to_owned(),
        config: opener.limits.clone(),
        now,
        set_cookie: sealed.set_cookies.header_values().collect(),
        cookie_header,
        token,
        expected: None,
        expected_error: None,
    };
    match outcome {
        Ok(state) => {
            let session = &sealed.session;
            let decoded = reference_decode(&vector).expect("the generator's valid vectors decode");
            let mut all = state.ordinary.clone();
            all.extend(state.sensitive.clone());
            vector.expected = Some(Expected {
                state: all,
                sensitive: state.sensitive.keys().cloned().collect(),
                session_id_hex: session.id().expect("sealed").to_string(),
                issued_at: unix(session.issued_at()).expect("sealed"),
                last_refresh: unix(session.last_refresh()).expect("sealed"),
                expires_at: unix(session.expires_at()).expect("sealed"),
                key_id: session.key_id().expect("sealed").0,
                compressed: decoded.compressed,
                chunks: session.chunk_count(),
                aad_hex: to_hex(&decoded.aad),
                frame_hex: to_hex(&decoded.frame),
            });
        }
        Err(error) => vector.expected_error = Some(error.to_owned()),
    }
    vector
}

/// A valid vector: `sealed`, sent back as the browser would, opened by its own server at `now`.
fn valid(name: &str, description: &str, sealed: &Sealed, state: &State, now: u64) -> Vector {
    let header = sealed.set_cookies.request_header();
    vector(name, description, sealed, &sealed.server, now, header, sealed.token(), Ok(state))
}

/// A must-fail vector whose single-chunk token was changed by `tamper`.
fn tampered(
    name: &str,
    description: &str,
    sealed: &Sealed,
    now: u64,
    expected_error: &str,
    tamper: impl FnOnce(&mut Vec<u8>),
) -> Vector {
    let mut bytes = BASE64.decode(sealed.token()).expect("our tokens are base64url");
    tamper(&mut bytes);
    let token = BASE64.encode(&bytes);
    let header = format!("{}={token}", sealed.server.cookie_name);
    vector(name, description, sealed, &sealed.server, now, header, token, Err(expected_error))
}

/// A must-fail vector presenting `sealed`'s own cookies at `now`.
fn rejected(name: &str, description: &str, sealed: &Sealed, now: u64, error: &str) -> Vector {
    let header = sealed.set_cookies.request_header();
    vector(name, description, sealed, &sealed.server, now, header, sealed.token(), Err(error))
}

// ---------------------------------------------------------------------------------------------
// The vectors.

/// `shared/corpus/wizard.json`, embedded so the generator is self-contained.
const WIZARD_JSON: &str = r#"{"uid":31337,"csrf":"_Dm0-YAw2ZHqyEKBMK_qPBkRX6DaVXZirt8Tq5s2-50","step":4,"form":{"company":"Acme Widgets GmbH","vat_id":"DE038879107","address":{"street":"Hauptstrasse 12","city":"Berlin","zip":"10115","country":"DE"},"contacts":[{"name":"Contact 0","email":"contact0@acme.example","phone":"+49 30 1046971","role":"legal"},{"name":"Contact 1","email":"contact1@acme.example","phone":"+49 30 6488507","role":"billing"},{"name":"Contact 2","email":"contact2@acme.example","phone":"+49 30 2873505","role":"tech"},{"name":"Contact 3","email":"contact3@acme.example","phone":"+49 30 8353429","role":"legal"},{"name":"Contact 4","email":"contact4@acme.example","phone":"+49 30 8258303","role":"billing"},{"name":"Contact 5","email":"contact5@acme.example","phone":"+49 30 6077707","role":"tech"},{"name":"Contact 6","email":"contact6@acme.example","phone":"+49 30 6686735","role":"legal"},{"name":"Contact 7","email":"contact7@acme.example","phone":"+49 30 4387548","role":"legal"}],"notes":"Please deliver between 9:00 and 17:00. Ring twice. Please deliver between 9:00 and 17:00. Ring twice. Please deliver between 9:00 and 17:00. Ring twice. Please deliver between 9:00 and 17:00. Ring twice. "}}"#;

fn notes() -> Vec<String> {
    [
        "Times are Unix seconds. `now` is the time the server opens the token at.",
        "`keys` is the opening server's ring; each key's subkeys are HKDF-SHA256(salt = none, \
         ikm = secret, info = \"sealed-session v1 xaes-256-gcm\" or \"sealed-session v1 \
         hmac-sha256\", 32 bytes).",
        "`cookie_name` is the full name (prefix included) the server opens under; chunk i > 0 \
         is named `cookie_name.i`. `token` is the presented chunks joined in index order.",
        "`expected.state` holds every value as JSON; `expected.sensitive` names those stored in \
         the sensitive section. `aad_hex` and `frame_hex` are intermediate values for debugging.",
        "In must-fail vectors `set_cookie` is what the server sent before the tampering. \
         `expected_error` is one of malformed, unsupported_version, wrong_mode, unknown_key, \
         forged, idle_expired, absolute_expired, issued_in_future, too_large.",
        "Secrets and nonces here are derived from a public seed: never use them for anything \
         but testing.",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Generates every vector.
pub fn generate() -> VectorFile {
    let server = Server::new();
    let mut vectors = Vec::new();

    // -- Valid vectors.
    let empty = State::default();
    let sealed = seal(&server, empty.session(), T0, "empty_session");
    vectors.push(valid(
        "empty_session",
        "A session with no values: the body is the empty MessagePack map (0x80).",
        &sealed,
        &empty,
        T0 + 5,
    ));

    let small =
        State::new(json!({"user_id": 42, "role": "admin", "flags": [true, false, null], "n": -7}));
    let small_sealed = seal(&server, small.session(), T0, "small_state");
    vectors.push(valid(
        "small_state",
        "A few ordinary values, below the compression threshold: stored uncompressed (flags 0).",
        &small_sealed,
        &small,
        T0 + 5,
    ));

    let wizard = State::new(serde_json::from_str(WIZARD_JSON).expect("valid JSON"));
    let wizard_sealed = seal(&server, wizard.session(), T0, "compressed_corpus");
    vectors.push(valid(
        "compressed_corpus",
        "The corpus state wizard.json: its body is zstd-compressed (flags bit 0).",
        &wizard_sealed,
        &wizard,
        T0 + 5,
    ));

    let sensitive = State::new(json!({"user_id": 7, "locale": "de-DE"}))
        .with_sensitive(json!({"csrf": "q3C1kQ_Zy0ZlhrN8mZ4qJg", "oauth_state": "st-9f2c41"}));
    vectors.push(valid(
        "sensitive_values",
        "Two sensitive values, stored in the sensitive section after an uncompressed body \
         (flags 0b10, body_len present).",
        &seal(&server, sensitive.session(), T0, "sensitive_values"),
        &sensitive,
        T0 + 5,
    ));

    let mut mixed = wizard.clone();
    mixed.ordinary.remove("csrf");
    let mixed =
        mixed.with_sensitive(json!({"csrf": "_Dm0-YAw2ZHqyEKBMK_qPBkRX6DaVXZirt8Tq5s2-50"}));
    vectors.push(valid(
        "sensitive_with_compressed_body",
        "The corpus state with its CSRF token made sensitive: a compressed body, then the \
         uncompressed sensitive section (flags 0b11; body_len is the compressed length).",
        &seal(&server, mixed.session(), T0, "sensitive_with_compressed_body"),
        &mixed,
        T0 + 5,
    ));

    let signer = Server { mode: Mode::Signed, ..server.clone() };
    let signed_sealed = seal(&signer, small.session(), T0, "signed_mode");
    vectors.push(valid(
        "signed_mode",
        "Signed mode: the frame travels in the clear after the header, followed by an \
         HMAC-SHA256 tag over AAD || frame.",
        &signed_sealed,
        &small,
        T0 + 5,
    ));

    let chunker =
        Server { limits: Limits { max_cookie_line: 512, ..Limits::default() }, ..server.clone() };
    let mut blobs = Map::new();
    let mut entropy = SeededEntropy::new("multi_chunk state");
    for i in 0..6 {
        let mut bytes = [0u8; 120];
        entropy.fill(&mut bytes);
        blobs.insert(format!("blob_{i}"), Value::String(BASE64.encode(bytes)));
    }
    let blobs = State { ordinary: blobs, sensitive: Map::new() };
    let chunked = seal(&chunker, blobs.session(), T0, "multi_chunk");
    assert!(chunked.set_cookies.len() >= 3, "the multi-chunk vector must span several cookies");
    vectors.push(valid(
        "multi_chunk",
        "Set-Cookie lines limited to 512 bytes: the token is split across several cookies \
         (`NAME`, `NAME.1`, ...), joined in index order on open.",
        &chunked,
        &blobs,
        T0 + 5,
    ));

    let rotating = Server { keys: vec![PRIMARY.entry(), SUCCESSOR.entry()], ..server.clone() };
    vectors.push(valid(
        "previous_key",
        "Sealed at T0 under the primary key; opened after the successor key activated. The \
         primary key is no longer current but still in the ring, so the token opens.",
        &seal(&rotating, small.session(), T0, "previous_key"),
        &small,
        SUCCESSOR.activates_at + 300,
    ));

    let unicode = State::new(json!({
        "naïve": "café",
        "日本語": "こんにちは",
        "🍪": ["🍪", "crumb"],
        "": "the empty key",
    }));
    vectors.push(valid(
        "unicode_keys",
        "Keys and values outside ASCII (and the empty key): keys are MessagePack strings of \
         UTF-8 bytes.",
        &seal(&server, unicode.session(), T0, "unicode_keys"),
        &unicode,
        T0 + 5,
    ));

    let refreshed = refresh(&small_sealed, T0 + 1000);
    vectors.push(valid(
        "refreshed",
        "Issued at T0 and resealed at T0+1000 (a refresh of the idle window): last_refresh \
         differs from issued_at; the id and expiry are kept.",
        &refreshed,
        &small,
        T0 + 1500,
    ));

    vectors.push(valid(
        "idle_timeout_boundary",
        "Opened exactly at last_refresh + idle_timeout + clock_skew: still valid (the check is \
         `now > last_refresh + idle + skew`).",
        &small_sealed,
        &small,
        T0 + 1800 + 60,
    ));

    vectors.push(valid(
        "issued_at_boundary",
        "Opened at issued_at - clock_skew, on a node whose clock is behind: still valid (the \
         check is `issued_at > now + skew`).",
        &small_sealed,
        &small,
        T0 - 60,
    ));

    let mut forged = BASE64.decode(small_sealed.token()).expect("base64url");
    forged[HEADER_LEN + NONCE_LEN] ^= 0x01;
    let duplicate_header = format!(
        "{name}={}; {}",
        BASE64.encode(&forged),
        small_sealed.set_cookies.request_header(),
        name = server.cookie_name
    );
    vectors.push(vector(
        "duplicate_cookie_name",
        "The cookie name appears twice (say a path variant): the first occurrence fails \
         authentication, so the second is tried and opens. Occurrence i of every chunk name \
         forms variant i; any failure moves on to the next variant.",
        &small_sealed,
        &server,
        T0 + 5,
        duplicate_header,
        small_sealed.token(),
        Ok(&small),
    ));

    // -- Must-fail vectors.
    let base = &small_sealed;
    vectors.push(tampered(
        "ciphertext_bit_flip",
        "The lowest bit of the first ciphertext byte is flipped.",
        base,
        T0 + 5,
        "forged",
        |t| t[HEADER_LEN + NONCE_LEN] ^= 0x01,
    ));
    vectors.push(tampered(
        "tag_flipped",
        "Every bit of the last tag byte is flipped.",
        base,
        T0 + 5,
        "forged",
        |t| *t.last_mut().expect("non-empty") ^= 0xff,
    ));
    vectors.push(tampered(
        "nonce_changed",
        "The first nonce byte is changed.",
        base,
        T0 + 5,
        "forged",
        |t| t[HEADER_LEN] ^= 0x80,
    ));
    vectors.push(tampered(
        "version_changed",
        "The header's version nibble says 2; checked before anything else.",
        base,
        T0 + 5,
        "unsupported_version",
        |t| t[0] = (2 << 4) | (t[0] & 0x0f),
    ));
    vectors.push(tampered(
        "mode_nibble_unknown",
        "The header's mode nibble is 2, which is neither sealed (0) nor signed (1).",
        base,
        T0 + 5,
        "wrong_mode",
        |t| t[0] = (FORMAT_VERSION << 4) | 2,
    ));
    vectors.push(tampered(
        "unknown_key_id",
        "The header's key id is changed to one the ring does not hold; rejected before any \
         cryptography.",
        base,
        T0 + 5,
        "unknown_key",
        |t| t[2..HEADER_LEN].copy_from_slice(&UNKNOWN_KEY_ID.to_be_bytes()),
    ));
    let mut recounted = tampered(
        "chunk_count_changed",
        "The header's chunk count is changed from 1 to 2 and an empty `NAME.1` cookie is \
         supplied: the joined token is the same, but the count is authenticated.",
        base,
        T0 + 5,
        "forged",
        |t| t[1] = 2,
    );
    recounted.cookie_header.push_str(&format!("; {}=", chunk_name(&server.cookie_name, 1)));
    vectors.push(recounted);
    vectors.push(tampered(
        "truncated_below_minimum",
        "The token is cut to one byte less than header + nonce + tag: too short to hold any \
         frame, rejected before authentication.",
        base,
        T0 + 5,
        "malformed",
        |t| t.truncate(HEADER_LEN + NONCE_LEN + TAG_LEN - 1),
    ));
    vectors.push(tampered(
        "truncated_tag",
        "The last byte of the token (of the tag) is dropped; still long enough to parse.",
        base,
        T0 + 5,
        "forged",
        |t| {
            t.pop();
        },
    ));

    let mut bad = small_sealed.token();
    bad.replace_range(20..21, "+");
    vectors.push(vector(
        "bad_base64",
        "A character of the token is replaced by `+`, which is not in the base64url alphabet.",
        base,
        &server,
        T0 + 5,
        format!("{}={bad}", server.cookie_name),
        bad.clone(),
        Err("malformed"),
    ));

    // The last character of a token of 4k+2 characters carries 2 bits and 4 unused ones, which
    // must be zero: setting one gives the same bytes under a lenient decoder.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let canonical = small_sealed.token();
    assert_eq!(canonical.len() % 4, 2, "the trailing-bits vector needs a token of 4k+2 chars");
    let last = canonical.as_bytes()[canonical.len() - 1];
    let index = ALPHABET.iter().position(|&c| c == last).expect("base64url");
    let mut loose = canonical.clone();
    loose.pop();
    loose.push(char::from(ALPHABET[index | 1]));
    vectors.push(vector(
        "base64_nonzero_trailing_bits",
        "The last character's unused low bits are set: the bytes decode the same under a \
         lenient decoder, but only the canonical encoding is accepted.",
        base,
        &server,
        T0 + 5,
        format!("{}={loose}", server.cookie_name),
        loose.clone(),
        Err("malformed"),
    ));
    let padded = format!("{canonical}==");
    vectors.push(vector(
        "base64_padded",
        "The token carries `==` padding: base64url is used without padding, and padding is \
         refused.",
        base,
        &server,
        T0 + 5,
        format!("{}={padded}", server.cookie_name),
        padded.clone(),
        Err("malformed"),
    ));

    let other = Server { cookie_name: "__Host-other".to_owned(), ..server.clone() };
    vectors.push(vector(
        "moved_cookie_name",
        "A token sealed under `__Host-session`, presented under `__Host-other` to a server \
         using that name: the name is in the AAD.",
        base,
        &other,
        T0 + 5,
        format!("__Host-other={}", base.token()),
        base.token(),
        Err("forged"),
    ));

    let resealed = refresh(&chunked, T0 + 60);
    let (first, second) = (chunked.values(), resealed.values());
    assert_eq!(first.len(), second.len(), "both writes must have as many chunks");
    let mut parts = vec![first[0].clone()];
    parts.extend(second[1..].iter().cloned());
    let header = parts
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{}={v}", chunk_name(&chunker.cookie_name, i)))
        .collect::<Vec<_>>()
        .join("; ");
    vectors.push(vector(
        "mixed_chunks",
        "Chunk 0 of one write with the other chunks of the next write of the same session \
         (resealed 60 s later): each write has its own nonce and tag.",
        &chunked,
        &chunker,
        T0 + 65,
        header,
        parts.concat(),
        Err("forged"),
    ));

    let values = chunked.values();
    let kept: Vec<usize> = (0..values.len()).filter(|&i| i != 1).collect();
    let header = kept
        .iter()
        .map(|&i| format!("{}={}", chunk_name(&chunker.cookie_name, i), values[i]))
        .collect::<Vec<_>>()
        .join("; ");
    vectors.push(vector(
        "chunk_dropped",
        "Chunk 1 of a multi-chunk token is missing: the header's chunk count names a cookie \
         the request does not carry.",
        &chunked,
        &chunker,
        T0 + 5,
        header,
        kept.iter().map(|&i| values[i].as_str()).collect(),
        Err("malformed"),
    ));

    vectors.push(rejected(
        "idle_expired",
        "Opened one second after last_refresh + idle_timeout + clock_skew.",
        base,
        T0 + 1800 + 60 + 1,
        "idle_expired",
    ));

    let short_lived = Server {
        limits: Limits { absolute_timeout_secs: 3600, ..Limits::default() },
        ..server.clone()
    };
    let first = seal(&short_lived, small.session(), T0, "absolute_expired");
    let lived = refresh(&refresh(&first, T0 + 1500), T0 + 3000);
    vectors.push(rejected(
        "absolute_expired",
        "A one-hour session refreshed at T0+1500 and T0+3000, opened one second after expires_at + \
         clock_skew: the idle window is still open, the absolute lifetime is over.",
        &lived,
        T0 + 3600 + 60 + 1,
        "absolute_expired",
    ));

    vectors.push(rejected(
        "issued_in_future",
        "Opened at issued_at - clock_skew - 1: the token claims a time too far ahead.",
        base,
        T0 - 60 - 1,
        "issued_in_future",
    ));

    vectors.push(vector(
        "signed_to_sealed",
        "A valid signed-mode token presented to a server configured for sealed mode.",
        &signed_sealed,
        &server,
        T0 + 5,
        signed_sealed.set_cookies.request_header(),
        signed_sealed.token(),
        Err("wrong_mode"),
    ));

    let frugal =
        Server { limits: Limits { max_state_size: 256, ..Limits::default() }, ..server.clone() };
    vectors.push(vector(
        "state_too_large",
        "The compressed corpus state opened by a server whose max_state_size (256) is below \
         the decompressed body's size: decompression is refused.",
        &wizard_sealed,
        &frugal,
        T0 + 5,
        wizard_sealed.set_cookies.request_header(),
        wizard_sealed.token(),
        Err("too_large"),
    ));

    VectorFile {
        title: "sealed-session wire format test vectors".to_owned(),
        format_version: FORMAT_VERSION,
        generator: "cargo run --example test_vectors -- --write".to_owned(),
        seed: SEED.to_owned(),
        notes: notes(),
        vectors,
    }
}

fn chunk_name(base: &str, index: usize) -> String {
    if index == 0 { base.to_owned() } else { format!("{base}.{index}") }
}

/// The file's text: pretty-printed JSON with a final newline.
pub fn render(file: &VectorFile) -> String {
    let mut text = serde_json::to_string_pretty(file).expect("vectors serialize");
    text.push('\n');
    text
}

// ---------------------------------------------------------------------------------------------
// An independent decoder, written from the format's description rather than the library.

/// What [`reference_decode`] finds in a token.
#[derive(Debug)]
pub struct Decoded {
    pub key_id: u32,
    pub chunks: u8,
    pub compressed: bool,
    pub issued_at: u64,
    pub last_refresh: u64,
    pub expires_at: u64,
    pub session_id: [u8; SESSION_ID_LEN],
    pub state: Map<String, Value>,
    pub sensitive: Vec<String>,
    pub aad: Vec<u8>,
    pub frame: Vec<u8>,
}

/// Decodes a valid vector's `token` without the library: header, key by id, HKDF subkey,
/// AAD, XAES-256-GCM or HMAC-SHA256, frame, zstd, MessagePack. Does not check times.
pub fn reference_decode(vector: &Vector) -> Result<Decoded, String> {
    let token = BASE64.decode(&vector.token).map_err(|e| format!("base64: {e}"))?;
    let header = token.get(..HEADER_LEN).ok_or("token shorter than its header")?;
    let (version, mode, chunks) = (header[0] >> 4, header[0] & 0x0f, header[1]);
    let key_id = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
    if version != FORMAT_VERSION {
        return Err(format!("version {version}"));
    }
    let key = vector.keys.iter().find(|k| k.id == key_id).ok_or("no key with the token's id")?;
    let (enc, sig) = subkeys(&from_hex(&key.secret_hex)?);
    if to_hex(&enc) != key.encryption_subkey_hex || to_hex(&sig) != key.signing_subkey_hex {
        return Err(format!("the subkeys listed for key {key_id:08x} are not HKDF's"));
    }
    let name = vector.cookie_name.as_bytes();
    let mut aad = header.to_vec();
    aad.push(u8::try_from(name.len()).map_err(|_| "cookie name too long")?);
    aad.extend_from_slice(name);

    let body = &token[HEADER_LEN..];
    let frame = match (mode, vector.mode.as_str()) {
        (0, "sealed") => {
            let short = "token too short for sealed mode";
            let (nonce, rest) = body.split_at_checked(NONCE_LEN).ok_or(short)?;
            let (ciphertext, tag) = rest
                .split_at_checked(rest.len().checked_sub(TAG_LEN).ok_or(short)?)
                .ok_or(short)?;
            let cipher = Xaes256Gcm::new_from_slice(&enc).map_err(|_| "cipher key")?;
            let nonce = Nonce::try_from(nonce).map_err(|_| "nonce length")?;
            let tag = Tag::try_from(tag).map_err(|_| "tag length")?;
            let mut frame = ciphertext.to_vec();
            cipher
                .decrypt_inout_detached(&nonce, &aad, frame.as_mut_slice().into(), &tag)
                .map_err(|_| "XAES-256-GCM authentication failed")?;
            frame
        }
        (1, "signed") => {
            let split = body.len().checked_sub(MAC_LEN).ok_or("token too short for signed mode")?;
            let (frame, tag) = body.split_at(split);
            let mut mac = Hmac::<Sha256>::new_from_slice(&sig).map_err(|_| "mac key")?;
            mac.update(&aad);
            mac.update(frame);
            mac.verify_slice(tag).map_err(|_| "HMAC-SHA256 verification failed")?;
            frame.to_vec()
        }
        _ => return Err(format!("mode nibble {mode} under a {} server", vector.mode)),
    };

    let bad = |what: &str| format!("frame: {what}");
    let (&flags, rest) = frame.split_first().ok_or_else(|| bad("empty"))?;
    if flags & !0b11 != 0 {
        return Err(bad("unknown flags"));
    }
    let (issued_at, rest) = read_varint(rest).ok_or_else(|| bad("issued_at"))?;
    let (refresh_delta, rest) = read_varint(rest).ok_or_else(|| bad("refresh delta"))?;
    let (expiry_delta, rest) = read_varint(rest).ok_or_else(|| bad("expiry delta"))?;
    let (id, rest) = rest.split_at_checked(SESSION_ID_LEN).ok_or_else(|| bad("session id"))?;
    let (body, sensitive) = if flags & 0b10 != 0 {
        let (len, rest) = read_varint(rest).ok_or_else(|| bad("body_len"))?;
        let len = usize::try_from(len).map_err(|_| bad("body_len"))?;
        rest.split_at_checked(len).ok_or_else(|| bad("body_len past the end"))?
    } else {
        (rest, &[][..])
    };
    let compressed = flags & 0b01 != 0;
    let body = if compressed {
        zstd::bulk::decompress(body, vector.config.max_state_size)
            .map_err(|e| bad(&e.to_string()))?
    } else {
        body.to_vec()
    };
    let mut state: Map<String, Value> = rmp_serde::from_slice::<BTreeMap<String, Value>>(&body)
        .map_err(|e| bad(&format!("body: {e}")))?
        .into_iter()
        .collect();
    let mut sensitive_keys = Vec::new();
    if !sensitive.is_empty() {
        let section: BTreeMap<String, Value> =
            rmp_serde::from_slice(sensitive).map_err(|e| bad(&format!("sensitive: {e}")))?;
        for (key, value) in section {
            sensitive_keys.push(key.clone());
            state.insert(key, value);
        }
    }
    Ok(Decoded {
        key_id,
        chunks,
        compressed,
        issued_at,
        last_refresh: issued_at.checked_add(refresh_delta).ok_or_else(|| bad("overflow"))?,
        expires_at: issued_at.checked_add(expiry_delta).ok_or_else(|| bad("overflow"))?,
        session_id: id.try_into().map_err(|_| bad("session id"))?,
        state,
        sensitive: sensitive_keys,
        aad,
        frame,
    })
}

/// Unsigned LEB128, at most ten bytes.
fn read_varint(input: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &byte) in input.iter().enumerate().take(10) {
        let low = u64::from(byte & 0x7f);
        if i == 9 && low > 1 {
            return None;
        }
        value |= low << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &input[i + 1..]));
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Checking.

/// Checks a vectors file's text: identical to what [`generate`] writes, and every vector
/// behaves as it says. Returns every failure found.
pub fn check(text: &str) -> Result<usize, Vec<String>> {
    let mut failures = Vec::new();
    let expected = render(&generate());
    if text != expected {
        let line = text.lines().zip(expected.lines()).position(|(a, b)| a != b);
        let line = line.map_or_else(|| "at the end".to_owned(), |n| format!("at line {}", n + 1));
        failures.push(format!(
            "the file differs from what `--write` would produce ({line}); regenerate it with \
             `cargo run --example test_vectors -- --write` if the change is intended"
        ));
    }
    let mut count = 0;
    match serde_json::from_str::<VectorFile>(text) {
        Ok(file) => {
            count = file.vectors.len();
            failures.extend(check_vectors(&file).err().unwrap_or_default());
        }
        Err(e) => failures.push(format!("the file does not parse: {e}")),
    }
    if failures.is_empty() { Ok(count) } else { Err(failures) }
}

/// Checks every vector of a parsed file, from the file's contents alone.
pub fn check_vectors(file: &VectorFile) -> Result<(), Vec<String>> {
    let failures: Vec<String> = file
        .vectors
        .iter()
        .filter_map(|v| check_vector(v).err().map(|why| format!("vector {:?}: {why}", v.name)))
        .collect();
    if failures.is_empty() { Ok(()) } else { Err(failures) }
}

fn check_vector(vector: &Vector) -> Result<(), String> {
    let codec = build_codec(&vector.keys, &vector.cookie_name, &vector.mode, &vector.config)?;
    let opened = codec.open(&vector.cookie_header, at(vector.now));
    match (&vector.expected, &vector.expected_error, opened) {
        (Some(expected), None, Ok(session)) => {
            check_session(expected, &session)?;
            check_decoded(
                expected,
                &reference_decode(vector).map_err(|e| format!("reference: {e}"))?,
            )
            .map_err(|e| format!("reference decoder: {e}"))
        }
        (Some(_), None, Err(rejection)) => {
            Err(format!("the library rejected a valid vector: {}", rejection.reason()))
        }
        (None, Some(error), Err(rejection)) => {
            let got = reason_name(rejection.reason());
            if got == error {
                Ok(())
            } else {
                Err(format!("expected {error}, rejected as {got} ({})", rejection.reason()))
            }
        }
        (None, Some(error), Ok(_)) => Err(format!("expected {error}, but the token opened")),
        _ => Err("a vector needs exactly one of `expected` and `expected_error`".to_owned()),
    }
}

fn same<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want { Ok(()) } else { Err(format!("{what}: got {got:?}, expected {want:?}")) }
}

fn check_session(expected: &Expected, session: &Session) -> Result<(), String> {
    let mut state = Map::new();
    for key in session.keys() {
        let value = session.get::<Value>(key).map_err(|e| e.to_string())?;
        state.insert(key.to_owned(), value.unwrap_or(Value::Null));
    }
    let sensitive: Vec<String> =
        session.keys().filter(|k| session.is_sensitive(k)).map(str::to_owned).collect();
    let mut want_sensitive = expected.sensitive.clone();
    want_sensitive.sort();
    same("state", &state, &expected.state)?;
    same("sensitive keys", sensitive, want_sensitive)?;
    same(
        "session id",
        session.id().map(|id| id.to_string()),
        Some(expected.session_id_hex.clone()),
    )?;
    same("issued_at", unix(session.issued_at()), Some(expected.issued_at))?;
    same("last_refresh", unix(session.last_refresh()), Some(expected.last_refresh))?;
    same("expires_at", unix(session.expires_at()), Some(expected.expires_at))?;
    same("key id", session.key_id(), Some(KeyId(expected.key_id)))?;
    same("chunks", session.chunk_count(), expected.chunks)
}

fn check_decoded(expected: &Expected, decoded: &Decoded) -> Result<(), String> {
    let mut want_sensitive = expected.sensitive.clone();
    want_sensitive.sort();
    same("state", &decoded.state, &expected.state)?;
    same("sensitive keys", &decoded.sensitive, &want_sensitive)?;
    same("session id", to_hex(&decoded.session_id), expected.session_id_hex.clone())?;
    same("issued_at", decoded.issued_at, expected.issued_at)?;
    same("last_refresh", decoded.last_refresh, expected.last_refresh)?;
    same("expires_at", decoded.expires_at, expected.expires_at)?;
    same("key id", decoded.key_id, expected.key_id)?;
    same("chunks", usize::from(decoded.chunks), expected.chunks)?;
    same("compressed", decoded.compressed, expected.compressed)?;
    same("aad", to_hex(&decoded.aad), expected.aad_hex.clone())?;
    same("frame", to_hex(&decoded.frame), expected.frame_hex.clone())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, path) = match args.as_slice() {
        [mode] => (mode.as_str(), VECTORS_PATH.to_owned()),
        [mode, path] => (mode.as_str(), path.clone()),
        _ => ("", String::new()),
    };
    match mode {
        "--write" => {
            let file = generate();
            if let Err(failures) = check_vectors(&file) {
                eprintln!("refusing to write vectors that do not check:");
                failures.iter().for_each(|f| eprintln!("  {f}"));
                return ExitCode::FAILURE;
            }
            let write = std::fs::create_dir_all(
                std::path::Path::new(&path).parent().unwrap_or(std::path::Path::new(".")),
            )
            .and_then(|()| std::fs::write(&path, render(&file)));
            if let Err(e) = write {
                eprintln!("cannot write {path}: {e}");
                return ExitCode::FAILURE;
            }
            println!("wrote {} vectors to {path}", file.vectors.len());
            ExitCode::SUCCESS
        }
        "--check" => {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    eprintln!("cannot read {path}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match check(&text) {
                Ok(count) => {
                    println!("{path}: all {count} vectors check");
                    ExitCode::SUCCESS
                }
                Err(failures) => {
                    eprintln!("{path}: {} problem(s):", failures.len());
                    failures.iter().for_each(|f| eprintln!("  {f}"));
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: cargo run --example test_vectors -- (--write | --check) [PATH]");
            ExitCode::from(2)
        }
    }
}
