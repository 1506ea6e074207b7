//! The tower `Service` of this crate's layers, written once for the plain layer and the
//! tower-sessions bridge: the request's headers read into the lifecycle, and the future.

use std::sync::Arc;

use http::header::COOKIE;
use http::{Extensions, HeaderValue, Request, Response};
use tower_service::Service;

use super::State;
use crate::handle::SessionHandle;
use crate::integrations::Shared;
use crate::integrations::lifecycle::{self, Carrier, Lifecycle};

/// The lifecycle of one request: the service's future `F`, the session carried in `C`.
type Started<F, C, R, E> = Lifecycle<F, C, State, Result<R, E>>;

/// Reads the request's headers into the lifecycle: `install` puts the admitted handle where the
/// handler finds it, in the request's extensions.
pub(in crate::integrations) fn call<S, ReqBody, ResBody, C: Carrier>(
    inner: &mut S,
    state: &Arc<State>,
    mut request: Request<ReqBody>,
    install: fn(&Arc<State>, SessionHandle, &mut Extensions) -> C,
) -> Started<S::Future, C, Response<ResBody>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    let handle = Shared::handle_for(state.context.as_ref());
    let headers = request.headers();
    // As bytes: a byte outside visible ASCII in another cookie must not drop the header.
    let cookies = headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes);
    let token = state.token_header.as_ref().and_then(|name| headers.get(name));
    if state.shared.open(&handle, cookies, token.map(HeaderValue::as_bytes)) {
        // The usual case: the service polled ready is called right away.
        let carrier = install(state, handle, request.extensions_mut());
        return Lifecycle::direct(inner.call(request), carrier, Arc::clone(state));
    }
    // A check that has to wait (a store across the network): the future calls the service
    // polled ready, leaving a fresh clone behind.
    let clone = inner.clone();
    let mut inner = std::mem::replace(inner, clone);
    let state = Arc::clone(state);
    Lifecycle::boxed(async move {
        lifecycle::run(&*state, handle, false, |handle| {
            let carrier = install(&state, handle, request.extensions_mut());
            (carrier, inner.call(request))
        })
        .await
    })
}

/// The tower `Service` impl of `$service` and its future `ResponseFuture`, for a service whose
/// requests carry their session in `$carrier`, put there by `$install` (see [`call`]): written
/// once for [`SessionService`] and the tower-sessions bridge, whose public types stay their own.
macro_rules! lifecycle_service {
    ($service:ident, $carrier:ty, $install:expr, $(#[$future_doc:meta])*) => {
        impl<S, ReqBody, ResBody> tower_service::Service<http::Request<ReqBody>> for $service<S>
        where
            S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>
                + Clone
                + Send
                + 'static,
            S::Future: Send + 'static,
            ReqBody: Send + 'static,
            ResBody: Default + Send + 'static,
        {
            type Response = http::Response<ResBody>;
            type Error = S::Error;
            type Future = ResponseFuture<S::Future, Result<http::Response<ResBody>, S::Error>>;

            fn poll_ready(
                &mut self,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), Self::Error>> {
                self.inner.poll_ready(cx)
            }

            fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
                let inner = $crate::integrations::tower::call(&mut self.inner, &self.state, request, $install);
                ResponseFuture { inner }
            }
        }

        pin_project_lite::pin_project! {
            $(#[$future_doc])*
            pub struct ResponseFuture<F, T> {
                #[pin]
                inner: $crate::integrations::lifecycle::Lifecycle<F, $carrier, $crate::integrations::tower::State, T>,
            }
        }

        impl<F, T> std::fmt::Debug for ResponseFuture<F, T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("ResponseFuture").finish_non_exhaustive()
            }
        }

        impl<F, ResBody, E> std::future::Future for ResponseFuture<F, Result<http::Response<ResBody>, E>>
        where
            F: std::future::Future<Output = Result<http::Response<ResBody>, E>>,
            ResBody: Default + Send + 'static,
            E: 'static,
        {
            type Output = Result<http::Response<ResBody>, E>;

            fn poll(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Self::Output> {
                self.project().inner.poll(cx)
            }
        }
    };
}
pub(in crate::integrations) use lifecycle_service;
