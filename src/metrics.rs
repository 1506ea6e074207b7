//! The metrics this library records, through the [`metrics`](https://docs.rs/metrics) facade
//! (feature `metrics`): every name, as a constant, and the few functions the rest of the crate
//! calls to record them.
//!
//! Nothing here depends on the exporter: install any `metrics` recorder (Prometheus,
//! OpenTelemetry, StatsD) and the values appear under the names below, which are stable (the
//! README's "Metrics" table lists them with their labels; `docs/deploy.md` says what to alert
//! on). Without the feature the functions are empty and inlined, so the request path is the
//! same code as before; the names stay, for configuring an exporter.
//!
//! Where each is recorded, once for every adapter: sessions and the key that opened them in
//! [`SessionCodec::load`](crate::SessionCodec::load) (which every adapter and bridge calls),
//! saves, sizes and the key that sealed in [`SessionCodec::store`](crate::SessionCodec::store)
//! and [`store_headers`](crate::SessionCodec::store_headers) (likewise), revocation answers in
//! [`Revocation`](crate::revocation::Revocation)'s check, the replica's state in its watchdog
//! and follower, key ring reloads in [`SharedKeyRing`](crate::SharedKeyRing). Direct calls of
//! `open`, `seal` or `save` are not requests and are not counted.
//!
//! The handles of the per-request metrics are registered once with the recorder in use and
//! kept, so recording one is an atomic add; they are registered again when the recorder in use
//! changes, so a recorder installed after the first request still gets every value.
//!
//! # Examples
//!
//! A Prometheus exporter (`metrics-exporter-prometheus`), with buckets for the two histograms
//! so that they export as histograms (`_bucket` series) rather than summaries:
//!
//! ```
//! use std::time::SystemTime;
//! use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
//! use sealed_session::metrics::{COOKIE_BYTES, COOKIE_CHUNKS, SESSIONS};
//! use sealed_session::{Key, KeyRing, SessionCodec, SessionConfig};
//!
//! let handle = PrometheusBuilder::new()
//!     .set_buckets_for_metric(Matcher::Full(COOKIE_BYTES.into()), &[1024.0, 2048.0, 4096.0])?
//!     .set_buckets_for_metric(Matcher::Full(COOKIE_CHUNKS.into()), &[1.0, 2.0, 4.0])?
//!     .install_recorder()?;
//! # #[cfg(feature = "metrics")]
//! sealed_session::metrics::describe(); // HELP and TYPE lines
//!
//! // A request without a session cookie.
//! let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
//! codec.load(["theme=dark"], None, SystemTime::now());
//!
//! // Serve `handle.render()` at /metrics.
//! let text = handle.render();
//! # #[cfg(feature = "metrics")]
//! assert!(text.contains(&format!("{SESSIONS}{{outcome=\"fresh\"}} 1")), "{text}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// Counter: requests whose session was loaded, by `outcome`: `fresh` (no session cookie or
/// token), `opened`, or `rejected` with `reason`, a [`RejectReason::code`] of the codec
/// (`malformed`, `unsupported_version`, `wrong_mode`, `unknown_key`, `forged`, `idle_expired`,
/// `absolute_expired`, `issued_in_future`, `too_large`, `conflicting_sessions`). A session the
/// revocation check then refuses counts as `opened` here and in [`REVOCATION_CHECKS`].
///
/// [`RejectReason::code`]: crate::RejectReason::code
pub const SESSIONS: &str = "sealed_session_sessions_total";

/// Counter: requests whose session was stored, by `result`: `written` (Set-Cookie lines or a
/// token carrying the session), `removed` (its cookies or token removed: a logout, or
/// rejected cookies), `unchanged` (nothing to send), `over_budget` (the session did not fit
/// the cookie budget, the cookie count or the maximum state size: nothing was written) or
/// `error` (no active key, no randomness).
pub const SAVES: &str = "sealed_session_saves_total";

/// Histogram: bytes of the Cookie request header a written session's cookies take (what is
/// counted against the cookie budget; the token's length for a token session).
pub const COOKIE_BYTES: &str = "sealed_session_cookie_bytes";

/// Histogram: how many cookies (chunks) a written session spans (1 for a token).
pub const COOKIE_CHUNKS: &str = "sealed_session_cookie_chunks";

/// Counter: uses of a key, by `op` (`seal`: a written session was sealed with it; `open`: a
/// loaded session was opened with it) and `key_id` (the key's id in decimal). When an old key's
/// `open` rate stays at zero, no live session carries it any more.
pub const KEY_USED: &str = "sealed_session_key_used_total";

