//! The zstd dictionary sealed-session ships (`src/format/dictionary-1.zdict`): how it is made
//! and what it buys.
//!
//! `cargo run --release --example dictionary -- --train` trains it with
//! zstd's own trainer (`ZDICT_trainFromBuffer`) on synthetic session states drawn by the seeded
//! generator below, writes the result to `target/dictionary-trained.zdict` and says whether it
//! is byte for byte the shipped file (it is: the generator is seeded). The shipped file is never
//! replaced: tokens sealed with it must keep opening, so a new dictionary takes a new flag bit
//! (`FORMAT.md` section 4.2). Nothing from `../shared/corpus/` goes into it: the corpus is the
//! held-out set the dictionary is judged on.
//!
//! Without `--train` it prints, for every corpus file and for the peers' login state
//! (`peers/src/state.rs`), the MessagePack size, the compressed size and the time to compress
//! and to decompress, without and with the dictionary, at the library's levels (3 without, 1
//! with it).
//!
//! Why a dictionary: a session is a few hundred bytes, and on such inputs zstd spends most of
//! its time building and writing entropy tables (Huffman for the literals, FSE for the
//! sequences), not matching. A dictionary carries tables made once, which zstd reuses for small
//! inputs instead of building new ones, and common session text that the matcher can point at.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, RngExt as _, SeedableRng as _};
use serde_json::{Map, Value, json};

/// The zstd levels the library seals with, without and with the dictionary
/// (`format::compress::LEVEL`, `DICTIONARY_LEVEL`).
const LEVEL: i32 = 3;
const DICTIONARY_LEVEL: i32 = 1;
/// Size of the dictionary: large enough for entropy tables and common text, small enough that
/// preparing it costs nothing a process notices.
const DICTIONARY_SIZE: usize = 4096;
/// Training states drawn.
const SAMPLES: usize = 4000;
/// The generator's seed: the same dictionary every time.
const SEED: u64 = 0x5EA1_ED01;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dictionary_path = root.join("src/format/dictionary-1.zdict");
    if std::env::args().any(|arg| arg == "--train") {
        let mut rng = StdRng::seed_from_u64(SEED);
        let samples: Vec<Vec<u8>> =
            (0..SAMPLES).map(|_| rmp_serde::to_vec(&state(&mut rng))).collect::<Result<_, _>>()?;
        let total: usize = samples.iter().map(Vec::len).sum();
        let dictionary = zstd::dict::from_samples(&samples, DICTIONARY_SIZE)?;
        let trained = root.join("target/dictionary-trained.zdict");
        std::fs::create_dir_all(root.join("target"))?;
        std::fs::write(&trained, &dictionary)?;
        let same = std::fs::read(&dictionary_path).is_ok_and(|shipped| shipped == dictionary);
        println!(
            "trained on {SAMPLES} synthetic states ({total} bytes of MessagePack): {} bytes -> {} \
             ({} the shipped {})",
            dictionary.len(),
            trained.display(),
            if same { "identical to" } else { "DIFFERS from" },
            dictionary_path.display()
        );
        return Ok(());
    }
    let dictionary = std::fs::read(&dictionary_path)?;
    evaluate(root, &dictionary)
}

