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
use sealed_session::keys::file::{self as keys_file, KeyFileError, KeyRingFile};
use sealed_session::{
    Key, KeyId, KeyRing, KeyRingError, Lifetime, Mode, RejectReason, RotationPolicy, Schedule,
    Session, SessionCodec, SessionConfig, SetCookies,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use xaes_256_gcm::aead::AeadInOut as _;
use xaes_256_gcm::{Nonce, Tag, Xaes256Gcm};

/// Where the vectors live, relative to the crate root.
pub const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/test_vectors/v1.json");

/// Dictionary 1, as FORMAT.md section 4.2 names it (its SHA-256 is checked below).
const DICTIONARY: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/format/dictionary-1.zdict"));

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

/// The stable name of each rejection reason, as `expected_error` spells it (the library's own
/// [`RejectReason::code`], FORMAT.md section 8).
pub fn reason_name(reason: RejectReason) -> &'static str {
    reason.code()
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
    /// Key ring files and their environment form (`v1-extra.json` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_ring_files: Vec<RingFileVector>,
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
    /// A token carried in a request header instead of cookies (FORMAT.md section 7); when
    /// present, it is opened instead of `cookie_header` (which is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_header: Option<TokenHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Expected>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_error: Option<String>,
}

/// A request header carrying a token: its name (bound into the AAD as `header:NAME`) and value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenHeader {
    pub name: String,
    pub value: String,
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
    /// Whether the sealing server compresses small bodies with the dictionary (flag bit 2);
    /// absent means `false`. Opening does not depend on it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compression_dictionary: bool,
    /// The deployment purpose bound into the AAD (FORMAT.md section 3.2); absent means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
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
    /// The key that seals at `now` under `keys` (section 2's rule), where a vector checks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_key_id: Option<u32>,
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
            compression_dictionary: false,
            purpose: None,
        }
    }
}

fn build_codec(
    keys: &[KeyEntry],
    cookie_name: &str,
    mode: &str,
    limits: &Limits,
) -> Result<SessionCodec, String> {
    build_codec_with(keys, cookie_name, mode, limits, None)
}

/// [`build_codec`] with a token header name other than the default.
fn build_codec_with(
    keys: &[KeyEntry],
    cookie_name: &str,
    mode: &str,
    limits: &Limits,
    token_header: Option<&str>,
) -> Result<SessionCodec, String> {
    let mode = match mode {
        "sealed" => Mode::Sealed,
        "signed" => Mode::Signed,
        other => return Err(format!("unknown mode {other:?}")),
    };
    // The name is given in full, so the builder must not add the `__Host-` prefix again.
    let mut builder = SessionConfig::builder(cookie_name);
    if let Some(name) = token_header {
        builder = builder.token_header(name);
    }
    if let Some(purpose) = &limits.purpose {
        builder = builder.purpose(purpose.clone());
    }
    let config = builder
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
        .compression_dictionary(limits.compression_dictionary)
        .build()
        .map_err(|e| format!("config: {e}"))?;
    Ok(SessionCodec::new(config, build_ring(keys)?))
}

fn build_ring(keys: &[KeyEntry]) -> Result<KeyRing, String> {
    let mut ring = KeyRing::new();
    for key in keys {
        let secret = Key::try_from_slice(&from_hex(&key.secret_hex)?).map_err(|e| e.to_string())?;
        ring.insert(KeyId(key.id), secret, at(key.created_at), at(key.activates_at))
            .map_err(|e| format!("key ring: {e}"))?;
    }
    Ok(ring)
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

/// wizard.json with its CSRF token moved to the sensitive section.
fn wizard_with_sensitive_csrf(wizard: &State) -> State {
    let mut mixed = wizard.clone();
    mixed.ordinary.remove("csrf");
    mixed.with_sensitive(json!({"csrf": "_Dm0-YAw2ZHqyEKBMK_qPBkRX6DaVXZirt8Tq5s2-50"}))
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
        token_header: None,
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
                current_key_id: None,
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

    let mixed = wizard_with_sensitive_csrf(&wizard);
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
        key_ring_files: Vec::new(),
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
// v1-extra.json: a vector for each point an independent implementer had to guess (FORMAT.md
// section 11.2). v1.json stays as it was; these are generated and checked the same way.

/// Where the extra vectors live, relative to the crate root.
pub const EXTRA_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/test_vectors/v1-extra.json");

/// A key ring file, or its environment form, and what loading it at `now` gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingFileVector {
    pub name: String,
    pub description: String,
    /// `"file"`: the JSON text of a key ring file; `"env"`: an environment variable's value.
    pub form: String,
    pub text: String,
    /// The time at which the ring is loaded (it must have an active key then).
    pub now: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<RingFileExpected>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_error: Option<String>,
}

/// The keys a valid key ring file holds, and the one that seals at `now`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingFileExpected {
    pub keys: Vec<RingFileKey>,
    pub current_key_id: u32,
}

/// One key of a key ring file, its secret in hex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingFileKey {
    pub id: u32,
    pub secret_hex: String,
    pub created_at: u64,
    pub activates_at: u64,
}

/// The stable name of a key ring file error, as `expected_error` spells it (FORMAT.md 2.1).
pub fn ring_error_name(error: &KeyFileError) -> &'static str {
    match error {
        KeyFileError::Json { .. } => "invalid_json",
        KeyFileError::EnvEncoding => "env_encoding",
        KeyFileError::Version(_) => "unsupported_version",
        KeyFileError::Checksum => "checksum",
        KeyFileError::SecretEncoding(_) => "secret_encoding",
        KeyFileError::SecretLength { .. } => "secret_length",
        KeyFileError::Ring(KeyRingError::DuplicateId(_)) => "duplicate_id",
        KeyFileError::Ring(KeyRingError::ActivatesBeforeCreated(_)) => "activates_before_created",
        KeyFileError::NoActiveKey => "no_active_key",
        KeyFileError::Empty => "empty",
        KeyFileError::Schedule(_) => "invalid_schedule",
        _ => "unnamed",
    }
}

fn leb(value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut value = value;
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

/// A frame laid out field by field, so that a vector can bend any one of them. `body_len` is
/// written when flag bit 1 is set: the real length unless `body_len` overrides it.
#[derive(Clone)]
struct RawFrame {
    flags: u8,
    issued_at: Vec<u8>,
    refresh_delta: Vec<u8>,
    expiry_delta: Vec<u8>,
    /// Written after the session id when present, whatever the flags say.
    idle_timeout: Option<Vec<u8>>,
    body_len: Option<Vec<u8>>,
    body: Vec<u8>,
    sensitive: Vec<u8>,
}

impl RawFrame {
    /// An uncompressed frame issued (and last refreshed) at T0 for the default 12 hours.
    fn plain(body: Vec<u8>) -> RawFrame {
        RawFrame {
            flags: 0,
            issued_at: leb(T0),
            refresh_delta: leb(0),
            expiry_delta: leb(12 * 3600),
            idle_timeout: None,
            body_len: None,
            body,
            sensitive: Vec::new(),
        }
    }

    /// This session's own idle timeout (flag bit 3 and the field after the id).
    fn idle_timeout(mut self, secs: u64) -> RawFrame {
        self.flags |= 0b1000;
        self.idle_timeout = Some(leb(secs));
        self
    }

    fn with_sensitive(mut self, sensitive: Vec<u8>) -> RawFrame {
        self.flags |= 0b10;
        self.sensitive = sensitive;
        self
    }

    /// The body stored as the zstd frame `packed` (flag bit 0).
    fn packed(mut self, packed: Vec<u8>) -> RawFrame {
        self.flags |= 0b01;
        self.body = packed;
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = vec![self.flags];
        out.extend_from_slice(&self.issued_at);
        out.extend_from_slice(&self.refresh_delta);
        out.extend_from_slice(&self.expiry_delta);
        out.extend_from_slice(
            &sha256(b"sealed-session test vectors v1 crafted id")[..SESSION_ID_LEN],
        );
        if let Some(idle_timeout) = &self.idle_timeout {
            out.extend_from_slice(idle_timeout);
        }
        if self.flags & 0b10 != 0 {
            out.extend(self.body_len.clone().unwrap_or_else(|| leb(self.body.len() as u64)));
        }
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&self.sensitive);
        out
    }
}

/// A token around `frame`, sealed (or signed) by the generator itself under `key`: the library
/// never writes most of these frames. The nonce comes from the seed and `label`.
fn craft_token(server: &Server, key: &KeyEntry, chunks: u8, frame: &[u8], label: &str) -> String {
    craft_token_for(&server.cookie_name, server.mode, key, chunks, frame, label)
}

/// [`craft_token`] bound to `aad_name` (a cookie name, or `header:` and a header name).
fn craft_token_for(
    aad_name: &str,
    mode: Mode,
    key: &KeyEntry,
    chunks: u8,
    frame: &[u8],
    label: &str,
) -> String {
    let nibble = u8::from(mode == Mode::Signed);
    let id = key.id.to_be_bytes();
    let header = [(FORMAT_VERSION << 4) | nibble, chunks, id[0], id[1], id[2], id[3]];
    let mut aad = header.to_vec();
    aad.push(aad_name.len() as u8);
    aad.extend_from_slice(aad_name.as_bytes());
    let (enc, sig) = subkeys(&from_hex(&key.secret_hex).expect("hex"));
    let mut token = header.to_vec();
    if mode == Mode::Signed {
        let mut mac = Hmac::<Sha256>::new_from_slice(&sig).expect("any key length");
        mac.update(&aad);
        mac.update(frame);
        token.extend_from_slice(frame);
        token.extend_from_slice(&mac.finalize().into_bytes());
    } else {
        let mut nonce = [0u8; NONCE_LEN];
        SeededEntropy::new(&format!("crafted {label}")).fill(&mut nonce);
        let cipher = Xaes256Gcm::new_from_slice(&enc).expect("32-byte key");
        let mut buffer = frame.to_vec();
        let tag = cipher
            .encrypt_inout_detached(
                &Nonce::try_from(&nonce[..]).expect("24 bytes"),
                &aad,
                buffer.as_mut_slice().into(),
            )
            .expect("XAES-256-GCM seals");
        token.extend_from_slice(&nonce);
        token.extend_from_slice(&buffer);
        token.extend_from_slice(&tag);
    }
    BASE64.encode(token)
}

