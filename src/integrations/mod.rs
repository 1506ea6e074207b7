//! Framework adapters, each behind its cargo feature. They hold no logic of their own: the
//! request lifecycle (open the session from the Cookie or token header into the
//! [`SessionHandle`](crate::SessionHandle) the handler gets, admit it through revocation, run the
//! handler, stamp or revoke, seal with
//! [`SessionCodec::store_headers`](crate::SessionCodec::store_headers), append the headers or
//! answer the save-error page) is written once, in a private `lifecycle` module. An adapter says
//! only how to read its framework's headers, where the handle goes, and how to answer.
//!
//! A new framework is one file here: read the headers into `Shared::open`, put the handle in
//! the request, call `lifecycle::run` (or the allocation-free `Lifecycle` future) around the
//! handler, and implement `Answer` for its response type. The Poem adapter is the smallest example.

/// `new`, `with_clock` and `with_revocation`, the same on every adapter, written once: the
/// adapter (a `$kind`) has a `shared: Shared` field, its other fields start as given, and the
/// attributes given document `with_revocation`. With `on_save_error -> R` also that method, for
/// an adapter whose save-error page answers an `R` (documented by the attributes before it).
#[allow(unused_macros)]
macro_rules! settings {
    (
        $adapter:ident, $kind:literal { $($field:ident: $value:expr),* }
        $(#[$revocation:meta])*
        $(; $(#[$page_doc:meta])* on_save_error -> $response:ty)?
    ) => {
        $(
            impl $adapter {
                $(#[$page_doc])*
                pub fn on_save_error(
                    mut self,
                    page: impl Fn(&$crate::SealError) -> $response + Send + Sync + 'static,
                ) -> $adapter {
                    self.on_save_error = Some(std::sync::Arc::new(page));
                    self
                }
            }
        )?

        impl $adapter {
            #[doc = concat!("A ", $kind, " sealing and opening sessions with `codec`, reading the system clock.")]
            pub fn new(codec: $crate::SessionCodec) -> $adapter {
                $adapter { shared: $crate::integrations::Shared::new(codec), $($field: $value),* }
            }

            /// Reads the time from `clock` instead of the system clock (for tests).
            pub fn with_clock(mut self, clock: impl $crate::Clock) -> $adapter {
                self.shared.clock = std::sync::Arc::new(clock);
                self
            }

            $(#[$revocation])*
            pub fn with_revocation(mut self, revocation: $crate::revocation::Revocation) -> $adapter {
                self.shared.revocation = Some(revocation);
                self
            }
        }
    };
}
// Unused when no adapter feature is on.
#[allow(unused_imports)]
use settings;

#[cfg(feature = "actix-web")]
pub mod actix;
#[cfg(feature = "actix-web")]
mod actix_extract;
#[cfg(feature = "actix-web-flash-messages")]
pub mod actix_flash;
#[cfg(feature = "actix-session")]
pub mod actix_session;
#[cfg(feature = "axum")]
mod axum_extract;
#[cfg(any(feature = "axum", feature = "actix-web", feature = "poem"))]
mod lifecycle;

#[cfg(feature = "poem")]
pub mod poem;
#[cfg(any(feature = "axum", feature = "actix-web"))]
mod responses;
#[cfg(feature = "axum")]
pub mod tower;
#[cfg(feature = "tower-sessions")]
pub mod tower_sessions;

mod shared;

// Unused outside tests when no adapter feature is on.
#[allow(unused_imports)]
pub(crate) use shared::Shared;