/// Counter: revocation checks that asked the store (sessions with an id and a subject), by
/// `answer`: `not_revoked`, `revoked`, or, when the store could not answer,
/// `unavailable_accepted` or `unavailable_rejected` (the failure policy's decision).
pub const REVOCATION_CHECKS: &str = "sealed_session_revocation_checks_total";

/// Gauge: seconds since the revocation replica's last proof that it missed no revocation
/// (since it started, before the first); sampled by its watchdog at least once per staleness
/// bound.
pub const REPLICA_STALENESS: &str = "sealed_session_replica_staleness_seconds";

/// Gauge: revocation entries the replica holds (same sampling).
pub const REPLICA_ENTRIES: &str = "sealed_session_replica_entries";

/// Gauge: this node's revocations queued because Redis could not take them (same sampling).
pub const REPLICA_QUEUE: &str = "sealed_session_replica_queue";

/// Counter: full loads of the replica from Redis (at start, after a connection failure, after
/// lost events), by `result`: `ok` or `error`.
pub const REPLICA_RELOADS: &str = "sealed_session_replica_reloads_total";

/// Counter: key ring file reloads, by `result`: `ok` (the new ring is in service) or `error`
/// (the file was refused; the previous ring stays).
pub const KEY_RING_RELOADS: &str = "sealed_session_key_ring_reloads_total";

/// Gauge: 1 while the key ring file's last load was refused (the previous ring in service;
/// the watcher reads a refused file again at every check, quietly), 0 once one loads. Unlike
/// the `error` count, which grows once per change of the file, it stays up while the file in
/// place is bad.
pub const KEY_RING_REFUSED: &str = "sealed_session_key_ring_refused";

/// Describes every metric (help text and unit) to the installed recorder, for exporters that
/// show them (Prometheus's `# HELP`). Call it once, after installing the recorder.
#[cfg(feature = "metrics")]
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(SESSIONS, "Requests whose session was loaded, by outcome and reason");
    describe_counter!(SAVES, "Requests whose session was stored, by result");
    describe_histogram!(COOKIE_BYTES, Unit::Bytes, "Cookie header bytes of a written session");
    describe_histogram!(COOKIE_CHUNKS, Unit::Count, "Cookies a written session spans");
    describe_counter!(KEY_USED, "Sessions sealed or opened with a key, by op and key_id");
    describe_counter!(REVOCATION_CHECKS, "Revocation checks, by answer");
    describe_gauge!(REPLICA_STALENESS, Unit::Seconds, "Seconds since the replica's last proof");
    describe_gauge!(REPLICA_ENTRIES, Unit::Count, "Revocation entries the replica holds");
    describe_gauge!(REPLICA_QUEUE, Unit::Count, "Revocations queued for Redis");
    describe_counter!(REPLICA_RELOADS, "Full loads of the revocation replica, by result");
    describe_counter!(KEY_RING_RELOADS, "Key ring file reloads, by result");
    describe_gauge!(KEY_RING_REFUSED, "1 while the key ring file in place is refused, else 0");
}

/// What a store step did, for [`saved`].
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) enum Saved<'e> {
    /// A session was sealed with `key` into `chunks` cookies taking `bytes`.
    Written {
        bytes: usize,
        chunks: usize,
        key: Option<crate::KeyId>,
    },
    Removed,
    Unchanged,
    Failed(&'e crate::SealError),
}

#[cfg(feature = "metrics")]
mod record {
    use std::sync::Arc;

    use arc_swap::ArcSwapOption;
    use metrics::{Counter, Histogram, Key, Label, Level, Metadata, Recorder};

    use super::*;
    use crate::error::{RejectReason, SealError};
    use crate::keys::KeyId;
    use crate::session::Session;

    static METADATA: Metadata<'static> =
        Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

    /// The codec's rejection reasons, in the order of [`reason_index`].
    const REASONS: [&str; 12] = [
        "malformed",
        "unsupported_version",
        "wrong_mode",
        "unknown_key",
        "forged",
        "idle_expired",
        "absolute_expired",
        "issued_in_future",
        "too_large",
        "revoked",
        "revocation_unavailable",
        "conflicting_sessions",
    ];

    fn reason_index(reason: RejectReason) -> usize {
        match reason {
            RejectReason::Malformed(_) => 0,
            RejectReason::UnsupportedVersion(_) => 1,
            RejectReason::WrongMode => 2,
            RejectReason::UnknownKey(_) => 3,
            RejectReason::Forged => 4,
            RejectReason::IdleExpired => 5,
            RejectReason::AbsoluteExpired => 6,
            RejectReason::IssuedInFuture => 7,
            RejectReason::TooLarge(_) => 8,
            RejectReason::Revoked => 9,
            RejectReason::RevocationUnavailable => 10,
            RejectReason::Conflicting => 11,
        }
    }