/// Prints sizes and times without and with the dictionary.
fn evaluate(root: &Path, dictionary: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    let corpus = root.join("../shared/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    let mut states: Vec<(String, Vec<u8>)> = Vec::new();
    for path in &files {
        let state: Map<String, Value> = serde_json::from_slice(&std::fs::read(path)?)?;
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        states.push((name, rmp_serde::to_vec(&state)?));
    }
    states.push(("peers login".to_owned(), rmp_serde::to_vec(&peers_login())?));

    let plain_c = zstd::bulk::Compressor::new(LEVEL)?;
    let plain_d = zstd::bulk::Decompressor::new()?;
    let cdict = zstd::dict::EncoderDictionary::copy(dictionary, DICTIONARY_LEVEL);
    let ddict = zstd::dict::DecoderDictionary::copy(dictionary);
    let dict_c = zstd::bulk::Compressor::with_prepared_dictionary(&cdict)?;
    let dict_d = zstd::bulk::Decompressor::with_prepared_dictionary(&ddict)?;
    let mut contexts = [(plain_c, plain_d), (dict_c, dict_d)];
    println!(
        "dictionary: {} bytes; level {LEVEL} without, {DICTIONARY_LEVEL} with it; times are the \
         median of 15 batches of 2000",
        dictionary.len()
    );
    println!(
        "| state | MsgPack B | zstd B | zstd+dict B | compress µs | compress+dict µs | decompress µs | decompress+dict µs |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, body) in &states {
        let mut cells = Vec::new();
        for (compressor, decompressor) in &mut contexts {
            let packed = compressor.compress(body)?;
            let unpacked = decompressor.decompress(&packed, body.len())?;
            assert_eq!(&unpacked, body, "{name} round trip");
            let compress = median_micros(|| {
                std::hint::black_box(compressor.compress(body).map(|p| p.len()).unwrap_or(0));
            });
            let decompress = median_micros(|| {
                std::hint::black_box(
                    decompressor.decompress(&packed, body.len()).map(|p| p.len()).unwrap_or(0),
                );
            });
            cells.push((packed.len(), compress, decompress));
        }
        println!(
            "| {name} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            body.len(),
            cells[0].0,
            cells[1].0,
            cells[0].1,
            cells[1].1,
            cells[0].2,
            cells[1].2
        );
    }
    drawn_states(&states_from(&files)?, dictionary)
}

/// Each corpus file's top-level values as one map per file.
fn states_from(files: &[PathBuf]) -> Result<Vec<Map<String, Value>>, Box<dyn std::error::Error>> {
    files.iter().map(|path| Ok(serde_json::from_slice(&std::fs::read(path)?)?)).collect()
}

/// Sizes with and without the dictionary over states drawn from the corpus (each file's
/// top-level values shuffled and added one at a time, so every size up to the file's occurs),
/// by size bucket: where the dictionary stops paying.
fn drawn_states(
    files: &[Map<String, Value>],
    dictionary: &[u8],
) -> Result<(), Box<dyn std::error::Error>> {
    use rand::seq::SliceRandom as _;
    const BUCKETS: [usize; 11] = [0, 128, 256, 384, 512, 1024, 1536, 2048, 3072, 4096, 6144];
    let mut plain = zstd::bulk::Compressor::new(LEVEL)?;
    let cdict = zstd::dict::EncoderDictionary::copy(dictionary, DICTIONARY_LEVEL);
    let mut with = zstd::bulk::Compressor::with_prepared_dictionary(&cdict)?;
    let mut rng = StdRng::seed_from_u64(7);
    // (states, MessagePack bytes, bytes without, bytes with, states where the dictionary made
    // it larger)
    let mut buckets = [(0usize, 0usize, 0usize, 0usize, 0usize); BUCKETS.len()];
    for state in files {
        let mut keys: Vec<&String> = state.keys().collect();
        for _ in 0..100 {
            keys.shuffle(&mut rng);
            let mut drawn = Map::new();
            for key in &keys {
                drawn.insert((*key).clone(), state[*key].clone());
                let body = rmp_serde::to_vec(&drawn)?;
                let index = BUCKETS.iter().rposition(|&low| body.len() >= low).unwrap_or(0);
                let (a, b) = (plain.compress(&body)?.len(), with.compress(&body)?.len());
                let bucket = &mut buckets[index];
                bucket.0 += 1;
                bucket.1 += body.len();
                bucket.2 += a;
                bucket.3 += b;
                bucket.4 += usize::from(b > a);
            }
        }
    }
    println!(
        "\n| MsgPack B from | states | mean MsgPack B | mean zstd B | mean zstd+dict B | dict larger |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for (low, (n, body, a, b, worse)) in BUCKETS.iter().zip(buckets) {
        if n > 0 {
            let mean = |total: usize| total as f64 / n as f64;
            println!(
                "| {low} | {n} | {:.0} | {:.0} | {:.0} | {worse} |",
                mean(body),
                mean(a),
                mean(b)
            );
        }
    }
    Ok(())
}

/// The median over batches of the time one call of `f` takes, in µs.
fn median_micros(mut f: impl FnMut()) -> f64 {
    const BATCH: u32 = 2000;
    let mut batches: Vec<f64> = (0..15)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..BATCH {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(BATCH)
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[batches.len() / 2]
}

// The peers' state itself (`peers/src/state.rs`).
#[allow(dead_code)]
#[path = "../peers/src/state.rs"]
mod state;

/// The peers' login state, as the library stores it: `user` and the 10-line cart (the CSRF
/// token is sensitive, never compressed).
fn peers_login() -> Value {
    json!({"user": state::USER, "cart": state::cart()})
}

// --- The generator: session states as web applications keep them ---

/// Keys applications use at the top of a session, with the kind of value each holds.
const TOP_KEYS: &[(&str, Kind)] = &[
    ("user_id", Kind::Id),
    ("uid", Kind::Id),
    ("account", Kind::Id),
    ("account_id", Kind::Id),
    ("user", Kind::Word),
    ("username", Kind::Word),
    ("email", Kind::Email),
    ("name", Kind::Name),
    ("role", Kind::Role),
    ("roles", Kind::Roles),
    ("locale", Kind::Locale),
    ("lang", Kind::Locale),
    ("tz", Kind::TimeZone),
    ("theme", Kind::Theme),
    ("csrf", Kind::Token),
    ("_csrf", Kind::Token),
    ("csrf_token", Kind::Hex),
    ("xsrf", Kind::Token),
    ("state", Kind::Token),
    ("nonce", Kind::Token),
    ("code_verifier", Kind::Token),
    ("return_to", Kind::Path),
    ("redirect", Kind::Path),
    ("next", Kind::Path),
    ("logged_in_at", Kind::Time),
    ("last_seen", Kind::Time),
    ("since", Kind::Time),
    ("expires_at", Kind::Time),
    ("mfa", Kind::Bool),
    ("remember", Kind::Bool),
    ("admin", Kind::Bool),
    ("step", Kind::Small),
    ("attempts", Kind::Small),
    ("_flash", Kind::Flash),
    ("flash", Kind::Flash),
    ("messages", Kind::Flash),
    ("cart", Kind::Lines),
    ("basket", Kind::Lines),
    ("items", Kind::Lines),
    ("recent", Kind::Viewed),
    ("viewed", Kind::Viewed),
    ("history", Kind::Viewed),
    ("tokens", Kind::Tokens),
    ("access_token", Kind::Jwt),
    ("id_token", Kind::Jwt),
    ("refresh_token", Kind::Token),
    ("subject", Kind::Hex),
    ("issuer", Kind::Url),
    ("session_index", Kind::Hex),
    ("form", Kind::Form),
    ("address", Kind::Address),
    ("filters", Kind::Filters),
    ("preferences", Kind::Filters),
    ("groups", Kind::Groups),
    ("axum-login.data", Kind::Login),
    ("actix_identity.user_id", Kind::Word),
    ("actix_identity.last_visited_at", Kind::Time),
    ("actix_identity.logged_in_at", Kind::Time),
];

#[derive(Clone, Copy)]
enum Kind {
    Id,
    Word,
    Email,
    Name,
    Role,
    Roles,
    Locale,
    TimeZone,
    Theme,
    Token,
    Hex,
    Path,
    Url,
    Time,
    Bool,
    Small,
    Flash,
    Lines,
    Viewed,
    Tokens,
    Jwt,
    Form,
    Address,
    Filters,
    Groups,
    Login,
}

const WORDS: &[&str] = &[
    "alpha", "garden", "river", "stone", "maple", "copper", "linen", "harbor", "meadow", "cedar",
    "amber", "silver", "orchid", "falcon", "willow", "granite", "velvet", "summit", "pepper",
    "cotton", "marble", "juniper", "coral", "ember", "lotus", "tundra", "bamboo", "saffron",
];
const FIRST: &[&str] =
    &["Ana", "Ben", "Chloe", "Dmitri", "Eva", "Farid", "Grace", "Hiro", "Ines", "Jon", "Kemi"];
const LAST: &[&str] =
    &["Silva", "Novak", "Okoro", "Lindqvist", "Tanaka", "Moreau", "Schmidt", "Rossi", "Khan"];
const DOMAINS: &[&str] = &["example.com", "example.org", "mail.example", "corp.example"];
const ROLES: &[&str] = &["admin", "editor", "viewer", "owner", "member", "support", "billing"];
const LOCALES: &[&str] = &["en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "pt-BR", "ja-JP", "nl"];
const ZONES: &[&str] = &["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"];
const KINDS: &[&str] = &["success", "info", "warning", "error", "notice"];
const TEXTS: &[&str] = &[
    "Saved.",
    "Your changes were saved.",
    "Welcome back!",
    "Item added to your cart.",
    "Please check the form for errors.",
    "Password updated.",
    "Signed out of all other devices.",
];
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HEX: &[u8] = b"0123456789abcdef";

fn pick<'a>(rng: &mut impl Rng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

fn chars(rng: &mut impl Rng, alphabet: &[u8], len: usize) -> String {
    (0..len).map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())])).collect()
}