/// A vector whose token holds `frame`, crafted under `server`'s first key and presented alone
/// in its cookie. A valid one states its expected `state` and sensitive keys literally.
fn crafted(
    name: &str,
    description: &str,
    server: &Server,
    frame: &RawFrame,
    now: u64,
    outcome: Result<(Value, &[&str]), &str>,
) -> Vector {
    let token = craft_token(server, &server.keys[0], 1, &frame.bytes(), name);
    let mut vector = Vector {
        name: name.to_owned(),
        description: description.to_owned(),
        keys: server.keys.clone(),
        cookie_name: server.cookie_name.clone(),
        mode: mode_name(server.mode).to_owned(),
        config: server.limits.clone(),
        now,
        set_cookie: Vec::new(),
        cookie_header: format!("{}={token}", server.cookie_name),
        token,
        token_header: None,
        expected: None,
        expected_error: None,
    };
    match outcome {
        Ok((state, sensitive)) => {
            let decoded = reference_decode(&vector).expect("crafted valid vectors decode");
            vector.expected = Some(Expected {
                state: object(state),
                sensitive: sensitive.iter().map(|&k| k.to_owned()).collect(),
                session_id_hex: to_hex(&decoded.session_id),
                issued_at: decoded.issued_at,
                last_refresh: decoded.last_refresh,
                expires_at: decoded.expires_at,
                key_id: decoded.key_id,
                compressed: decoded.compressed,
                chunks: usize::from(decoded.chunks),
                aad_hex: to_hex(&decoded.aad),
                frame_hex: to_hex(&decoded.frame),
                current_key_id: None,
            });
        }
        Err(error) => vector.expected_error = Some(error.to_owned()),
    }
    vector
}

/// MessagePack helpers for crafted sections.
fn mp<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).expect("serializes")
}

fn mp_map(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    rmp::encode::write_map_len(&mut out, entries.len() as u32).expect("Vec");
    for (key, value) in entries {
        out.extend_from_slice(key);
        out.extend_from_slice(value);
    }
    out
}

