//! What every adapter shares: the codec, the clock and the revocation check, and the steps of
//! a request that [`lifecycle`](super::lifecycle) puts in order.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::codec::SessionCodec;
use crate::error::{RejectReason, SealError};
use crate::handle::{Context, SessionHandle};
use crate::revocation::Revocation;
use crate::session::Session;
use crate::time::to_unix;

use crate::logouts::RecentLogouts;

/// What every adapter shares: the codec, the clock it reads, the revocation check, and the
/// three steps of a request.
#[derive(Clone)]
#[allow(dead_code)]
pub(crate) struct Shared {
    pub(crate) codec: Arc<SessionCodec>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) revocation: Option<Revocation>,
    /// Sessions this node logged out lately (see [`guard_logout`](Shared::guard_logout)).
    pub(crate) logouts: Arc<RecentLogouts>,
}

#[allow(dead_code)]
impl Shared {
    pub(crate) fn new(codec: SessionCodec) -> Shared {
        // The codec's list, which its clones share: an adapter built per worker from a clone
        // still sees the logouts the others served.
        let logouts = Arc::clone(codec.logouts());
        Shared { codec: Arc::new(codec), clock: Arc::new(SystemClock), revocation: None, logouts }
    }

    /// What the handles of this adapter's requests measure their sessions with (see
    /// [`handle_for`](Shared::handle_for)); made once, when the adapter is built.
    pub(crate) fn context(&self) -> Arc<Context> {
        Arc::new(Context { codec: Arc::clone(&self.codec), clock: Arc::clone(&self.clock) })
    }

    /// An empty handle for one request, bound to `context` so the handler can measure it
    /// (the tower-sessions bridge's is not: its handlers measure through `save`).
    pub(crate) fn handle_for(context: Option<&Arc<Context>>) -> SessionHandle {
        context.map_or_else(SessionHandle::default, |context| {
            SessionHandle::bound(Arc::clone(context))
        })
    }