    const SAVE_RESULTS: [&str; 5] = ["written", "removed", "unchanged", "over_budget", "error"];
    const ANSWERS: [&str; 4] =
        ["not_revoked", "revoked", "unavailable_accepted", "unavailable_rejected"];
    const OPS: [&str; 2] = ["seal", "open"];

    fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
        let labels = labels.iter().map(|&(k, v)| Label::from_static_parts(k, v));
        Key::from_parts(name, labels.collect::<Vec<_>>())
    }

    /// The handles of the per-request metrics, registered once with the recorder in use:
    /// registering looks the key up in the recorder's registry (hundreds of instructions),
    /// recording through a handle is an atomic add.
    struct Handles {
        /// Which recorder they belong to (its address).
        recorder: usize,
        fresh: Counter,
        opened: Counter,
        rejected: [Counter; REASONS.len()],
        saves: [Counter; SAVE_RESULTS.len()],
        bytes: Histogram,
        chunks: Histogram,
        answers: [Counter; ANSWERS.len()],
    }

    impl Handles {
        fn new(recorder: &dyn Recorder, address: usize) -> Handles {
            let counter =
                |name, labels: &[_]| recorder.register_counter(&key(name, labels), &METADATA);
            let histogram = |name| recorder.register_histogram(&key(name, &[]), &METADATA);
            Handles {
                recorder: address,
                fresh: counter(SESSIONS, &[("outcome", "fresh")]),
                opened: counter(SESSIONS, &[("outcome", "opened")]),
                rejected: REASONS.map(|reason| {
                    counter(SESSIONS, &[("outcome", "rejected"), ("reason", reason)])
                }),
                saves: SAVE_RESULTS.map(|result| counter(SAVES, &[("result", result)])),
                bytes: histogram(COOKIE_BYTES),
                chunks: histogram(COOKIE_CHUNKS),
                answers: ANSWERS.map(|answer| counter(REVOCATION_CHECKS, &[("answer", answer)])),
            }
        }
    }

    /// The recorder in use (a local one, the global one, or the no-op one) and its address.
    fn with_recorder<T>(f: impl FnOnce(&dyn Recorder, usize) -> T) -> T {
        metrics::with_recorder(|recorder| {
            f(recorder, std::ptr::from_ref(recorder).cast::<()>() as usize)
        })
    }

    /// The handles for the recorder in use: cached, and made again when the recorder changed
    /// (installed after the first request, or a test's local recorder), so a recorder installed
    /// late still gets every value.
    static HANDLES: ArcSwapOption<Handles> = ArcSwapOption::const_empty();

    fn with_handles(f: impl FnOnce(&Handles)) {
        with_recorder(|recorder, address| {
            let cached = HANDLES.load();
            if let Some(handles) = cached.as_deref().filter(|h| h.recorder == address) {
                return f(handles);
            }
            drop(cached);
            let handles = Arc::new(Handles::new(recorder, address));
            f(&handles);
            HANDLES.store(Some(handles));
        });
    }

    /// The handles of [`KEY_USED`] for recently used key ids, by `op` and `id % SLOTS`: ids are
    /// consecutive and a ring holds a few at once, so a slot is made again only after a
    /// rotation (or when the recorder changed).
    const SLOTS: usize = 16;
    static KEY_USE: [[ArcSwapOption<(usize, u32, Counter)>; SLOTS]; 2] =
        [const { [const { ArcSwapOption::const_empty() }; SLOTS] }; 2];

    fn key_used(op: usize, id: KeyId) {
        with_recorder(|recorder, address| {
            let slot = &KEY_USE[op][id.0 as usize % SLOTS];
            let cached = slot.load();
            if let Some((_, _, counter)) =
                cached.as_deref().filter(|(r, cached_id, _)| *r == address && *cached_id == id.0)
            {
                return counter.increment(1);
            }
            drop(cached);
            let labels = vec![
                Label::from_static_parts("op", OPS[op]),
                Label::new("key_id", id.0.to_string()),
            ];
            let counter = recorder.register_counter(&Key::from_parts(KEY_USED, labels), &METADATA);
            counter.increment(1);
            slot.store(Some(Arc::new((address, id.0, counter))));
        });
    }

    /// Rare values (reloads, the replica's samples): registered at each use.
    fn set(name: &'static str, value: f64) {
        with_recorder(|recorder, _| recorder.register_gauge(&key(name, &[]), &METADATA).set(value));
    }

    fn count(name: &'static str, labels: &[(&'static str, &'static str)]) {
        with_recorder(|recorder, _| {
            recorder.register_counter(&key(name, labels), &METADATA).increment(1);
        });
    }

    pub(crate) fn loaded(session: &Session) {
        with_handles(|handles| match session.key_id {
            Some(_) => handles.opened.increment(1),
            None => handles.fresh.increment(1),
        });
        if let Some(id) = session.key_id {
            key_used(1, id);
        }
    }

    pub(crate) fn rejected(reason: RejectReason) {
        with_handles(|handles| handles.rejected[reason_index(reason)].increment(1));
    }

    pub(crate) fn saved<'e>(saved: impl FnOnce() -> Saved<'e>) {
        let saved = saved();
        let mut sealed_with = None;
        with_handles(|handles| {
            let result = match saved {
                Saved::Written { bytes, chunks, key } => {
                    handles.bytes.record(bytes as f64);
                    handles.chunks.record(chunks as f64);
                    sealed_with = key;
                    0
                }
                Saved::Removed => 1,
                Saved::Unchanged => 2,
                Saved::Failed(
                    SealError::TooLarge { .. }
                    | SealError::TooManyCookies { .. }
                    | SealError::StateTooLarge { .. },
                ) => 3,
                Saved::Failed(_) => 4,
            };
            handles.saves[result].increment(1);
        });
        if let Some(id) = sealed_with {
            key_used(0, id);
        }
    }

    pub(crate) fn revocation_answered(revoked: Option<bool>, reject_on_failure: bool) {
        let answer = match (revoked, reject_on_failure) {
            (Some(false), _) => 0,
            (Some(true), _) => 1,
            (None, false) => 2,
            (None, true) => 3,
        };
        with_handles(|handles| handles.answers[answer].increment(1));
    }

    #[cfg(feature = "redis")]
    pub(crate) fn replica_state(state: impl FnOnce() -> (f64, usize, usize)) {
        let (staleness_secs, entries, queue) = state();
        set(REPLICA_STALENESS, staleness_secs);
        set(REPLICA_ENTRIES, entries as f64);
        set(REPLICA_QUEUE, queue as f64);
    }

    #[cfg(feature = "redis")]
    pub(crate) fn replica_reloaded(ok: bool) {
        count(REPLICA_RELOADS, &[("result", if ok { "ok" } else { "error" })]);
    }

    pub(crate) fn key_ring_reloaded(ok: bool) {
        count(KEY_RING_RELOADS, &[("result", if ok { "ok" } else { "error" })]);
        set(KEY_RING_REFUSED, if ok { 0.0 } else { 1.0 });
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_rejection_is_labelled_with_its_code() {
            let reasons = [
                RejectReason::Malformed("x"),
                RejectReason::UnsupportedVersion(9),
                RejectReason::WrongMode,
                RejectReason::UnknownKey(KeyId(7)),
                RejectReason::Forged,
                RejectReason::IdleExpired,
                RejectReason::AbsoluteExpired,
                RejectReason::IssuedInFuture,
                RejectReason::TooLarge("x"),
                RejectReason::Revoked,
                RejectReason::RevocationUnavailable,
                RejectReason::Conflicting,
            ];
            assert_eq!(reasons.len(), REASONS.len());
            for reason in reasons {
                assert_eq!(REASONS[reason_index(reason)], reason.code(), "{reason:?}");
            }
        }
    }
}