fn word(rng: &mut impl Rng) -> String {
    pick(rng, WORDS).to_owned()
}

/// One session state: 1 to 8 top-level keys, each with a value of its kind.
fn state(rng: &mut impl Rng) -> Map<String, Value> {
    let mut state = Map::new();
    let keys = rng.random_range(1..=8);
    for _ in 0..keys {
        let (key, kind) = TOP_KEYS[rng.random_range(0..TOP_KEYS.len())];
        state.insert(key.to_owned(), value(rng, kind));
    }
    state
}

fn value(rng: &mut impl Rng, kind: Kind) -> Value {
    match kind {
        Kind::Id => json!(rng.random_range(1..10_000_000u64)),
        Kind::Word => json!(word(rng)),
        Kind::Email => json!(format!(
            "{}.{}@{}",
            pick(rng, FIRST).to_lowercase(),
            pick(rng, LAST).to_lowercase(),
            pick(rng, DOMAINS)
        )),
        Kind::Name => json!(format!("{} {}", pick(rng, FIRST), pick(rng, LAST))),
        Kind::Role => json!(pick(rng, ROLES)),
        Kind::Roles => {
            json!((0..rng.random_range(1..4)).map(|_| pick(rng, ROLES)).collect::<Vec<_>>())
        }
        Kind::Locale => json!(pick(rng, LOCALES)),
        Kind::TimeZone => json!(pick(rng, ZONES)),
        Kind::Theme => json!(pick(rng, &["dark", "light", "system"])),
        Kind::Token => {
            let len = [22, 32, 43, 64, 86][rng.random_range(0..5)];
            json!(chars(rng, BASE64URL, len))
        }
        Kind::Hex => {
            let len = [32, 40, 64][rng.random_range(0..3)];
            json!(chars(rng, HEX, len))
        }
        Kind::Path => {
            json!(format!("/{}/{}?page={}", word(rng), word(rng), rng.random_range(1..20)))
        }
        Kind::Url => json!(format!("https://{}.{}", word(rng), pick(rng, DOMAINS))),
        Kind::Time => json!(rng.random_range(1_700_000_000..1_900_000_000u64)),
        Kind::Bool => json!(rng.random_bool(0.5)),
        Kind::Small => json!(rng.random_range(0..10)),
        Kind::Flash => json!(
            (0..rng.random_range(1..4))
                .map(|_| json!({"kind": pick(rng, KINDS), "text": pick(rng, TEXTS)}))
                .collect::<Vec<_>>()
        ),
        Kind::Lines => {
            let lines = rng.random_range(1..16);
            let (id, title, count, price) = [
                ("sku", "name", "qty", "price_cents"),
                ("product", "title", "quantity", "price_pence"),
                ("product_id", "label", "count", "unit_price"),
                ("id", "description", "amount", "price"),
            ][rng.random_range(0..4)];
            json!(
                (0..lines)
                    .map(|_| {
                        let mut line = Map::new();
                        line.insert(id.into(), json!(rng.random_range(1000..10_000_000u32)));
                        let name = format!("{} {}", word(rng), word(rng));
                        line.insert(title.into(), json!(name));
                        line.insert(count.into(), json!(rng.random_range(1..6)));
                        line.insert(price.into(), json!(rng.random_range(99..99_999)));
                        if rng.random_bool(0.3) {
                            line.insert("gift".into(), json!(rng.random_bool(0.5)));
                        }
                        Value::Object(line)
                    })
                    .collect::<Vec<_>>()
            )
        }
        Kind::Viewed => json!(
            (0..rng.random_range(1..30))
                .map(|_| json!({"id": rng.random_range(1000..10_000_000u32),
                    "slug": format!("{}-{}-{}", word(rng), word(rng), word(rng)),
                    "at": rng.random_range(1_700_000_000..1_900_000_000u64)}))
                .collect::<Vec<_>>()
        ),
        Kind::Tokens => {
            let mut tokens = Map::new();
            for _ in 0..rng.random_range(1..4) {
                let len = [40, 64, 86, 120][rng.random_range(0..4)];
                tokens.insert(word(rng), json!(chars(rng, BASE64URL, len)));
            }
            Value::Object(tokens)
        }
        Kind::Jwt => {
            let (header, claims) = (rng.random_range(30..60), rng.random_range(80..300));
            json!(format!(
                "eyJ{}.eyJ{}.{}",
                chars(rng, BASE64URL, header),
                chars(rng, BASE64URL, claims),
                chars(rng, BASE64URL, 86)
            ))
        }
        Kind::Form => {
            let mut form = Map::new();
            for _ in 0..rng.random_range(2..8) {
                let v = match rng.random_range(0..3) {
                    0 => json!(word(rng)),
                    1 => value(rng, Kind::Email),
                    _ => json!(rng.random_range(0..100_000)),
                };
                form.insert(word(rng), v);
            }
            Value::Object(form)
        }
        Kind::Address => json!({
            "street": format!("{} Street {}", word(rng), rng.random_range(1..200)),
            "city": word(rng), "zip": chars(rng, b"0123456789", 5),
            "country": pick(rng, &["DE", "FR", "GB", "US", "NL"])
        }),
        Kind::Filters => {
            let mut filters = Map::new();
            for _ in 0..rng.random_range(1..6) {
                filters.insert(word(rng), json!(word(rng)));
            }
            Value::Object(filters)
        }
        Kind::Groups => json!(
            (0..rng.random_range(1..10))
                .map(|_| format!("cn={},ou=groups,dc={},dc=example", word(rng), word(rng)))
                .collect::<Vec<_>>()
        ),
        Kind::Login => json!({"user_id": rng.random_range(1..1_000_000u32),
            "auth_hash": (0..32).map(|_| rng.random_range(0..=255u8)).collect::<Vec<_>>()}),
    }
}
