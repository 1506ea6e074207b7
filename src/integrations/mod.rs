//! Framework adapters, each behind its cargo feature. They hold no logic of their own: they read
//! the request's Cookie (or token) header, call [`SessionCodec::load`](crate::SessionCodec::load),
//! put a [`SessionHandle`](crate::SessionHandle) in the request's extensions, and on the response
//! call [`SessionCodec::store`](crate::SessionCodec::store) and append what it returns.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::codec::SessionCodec;

#[cfg(feature = "actix-web")]
pub mod actix;
#[cfg(feature = "axum")]
pub mod tower;

/// What every adapter shares: the codec and the clock it reads.
#[derive(Clone)]
#[allow(dead_code)]
pub(crate) struct Shared {
    pub(crate) codec: Arc<SessionCodec>,
    pub(crate) clock: Arc<dyn Clock>,
}

#[allow(dead_code)]
impl Shared {
    pub(crate) fn new(codec: SessionCodec) -> Shared {
        Shared { codec: Arc::new(codec), clock: Arc::new(SystemClock) }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("codec", &self.codec).finish_non_exhaustive()
    }
}