#[cfg(feature = "metrics")]
pub(crate) use record::*;

// Without the feature: nothing, inlined away. The closures are never called, so what they
// would compute is never computed.

/// A loaded session: `opened` (and its key) or `fresh`.
#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub(crate) fn loaded(_session: &crate::session::Session) {}

/// A rejected session.
#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub(crate) fn rejected(_reason: crate::RejectReason) {}

/// A store step's result (`saved` is called only with the feature).
#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub(crate) fn saved<'e>(_saved: impl FnOnce() -> Saved<'e>) {}

/// A revocation store's answer (`None`: it could not answer) under the failure policy.
#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub(crate) fn revocation_answered(_revoked: Option<bool>, _reject_on_failure: bool) {}

/// The replica's state, sampled: staleness in seconds, entries, queue.
#[cfg(all(not(feature = "metrics"), feature = "redis"))]
#[inline(always)]
pub(crate) fn replica_state(_state: impl FnOnce() -> (f64, usize, usize)) {}

/// A full load of the replica.
#[cfg(all(not(feature = "metrics"), feature = "redis"))]
#[inline(always)]
pub(crate) fn replica_reloaded(_ok: bool) {}

/// A key ring file reload.
#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub(crate) fn key_ring_reloaded(_ok: bool) {}
