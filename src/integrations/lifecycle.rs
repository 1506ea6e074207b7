//! The request lifecycle every adapter shares, written once: open the session into the
//! request's handle, admit it through revocation (waiting only when the store has to be asked),
//! run the handler, finish (stamp a sign-in, record a logout, seal), append the session's
//! headers, or answer the adapter's error when the session could not be saved.
//!
//! A framework adapter says only how to read its headers (it hands [`Shared::open`] the bytes),
//! what goes into the request for the handler (the [`Carrier`] it builds from the admitted
//! handle) and how to append a header or answer an error (its [`Answer`]). Nothing here names
//! `http`, `tower` or `actix` types, so a fix to how a response is finished lands here once.

use std::future::Future;

use super::Shared;
use crate::error::SealError;
use crate::handle::SessionHandle;

/// The session's headers to append, or why it could not be saved: `Some` with a seal error
/// (for the adapter's save-error page), `None` when there is nothing to tell a page (a header
/// the framework refused, a bridge's write-back that failed; logged where it happened).
pub(crate) type Finished = Result<Vec<(String, String)>, Option<SealError>>;

/// What a request holds its session in while the handler runs, and how it is finished.
pub(crate) trait Carrier: Clone + Send + 'static {
    /// Step 3 without waiting, when nothing has to be awaited (the usual case): `None` when a
    /// revocation store (or a bridge's write-back) has to be waited for.
    fn finish_now(&self, shared: &Shared) -> Option<Finished>;

    /// Step 3, waiting for what has to be waited for.
    fn finish(self, shared: &Shared) -> impl Future<Output = Finished> + Send;

    /// Told before step 3 that the response is a server error (5xx): the tower-sessions
    /// bridge then does not write the handler's record back, as tower-sessions' own manager
    /// does not save on one. The plain handle keeps what the handler changed.
    fn server_error(&self) {}
}

/// The plain handle: what the handler changed is in it.
impl Carrier for SessionHandle {
    fn finish_now(&self, shared: &Shared) -> Option<Finished> {
        let mut session = self.lock();
        if shared.finish_waits(&session) {
            return None;
        }
        Some(shared.finish_now(&mut session).map_err(Some))
    }

    async fn finish(self, shared: &Shared) -> Finished {
        // Taken before waiting: the handle's lock is never held across an await.
        let session = self.take();
        shared.finish(session).await.map_err(Some)
    }
}

/// How an adapter answers: its shared state, how a header goes onto its response type `R`,
/// and what it answers once the headers are on (or could not be made).
pub(crate) trait Answer<R> {
    /// The response the framework gets back (actix changes the body type).
    type Output;

    /// The codec, clock and revocation check this adapter uses.
    fn shared(&self) -> &Shared;

    /// Appends one of the session's headers; `Err` when the framework refuses it (the codec
    /// made it, so not a client's doing). The application's own headers are kept.
    fn append(response: &mut R, name: String, value: String) -> Result<(), ()>;

    /// The values of the response's own `Cache-Control` headers.
    fn cache_control(response: &R) -> impl Iterator<Item = &[u8]>;

    /// Sets `Cache-Control` to `value`, replacing the response's own.
    fn set_cache_control(response: &mut R, value: &'static str);

    /// Whether the response is a server error (5xx), for [`Carrier::server_error`]. Only the
    /// adapter under a bridge that follows upstream's rule on it needs to say.
    fn is_server_error(_response: &R) -> bool {
        false
    }

    /// The response with the headers on (`Ok`), or the answer for a session that could not be
    /// saved: the adapter's save-error page for a seal error when it has one, an empty 500
    /// otherwise. The handler's response is dropped then: it may reveal state that was not kept.
    fn answer(&self, response: R, saved: Result<(), Option<SealError>>) -> Self::Output;
}

/// What a response carrying the session's Set-Cookie lines or token header tells caches:
/// `private` keeps shared caches (a CDN, a caching proxy) from storing it and handing the
/// session to the next client; `no-store` keeps the browser's own cache from keeping the
/// bearer token on disk.
pub(crate) const CACHE_CONTROL: &str = "private, no-store";

/// Whether a `Cache-Control` value already forbids every cache to store the response: as
/// strict as [`CACHE_CONTROL`] or stricter, so it is left alone.
fn forbids_storing(value: &[u8]) -> bool {
    let mut directives = value.split(|&b| b == b',');
    directives.any(|directive| directive.trim_ascii().eq_ignore_ascii_case(b"no-store"))
}

/// Steps 3 and 4 on a finished session: the headers appended, or the error answered.
pub(crate) fn respond<R, A: Answer<R>>(
    adapter: &A,
    mut response: R,
    headers: Finished,
) -> A::Output {
    let saved = headers.and_then(|pairs| {
        if !pairs.is_empty() && !A::cache_control(&response).any(forbids_storing) {
            A::set_cache_control(&mut response, CACHE_CONTROL);
        }
        pairs
            .into_iter()
            .try_for_each(|(name, value)| A::append(&mut response, name, value))
            .map_err(|()| None)
    });
    adapter.answer(response, saved)
}

/// The whole lifecycle as one future, for a framework whose middleware boxes a future anyway
/// (actix-web, Poem) and for a revocation check that has to wait. `handle` holds the opened
/// session, `admitted` whether [`Shared::open`] already admitted it; `handler` puts the
/// admitted handle where the framework's handler finds it and starts the handler.
pub(crate) async fn run<A, R, E, C, F>(
    adapter: &A,
    handle: SessionHandle,
    admitted: bool,
    handler: impl FnOnce(SessionHandle) -> (C, F),
) -> Result<A::Output, E>
where
    A: Answer<R>,
    C: Carrier,
    F: Future<Output = Result<R, E>>,
{
    let shared = adapter.shared();
    if !admitted {
        shared.admit_handle(&handle).await;
    }
    let (carrier, inner) = handler(handle);
    let response = inner.await?;
    if A::is_server_error(&response) {
        carrier.server_error();
    }
    let headers = match carrier.finish_now(shared) {
        Some(headers) => headers,
        None => carrier.finish(shared).await,
    };
    Ok(respond(adapter, response, headers))
}

/// The lifecycle as an allocation-free future, for tower.
#[cfg(feature = "axum")]
mod future;

#[cfg(feature = "axum")]
pub(crate) use future::Lifecycle;

#[cfg(test)]
mod tests;
