//! The actix-web service of this crate's middlewares, written once for the plain middleware and
//! the actix-session bridge: the lifecycle around the application, and the `Transform` that
//! builds it.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use actix_web::HttpMessage as _;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, forward_ready};

use super::State;
use crate::integrations::lifecycle;

/// actix-web's `Transform` for a middleware of this crate, written once for
/// [`SessionMiddleware`](super::SessionMiddleware) and the actix-session bridge: `$state` (the middleware bound to
/// `$this`) is the state of the [`SessionService`] it wraps around the application.
macro_rules! transform {
    ($middleware:ty, |$this:ident| $state:expr) => {
        impl<S, B> actix_web::dev::Transform<S, actix_web::dev::ServiceRequest> for $middleware
        where
            S: actix_web::dev::Service<
                    actix_web::dev::ServiceRequest,
                    Response = actix_web::dev::ServiceResponse<B>,
                    Error = actix_web::Error,
                > + 'static,
            B: actix_web::body::MessageBody + 'static,
        {
            type Response = actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>>;
            type Error = actix_web::Error;
            type Transform = $crate::integrations::actix::SessionService<S>;
            type InitError = ();
            type Future = std::future::Ready<Result<Self::Transform, Self::InitError>>;

            fn new_transform(&self, service: S) -> Self::Future {
                let $this = self;
                let state = $state;
                std::future::ready(Ok($crate::integrations::actix::SessionService::new(
                    service, state,
                )))
            }
        }
    };
}
pub(in crate::integrations) use transform;

/// The service [`SessionMiddleware`](super::SessionMiddleware) (and the actix-session bridge) wraps around an application.
#[derive(Debug)]
pub struct SessionService<S> {
    service: Rc<S>,
    state: Rc<State>,
}

impl<S> SessionService<S> {
    pub(in crate::integrations) fn new(service: S, state: State) -> SessionService<S> {
        SessionService { service: Rc::new(service), state: Rc::new(state) }
    }
}

impl<S, B> Service<ServiceRequest> for SessionService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let state = Rc::clone(&self.state);
        let (handle, admitted) = state.open(&request);
        let service = Rc::clone(&self.service);
        Box::pin(async move {
            lifecycle::run(&*state, handle, admitted, |handle| {
                let bridge = state.bridge;
                let shown = bridge.map(|bridge| (bridge.show)(&handle.lock(), &request));
                request.extensions_mut().insert(handle.clone());
                let carrier = handle.clone();
                let response = async move {
                    let response = service.call(request).await?;
                    if let (Some(bridge), Some(shown)) = (bridge, shown) {
                        (bridge.write_back)(&mut handle.lock(), response.request(), shown);
                    }
                    Ok(response)
                };
                (carrier, response)
            })
            .await
        })
    }
}