/// A one-entry section map `{key: "xx..."}` of exactly `total` bytes (a str 16 value).
fn sized_section(key: &str, total: usize) -> Vec<u8> {
    let fill = total - (1 + mp(key).len() + 3);
    let out = mp_map(&[(mp(key), mp(&"x".repeat(fill)))]);
    assert_eq!(out.len(), total);
    out
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A zstd block header: last-block bit, type (0 raw, 1 RLE), size, in 3 bytes little-endian.
fn zstd_block(last: bool, kind: u32, size: u32) -> [u8; 3] {
    let value = u32::from(last) | (kind << 1) | (size << 3);
    let b = value.to_le_bytes();
    [b[0], b[1], b[2]]
}

/// A single-segment zstd frame declaring `declared` bytes (4-byte field), with these blocks.
fn zstd_frame(declared: u32, blocks: &[&[u8]]) -> Vec<u8> {
    let mut out = ZSTD_MAGIC.to_vec();
    out.push(0b1010_0000); // content size in 4 bytes, single segment, no checksum, no dictionary
    out.extend_from_slice(&declared.to_le_bytes());
    blocks.iter().for_each(|block| out.extend_from_slice(block));
    out
}

/// A zstd frame holding `content` as one raw block, naming dictionary `dict_id` if given.
fn zstd_raw(content: &[u8], dict_id: Option<u8>) -> Vec<u8> {
    assert!(content.len() < 256);
    let mut out = ZSTD_MAGIC.to_vec();
    // Single segment, 1-byte content size; Dictionary_ID_flag 1 (one byte) when named.
    out.push(0b0010_0000 | u8::from(dict_id.is_some()));
    out.extend(dict_id);
    out.push(content.len() as u8);
    out.extend_from_slice(&zstd_block(true, 0, content.len() as u32));
    out.extend_from_slice(content);
    out
}

fn zstd_with(content: &[u8], parameter: zstd::zstd_safe::CParameter) -> Vec<u8> {
    let mut compressor = zstd::bulk::Compressor::new(3).expect("zstd");
    compressor.set_parameter(parameter).expect("zstd parameter");
    compressor.compress(content).expect("zstd compresses")
}

/// A vector presenting `sealed`'s cookies, or any Cookie header, to `opener`.
fn presented(
    name: &str,
    description: &str,
    sealed: &Sealed,
    opener: &Server,
    now: u64,
    cookie_header: String,
    outcome: Result<&State, &str>,
) -> Vector {
    vector(name, description, sealed, opener, now, cookie_header, sealed.token(), outcome)
}

const RETIRED: KeyDef =
    KeyDef { label: "retired", id: 0x5e55_0010, created_at: T0 - 90 * 86_400, activates_at: 0 };
const OLDER: KeyDef = KeyDef {
    label: "older",
    id: 0x5e55_0011,
    created_at: T0 - 30 * 86_400,
    activates_at: T0 - 20 * 86_400,
};
const EARLY: KeyDef = KeyDef {
    label: "created earlier",
    id: 0x5e55_0030,
    created_at: T0 - 2 * 86_400,
    activates_at: T0 - 86_400,
};
const LATE_LOW: KeyDef = KeyDef {
    label: "created later, lower id",
    id: 0x5e55_0010 + 2,
    created_at: T0 - 86_400 - 60,
    activates_at: T0 - 86_400,
};
const LATE_HIGH: KeyDef = KeyDef {
    label: "created later, higher id",
    id: 0x5e55_0020,
    created_at: T0 - 86_400 - 60,
    activates_at: T0 - 86_400,
};
const PENDING: KeyDef =
    KeyDef { label: "pending", id: 0x5e55_0014, created_at: T0 - 3600, activates_at: T0 + 600 };

fn extra_notes() -> Vec<String> {
    [
        "The same schema as v1.json (FORMAT.md section 11), plus `expected.current_key_id` (the \
         key that seals at `now` under `keys`, section 2) and `key_ring_files` (section 2.1).",
        "Vectors with an empty `set_cookie` hold frames built by hand (the library never writes \
         them), sealed under the listed key with a nonce derived from the seed.",
        "`expected.state` maps MessagePack to JSON as section 11.1 says: `$bin`, `$ext`, `$int`, \
         `$float` and `$map` objects for what JSON cannot hold; floats keep a fraction.",
        "Secrets and nonces here are derived from a public seed: never use them for anything \
         but testing.",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Generates the extra vectors.
pub fn generate_extra() -> VectorFile {
    let server = Server::new();
    let mut v = Vec::new();
    let one = |key: &str| mp_map(&[(mp(key), mp(&1u8))]);

    // -- Section keys: at most 255 bytes, checked in both sections, not in nested maps.
    let k255 = "k".repeat(255);
    v.push(crafted(
        "section_key_255_bytes",
        "A body key of 255 bytes, the longest allowed.",
        &server,
        &RawFrame::plain(one(&k255)),
        T0 + 5,
        Ok((json!({ k255.clone(): 1 }), &[])),
    ));
    let k256 = "k".repeat(256);
    v.push(crafted(
        "section_key_256_bytes",
        "A body key of 256 bytes: decoders reject a section key longer than 255 bytes.",
        &server,
        &RawFrame::plain(one(&k256)),
        T0 + 5,
        Err("malformed"),
    ));
    v.push(crafted(
        "sensitive_key_256_bytes",
        "A sensitive-section key of 256 bytes: the bound applies to both sections.",
        &server,
        &RawFrame::plain(mp_map(&[])).with_sensitive(one(&k256)),
        T0 + 5,
        Err("malformed"),
    ));
    let k300 = "n".repeat(300);
    v.push(crafted(
        "nested_map_key_300_bytes",
        "A 300-byte key inside a value (a nested map): nested keys are part of the value and \
         are not bounded.",
        &server,
        &RawFrame::plain(mp_map(&[(mp("outer"), mp_map(&[(mp(&k300), mp(&true))]))])),
        T0 + 5,
        Ok((json!({"outer": { k300.clone(): true }}), &[])),
    ));

    // -- Sections: duplicates, encodings, UTF-8.
    v.push(crafted(
        "duplicate_key_across_sections",
        "Key `a` in the body and in the sensitive section: one key space, so malformed.",
        &server,
        &RawFrame::plain(one("a")).with_sensitive(mp_map(&[(mp("a"), mp(&2u8))])),
        T0 + 5,
        Err("malformed"),
    ));
    v.push(crafted(
        "duplicate_key_string_widths",
        "Key `a` twice in the body, once as fixstr (a1 61) and once as str 8 (d9 01 61): keys \
         are compared as decoded text, whatever the width.",
        &server,
        &RawFrame::plain(mp_map(&[(mp("a"), mp(&1u8)), (vec![0xd9, 0x01, b'a'], mp(&2u8))])),
        T0 + 5,
        Err("malformed"),
    ));
    v.push(crafted(
        "non_utf8_key",
        "A body key whose bytes (ff) are not UTF-8.",
        &server,
        &RawFrame::plain(mp_map(&[(vec![0xa1, 0xff], mp(&1u8))])),
        T0 + 5,
        Err("malformed"),
    ));
    v.push(crafted(
        "sensitive_flag_without_map",
        "Flag bit 1 set, body_len covering the whole rest: the sensitive section is empty bytes, \
         not a map.",
        &server,
        &RawFrame::plain(mp_map(&[])).with_sensitive(Vec::new()),
        T0 + 5,
        Err("malformed"),
    ));

    // -- Depth: 64 levels of values, counted through keys of nested maps too.
    let mut deep64 = vec![0x91; 63];
    deep64.push(0x90);
    let mut deep64_json = json!([]);
    for _ in 0..63 {
        deep64_json = json!([deep64_json]);
    }
    v.push(crafted(
        "depth_64",
        "A value 64 arrays deep (91 x 63, then 90): the deepest allowed.",
        &server,
        &RawFrame::plain(mp_map(&[(mp("deep"), deep64)])),
        T0 + 5,
        Ok((json!({ "deep": deep64_json }), &[])),
    ));
    let mut deep65 = vec![0x91; 64];
    deep65.push(0x90);
    v.push(crafted(
        "depth_65",
        "A value 65 arrays deep (91 x 64, then 90): the innermost array is at depth 65.",
        &server,
        &RawFrame::plain(mp_map(&[(mp("deep"), deep65)])),
        T0 + 5,
        Err("malformed"),
    ));
    let mut key64 = vec![0x91; 62];
    key64.extend_from_slice(&[0x81, 0x90, 0x01]);
    let mut key64_json = json!({"$map": [[[], 1]]});
    for _ in 0..62 {
        key64_json = json!([key64_json]);
    }
    v.push(crafted(
        "nested_map_key_depth_64",
        "62 arrays, then a map at depth 63 whose key is an empty array: the key (like the value) \
         is at depth 64, allowed.",
        &server,
        &RawFrame::plain(mp_map(&[(mp("deep"), key64)])),
        T0 + 5,
        Ok((json!({ "deep": key64_json }), &[])),
    ));
    let mut key65 = vec![0x91; 62];
    key65.extend_from_slice(&[0x81, 0x91, 0x90, 0x01]);
    v.push(crafted(
        "nested_map_key_depth_65",
        "62 arrays, then a map at depth 63 whose key is [[]]: the inner array of the key is at \
         depth 65. Keys of nested maps count like values.",
        &server,
        &RawFrame::plain(mp_map(&[(mp("deep"), key65)])),
        T0 + 5,
        Err("malformed"),
    ));

    // -- Frame fields: varints, times, flags, body_len.
    let mut overlong = leb(T0);
    *overlong.last_mut().expect("non-empty") |= 0x80;
    overlong.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x00]);
    assert_eq!(overlong.len(), 10);
    v.push(crafted(
        "overlong_varint",
        "issued_at written in 10 bytes instead of 5 (zero groups with the continuation bit): \
         decoders accept longer forms.",
        &server,
        &RawFrame { issued_at: overlong, ..RawFrame::plain(one("a")) },
        T0 + 5,
        Ok((json!({"a": 1}), &[])),
    ));
    let mut ten = vec![0x80; 9];
    ten.push(0x01);
    v.push(crafted(
        "ten_byte_varint",
        "refresh_delta is 2^63, a 10-byte varint whose last byte is 01: last_refresh = \
         issued_at + 2^63 still fits 64 bits.",
        &server,
        &RawFrame { refresh_delta: ten, ..RawFrame::plain(one("a")) },
        T0 + 5,
        Ok((json!({"a": 1}), &[])),
    ));
    let mut ten_over = vec![0x80; 9];
    ten_over.push(0x02);
    v.push(crafted(
        "varint_tenth_byte_over_1",
        "expiry_delta's 10th byte is 02: the value needs 65 bits.",
        &server,
        &RawFrame { expiry_delta: ten_over, ..RawFrame::plain(one("a")) },
        T0 + 5,
        Err("malformed"),
    ));
    let mut eleven = vec![0x80; 10];
    eleven.push(0x00);
    v.push(crafted(
        "varint_eleven_bytes",
        "expiry_delta in 11 bytes (the 10th still has the continuation bit).",
        &server,
        &RawFrame { expiry_delta: eleven, ..RawFrame::plain(one("a")) },
        T0 + 5,
        Err("malformed"),
    ));
    let cut = RawFrame::plain(Vec::new()).bytes();
    let unterminated = RawFrame {
        issued_at: vec![0x80, 0x80],
        refresh_delta: Vec::new(),
        expiry_delta: Vec::new(),
        ..RawFrame::plain(Vec::new())
    };
    assert!(unterminated.bytes().len() < cut.len());
    v.push({
        let mut vector = crafted(
            "varint_unterminated",
            "The frame is the flags and two bytes 80 80: issued_at never ends.",
            &server,
            &unterminated,
            T0 + 5,
            Err("malformed"),
        );
        let token =
            craft_token(&server, &server.keys[0], 1, &[0x00, 0x80, 0x80], "varint_unterminated");
        vector.cookie_header = format!("{}={token}", server.cookie_name);
        vector.token = token;
        vector
    });
    v.push(crafted(
        "time_overflow",
        "expiry_delta = 2^64 - 1: issued_at + expiry_delta overflows 64 bits.",
        &server,
        &RawFrame { expiry_delta: leb(u64::MAX), ..RawFrame::plain(one("a")) },
        T0 + 5,
        Err("malformed"),
    ));
    v.push(crafted(
        "expiry_at_u64_max",
        "expiry_delta = 2^64 - 1 - issued_at: absolute_expiry is exactly 2^64 - 1, which fits.",
        &server,
        &RawFrame { expiry_delta: leb(u64::MAX - T0), ..RawFrame::plain(one("a")) },
        T0 + 5,
        Ok((json!({"a": 1}), &[])),
    ));
    for (bit, name) in [(0x20u8, "reserved_flag_bit_5"), (0x80, "reserved_flag_bit_7")] {
        v.push(crafted(
            name,
            &format!("Flags {bit:#04x}: a reserved bit is set."),
            &server,
            &RawFrame { flags: bit, ..RawFrame::plain(one("a")) },
            T0 + 5,
            Err("malformed"),
        ));
    }
    let sections = RawFrame::plain(one("a")).with_sensitive(one("b"));
    v.push(crafted(
        "body_len_beyond_frame",
        "body_len is one more than the bytes after it.",
        &server,
        &RawFrame {
            body_len: Some(leb(one("a").len() as u64 + one("b").len() as u64 + 1)),
            ..sections
        },
        T0 + 5,
        Err("malformed"),
    ));

    // -- Compression.
    let raw_body = mp_map(&[(mp("a"), mp("stored in a raw zstd block"))]);
    v.push(crafted(
        "zstd_raw_block",
        "The body is a zstd frame holding one raw (stored) block, larger than the body itself: \
         decoders accept any single zstd frame, whether or not it helped.",
        &server,
        &RawFrame::plain(Vec::new()).packed(zstd_raw(&raw_body, None)),
        T0 + 5,
        Ok((json!({"a": "stored in a raw zstd block"}), &[])),
    ));
    let text = "checksummed ".repeat(20);
    let check_body = mp_map(&[(mp("text"), mp(&text))]);
    let checked = zstd_with(&check_body, zstd::zstd_safe::CParameter::ChecksumFlag(true));
    v.push(crafted(
        "zstd_with_checksum",
        "The zstd frame carries a content checksum (Content_Checksum_flag): decoders verify it.",
        &server,
        &RawFrame::plain(Vec::new()).packed(checked.clone()),
        T0 + 5,
        Ok((json!({ "text": text }), &[])),
    ));
    let mut bad_sum = checked.clone();
    *bad_sum.last_mut().expect("non-empty") ^= 0x01;
    v.push(crafted(
        "zstd_checksum_mismatch",
        "The same frame with its content checksum's last byte changed.",
        &server,
        &RawFrame::plain(Vec::new()).packed(bad_sum),
        T0 + 5,
        Err("malformed"),
    ));
    v.push(crafted(
        "zstd_dictionary_id",
        "A raw-block zstd frame that names dictionary 7: no dictionary is defined, so malformed.",
        &server,
        &RawFrame::plain(Vec::new()).packed(zstd_raw(&raw_body, Some(7))),
        T0 + 5,
        Err("malformed"),
    ));
    v.push(crafted(
        "zstd_dictionary_id_zero",
        "A raw-block zstd frame whose Dictionary_ID field is present (one byte) and zero: RFC \
         8878 gives 0 the meaning of no Dictionary_ID, so the frame names no dictionary and \
         opens.",
        &server,
        &RawFrame::plain(Vec::new()).packed(zstd_raw(&raw_body, Some(0))),
        T0 + 5,
        Ok((json!({"a": "stored in a raw zstd block"}), &[])),
    ));
    // Single segment, 4-byte content size, Dictionary_ID_flag 1: one byte naming dictionary 7.
    let mut named_65537 = ZSTD_MAGIC.to_vec();
    named_65537.extend_from_slice(&[0b1010_0001, 7]);
    named_65537.extend_from_slice(&65_537u32.to_le_bytes());
    named_65537.extend_from_slice(&zstd_block(true, 1, 65_537));
    named_65537.push(0x00);
    v.push(crafted(
        "zstd_dictionary_id_declaring_65537",
        "A complete zstd frame (one RLE block) that names dictionary 7 and declares 65,537 \
         bytes: the declared size (step 2) is checked before the dictionary id (step 3), so \
         too_large, not malformed.",
        &server,
        &RawFrame::plain(Vec::new()).packed(named_65537),
        T0 + 5,
        Err("too_large"),
    ));
    // -- Deployment purposes (FORMAT.md section 3.2).
    let purposed = |purpose: Option<&str>| Server {
        limits: Limits { purpose: purpose.map(str::to_owned), ..Limits::default() },
        ..server.clone()
    };
    let (production, staging) = (purposed(Some("shop/production")), purposed(Some("shop/staging")));
    let login = State::new(json!({"user": "ada", "roles": ["buyer"]}));
    let sealed_production = seal(&production, login.session(), T0, "purpose_bound");
    v.push(valid(
        "purpose_bound",
        "Sealed and opened by a server whose purpose is \"shop/production\": the AAD ends with \
         the purpose's length and bytes.",
        &sealed_production,
        &login,
        T0 + 5,
    ));
    let sealed_staging = seal(&staging, login.session(), T0, "purpose_other_deployment");
    let sealed_plain = seal(&server, login.session(), T0, "purpose_missing");
    for (name, description, sealed, opener) in [
        (
            "purpose_other_deployment",
            "Sealed under the purpose \"shop/staging\" and opened by a server whose purpose is \
             \"shop/production\", with the same key ring: forged.",
            &sealed_staging,
            &production,
        ),
        (
            "purpose_missing_on_token",
            "Sealed by a server without a purpose and opened by one with the purpose \
             \"shop/production\": forged.",
            &sealed_plain,
            &production,
        ),
        (
            "purpose_unexpected",
            "Sealed under the purpose \"shop/production\" and opened by a server without a \
             purpose: forged.",
            &sealed_production,
            &server,
        ),
    ] {
        let header = sealed.set_cookies.request_header();
        v.push(vector(
            name,
            description,
            sealed,
            opener,
            T0 + 5,
            header,
            sealed.token(),
            Err("forged"),
        ));
    }
    // -- Dictionary 1 (flag bit 2).
    let dictionary_server = Server {
        limits: Limits { compression_dictionary: true, ..Limits::default() },
        ..server.clone()
    };
    let wizard = State::new(serde_json::from_str(WIZARD_JSON).expect("valid JSON"));
    v.push(valid(
        "dictionary_compressed",
        "The corpus state wizard.json sealed by a server that compresses with dictionary 1: \
         flags 0b101, a zstd frame that names no dictionary and opens only with it.",
        &seal(&dictionary_server, wizard.session(), T0, "dictionary_compressed"),
        &wizard,
        T0 + 5,
    ));
    let mixed = wizard_with_sensitive_csrf(&wizard);
    v.push(valid(
        "dictionary_with_sensitive",
        "As dictionary_compressed with the CSRF token sensitive: flags 0b111; the sensitive \
         section is never compressed.",
        &seal(&dictionary_server, mixed.session(), T0, "dictionary_with_sensitive"),
        &mixed,
        T0 + 5,
    ));
    let dictionary_body = mp(&serde_json::from_str::<Value>(WIZARD_JSON).expect("valid JSON"));
    let with_dictionary = |named: bool| {
        let mut compressor =
            zstd::bulk::Compressor::with_dictionary(3, DICTIONARY).expect("zstd dictionary");
        compressor.set_parameter(zstd::zstd_safe::CParameter::DictIdFlag(named)).expect("zstd");
        compressor.compress(&dictionary_body).expect("zstd compresses")
    };
    v.push(crafted(
        "dictionary_flag_alone",
        "Flag bit 2 without bit 0: the dictionary names how a body was compressed, and this \
         one is not; malformed.",
        &server,
        &RawFrame { flags: 0b100, ..RawFrame::plain(one("a")) },
        T0 + 5,
        Err("malformed"),
    ));
    v.push(crafted(
        "dictionary_frame_without_its_flag",
        "A body compressed with dictionary 1 under flag bit 0 alone: decoded without the \
         dictionary, the frame is corrupt; malformed.",
        &server,
        &RawFrame::plain(Vec::new()).packed(with_dictionary(false)),
        T0 + 5,
        Err("malformed"),
    ));
    v.push(crafted(
        "dictionary_frame_names_its_id",
        "Flags 0b101 and a frame compressed with dictionary 1 that also names the dictionary's \
         id in its header: frames never name a dictionary; malformed.",
        &server,
        &RawFrame { flags: 0b101, ..RawFrame::plain(Vec::new()).packed(with_dictionary(true)) },
        T0 + 5,
        Err("malformed"),
    ));
    let mut skippable = vec![0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4];
    skippable.extend(zstd_raw(&raw_body, None));
    v.push(crafted(
        "zstd_skippable_frame",
        "A skippable frame (magic 184d2a50) before a valid frame: the body must be exactly one \
         zstd frame, and a skippable frame is not one.",
        &server,
        &RawFrame::plain(Vec::new()).packed(skippable),
        T0 + 5,
        Err("malformed"),
    ));
    v.push(crafted(
        "zstd_no_content_size",
        "A zstd frame without a declared content size.",
        &server,
        &RawFrame::plain(Vec::new())
            .packed(zstd_with(&check_body, zstd::zstd_safe::CParameter::ContentSizeFlag(false))),
        T0 + 5,
        Err("malformed"),
    ));
    v.push(crafted(
        "compressed_empty_body",
        "Flag bit 0 set and an empty body: no zstd frame at all.",
        &server,
        &RawFrame::plain(Vec::new()).packed(Vec::new()),
        T0 + 5,
        Err("malformed"),
    ));
    let rle_65537 = zstd_frame(65_537, &[&zstd_block(true, 1, 65_537), &[0x00]]);
    v.push(crafted(
        "zstd_declaring_65537",
        "A complete zstd frame (one RLE block) declaring 65,537 bytes, over the default maximum \
         state of 65,536: too_large, refused before decompressing.",
        &server,
        &RawFrame::plain(Vec::new()).packed(rle_65537.clone()),
        T0 + 5,
        Err("too_large"),
    ));
    let mut trailing = rle_65537.clone();
    trailing.push(0x00);
    v.push(crafted(
        "zstd_trailing_byte_declaring_65537",
        "The same frame with one byte after it: the frame structure is checked before the \
         declared size, so malformed, not too_large.",
        &server,
        &RawFrame::plain(Vec::new()).packed(trailing),
        T0 + 5,
        Err("malformed"),
    ));
    v.push(crafted(
        "zstd_truncated_declaring_65537",
        "A frame declaring 65,537 bytes whose raw block claims 65,537 bytes but holds 16: \
         incomplete, so malformed, not too_large.",
        &server,
        &RawFrame::plain(Vec::new())
            .packed(zstd_frame(65_537, &[&zstd_block(true, 0, 65_537), &[0; 16]])),
        T0 + 5,
        Err("malformed"),
    ));

    // -- The maximum state: decompressed body plus sensitive section, inclusive.
    let small =
        Server { limits: Limits { max_state_size: 1024, ..Limits::default() }, ..server.clone() };
    let csrf = mp_map(&[(mp("csrf"), mp("t"))]);
    let exact = {
        let head = [0x81, 0xa1, b'a', 0xdb];
        let fill = 1024 - csrf.len() - head.len() - 4;
        let mut raw = head.to_vec();
        raw.extend_from_slice(&(fill as u32).to_be_bytes());
        (raw, fill)
    };
    let packed_exact = zstd_frame(
        (1024 - csrf.len()) as u32,
        &[
            &zstd_block(false, 0, exact.0.len() as u32),
            &exact.0,
            &zstd_block(true, 1, exact.1 as u32),
            b"x",
        ],
    );
    v.push(crafted(
        "compressed_state_at_max",
        "max_state_size 1024: a compressed body declaring 1016 bytes beside an 8-byte sensitive \
         section, 1024 in all: allowed (the bound is inclusive).",
        &small,
        &RawFrame::plain(Vec::new()).packed(packed_exact).with_sensitive(csrf.clone()),
        T0 + 5,
        Ok((json!({"a": "x".repeat(exact.1), "csrf": "t"}), &["csrf"])),
    ));
    let over = {
        let head = [0x81, 0xa1, b'a', 0xdb];
        let fill = 1025 - csrf.len() - head.len() - 4;
        let mut raw = head.to_vec();
        raw.extend_from_slice(&(fill as u32).to_be_bytes());
        zstd_frame(
            (1025 - csrf.len()) as u32,
            &[
                &zstd_block(false, 0, raw.len() as u32),
                &raw,
                &zstd_block(true, 1, fill as u32),
                b"x",
            ],
        )
    };
    v.push(crafted(
        "compressed_state_over_max",
        "As compressed_state_at_max with one byte more in the body: the decompression limit is \
         the maximum state less the sensitive section's length.",
        &small,
        &RawFrame::plain(Vec::new()).packed(over).with_sensitive(csrf.clone()),
        T0 + 5,
        Err("too_large"),
    ));
    v.push(crafted(
        "uncompressed_state_at_max",
        "max_state_size 1024, an uncompressed body of exactly 1024 bytes: allowed.",
        &small,
        &RawFrame::plain(sized_section("a", 1024)),
        T0 + 5,
        Ok((json!({"a": "x".repeat(1024 - 6)}), &[])),
    ));
    v.push(crafted(
        "uncompressed_state_over_max",
        "max_state_size 1024, an uncompressed body of 1025 bytes: the maximum state applies to \
         uncompressed bodies too.",
        &small,
        &RawFrame::plain(sized_section("a", 1025)),
        T0 + 5,
        Err("too_large"),
    ));
    v.push(crafted(
        "uncompressed_sections_over_max",
        "max_state_size 1024, an uncompressed body of 600 bytes and a sensitive section of 425: \
         each fits, together they do not.",
        &small,
        &RawFrame::plain(sized_section("a", 600)).with_sensitive(sized_section("b", 425)),
        T0 + 5,
        Err("too_large"),
    ));
    v.push(crafted(
        "sensitive_over_max_uncompressed_body",
        "max_state_size 1024, an empty uncompressed body and a 1025-byte sensitive section.",
        &small,
        &RawFrame::plain(mp_map(&[])).with_sensitive(sized_section("b", 1025)),
        T0 + 5,
        Err("too_large"),
    ));

    // -- MessagePack values that are not JSON-native, as expected.state spells them.
    let nan = f64::NAN.to_bits().to_be_bytes();
    let inf = f64::INFINITY.to_bits().to_be_bytes();
    let mapping = mp_map(&[
        (mp("bin"), vec![0xc4, 0x02, 0x00, 0xff]),
        (mp("ext"), vec![0xd4, 0x05, 0x2a]),
        (mp("ext_negative_type"), vec![0xc7, 0x03, 0xff, 0x01, 0x02, 0x03]),
        (mp("u64_max"), mp(&u64::MAX)),
        (mp("i64_min"), mp(&i64::MIN)),
        (mp("safe_max"), vec![0xcf, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        (mp("unsafe_min"), vec![0xcf, 0, 0x20, 0, 0, 0, 0, 0, 0]),
        (mp("safe_negative"), mp(&(-((1i64 << 53) - 1)))),
        (mp("wide_small_int"), vec![0xd3, 0, 0, 0, 0, 0, 0, 0, 5]),
        (mp("float_integral"), vec![0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]),
        (mp("float32"), vec![0xca, 0x3d, 0xcc, 0xcc, 0xcd]),
        (mp("float32_integral"), vec![0xca, 0x40, 0x00, 0x00, 0x00]),
        (mp("nan"), [&[0xcb][..], &nan].concat()),
        (mp("infinity"), [&[0xcb][..], &inf].concat()),
        (mp("int_keys"), mp_map(&[(mp(&1u8), mp("one")), (mp(&2u8), mp("two"))])),
        (mp("dollar_key"), mp_map(&[(mp("$bin"), mp("not binary"))])),
        (mp("dollar_keys"), mp_map(&[(mp("$a"), mp(&1u8)), (mp("b"), mp(&2u8))])),
        (mp("duplicate_nested_keys"), mp_map(&[(mp("a"), mp(&1u8)), (mp("a"), mp(&2u8))])),
        (mp("object"), mp_map(&[(mp("x"), mp(&(1u8, "y")))])),
    ]);
    v.push(crafted(
        "msgpack_json_mapping",
        "Values JSON cannot hold as they are, and how expected.state spells them (section \
         11.1): bin, ext, integers beyond 2^53 - 1, floats (integral, f32, non-finite), maps \
         with non-string, duplicate or `$` keys.",
        &server,
        &RawFrame::plain(mapping),
        T0 + 5,
        Ok((
            json!({
                "bin": {"$bin": "00ff"},
                "ext": {"$ext": [5, "2a"]},
                "ext_negative_type": {"$ext": [-1, "010203"]},
                "u64_max": {"$int": "18446744073709551615"},
                "i64_min": {"$int": "-9223372036854775808"},
                "safe_max": 9_007_199_254_740_991u64,
                "unsafe_min": {"$int": "9007199254740992"},
                "safe_negative": -9_007_199_254_740_991i64,
                "wide_small_int": 5,
                "float_integral": 1.0,
                "float32": f64::from(0.1f32),
                "float32_integral": 2.0,
                "nan": {"$float": "NaN"},
                "infinity": {"$float": "Infinity"},
                "int_keys": {"$map": [[1, "one"], [2, "two"]]},
                "dollar_key": {"$map": [["$bin", "not binary"]]},
                "dollar_keys": {"$a": 1, "b": 2},
                "duplicate_nested_keys": {"$map": [["a", 1], ["a", 2]]},
                "object": {"x": [1, "y"]},
            }),
            &[],
        )),
    ));

    // -- Signed mode tampering.
    let signer = Server { mode: Mode::Signed, ..server.clone() };
    let small_state = State::new(json!({"user_id": 42, "role": "admin"}));
    let signed = seal(&signer, small_state.session(), T0, "extra signed");
    v.push(tampered(
        "signed_frame_changed",
        "Signed mode: one bit of the readable frame (in issued_at) is flipped; the MAC covers it.",
        &signed,
        T0 + 5,
        "forged",
        |t| t[HEADER_LEN + 1] ^= 0x01,
    ));
    v.push(tampered(
        "signed_mac_changed",
        "Signed mode: the last byte of the HMAC-SHA256 tag is flipped.",
        &signed,
        T0 + 5,
        "forged",
        |t| *t.last_mut().expect("non-empty") ^= 0x01,
    ));
    v.push(tampered(
        "signed_frame_truncated",
        "Signed mode: the last frame byte is removed (the MAC is kept).",
        &signed,
        T0 + 5,
        "forged",
        |t| {
            t.remove(t.len() - MAC_LEN - 1);
        },
    ));

    // -- The absolute expiry's edge (inclusive).
    let short_lived = Server {
        limits: Limits { absolute_timeout_secs: 3600, ..Limits::default() },
        ..server.clone()
    };
    let first = seal(&short_lived, small_state.session(), T0, "extra absolute edge");
    let lived = refresh(&refresh(&first, T0 + 1500), T0 + 3000);
    v.push(valid(
        "absolute_expiry_edge",
        "A one-hour session refreshed at T0+1500 and T0+3000, opened exactly at expires_at + \
         clock_skew: still valid (the check is `now > absolute_expiry + skew`).",
        &lived,
        &small_state,
        T0 + 3600 + 60,
    ));

    // -- A session's own lifetime (flag bits 3 and 4): an idle timeout of its own, longer or
    // shorter than the configured 1,800 s; none at all (only the absolute end); a browser
    // session, which changes no check.
    let mut remembered = small_state.session();
    remembered.set_lifetime(Lifetime::Idle(Duration::from_secs(8 * 3600)));
    v.push(valid(
        "session_idle_timeout_sealed",
        "Sealed by the library with a session idle timeout of 8 hours (flag bit 3, field 28800), \
         opened 6 hours later: past the configured idle timeout, within the session's own.",
        &seal(&server, remembered, T0, "extra session idle timeout"),
        &small_state,
        T0 + 6 * 3600,
    ));
    for (name, description, frame, now, outcome) in [
        (
            "session_idle_timeout_longer",
            "Idle timeout field 28800 (8 hours): opens 6 hours after the last refresh, where the \
             configured 1,800 s would have ended it.",
            RawFrame::plain(one("a")).idle_timeout(8 * 3600),
            T0 + 6 * 3600,
            Ok((json!({"a": 1}), &[][..])),
        ),
        (
            "session_idle_timeout_edge",
            "Idle timeout field 600, opened at last_refresh + 600 + clock_skew: still valid.",
            RawFrame::plain(one("a")).idle_timeout(600),
            T0 + 660,
            Ok((json!({"a": 1}), &[][..])),
        ),
        (
            "session_idle_timeout_expired",
            "Idle timeout field 600, opened one second later than the edge: idle_expired, though \
             the configured idle timeout (1,800 s) has not passed.",
            RawFrame::plain(one("a")).idle_timeout(600),
            T0 + 661,
            Err("idle_expired"),
        ),
        (
            "session_without_idle_bound",
            "Idle timeout field 0: no idle bound. Opens 11 hours after the last refresh.",
            RawFrame::plain(one("a")).idle_timeout(0),
            T0 + 11 * 3600,
            Ok((json!({"a": 1}), &[][..])),
        ),
        (
            "session_without_idle_bound_absolute",
            "Idle timeout field 0, opened past the absolute expiry (12 hours) plus the skew: \
             absolute_expired.",
            RawFrame::plain(one("a")).idle_timeout(0),
            T0 + 12 * 3600 + 61,
            Err("absolute_expired"),
        ),
        (
            "session_idle_timeout_missing",
            "Flag bit 3 without its field: the frame ends at the session id.",
            RawFrame { flags: 0b1000, ..RawFrame::plain(Vec::new()) },
            T0 + 5,
            Err("malformed"),
        ),
        (
            "browser_session_flag",
            "Flag bit 4 (a browser session): nothing for a decoder to do.",
            RawFrame { flags: 0b1_0000, ..RawFrame::plain(one("a")) },
            T0 + 5,
            Ok((json!({"a": 1}), &[][..])),
        ),
        (
            "browser_session_idle_expired",
            "Flag bit 4: the configured idle timeout still applies (1,800 s + skew, plus one).",
            RawFrame { flags: 0b1_0000, ..RawFrame::plain(one("a")) },
            T0 + 1861,
            Err("idle_expired"),
        ),
        (
            "browser_session_with_idle_timeout",
            "Flag bits 3 and 4, idle timeout field 28800: the field decides (opens 6 hours on).",
            RawFrame { flags: 0b1_0000, ..RawFrame::plain(one("a")) }.idle_timeout(8 * 3600),
            T0 + 6 * 3600,
            Ok((json!({"a": 1}), &[][..])),
        ),
    ] {
        v.push(crafted(name, description, &server, &frame, now, outcome));
    }

    // -- The Cookie header: its length, the count of our cookies, the variants.
    let base = seal(&server, small_state.session(), T0, "extra cookie header");
    let ours = base.set_cookies.request_header();
    let pad_to = |total: usize| {
        let prefix = format!("{ours}; pad=");
        format!("{prefix}{}", "p".repeat(total - prefix.len()))
    };
    v.push(presented(
        "cookie_header_32768_bytes",
        "A Cookie header of exactly 32,768 bytes (the default maximum), with the session first.",
        &base,
        &server,
        T0 + 5,
        pad_to(32_768),
        Ok(&small_state),
    ));
    v.push(presented(
        "cookie_header_32769_bytes",
        "The same header one byte longer: too_large before any parsing.",
        &base,
        &server,
        T0 + 5,
        pad_to(32_769),
        Err("too_large"),
    ));
    let stale = |n: usize| format!("{ours}{}", format!("; {}.9=x", server.cookie_name).repeat(n));
    v.push(presented(
        "cookies_128",
        "The session cookie and 127 cookies named `NAME.9` (stale chunk names, beyond the \
         count): 128 cookies of ours, the most allowed.",
        &base,
        &server,
        T0 + 5,
        stale(127),
        Ok(&small_state),
    ));
    v.push(presented(
        "cookies_129",
        "The session cookie and 128 cookies named `NAME.9`: 129 cookies of ours, too_large.",
        &base,
        &server,
        T0 + 5,
        stale(128),
        Err("too_large"),
    ));
    let mut unknown = BASE64.decode(base.token()).expect("base64url");
    unknown[2..HEADER_LEN].copy_from_slice(&UNKNOWN_KEY_ID.to_be_bytes());
    let mut forged = BASE64.decode(base.token()).expect("base64url");
    forged[HEADER_LEN + NONCE_LEN] ^= 0x01;
    let variants = |bad: usize| {
        let mut parts = vec![format!("{}={}", server.cookie_name, BASE64.encode(&unknown))];
        for _ in 1..bad {
            parts.push(format!("{}={}", server.cookie_name, BASE64.encode(&forged)));
        }
        parts.push(ours.clone());
        parts.join("; ")
    };
    v.push(presented(
        "fourth_variant_opens",
        "NAME four times: an unknown key id, two forgeries, then the valid token. Variants are \
         tried in order; the fourth opens.",
        &base,
        &server,
        T0 + 5,
        variants(3),
        Ok(&small_state),
    ));
    v.push(presented(
        "fifth_variant_not_tried",
        "NAME five times, the valid token last: at most 4 variants are tried, and the first \
         variant's error (unknown_key) is reported.",
        &base,
        &server,
        T0 + 5,
        variants(4),
        Err("unknown_key"),
    ));

    // -- Chunks: 32 of them, pieces of any length, a count above 32.
    let wide = Server {
        limits: Limits { max_cookie_line: 512, cookie_budget: 16_384, ..Limits::default() },
        ..server.clone()
    };
    let mut entropy = SeededEntropy::new("max_chunks state");
    let mut blob = vec![0u8; 10_500];
    entropy.fill(&mut blob);
    let blob = State::new(json!({ "blob": BASE64.encode(&blob) }));
    let max_chunks = seal(&wide, blob.session(), T0, "max_chunks_32");
    assert_eq!(max_chunks.set_cookies.len(), 32, "the 32-chunk vector needs 32 cookies");
    v.push(valid(
        "max_chunks_32",
        "Set-Cookie lines of at most 512 bytes and a 16 KiB budget: the token takes 32 cookies, \
         `NAME` to `NAME.31`, the most a token may span.",
        &max_chunks,
        &blob,
        T0 + 5,
    ));
    let token = multi_token_resplit(&max_chunks, &wide);
    v.push(vector(
        "pieces_any_length",
        "The 32-chunk token re-split: `NAME` holds only the 8 header characters, `NAME.1` is \
         empty, `NAME.2` holds all the rest but what `NAME.3` to `NAME.31` hold (one character \
         each). Only the joined text and the count matter.",
        &max_chunks,
        &wide,
        T0 + 5,
        token,
        max_chunks.token(),
        Ok(&blob),
    ));
    v.push(tampered(
        "chunk_count_33",
        "The header's chunk count is 33, above the most a token may span.",
        &base,
        T0 + 5,
        "malformed",
        |t| t[1] = 33,
    ));
    let mut short = base.token();
    short.truncate(7);
    v.push(vector(
        "first_piece_shorter_than_header",
        "`NAME` holds 7 characters: too few to hold the 6-byte header (8 characters).",
        &base,
        &server,
        T0 + 5,
        format!("{}={short}", server.cookie_name),
        short.clone(),
        Err("malformed"),
    ));
    // The budget counts bytes (section 6.3, step 4): a value that is not ASCII, exactly
    // `budget` characters but more bytes, is too_large before base64 would call it malformed.
    let mut wide = base.token();
    let budget = server.limits.cookie_budget;
    wide.push_str(&"é".repeat(budget - wide.len()));
    v.push(vector(
        "joined_over_budget_in_bytes",
        "`NAME` holds the valid token followed by `é` up to exactly the cookie budget in \
         characters, which is more than the budget in bytes: the budget counts bytes, so \
         too_large, not malformed.",
        &base,
        &server,
        T0 + 5,
        format!("{}={wide}", server.cookie_name),
        wide.clone(),
        Err("too_large"),
    ));

    // -- The token header (section 7): trimmed, one chunk, bound to `header:NAME`.
    let header_name = "x-session-token";
    let bound = format!("header:{header_name}");
    let header_frame = RawFrame::plain(one("a")).bytes();
    let key = &server.keys[0];
    let header_token = craft_token_for(&bound, server.mode, key, 1, &header_frame, "header token");
    let in_header = |name: &str, description: &str, value: String, outcome: Result<(), &str>| {
        let token = value.trim().to_owned();
        let mut vector = Vector {
            name: name.to_owned(),
            description: description.to_owned(),
            keys: server.keys.clone(),
            cookie_name: server.cookie_name.clone(),
            mode: mode_name(server.mode).to_owned(),
            config: server.limits.clone(),
            now: T0 + 5,
            set_cookie: Vec::new(),
            cookie_header: String::new(),
            token,
            token_header: Some(TokenHeader { name: header_name.to_owned(), value }),
            expected: None,
            expected_error: None,
        };
        match outcome {
            Ok(()) => {
                let decoded = reference_decode(&vector).expect("header token decodes");
                vector.expected = Some(Expected {
                    state: object(json!({"a": 1})),
                    sensitive: Vec::new(),
                    session_id_hex: to_hex(&decoded.session_id),
                    issued_at: decoded.issued_at,
                    last_refresh: decoded.last_refresh,
                    expires_at: decoded.expires_at,
                    key_id: decoded.key_id,
                    compressed: decoded.compressed,
                    chunks: 1,
                    aad_hex: to_hex(&decoded.aad),
                    frame_hex: to_hex(&decoded.frame),
                    current_key_id: None,
                });
            }
            Err(error) => vector.expected_error = Some(error.to_owned()),
        }
        vector
    };
    v.push(in_header(
        "header_token_trimmed",
        "A token in the `x-session-token` request header, bound to `header:x-session-token`, \
         with white space around it: trimmed, then opened.",
        format!(" \t{header_token} "),
        Ok(()),
    ));
    let two = craft_token_for(&bound, server.mode, key, 2, &header_frame, "header token 2");
    v.push(in_header(
        "header_token_chunk_count_2",
        "A header token whose (authentic) chunk count is 2: a header token is never split.",
        two,
        Err("malformed"),
    ));
    let mut long = BASE64.decode(&header_token).expect("base64url");
    long[0] = (2 << 4) | (long[0] & 0x0f);
    let mut long = BASE64.encode(&long);
    long.push_str(&"A".repeat(server.limits.cookie_budget + 1 - long.len()));
    v.push(in_header(
        "header_token_over_budget",
        "A header token one character longer than the cookie budget, with version 2: the \
         length is checked first, so too_large, not unsupported_version.",
        long,
        Err("too_large"),
    ));
    let mut wide = header_token.clone();
    wide.push_str(&"é".repeat(server.limits.cookie_budget - wide.len()));
    v.push(in_header(
        "header_token_over_budget_in_bytes",
        "A header token followed by `é` up to exactly the cookie budget in characters, which is \
         more than the budget in bytes: too_large, not malformed.",
        wide,
        Err("too_large"),
    ));
    v.push(in_header(
        "cookie_token_in_header",
        "A token sealed for the cookie `__Host-session`, sent in the token header: the names \
         differ in the AAD.",
        base.token(),
        Err("forged"),
    ));
    let mut as_cookie = crafted(
        "header_token_in_cookie",
        "A token bound to `header:x-session-token`, sent as the cookie `__Host-session`.",
        &server,
        &RawFrame::plain(one("a")),
        T0 + 5,
        Err("forged"),
    );
    as_cookie.cookie_header = format!("{}={header_token}", server.cookie_name);
    as_cookie.token = header_token.clone();
    v.push(as_cookie);

    // -- Which key seals: pending keys never, retired keys are gone.
    let ring_server = Server {
        keys: [OLDER, EARLY, LATE_LOW, LATE_HIGH, PENDING].iter().map(KeyDef::entry).collect(),
        ..server.clone()
    };
    let mut selected = valid(
        "current_key_selection",
        "A ring of five keys at T0: one older, three activated at the same time, one pending. \
         Of the three, the one with the highest id was created earliest, and the other two were \
         created together. The current key is the greatest (activates_at, created_at, id) among \
         activated keys: of the two created later, the one with the higher id (not the highest \
         id of the ring).",
        &seal(&ring_server, small_state.session(), T0, "current_key_selection"),
        &small_state,
        T0 + 5,
    );
    let expected = selected.expected.as_mut().expect("valid");
    assert_eq!(expected.key_id, LATE_HIGH.id, "the library seals with the expected key");
    expected.current_key_id = Some(LATE_HIGH.id);
    v.push(selected);
    let ahead =
        seal(&ring_server, small_state.session(), PENDING.activates_at, "pending_key_opens");
    let mut pending = valid(
        "pending_key_opens",
        "Sealed under the pending key by a node whose clock reached its activation time, opened \
         30 s earlier by a node where it is still pending: every key in the ring opens.",
        &ahead,
        &small_state,
        PENDING.activates_at - 30,
    );
    let expected = pending.expected.as_mut().expect("valid");
    assert_eq!(expected.key_id, PENDING.id);
    expected.current_key_id = Some(LATE_HIGH.id);
    v.push(pending);
    let before = Server { keys: vec![RETIRED.entry(), OLDER.entry()], ..server.clone() };
    let old = seal(&before, small_state.session(), T0 - 25 * 86_400, "retired_key");
    v.push(presented(
        "retired_key",
        "Sealed under a key since retired (removed from the ring): unknown_key.",
        &old,
        &ring_server,
        T0 - 25 * 86_400 + 5,
        old.set_cookies.request_header(),
        Err("unknown_key"),
    ));

    VectorFile {
        title: "sealed-session wire format test vectors: the points an implementer must not guess"
            .to_owned(),
        format_version: FORMAT_VERSION,
        generator: "cargo run --example test_vectors -- --write".to_owned(),
        seed: SEED.to_owned(),
        notes: extra_notes(),
        vectors: v,
        key_ring_files: ring_file_vectors(),
    }
}

/// The Cookie header for `sealed`'s 32-chunk token cut into pieces of other lengths.
fn multi_token_resplit(sealed: &Sealed, server: &Server) -> String {
    let token = sealed.token();
    let count = sealed.set_cookies.len();
    let tail = count - 3; // NAME.3 .. NAME.(count-1): one character each
    let middle_end = token.len() - tail;
    let mut pieces = vec![&token[..8], "", &token[8..middle_end]];
    for i in 0..tail {
        pieces.push(&token[middle_end + i..middle_end + i + 1]);
    }
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| format!("{}={piece}", chunk_name(&server.cookie_name, i)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn ring_file_vectors() -> Vec<RingFileVector> {
    let keys = [OLDER, LATE_HIGH, PENDING];
    let mut ring = KeyRing::new();
    for def in keys {
        let entry = def.entry();
        let secret = Key::try_from_slice(&from_hex(&entry.secret_hex).expect("hex")).expect("32");
        ring.insert(KeyId(def.id), secret, at(entry.created_at), at(entry.activates_at))
            .expect("valid ring");
    }
    let form = KeyRingFile::from_ring(&ring);
    let json_text = form.to_json().to_string();
    let env_text = form.to_env().to_string();
    let expected = RingFileExpected {
        keys: keys
            .iter()
            .map(|def| {
                let e = def.entry();
                RingFileKey {
                    id: e.id,
                    secret_hex: e.secret_hex,
                    created_at: e.created_at,
                    activates_at: e.activates_at,
                }
            })
            .collect(),
        current_key_id: LATE_HIGH.id,
    };
    let secret = |def: &KeyDef| BASE64.encode(from_hex(&def.entry().secret_hex).expect("hex"));
    let file = |entries: &[String]| format!("{{\"version\":1,\"keys\":[{}]}}", entries.join(","));
    let entry = |id: u32, secret: &str, created: u64, activates: u64| {
        format!(
            "{{\"id\":{id},\"secret\":\"{secret}\",\"created_at\":{created},\"activates_at\":{activates}}}"
        )
    };
    let good = secret(&OLDER);
    let ok = |name: &str, description: &str, form: &str, text: String| RingFileVector {
        name: name.to_owned(),
        description: description.to_owned(),
        form: form.to_owned(),
        text,
        now: T0,
        expected: Some(expected.clone()),
        expected_error: None,
    };
    let bad =
        |name: &str, description: &str, form: &str, text: String, error: &str| RingFileVector {
            name: name.to_owned(),
            description: description.to_owned(),
            form: form.to_owned(),
            text,
            now: T0,
            expected: None,
            expected_error: Some(error.to_owned()),
        };
    let mut vectors = vec![
        ok(
            "ring_file",
            "A key ring file as `keys init` and `keys rotate` write it: three keys, \
            one pending.",
            "file",
            json_text.clone(),
        ),
        ok(
            "ring_file_without_checksum",
            "The same file without its `sha256` field, as versions before it wrote them: \
            accepted (with a warning).",
            "file",
            json_text
                .lines()
                .filter(|line| !line.contains("\"sha256\""))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        bad(
            "ring_checksum_mismatch",
            "The file with one key's `activates_at` changed and its `sha256` kept, as a rewrite \
            in place read half-way looks: refused before any key is used.",
            "file",
            json_text.replacen(
                &format!("\"activates_at\": {}", PENDING.entry().activates_at),
                &format!("\"activates_at\": {}", PENDING.entry().activates_at + 1),
                1,
            ),
            "checksum",
        ),
        ok(
            "ring_env",
            "The same ring in its environment form: `ssk1.` then the compact JSON in \
            base64url without padding.",
            "env",
            env_text.clone(),
        ),
        ok(
            "ring_env_plain_json",
            "The environment form also accepts the JSON itself.",
            "env",
            json_text.clone(),
        ),
        bad(
            "ring_version_2",
            "A file of version 2.",
            "file",
            format!("{{\"version\":2,\"keys\":[{}]}}", entry(1, &good, T0, T0)),
            "unsupported_version",
        ),
        bad(
            "ring_unknown_field",
            "A key with a field this version does not define.",
            "file",
            file(&[entry(1, &good, T0, T0).replace('}', ",\"note\":\"x\"}")]),
            "invalid_json",
        ),
        bad(
            "ring_secret_31_bytes",
            "A secret of 31 bytes.",
            "file",
            file(&[entry(1, &BASE64.encode([7u8; 31]), T0, T0)]),
            "secret_length",
        ),
        bad(
            "ring_secret_padded",
            "A secret in base64url with `=` padding.",
            "file",
            file(&[entry(1, &format!("{good}="), T0, T0)]),
            "secret_encoding",
        ),
        bad(
            "ring_secret_standard_base64",
            "A secret in the standard alphabet (`+`, `/`).",
            "file",
            file(&[entry(1, &"+/".repeat(21).chars().take(43).collect::<String>(), T0, T0)]),
            "secret_encoding",
        ),
        bad(
            "ring_duplicate_id",
            "Two keys with id 1.",
            "file",
            file(&[entry(1, &good, T0 - 10, T0 - 10), entry(1, &secret(&PENDING), T0, T0)]),
            "duplicate_id",
        ),
        bad(
            "ring_activates_before_created",
            "activates_at earlier than created_at.",
            "file",
            file(&[entry(1, &good, T0, T0 - 1)]),
            "activates_before_created",
        ),
        bad(
            "ring_all_pending",
            "Every key activates after `now`: nothing could seal.",
            "file",
            file(&[entry(1, &good, T0, T0 + 1)]),
            "no_active_key",
        ),
        bad("ring_empty", "No key at all.", "file", file(&[]), "empty"),
        bad(
            "ring_env_bad_base64",
            "`ssk1.` followed by text that is not base64url.",
            "env",
            "ssk1.not base64!".to_owned(),
            "env_encoding",
        ),
        ok(
            "ring_sha256_null",
            "The file with `\"sha256\": null`: the same as no `sha256` field (accepted, with the \
            warning of a file without a checksum).",
            "file",
            json_text
                .lines()
                .map(|line| match line.find("\"sha256\"") {
                    Some(at) => format!("{}\"sha256\": null,", &line[..at]),
                    None => line.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        ok(
            "ring_env_unicode_white_space",
            "The environment form between Unicode white space (U+3000 and U+00A0 before, U+2028 \
            and LF after): trimmed, as Rust's `str::trim` does.",
            "env",
            format!(
                "\u{3000}\u{a0}{env_text}\u{2028}\
"
            ),
        ),
        bad(
            "ring_env_unit_separator",
            "The environment form after U+001F (a control character, not white space): not \
            trimmed, so the value starts with neither `ssk1.` nor `{`.",
            "env",
            format!("\u{1f}{env_text}"),
            "env_encoding",
        ),
        bad(
            "ring_env_byte_order_mark",
            "The environment form after U+FEFF (a byte order mark, not white space).",
            "env",
            format!("\u{feff}{env_text}"),
            "env_encoding",
        ),
        bad(
            "ring_byte_order_mark",
            "A file starting with a UTF-8 byte order mark: not JSON text.",
            "file",
            format!("\u{feff}{}", file(&[entry(1, &good, T0, T0)])),
            "invalid_json",
        ),
        bad(
            "ring_trailing_text",
            "A file with text after its JSON object (JSON white space after it is allowed; U+00A0 \
            is not JSON white space).",
            "file",
            format!("{} \n\u{a0}", file(&[entry(1, &good, T0, T0)])),
            "invalid_json",
        ),
        bad(
            "ring_repeated_field",
            "A file whose `version` appears twice, with the same value.",
            "file",
            format!("{{\"version\":1,\"version\":1,\"keys\":[{}]}}", entry(1, &good, T0, T0)),
            "invalid_json",
        ),
        bad(
            "ring_integer_with_fraction",
            "A key whose `created_at` is written `1800000000.0`: integers have no fraction or \
            exponent.",
            "file",
            file(&[entry(1, &good, T0, T0).replacen(&format!(":{T0},"), &format!(":{T0}.0,"), 1)]),
            "invalid_json",
        ),
        bad(
            "ring_integer_minus_zero",
            "A key whose `id` is written `-0`: integers have no sign.",
            "file",
            file(&[entry(1, &good, T0, T0).replacen("\"id\":1,", "\"id\":-0,", 1)]),
            "invalid_json",
        ),
        bad(
            "ring_time_2_64",
            "A key whose `activates_at` is 2^64, one past the largest time.",
            "file",
            file(&[entry(1, &good, T0, T0).replacen(
                &format!("\"activates_at\":{T0}"),
                "\"activates_at\":18446744073709551616",
                1,
            )]),
            "invalid_json",
        ),
        bad(
            "ring_version_2_32",
            "A file of version 2^32: out of the version's range (an unsigned 32-bit integer), so \
            not of this shape at all.",
            "file",
            format!("{{\"version\":4294967296,\"keys\":[{}]}}", entry(1, &good, T0, T0)),
            "invalid_json",
        ),
    ];
    vectors.extend(schedule_vectors());
    vectors
}

/// Key ring files with a schedule (FORMAT.md section 2.3): the keys in service at `now` are
/// derived from the root, and `expected.keys` lists them with their secrets.
fn schedule_vectors() -> Vec<RingFileVector> {
    const DAY: u64 = 86_400;
    let root = Key::from_bytes([0x5a; 32]);
    let policy = RotationPolicy {
        lifetime: Duration::from_secs(30 * DAY),
        lead: Duration::from_secs(DAY),
        retire_after: Duration::from_secs(12 * 3600 + 120),
    };
    let older = OLDER.entry();
    let ring_text = |epoch: u64| {
        let mut ring = KeyRing::new();
        let secret = Key::try_from_slice(&from_hex(&older.secret_hex).expect("hex")).expect("32");
        ring.insert(KeyId(older.id), secret, at(older.created_at), at(older.activates_at))
            .expect("valid");
        let schedule = Schedule::new(root.clone(), KeyId(0x8000_0000), at(epoch), policy)
            .expect("valid schedule");
        // Taken before the epoch, so the hand-made key is still in the file.
        ring.set_schedule(schedule, at(older.activates_at)).expect("no collision");
        (ring.clone(), KeyRingFile::from_ring(&ring).to_json().to_string())
    };
    let expect = |ring: &KeyRing| {
        let now = ring.at(at(T0));
        RingFileExpected {
            keys: now
                .keys()
                .map(|k| RingFileKey {
                    id: k.id.0,
                    secret_hex: to_hex(now.secret(k.id).expect("listed").expose_secret()),
                    created_at: k.created_at.duration_since(UNIX_EPOCH).unwrap().as_secs(),
                    activates_at: k.activates_at.duration_since(UNIX_EPOCH).unwrap().as_secs(),
                })
                .collect(),
            current_key_id: now.current_id(at(T0)).expect("a current key").0,
        }
    };
    let vector = |name: &str, description: &str, text: String, expected, error: Option<&str>| {
        RingFileVector {
            name: name.to_owned(),
            description: description.to_owned(),
            form: "file".to_owned(),
            text,
            now: T0,
            expected,
            expected_error: error.map(str::to_owned),
        }
    };
    let (pending, pending_text) = ring_text(T0 + 2 * 3600);
    let (turned, turned_text) = ring_text(T0 - 30 * DAY - 3600);
    let collision =
        pending_text.replacen(&format!("\"id\": {}", older.id), "\"id\": 2147483653", 1);
    let short = turned_text.replacen(&format!("\"lifetime\": {}", 30 * DAY), "\"lifetime\": 60", 1);
    let strip = |text: &str| {
        text.lines().filter(|line| !line.contains("\"sha256\"")).collect::<Vec<_>>().join("\n")
    };
    vec![
        vector(
            "ring_schedule_first_key_pending",
            "A hand-made key and a schedule whose period 0 activates in two hours: the derived \
            key (id_base) opens already (its lead is a day) and the hand-made key still seals.",
            pending_text,
            Some(expect(&pending)),
            None,
        ),
        vector(
            "ring_schedule_one_hour_into_period_1",
            "The schedule's period 1 activated an hour ago and its key seals. The hand-made key \
            activated inside period 0 (twenty days ago), so it superseded period 0's key, which \
            retired retire_after later and is out of service though derivable; the hand-made \
            key still opens until retire_after past period 1's activation.",
            turned_text,
            Some(expect(&turned)),
            None,
        ),
        vector(
            "ring_schedule_id_collision",
            "A hand-made key with id 0x80000005, inside the schedule's block (id_base \
            0x80000000 and the next 65,535 ids): one id would name two secrets.",
            strip(&collision),
            None,
            Some("duplicate_id"),
        ),
        vector(
            "ring_schedule_lifetime_too_short",
            "A schedule whose key lifetime is 60 seconds (under an hour).",
            strip(&short),
            None,
            Some("invalid_schedule"),
        ),
    ]
}

/// Checks one key ring file vector with the library's loader.
fn check_ring_file(vector: &RingFileVector) -> Result<(), String> {
    let loaded = match vector.form.as_str() {
        "file" => KeyRingFile::parse(&vector.text).and_then(|f| f.to_ring(at(vector.now))),
        "env" => keys_file::parse_env_at(&vector.text, at(vector.now)),
        other => return Err(format!("unknown form {other:?}")),
    };
    match (&vector.expected, &vector.expected_error, loaded) {
        (Some(expected), None, Ok(ring)) => {
            // Every key in service at `now`, derived ones (section 2.3) included.
            let keys: Vec<RingFileKey> = ring
                .keys()
                .map(|k| RingFileKey {
                    id: k.id.0,
                    secret_hex: to_hex(ring.secret(k.id).expect("listed").expose_secret()),
                    created_at: k.created_at.duration_since(UNIX_EPOCH).unwrap().as_secs(),
                    activates_at: k.activates_at.duration_since(UNIX_EPOCH).unwrap().as_secs(),
                })
                .collect();
            same("keys", &keys, &expected.keys)?;
            same(
                "current key",
                ring.current_id(at(vector.now)),
                Some(KeyId(expected.current_key_id)),
            )
        }
        (None, Some(error), Err(e)) => same("error", ring_error_name(&e), error.as_str()),
        (None, Some(error), Ok(_)) => Err(format!("expected {error}, but the ring loaded")),
        (Some(_), None, Err(e)) => Err(format!("the library refused a valid ring: {e}")),
        _ => Err("a vector needs exactly one of `expected` and `expected_error`".to_owned()),
    }
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
    let aad_name = match &vector.token_header {
        Some(header) => format!("header:{}", header.name.to_ascii_lowercase()),
        None => vector.cookie_name.clone(),
    };
    let name = aad_name.as_bytes();
    let mut aad = header.to_vec();
    aad.push(u8::try_from(name.len()).map_err(|_| "cookie name too long")?);
    aad.extend_from_slice(name);
    if let Some(purpose) = &vector.config.purpose {
        aad.push(u8::try_from(purpose.len()).map_err(|_| "purpose too long")?);
        aad.extend_from_slice(purpose.as_bytes());
    }

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
    if flags & !0b1_1111 != 0 || flags & 0b101 == 0b100 {
        return Err(bad("unknown flags"));
    }
    let (issued_at, rest) = read_varint(rest).ok_or_else(|| bad("issued_at"))?;
    let (refresh_delta, rest) = read_varint(rest).ok_or_else(|| bad("refresh delta"))?;
    let (expiry_delta, rest) = read_varint(rest).ok_or_else(|| bad("expiry delta"))?;
    let (id, rest) = rest.split_at_checked(SESSION_ID_LEN).ok_or_else(|| bad("session id"))?;
    // Bit 3: this session's idle timeout follows the id (its value matters only to the time
    // checks, which the library's decoder makes); bit 4 asks nothing of a decoder.
    let rest = if flags & 0b1000 != 0 {
        read_varint(rest).ok_or_else(|| bad("idle_timeout"))?.1
    } else {
        rest
    };
    let (body, sensitive) = if flags & 0b10 != 0 {
        let (len, rest) = read_varint(rest).ok_or_else(|| bad("body_len"))?;
        let len = usize::try_from(len).map_err(|_| bad("body_len"))?;
        rest.split_at_checked(len).ok_or_else(|| bad("body_len past the end"))?
    } else {
        (rest, &[][..])
    };
    let compressed = flags & 0b01 != 0;
    let body = if compressed {
        if zstd::zstd_safe::get_dict_id_from_frame(body).is_some() {
            return Err(bad("the zstd frame names a dictionary"));
        }
        let mut decompressor = if flags & 0b100 != 0 {
            zstd::bulk::Decompressor::with_dictionary(DICTIONARY)
        } else {
            zstd::bulk::Decompressor::new()
        }
        .map_err(|e| bad(&e.to_string()))?;
        decompressor
            .decompress(body, vector.config.max_state_size)
            .map_err(|e| bad(&e.to_string()))?
    } else {
        body.to_vec()
    };
    let mut state: Map<String, Value> =
        section_json(&body).map_err(|e| bad(&format!("body: {e}")))?;
    let mut sensitive_keys = Vec::new();
    if flags & 0b10 != 0 {
        for (key, value) in section_json(sensitive).map_err(|e| bad(&format!("sensitive: {e}")))? {
            sensitive_keys.push(key.clone());
            state.insert(key, value);
        }
    }
    sensitive_keys.sort();
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

// ---------------------------------------------------------------------------------------------
// MessagePack to JSON, as `expected.state` spells values (FORMAT.md section 11.1).

/// Integers whose magnitude is at most this are JSON numbers; larger ones are `{"$int": ...}`
/// (2^53 - 1, the largest integer every JSON reader holds exactly).
const JSON_SAFE_INT: u64 = (1 << 53) - 1;

/// A section's entries, each value mapped to JSON. Keys must be strings (section 5).
fn section_json(section: &[u8]) -> Result<Map<String, Value>, String> {
    let (count, mut at) = match section.first() {
        Some(&b @ 0x80..=0x8f) => (usize::from(b & 0x0f), 1),
        Some(0xde) => (be_len(section, 1, 2)?, 3),
        Some(0xdf) => (be_len(section, 1, 4)?, 5),
        _ => return Err("not a map".to_owned()),
    };
    let mut out = Map::new();
    for _ in 0..count {
        let (key, len) = msgpack_json(&section[at..])?;
        let Value::String(key) = key else { return Err("a key is not a string".to_owned()) };
        at += len;
        let (value, len) = msgpack_json(&section[at..])?;
        at += len;
        out.insert(key, value);
    }
    if at != section.len() {
        return Err("bytes after the map".to_owned());
    }
    Ok(out)
}

fn be_len(input: &[u8], at: usize, width: usize) -> Result<usize, String> {
    let bytes = input.get(at..at + width).ok_or("truncated length")?;
    Ok(bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b)))
}

fn int_json(value: i128) -> Value {
    if value.unsigned_abs() <= u128::from(JSON_SAFE_INT) {
        Value::from(value as i64)
    } else {
        json!({"$int": value.to_string()})
    }
}

fn float_json(value: f64) -> Value {
    match serde_json::Number::from_f64(value) {
        Some(number) => Value::Number(number),
        None if value.is_nan() => json!({"$float": "NaN"}),
        None if value > 0.0 => json!({"$float": "Infinity"}),
        None => json!({"$float": "-Infinity"}),
    }
}

/// The first MessagePack value of `input` as JSON, and the bytes it took.
pub fn msgpack_json(input: &[u8]) -> Result<(Value, usize), String> {
    let take = |from: usize, len: usize| -> Result<&[u8], String> {
        input
            .get(from..from.checked_add(len).ok_or("length overflow")?)
            .ok_or_else(|| "truncated".to_owned())
    };
    let uint = |width: usize| -> Result<u64, String> {
        Ok(take(1, width)?.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    };
    let first = *input.first().ok_or("no value")?;
    let bytes = |at: usize, len: usize| -> Result<(Vec<u8>, usize), String> {
        Ok((take(at, len)?.to_vec(), at + len))
    };
    let text = |at: usize, len: usize| -> Result<(Value, usize), String> {
        let (raw, end) = bytes(at, len)?;
        let text = String::from_utf8(raw).map_err(|_| "a string is not UTF-8")?;
        Ok((Value::String(text), end))
    };
    let ext = |kind_at: usize, len: usize| -> Result<(Value, usize), String> {
        let kind = *take(kind_at, 1)?.first().ok_or("truncated")? as i8;
        let (data, end) = bytes(kind_at + 1, len)?;
        Ok((json!({"$ext": [kind, to_hex(&data)]}), end))
    };
    let items = |count: usize, at: usize, pairs: bool| -> Result<(Value, usize), String> {
        let mut at = at;
        let mut values = Vec::new();
        for _ in 0..count * if pairs { 2 } else { 1 } {
            let (value, len) = msgpack_json(input.get(at..).ok_or("truncated")?)?;
            values.push(value);
            at += len;
        }
        if !pairs {
            return Ok((Value::Array(values), at));
        }
        let entries: Vec<(Value, Value)> =
            values.chunks(2).map(|pair| (pair[0].clone(), pair[1].clone())).collect();
        let mut object = Map::new();
        for (key, value) in &entries {
            if let Value::String(key) = key {
                object.insert(key.clone(), value.clone());
            }
        }
        let plain = object.len() == entries.len()
            && !(object.len() == 1 && object.keys().all(|k| k.starts_with('$')));
        if plain {
            Ok((Value::Object(object), at))
        } else {
            let pairs = entries.into_iter().map(|(k, v)| Value::Array(vec![k, v])).collect();
            Ok((json!({"$map": Value::Array(pairs)}), at))
        }
    };
    match first {
        0x00..=0x7f => Ok((Value::from(first), 1)),
        0xe0..=0xff => Ok((Value::from(first as i8), 1)),
        0xc0 => Ok((Value::Null, 1)),
        0xc2 => Ok((Value::Bool(false), 1)),
        0xc3 => Ok((Value::Bool(true), 1)),
        0xcc => Ok((int_json(uint(1)?.into()), 2)),
        0xcd => Ok((int_json(uint(2)?.into()), 3)),
        0xce => Ok((int_json(uint(4)?.into()), 5)),
        0xcf => Ok((int_json(uint(8)?.into()), 9)),
        0xd0 => Ok((int_json((uint(1)? as u8 as i8).into()), 2)),
        0xd1 => Ok((int_json((uint(2)? as u16 as i16).into()), 3)),
        0xd2 => Ok((int_json((uint(4)? as u32 as i32).into()), 5)),
        0xd3 => Ok((int_json((uint(8)? as i64).into()), 9)),
        0xca => Ok((float_json(f32::from_bits(uint(4)? as u32).into()), 5)),
        0xcb => Ok((float_json(f64::from_bits(uint(8)?)), 9)),
        0xa0..=0xbf => text(1, usize::from(first & 0x1f)),
        0xd9 => text(2, be_len(input, 1, 1)?),
        0xda => text(3, be_len(input, 1, 2)?),
        0xdb => text(5, be_len(input, 1, 4)?),
        0xc4..=0xc6 => {
            let width = 1 << (first - 0xc4);
            let (data, end) = bytes(1 + width, be_len(input, 1, width)?)?;
            Ok((json!({"$bin": to_hex(&data)}), end))
        }
        0xd4..=0xd8 => ext(1, 1 << (first - 0xd4)),
        0xc7..=0xc9 => {
            let width = 1 << (first - 0xc7);
            ext(1 + width, be_len(input, 1, width)?)
        }
        0x90..=0x9f => items(usize::from(first & 0x0f), 1, false),
        0xdc => items(be_len(input, 1, 2)?, 3, false),
        0xdd => items(be_len(input, 1, 4)?, 5, false),
        0x80..=0x8f => items(usize::from(first & 0x0f), 1, true),
        0xde => items(be_len(input, 1, 2)?, 3, true),
        0xdf => items(be_len(input, 1, 4)?, 5, true),
        0xc1 => Err("the reserved marker 0xc1".to_owned()),
    }
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

/// Checks `v1.json`'s text: identical to what [`generate`] writes, and every vector behaves as
/// it says. Returns every failure found.
pub fn check(text: &str) -> Result<usize, Vec<String>> {
    check_against(text, &generate())
}

/// [`check`] for `v1-extra.json` and [`generate_extra`].
pub fn check_extra(text: &str) -> Result<usize, Vec<String>> {
    check_against(text, &generate_extra())
}

fn check_against(text: &str, generated: &VectorFile) -> Result<usize, Vec<String>> {
    let mut failures = Vec::new();
    let expected = render(generated);
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
            count = file.vectors.len() + file.key_ring_files.len();
            failures.extend(check_vectors(&file).err().unwrap_or_default());
        }
        Err(e) => failures.push(format!("the file does not parse: {e}")),
    }
    if failures.is_empty() { Ok(count) } else { Err(failures) }
}

/// Checks every vector of a parsed file, from the file's contents alone.
pub fn check_vectors(file: &VectorFile) -> Result<(), Vec<String>> {
    let vectors = file
        .vectors
        .iter()
        .filter_map(|v| check_vector(v).err().map(|why| format!("vector {:?}: {why}", v.name)));
    let rings = file.key_ring_files.iter().filter_map(|v| {
        check_ring_file(v).err().map(|why| format!("key ring file {:?}: {why}", v.name))
    });
    let failures: Vec<String> = vectors.chain(rings).collect();
    if failures.is_empty() { Ok(()) } else { Err(failures) }
}

fn check_vector(vector: &Vector) -> Result<(), String> {
    let token_header = vector.token_header.as_ref();
    let codec = build_codec_with(
        &vector.keys,
        &vector.cookie_name,
        &vector.mode,
        &vector.config,
        token_header.map(|header| header.name.as_str()),
    )?;
    let opened = match token_header {
        Some(header) => codec.open_token(&header.value, at(vector.now)),
        None => codec.open(&vector.cookie_header, at(vector.now)),
    };
    match (&vector.expected, &vector.expected_error, opened) {
        (Some(expected), None, Ok(session)) => {
            check_session(expected, &session)?;
            if let Some(id) = expected.current_key_id {
                let current = build_ring(&vector.keys)?.current_id(at(vector.now));
                same("current key", current, Some(KeyId(id)))?;
            }
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
        let raw = session.get_raw(key).ok_or("a listed key has no value")?;
        let (value, len) = msgpack_json(raw)?;
        if len != raw.len() {
            return Err(format!("value of {key:?}: bytes after the value"));
        }
        state.insert(key.to_owned(), value);
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
    // The session's times are `SystemTime`s, which hold at most i64::MAX seconds; the frame's
    // exact values (up to 2^64 - 1) are checked by the reference decoder.
    let held = |secs: u64| Some(secs.min(i64::MAX as u64));
    same("issued_at", unix(session.issued_at()), held(expected.issued_at))?;
    same("last_refresh", unix(session.last_refresh()), held(expected.last_refresh))?;
    same("expires_at", unix(session.expires_at()), held(expected.expires_at))?;
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

/// The files, each with its generator and checker. A path given on the command line selects
/// the file whose name it ends with (`v1-extra.json` or else `v1.json`).
type Files = Vec<(String, fn() -> VectorFile, fn(&str) -> Result<usize, Vec<String>>)>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let both: Files = vec![
        (VECTORS_PATH.to_owned(), generate as fn() -> VectorFile, check as fn(&str) -> _),
        (EXTRA_PATH.to_owned(), generate_extra, check_extra),
    ];
    let (mode, files) = match args.as_slice() {
        [mode] => (mode.as_str(), both),
        [mode, path] => {
            let pick = usize::from(path.ends_with("v1-extra.json"));
            let (_, generator, checker) = both[pick];
            (mode.as_str(), vec![(path.clone(), generator, checker)])
        }
        _ => ("", Vec::new()),
    };
    let mut status = ExitCode::SUCCESS;
    for (path, generator, checker) in files.iter() {
        let ok = match mode {
            "--write" => write(path, generator()),
            "--check" => check_path(path, *checker),
            _ => {
                eprintln!("usage: cargo run --example test_vectors -- (--write | --check) [PATH]");
                return ExitCode::from(2);
            }
        };
        if !ok {
            status = ExitCode::FAILURE;
        }
    }
    if files.is_empty() {
        eprintln!("usage: cargo run --example test_vectors -- (--write | --check) [PATH]");
        return ExitCode::from(2);
    }
    status
}

fn write(path: &str, file: VectorFile) -> bool {
    if let Err(failures) = check_vectors(&file) {
        eprintln!("refusing to write vectors that do not check ({path}):");
        failures.iter().for_each(|f| eprintln!("  {f}"));
        return false;
    }
    let write = std::fs::create_dir_all(
        std::path::Path::new(path).parent().unwrap_or(std::path::Path::new(".")),
    )
    .and_then(|()| std::fs::write(path, render(&file)));
    if let Err(e) = write {
        eprintln!("cannot write {path}: {e}");
        return false;
    }
    println!("wrote {} vectors to {path}", file.vectors.len() + file.key_ring_files.len());
    true
}

fn check_path(path: &str, checker: fn(&str) -> Result<usize, Vec<String>>) -> bool {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            return false;
        }
    };
    match checker(&text) {
        Ok(count) => {
            println!("{path}: all {count} vectors check");
            true
        }
        Err(failures) => {
            eprintln!("{path}: {} problem(s):", failures.len());
            failures.iter().for_each(|f| eprintln!("  {f}"));
            false
        }
    }
}
