//! Resource limits: hostile input is rejected with the exact reason, without panicking, and
//! with a bounded peak of heap memory, which this file measures.
//!
//! A counting global allocator (below) wraps the system allocator and tracks the bytes live
//! and their high-water mark. Every scenario runs inside [`measure`], which resets the mark
//! to the bytes live when it starts, so `peak` is the most the call had allocated at once on
//! top of what existed before it. The scenarios run one after another in a single `#[test]`
//! (the only one in this binary), so no other test allocates meanwhile and the numbers mean
//! something. A `realloc` counts as old plus new size at its peak, which overstates growth in
//! place: the bounds err on the safe side. The counter sees the Rust heap only: memory zstd's C
//! code takes with `malloc` (its decompression context) is not counted; the output buffer of a
//! decompression is a Rust `Vec` and is.
//!
//! Run with `cargo test --test limits -- --nocapture` to see the table (scenario, result, peak
//! bytes, µs). Times are printed, never asserted: speed targets belong to the benchmarks.
//!
//! Post-authentication paths (decompression, MessagePack indexing) are reached two ways:
//! with sessions sealed here under the codec's own key (the only way a real token gets there),
//! and with hand-made frames through the fuzzing entry point `__fuzz_decode_frame`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sealed_session::{
    Key, KeyRing, RejectReason, Session, SessionCodec, SessionConfig, SessionConfigBuilder,
};

/// Wraps [`System`] and counts the bytes it hands out.
struct Counting;

/// Bytes currently allocated.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most bytes allocated at once since the last [`measure`] started.
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the only addition is arithmetic on two atomics, which neither
// allocates nor touches the memory handed out. A failed (null) allocation is not counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's obligations for `alloc` are exactly `System::alloc`'s.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator, hence from `System`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` and `layout` come from `System`; the caller checked `new_size`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            grew(new_size);
            shrank(layout.size());
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What one scenario measured.
struct Measured<T> {
    value: T,
    peak: usize,
    elapsed: Duration,
}

/// Runs `f` and returns its result with the peak heap growth and the time it took.
fn measure<T>(f: impl FnOnce() -> T) -> Measured<T> {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let start = Instant::now();
    let value = f();
    let elapsed = start.elapsed();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    Measured { value, peak, elapsed }
}

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const NOW_SECS: u64 = 1_800_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

/// The one key every codec here shares, so that a session sealed by one opens in another.
fn ring() -> KeyRing {
    KeyRing::single(Key::from_bytes([0x5a; 32]))
}

/// A codec for cookie name `s` (no prefix), with defaults changed by `configure`.
fn codec(configure: impl FnOnce(SessionConfigBuilder) -> SessionConfigBuilder) -> SessionCodec {
    let builder = SessionConfig::builder("s").host_prefix(false);
    SessionCodec::new(configure(builder).build().unwrap(), ring())
}

/// What an open returns, reduced to its reason when rejected.
type Opened = Result<Session, RejectReason>;

/// The outcome of an open, for the table: `ok` or the rejection's reason.
fn outcome(result: &Opened) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(reason) => reason.to_string(),
    }
}

/// One line of the table.
struct Row {
    scenario: String,
    result: String,
    peak: usize,
    micros: u128,
    /// Why the scenario failed, if it did.
    problem: Option<String>,
}

/// The rows of the table.
#[derive(Default)]
struct Report {
    rows: Vec<Row>,
}

impl Report {
    /// Measures `open`, checks its result with `expect` and its peak against `max_peak`, and
    /// records a row. Failures are collected so that the whole table prints before the test
    /// fails.
    fn run(
        &mut self,
        scenario: &str,
        max_peak: usize,
        expect: impl FnOnce(&Opened) -> bool,
        open: impl FnOnce() -> Opened,
    ) {
        let measured = measure(open);
        let result = outcome(&measured.value);
        let mut problem = None;
        if !expect(&measured.value) {
            problem = Some(format!("unexpected result: {result}"));
        } else if measured.peak > max_peak {
            problem = Some(format!("peak {} B above the bound {max_peak} B", measured.peak));
        }
        self.rows.push(Row {
            scenario: scenario.to_owned(),
            result,
            peak: measured.peak,
            micros: measured.elapsed.as_micros(),
            problem,
        });
    }

