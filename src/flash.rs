//! Flash messages: set by one request, shown once by a later one (typically after a
//! redirect).
//!
//! They live in the session, under [`FLASH_KEY`], rather than in a cookie of their own. The
//! request that sets a flash changes state anyway (a form post) and writes the session; the
//! page that shows it writes the session once more, to drop it. Measured on the corpus of
//! `BENCHMARKS.md` (codec table), that second write costs one seal, 1 to 13 µs, and the
//! session's cookie, 148 to 1,694 bytes of Set-Cookie value, once per flash. A cookie of its own
//! would save only part of that: it must be sealed too (or a script on a sibling subdomain
//! could plant messages), so setting it costs a seal (about 1 µs and 150 bytes for one message,
//! `flash.json`), reading it costs an open, and dropping it a removal header; it would also
//! need its own name, budget and expiry. In the session, a flash is covered by the same
//! sealing, budget, expiry and revocation, and a page with no flash to show writes nothing.

use crate::error::ValueError;
use crate::session::Session;

/// The session key pending flash messages are stored under (a list of strings).
pub const FLASH_KEY: &str = "_flash";

impl Session {
    /// Adds a flash message, kept until a later request [takes](Session::take_flashes) it.
    ///
    /// # Examples
    ///
    /// ```
    /// use sealed_session::Session;
    ///
    /// let mut session = Session::new();
    /// session.flash("Saved.")?;                   // on the POST, before redirecting
    /// assert_eq!(session.take_flashes()?, ["Saved."]); // on the page after the redirect
    /// assert!(session.take_flashes()?.is_empty());    // and only once
    /// # Ok::<(), sealed_session::ValueError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`update`](Session::update): something other than a list of strings is stored under
    /// [`FLASH_KEY`].
    pub fn flash(&mut self, message: impl Into<String>) -> Result<(), ValueError> {
        let message = message.into();
        self.update(FLASH_KEY, |messages: &mut Vec<String>| messages.push(message))
    }

    /// Takes the pending flash messages, oldest first. The session changes (and is written)
    /// only when there were some.
    ///
    /// # Errors
    ///
    /// As [`remove`](Session::remove): something other than a list of strings was stored under
    /// [`FLASH_KEY`] (it is removed all the same).
    pub fn take_flashes(&mut self) -> Result<Vec<String>, ValueError> {
        Ok(self.remove(FLASH_KEY)?.unwrap_or_default())
    }
}