    /// Step 1, before the handler: load the session from the request's headers, straight
    /// into `session` (the handle's own), sparing the hot path a move of the session.
    /// The headers are passed as the bytes received: see
    /// [`SessionCodec::open_headers`](crate::SessionCodec::open_headers).
    pub(crate) fn load_into<'h>(
        &self,
        cookies: impl IntoIterator<Item = &'h [u8]>,
        token: Option<&[u8]>,
        session: &mut Session,
    ) {
        self.codec.load_into(cookies, token, || self.clock.now(), session);
    }

    /// Steps 1 and 2 as far as they go without waiting: opens the request's session into
    /// `handle` and admits it when no check is configured or the store answers at once.
    /// `false` means the check has to wait: call [`admit_handle`](Shared::admit_handle).
    pub(crate) fn open<'h>(
        &self,
        handle: &SessionHandle,
        cookies: impl IntoIterator<Item = &'h [u8]>,
        token: Option<&[u8]>,
    ) -> bool {
        let mut session = handle.lock();
        self.load_into(cookies, token, &mut session);
        let verdict = self.try_check(&session);
        if let Some(verdict) = verdict {
            self.apply(&mut session, verdict);
        }
        verdict.is_some()
    }

    /// Step 2 when [`open`](Shared::open) could not admit at once: waits for the check, the
    /// handle's lock not held meanwhile.
    pub(crate) async fn admit_handle(&self, handle: &SessionHandle) {
        let admitted = self.admit(handle.take()).await;
        *handle.lock() = admitted;
    }

    /// Step 2, before the handler: a revoked session becomes a fresh one (which removes the
    /// client's cookies when stored), with a warning.
    pub(crate) async fn admit(&self, mut session: Session) -> Session {
        let Some(revocation) = &self.revocation else { return session };
        let verdict = revocation.check(&session).await;
        self.apply(&mut session, verdict);
        session
    }

    /// Step 2 without waiting: the verdict on `session` when no check is configured or the
    /// store answers at once (an in-memory store); `None` when the check has to wait (then
    /// call [`admit`](Shared::admit)).
    pub(crate) fn try_check(&self, session: &Session) -> Option<Result<(), RejectReason>> {
        match &self.revocation {
            Some(revocation) => revocation.try_check(session),
            None => Some(Ok(())),
        }
    }

    /// Applies the revocation verdict on `session`: a rejected one becomes a fresh session.
    /// A revoked session's cookies are removed; one the store could not vouch for (the
    /// `Reject` policy) keeps them, since it opens again once the store answers: only a session
    /// the handler writes replaces it.
    pub(crate) fn apply(&self, session: &mut Session, verdict: Result<(), RejectReason>) {
        if let Err(reason) = verdict {
            tracing::warn!(
                cookie = %self.codec.config().cookie_name(),
                %reason,
                "session rejected; continuing with a fresh session"
            );
            let chunks = match reason {
                RejectReason::RevocationUnavailable => 0,
                _ => session.client_chunks,
            };
            *session = Session {
                via_token: session.via_token,
                ..Session::fresh_replacing(chunks, reason.coarse())
            };
        }
    }

    /// Step 3, after the handler: the stamp of a session that just signed in, the headers to
    /// append, and the revocation of a purged session. `Err` means the session could not be
    /// saved (already logged): answer the adapter's save-error page, with none of the session's
    /// headers.
    pub(crate) async fn finish(
        &self,
        mut session: Session,
    ) -> Result<Vec<(String, String)>, SealError> {
        self.guard_logout(&mut session);
        if let Some(revocation) = &self.revocation {
            if revocation.needs_stamp(&session) {
                if let Err(error) = revocation.stamp(&mut session).await {
                    tracing::error!(%error, "could not stamp the session for revocation");
                }
            }
        }
        // Before storing: storing a purged session empties it.
        if let Some(revocation) = &self.revocation {
            let now = self.clock.now();
            if let Err(error) =
                revocation.revoke_purged_at(&session, now, self.codec.config()).await
            {
                // The cookies are removed from this browser either way; only a copy stays
                // usable until it expires.
                let id = session.ended().map(|(id, _)| id.to_string()).unwrap_or_default();
                tracing::error!(%error, session = %id, "could not record the logout for revocation");
            }
            // A subject changed or removed without a logout ends that sign-in too.
            let now = self.clock.now();
            if let Err(error) =
                revocation.revoke_left_subject_at(&session, now, self.codec.config()).await
            {
                let id = session.id().map(|id| id.to_string()).unwrap_or_default();
                tracing::error!(%error, session = %id, "could not record the end of a sign-in whose subject changed");
            }
        }
        self.store(&mut session)
    }

    /// Whether step 3 has to wait: a logout to record in a revocation store (a purge, or a
    /// subject changed or removed without one), or a sign-in to stamp. When not, [`finish_now`](Shared::finish_now) does all of it.
    pub(crate) fn finish_waits(&self, session: &Session) -> bool {
        self.revocation.as_ref().is_some_and(|revocation| {
            session.ended().is_some()
                || revocation.needs_stamp(session)
                || revocation.left_subject(session).is_some()
        })
    }

    /// Step 3 when [`finish_waits`](Shared::finish_waits) is false: the headers to append.
    pub(crate) fn finish_now(
        &self,
        session: &mut Session,
    ) -> Result<Vec<(String, String)>, SealError> {
        self.guard_logout(session);
        self.store(session)
    }

    /// Seals `session` into its headers, and remembers a change of its id (renewed, or
    /// re-created after a purge) so a later logout of the new id covers the old one too.
    fn store(&self, session: &mut Session) -> Result<Vec<(String, String)>, SealError> {
        let before = if session.renew || session.purged || session.ended.is_some() {
            session.id().or(session.ended().map(|(id, _)| id))
        } else {
            None
        };
        let headers = self.codec.store_headers_lazy(session, || self.clock.now())?;
        if let (Some(before), Some(after)) = (before, session.id()) {
            if before != after {
                self.logouts.renewed(before, after, to_unix(self.clock.now()));
            }
        }
        Ok(headers)
    }

    /// Remembers a logout made here, and keeps a response that was in flight when it happened
    /// (its request opened the session before the logout) from setting the session's cookie
    /// again: such a session is purged instead, so its response removes the cookies once more.
    /// Costs one atomic load on requests while no logout is remembered.
    fn guard_logout(&self, session: &mut Session) {
        if let Some((id, _)) = session.ended() {
            let already = self.logouts.record(id, to_unix(self.clock.now()));
            // Purged here, but logged out by another request first: this request opened the
            // session before that logout, and what it wrote after its own purge (the
            // tower-sessions bridge's `cycle_id` writes the old values back) must not become a
            // session again.
            if already && !session.is_empty() {
                tracing::info!(session = %id, "a response for a session logged out meanwhile removes its cookies");
                session.purge();
            }
            return;
        }
        if self.logouts.is_empty() {
            return;
        }
        let Some(id) = session.id() else { return };
        if self.logouts.contains(id, to_unix(self.clock.now())) {
            tracing::info!(session = %id, "a response for a session logged out meanwhile removes its cookies");
            session.purge();
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("codec", &self.codec)
            .field("revocation", &self.revocation)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::{Key, KeyRing, SessionConfig};

    /// A clock that counts how often it is read.
    struct CountingClock(Arc<AtomicUsize>);

    impl Clock for CountingClock {
        fn now(&self) -> SystemTime {
            self.0.fetch_add(1, Ordering::SeqCst);
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
        }
    }

    #[test]
    fn the_clock_is_read_only_when_there_is_a_session() {
        let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
        let reads = Arc::new(AtomicUsize::new(0));
        let shared =
            Shared { clock: Arc::new(CountingClock(Arc::clone(&reads))), ..Shared::new(codec) };
        let read = || reads.load(Ordering::SeqCst);

        // A visitor, with no cookie or with someone else's: nothing to open, nothing to store.
        let mut session = Session::new();
        for header in ["", "theme=dark"] {
            shared.load_into([header.as_bytes()], None, &mut session);
            assert!(shared.finish_now(&mut session).expect("nothing to seal").is_empty());
        }
        assert_eq!(read(), 0, "a request without a session read the clock");

        // The handler writes: sealing needs the time.
        session.insert("user", "ada").expect("a string encodes");
        let headers = shared.finish_now(&mut session).expect("seals");
        assert_eq!(read(), 1);
        let cookie = headers[0].1.split(';').next().expect("a name=value pair").to_owned();

        // The cookie comes back: opening checks its expiry, storing checks the refresh.
        shared.load_into([cookie.as_bytes()], None, &mut session);
        assert_eq!(session.get::<String>("user").expect("decodes").as_deref(), Some("ada"));
        assert!(shared.finish_now(&mut session).expect("nothing to seal").is_empty());
        assert_eq!(read(), 3);
    }

    /// Adapters built from clones of one codec (one per actix-web worker, as actix-session's
    /// own docs build theirs inside the server's closure) share the logouts: a request in
    /// flight on one worker cannot undo a logout another served. Before, each adapter had a
    /// list of its own and the in-flight response set the session again.
    #[test]
    fn adapters_built_from_clones_of_one_codec_share_their_logouts() {
        let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
        let (one, two) = (Shared::new(codec.clone()), Shared::new(codec));
        let mut session = Session::new();
        session.insert("user", "ada").expect("a string encodes");
        let header = one.codec.seal(&mut session, SystemTime::now()).unwrap().request_header();

        let mut logout = Session::new();
        one.load_into([header.as_bytes()], None, &mut logout);
        logout.purge();
        one.finish_now(&mut logout).expect("removals");

        let mut in_flight = Session::new();
        two.load_into([header.as_bytes()], None, &mut in_flight);
        in_flight.insert("visits", 1).expect("a number encodes");
        let headers = two.finish_now(&mut in_flight).expect("removals");
        let sets = |(_, line): &(String, String)| {
            line.split(';')
                .next()
                .and_then(|pair| pair.split_once('='))
                .is_some_and(|(_, v)| !v.is_empty())
        };
        assert!(!headers.is_empty(), "the cookies are removed once more");
        assert!(!headers.iter().any(sets), "the other adapter set the session again: {headers:?}");
    }
}