    fn print_and_check(&self) {
        println!();
        println!("| scenario | result | peak bytes | µs |");
        println!("|---|---|---:|---:|");
        for row in &self.rows {
            let flag = row.problem.as_ref().map_or(String::new(), |p| format!(" **FAIL: {p}**"));
            println!("| {} | {}{flag} | {} | {} |", row.scenario, row.result, row.peak, row.micros);
        }
        let failed: Vec<_> = self
            .rows
            .iter()
            .filter_map(|row| row.problem.as_ref().map(|p| format!("{}: {p}", row.scenario)))
            .collect();
        assert!(failed.is_empty(), "{} scenario(s) failed:\n{}", failed.len(), failed.join("\n"));
    }
}

fn too_large(result: &Opened) -> bool {
    matches!(result, Err(RejectReason::TooLarge(_)))
}

fn too_large_because(what: &'static str) -> impl FnOnce(&Opened) -> bool {
    move |result| matches!(result, Err(RejectReason::TooLarge(w)) if *w == what)
}

/// Whether the session opened, with an id, and holds the string `value` under `key`.
fn holds(result: &Opened, key: &str, value: &str) -> bool {
    result.as_ref().is_ok_and(|session| {
        session.id().is_some()
            && session.get::<String>(key).ok().flatten().as_deref() == Some(value)
    })
}

fn malformed(result: &Opened) -> bool {
    matches!(result, Err(RejectReason::Malformed(_)))
}

/// A session holding one ordinary value `v` and, if given, one sensitive value `secret`.
fn session_with(value: &str, secret: Option<&str>) -> Session {
    let mut session = Session::new();
    session.insert("v", value).unwrap();
    if let Some(secret) = secret {
        session.insert_sensitive("secret", secret).unwrap();
    }
    session
}

/// Unsigned LEB128, as in the frame (FORMAT.md section 4).
fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A frame (FORMAT.md section 4) issued now, valid for an hour, with `flags` and `sections`
/// (the bytes after the session id) as given.
fn frame(flags: u8, sections: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    varint(NOW_SECS, &mut out);
    varint(0, &mut out);
    varint(3600, &mut out);
    out.extend_from_slice(&[0x11; 16]);
    out.extend_from_slice(sections);
    out
}

/// `{"v": <value>}` as a MessagePack section.
fn map_with(value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x81, 0xa1, b'v'];
    out.extend_from_slice(value);
    out
}

/// The header of a zstd frame (RFC 8878) that declares `size` bytes of content, followed by
/// a block that claims to hold them (never reached when the size is refused).
fn zstd_declaring(size: u64) -> Vec<u8> {
    let mut out = 0xFD2F_B528_u32.to_le_bytes().to_vec();
    out.push(0b1110_0000); // 8-byte content size, single segment, no checksum, no dictionary
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0x00]); // last raw block of length 0
    out
}

