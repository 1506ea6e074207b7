//! The lifecycle as a future of its own (tower's services, which routers call for every
//! request): the handler's future, then the headers, with no allocation unless something has
//! to be waited for.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::{Answer, Carrier, respond};

pin_project! {
    /// The lifecycle as a future that allocates nothing of its own in the usual case (the
    /// session admitted at once, nothing to wait for when finishing): tower's services, which
    /// routers call for every request.
    pub struct Lifecycle<F, C, A, T> {
        #[pin]
        kind: Kind<F, C, A, T>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C, A, T> {
        // The session was admitted without waiting: the handler's future, then the headers.
        Direct {
            #[pin]
            inner: F,
            carrier: C,
            adapter: Arc<A>,
        },
        // A revocation check, a record to write back, or a revocation to record.
        Boxed {
            future: Pin<Box<dyn Future<Output = T> + Send>>,
        },
    }
}

impl<F, C, A, T> Lifecycle<F, C, A, T> {
    /// The handler's future `inner` already started on an admitted session held by `carrier`.
    pub(crate) fn direct(inner: F, carrier: C, adapter: Arc<A>) -> Self {
        Lifecycle { kind: Kind::Direct { inner, carrier, adapter } }
    }

    /// A lifecycle that has to wait somewhere (see [`run`](super::run)).
    pub(crate) fn boxed(future: impl Future<Output = T> + Send + 'static) -> Self {
        Lifecycle { kind: Kind::Boxed { future: Box::pin(future) } }
    }
}

impl<F, C, A, T> std::fmt::Debug for Lifecycle<F, C, A, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle").finish_non_exhaustive()
    }
}

// The bounds name crate-private traits: the type is public only as a private field of the
// adapters' own futures, so nothing outside the crate can reach them.
#[allow(private_bounds)]
impl<F, C, A, R, O, E> Future for Lifecycle<F, C, A, Result<O, E>>
where
    F: Future<Output = Result<R, E>>,
    C: Carrier,
    A: Answer<R, Output = O> + Send + Sync + 'static,
    O: Send + 'static,
    R: Send + 'static,
    E: 'static,
{
    type Output = Result<O, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        let (response, carrier, adapter) = match kind.as_mut().project() {
            KindProj::Boxed { future } => return future.as_mut().poll(cx),
            KindProj::Direct { inner, carrier, adapter } => match ready!(inner.poll(cx)) {
                Ok(response) => (response, carrier, adapter),
                Err(error) => return Poll::Ready(Err(error)),
            },
        };
        if A::is_server_error(&response) {
            carrier.server_error();
        }
        if let Some(headers) = carrier.finish_now(adapter.shared()) {
            return Poll::Ready(Ok(respond(&**adapter, response, headers)));
        }
        // A logout to record or a sign-in to stamp in a revocation store.
        let (carrier, adapter) = (carrier.clone(), Arc::clone(adapter));
        let mut future: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
            let headers = carrier.finish(adapter.shared()).await;
            Ok(respond(&*adapter, response, headers))
        });
        let poll = future.as_mut().poll(cx);
        kind.set(Kind::Boxed { future });
        poll
    }
}