#[test]
fn hostile_input_is_rejected_within_bounded_memory() {
    let mut report = Report::default();
    let default = codec(|b| b);

    // (a) A validly sealed payload that decompresses far past the maximum state: sealed here,
    // under the same key, by a codec allowing 32 MiB of state. 16 MiB of one repeated byte
    // compresses to a few hundred bytes, well within one cookie. Opening it may not allocate
    // as much as the 64 KiB maximum state it is refused for.
    let big = codec(|b| b.max_state_size(32 * MIB));
    let bomb = {
        let mut session = session_with(&"a".repeat(16 * MIB), None);
        big.seal(&mut session, now()).unwrap().request_header()
    };
    println!("(a) 16 MiB of state sealed into a Cookie header of {} bytes", bomb.len());
    assert!(bomb.len() < 6 * KIB, "the bomb should fit one cookie: {} bytes", bomb.len());
    report.run(
        "a. sealed 16 MiB state, opened with max_state_size 64 KiB",
        64 * KIB,
        too_large_because("decompressed state"),
        || default.open(&bomb, now()).map_err(|r| r.reason()),
    );
    // The control: the codec that allows it does open it, and the counter sees the 16 MiB.
    report.run(
        "a. control: same cookie, max_state_size 32 MiB (opens)",
        usize::MAX,
        |result| holds(result, "v", &"a".repeat(16 * MIB)),
        || big.open(&bomb, now()).map_err(|r| r.reason()),
    );
    assert!(
        report.rows.last().is_some_and(|row| row.peak >= 16 * MIB),
        "the counting allocator must see the 16 MiB the control decompresses"
    );
    // The same bomb through the token header.
    let bomb_token = {
        let mut session = session_with(&"a".repeat(16 * MIB), None);
        big.seal_token(&mut session, now()).unwrap()
    };
    report.run(
        "a. sealed 16 MiB state as a token (open_token), max 64 KiB",
        64 * KIB,
        too_large_because("decompressed state"),
        || default.open_token(&bomb_token, now()).map_err(|r| r.reason()),
    );
    // A sensitive section (never compressed) larger than the opening codec's maximum state.
    let small_max = codec(|b| b.max_state_size(1024));
    let sensitive = {
        let mut session = session_with("x", Some(&"k".repeat(2000)));
        default.seal(&mut session, now()).unwrap().request_header()
    };
    report.run(
        "a. sealed 2 KB sensitive section, opened with max_state_size 1 KiB",
        64 * KIB,
        too_large_because("state"),
        || small_max.open(&sensitive, now()).map_err(|r| r.reason()),
    );

    // (b) A 1 MB Cookie header: refused before it is parsed.
    let huge_header = format!("s={}", "A".repeat(MIB));
    report.run("b. 1 MB Cookie header", KIB, too_large_because("Cookie header"), || {
        default.open(&huge_header, now()).map_err(|r| r.reason())
    });
    let many_headers: Vec<String> =
        (0..1000).map(|i| format!("c{i}={}", "B".repeat(KIB))).collect();
    report.run(
        "b. 1000 Cookie headers of 1 KB (open_headers)",
        KIB,
        too_large_because("Cookie header"),
        || {
            default
                .open_headers(many_headers.iter().map(String::as_str), now())
                .map_err(|r| r.reason())
        },
    );
    let huge_token = "A".repeat(MIB);
    report.run("b. 1 MB token header (open_token)", KIB, too_large_because("token"), || {
        default.open_token(&huge_token, now()).map_err(|r| r.reason())
    });

    // (c) Thousands of our cookies within a raised header limit: refused once past 128.
    let roomy = codec(|b| b.max_cookie_header(4 * MIB));
    let chunk_flood = "s.1=AAAA; s.2=AAAA; ".repeat(5000);
    report.run(
        "c. `s.1=..; s.2=..` x 5000 (200 KB header)",
        16 * KIB,
        too_large_because("too many session cookies"),
        || roomy.open(&chunk_flood, now()).map_err(|r| r.reason()),
    );
    let name_flood = "s=AAAAAAAA; ".repeat(5000);
    report.run(
        "c. `s=..` x 5000 (60 KB header)",
        16 * KIB,
        too_large_because("too many session cookies"),
        || roomy.open(&name_flood, now()).map_err(|r| r.reason()),
    );
    // Other cookies do not count: 50,000 of them around a valid session still open it.
    let valid = {
        let mut session = session_with("hello", None);
        default.seal(&mut session, now()).unwrap().request_header()
    };
    let crowd = format!("{}{valid}", "other=1; ".repeat(50_000));
    report.run(
        "c. valid session after 50,000 other cookies (450 KB header)",
        16 * KIB,
        |result| holds(result, "v", "hello"),
        || roomy.open(&crowd, now()).map_err(|r| r.reason()),
    );

    // (d) Huge, negative, zero-padded or empty chunk indexes: not our cookies, ignored.
    let odd_names = "s.99999999999999999999=x; s.18446744073709551616=x; s.-1=x; s.01=x; \
                     s.32=x; s.256=x; s.=x; s..1=x";
    report.run(
        "d. huge and odd chunk indexes only (no session)",
        KIB,
        |result| matches!(result, Ok(session) if session.id().is_none() && session.is_empty()),
        || default.open(odd_names, now()).map_err(|r| r.reason()),
    );
    let odd_and_valid =
        format!("{odd_names}; {valid}; {}", "s.99999999999999999999=x; ".repeat(1000));
    report.run(
        "d. huge chunk indexes x 1000 around a valid session (opens)",
        16 * KIB,
        |result| holds(result, "v", "hello"),
        || default.open(&odd_and_valid, now()).map_err(|r| r.reason()),
    );

    // (e) Authenticated but hostile frames, through the fuzzing entry point for the
    // post-decryption path. Each needs at least as much memory as its input, and no more.
    let codec = &default;
    let decode = |frame: Vec<u8>| move || codec.__fuzz_decode_frame(&frame, now());
    // Just under the default 64 KiB state limit, so the nesting check is what refuses it.
    let mut deep = map_with(&[]);
    deep.extend(std::iter::repeat_n(0x91, 60_000));
    deep.push(0x01);
    report.run("e. array nested 60,000 deep", 4 * KIB, malformed, decode(frame(0, &deep)));
    let mut limit = map_with(&[]);
    limit.extend(std::iter::repeat_n(0x91, 63));
    limit.push(0x90);
    report.run(
        "e. control: arrays nested 64 deep (the limit, opens)",
        4 * KIB,
        |result| result.is_ok(),
        decode(frame(0, &limit)),
    );
    let mut past = map_with(&[]);
    past.extend(std::iter::repeat_n(0x91, 64));
    past.push(0x01);
    report.run(
        "e. arrays nested 64 deep around an int (depth 65)",
        4 * KIB,
        malformed,
        decode(frame(0, &past)),
    );
    report.run(
        "e. section map claiming 2^32-1 entries",
        4 * KIB,
        malformed,
        decode(frame(0, &[0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, b'v', 0x01])),
    );
    report.run(
        "e. value map claiming 2^32-1 entries",
        4 * KIB,
        malformed,
        decode(frame(0, &map_with(&[0xdf, 0xff, 0xff, 0xff, 0xff, 0x01]))),
    );
    report.run(
        "e. value array claiming 2^32-1 items",
        4 * KIB,
        malformed,
        decode(frame(0, &map_with(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]))),
    );
    report.run(
        "e. value str claiming 4 GiB",
        4 * KIB,
        malformed,
        decode(frame(0, &map_with(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'x']))),
    );
    report.run(
        "e. value bin claiming 4 GiB",
        4 * KIB,
        malformed,
        decode(frame(0, &map_with(&[0xc6, 0xff, 0xff, 0xff, 0xff, b'x']))),
    );
    report.run(
        "e. value ext claiming 4 GiB",
        4 * KIB,
        malformed,
        decode(frame(0, &map_with(&[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, b'x']))),
    );
    report.run(
        "e. key str claiming 4 GiB",
        4 * KIB,
        malformed,
        decode(frame(0, &[0x81, 0xdb, 0xff, 0xff, 0xff, 0xff, b'v', 0x01])),
    );
    let mut sensitive_len = vec![];
    varint(u64::MAX, &mut sensitive_len);
    sensitive_len.push(0x80);
    report.run(
        "e. body_len claiming 2^64-1 bytes",
        4 * KIB,
        malformed,
        decode(frame(0b10, &sensitive_len)),
    );
    report.run(
        "e. zstd frame declaring 1 TiB",
        4 * KIB,
        too_large,
        decode(frame(0b01, &zstd_declaring(1 << 40))),
    );
    report.run(
        "e. zstd frame declaring 2^63 bytes",
        4 * KIB,
        too_large,
        decode(frame(0b01, &zstd_declaring(1 << 63))),
    );
    // 2^64-1 is zstd's own "size unknown" value: a frame without a declared size.
    report.run(
        "e. zstd frame declaring 2^64-1 bytes (zstd's \"unknown\")",
        4 * KIB,
        malformed,
        decode(frame(0b01, &zstd_declaring(u64::MAX))),
    );
    report.run(
        "e. zstd frame declaring 64 KiB + 1, holding nothing",
        4 * KIB,
        too_large,
        decode(frame(0b01, &zstd_declaring(64 * 1024 + 1))),
    );
    report.run(
        "e. zstd frame declaring 1 KiB, holding nothing",
        4 * KIB,
        malformed,
        decode(frame(0b01, &zstd_declaring(1024))),
    );

    report.print_and_check();
}
