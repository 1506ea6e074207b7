//! The store behind one request's `tower_sessions::Session`: how a tower-sessions record maps
//! onto the sealed session (see the table in the [bridge's docs](super)).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use cookie::time;
use serde_json::Value;
use tower_sessions_core::Expiry;
use tower_sessions_core::Session as TowerSession;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, SessionStore};

use super::super::tower::State;
use crate::lifetime::Lifetime;
use crate::session::{Session, SessionId};
use crate::time::{from_unix, to_unix};

/// The store behind one request's `tower_sessions::Session`: it holds that request's sealed
/// session, answers `load` from it, and writes `save`d records back onto it.
pub(super) struct RequestStore {
    state: Arc<State>,
    bridged: Mutex<Bridged>,
}

/// The sealed session as the bridge holds it during a request.
pub(super) struct Bridged {
    pub(super) session: Session,
    /// The id tower-sessions knows the opened session by; `None` for a new session and once
    /// the opened one is ended (`delete`, `flush`, `cycle_id`).
    id: Option<Id>,
    /// Keys of values JSON cannot hold: left out of the record, kept in the session.
    hidden: Vec<String>,
    /// The layer is writing the record back after the handler: the seal itself follows, so no
    /// trial seal.
    finishing: bool,
    /// The response is a server error: the handler's record is not written back (what it
    /// saved itself with `save` stays), as tower-sessions' own manager does not save on one.
    pub(super) server_error: bool,
}

impl RequestStore {
    /// The `tower_sessions::Session` presenting `session`, and the store behind it.
    pub(super) fn bridge(state: Arc<State>, session: Session) -> (TowerSession, Arc<RequestStore>) {
        let id = session.id().map(tower_id);
        let expiry = tower_expiry(session.lifetime());
        let bridged =
            Bridged { session, id, hidden: Vec::new(), finishing: false, server_error: false };
        let store = Arc::new(RequestStore { state, bridged: Mutex::new(bridged) });
        (TowerSession::new(id, Arc::clone(&store), expiry), store)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Bridged> {
        // Every method leaves `Bridged` consistent between two statements that could panic.
        self.bridged.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After the handler: writes a changed record back (as tower-sessions' own manager saves
    /// it), then stores the session. `Err` means it could not be saved (already logged).
    pub(super) async fn finish(&self, tower: TowerSession) -> Result<Vec<(String, String)>, ()> {
        // An emptied session without an id (flushed, or never written) has nothing to save;
        // the `delete` that emptied it has already ended the sealed session. Nor has one
        // answered with a server error (tower-sessions saves none): what `delete`, `flush`
        // and `save` did during the request stands.
        let server_error = self.lock().server_error;
        if tower.is_modified() && !server_error && !tower.is_empty().await {
            {
                let mut bridged = self.lock();
                bridged.finishing = true;
                // Sealed with the session, so a client cannot lengthen it; setting it always
                // writes the cookies, as tower-sessions' `set_expiry` marks the session modified.
                bridged.session.set_lifetime(lifetime(tower.expiry()));
            }
            if let Err(error) = tower.save().await {
                tracing::error!(%error, "tower-sessions record could not be written back");
                return Err(());
            }
        }
        let session = std::mem::take(&mut self.lock().session);
        // A seal error is already logged by the codec.
        self.state.shared.finish(session).await.map_err(drop)
    }

    /// The record of the sealed session `id` names, its values decoded to JSON.
    fn read(&self, id: &Id) -> Option<Record> {
        let mut bridged = self.lock();
        let Bridged { session, id: opened, hidden, .. } = &mut *bridged;
        if *opened != Some(*id) {
            return None;
        }
        hidden.clear();
        let mut data = HashMap::with_capacity(session.len());
        for (key, bytes, _) in session.values.iter() {
            match rmp_serde::from_slice::<Value>(bytes) {
                Ok(value) => {
                    data.insert(key.to_owned(), value);
                }
                Err(_) => hidden.push(key.to_owned()),
            }
        }
        let idle = self.state.shared.codec.config().idle_timeout();
        Some(Record { id: *id, data, expiry_date: expiry_date(session, idle).into() })
    }

    /// Writes `record`'s values onto the sealed session: changed values are re-encoded (a
    /// value stored sensitive stays sensitive), removed ones removed, hidden ones kept.
    fn write(&self, record: &Record) -> session_store::Result<()> {
        let mut bridged = self.lock();
        let Bridged { session, hidden, finishing, .. } = &mut *bridged;
        for (key, value) in &record.data {
            let written = if session.is_sensitive(key) {
                session.insert_sensitive(key.as_str(), value)
            } else {
                session.insert(key.as_str(), value)
            };
            written.map_err(|error| session_store::Error::Encode(error.to_string()))?;
        }
        let gone: Vec<String> = session
            .keys()
            .filter(|key| !record.data.contains_key(*key) && !hidden.iter().any(|h| h == key))
            .map(str::to_owned)
            .collect();
        for key in gone {
            session.remove_raw(&key);
        }
        if *finishing {
            return Ok(());
        }
        // The handler saved on its own: tell it now whether the session can be sealed, so it
        // can answer as it chooses instead of the layer's 500.
        self.state.probe(session).map_err(session_store::Error::Backend)
    }

    /// Ends the sealed session if `id` names it (`delete`, `flush`, the old id of `cycle_id`).
    /// A record created during this request (saved by the handler, then flushed) only loses
    /// its values: nothing of it was sealed yet.
    fn delete(&self, id: &Id) {
        let mut bridged = self.lock();
        match bridged.id {
            Some(opened) if opened == *id => {
                bridged.session.purge();
                bridged.id = None;
                bridged.hidden.clear();
            }
            Some(_) => {}
            None => bridged.session.clear(),
        }
    }
}

impl State {
    /// Seals a copy of `session` to find out whether it can be: the reason when it cannot
    /// (sizes only, never a value).
    fn probe(&self, session: &Session) -> Result<(), String> {
        let codec = &self.shared.codec;
        let mut copy = session.clone();
        let now = self.shared.clock.now();
        let sealed = if copy.via_token {
            codec.seal_token(&mut copy, now).map(drop)
        } else {
            codec.save(&mut copy, now).map(drop)
        };
        sealed.map_err(|error| error.to_string())
    }
}

impl std::fmt::Debug for RequestStore {
    /// Shows nothing of the session: it may hold secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestStore").finish_non_exhaustive()
    }
}

#[async_trait]
impl SessionStore for RequestStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // The record keeps the provisional id tower-sessions gave it: the sealed id is drawn
        // when the session is sealed.
        self.write(record)
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.write(record)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self.read(id))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        RequestStore::delete(self, id);
        Ok(())
    }
}

/// The tower-sessions id of a sealed session: its 16 bytes, little-endian (so `Id`'s base64
/// display shows the bytes in order).
fn tower_id(id: SessionId) -> Id {
    Id(i128::from_le_bytes(id.0))
}

/// When the session expires unless refreshed: the end of its idle window (under its own idle
/// timeout, if it has one; `idle` is the configured one) or its absolute expiry, whichever
/// comes first.
fn expiry_date(session: &Session, idle: Duration) -> SystemTime {
    let idle = match session.lifetime() {
        Lifetime::Idle(own) => Some(own),
        Lifetime::Until(_) => None,
        _ => Some(idle),
    };
    let idle_end = session.last_refresh().zip(idle).map(|(at, idle)| at + idle);
    match (idle_end, session.expires_at()) {
        (Some(idle_end), Some(expires_at)) => idle_end.min(expires_at),
        (at, None) | (None, at) => at.unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

/// The `Expiry` tower-sessions reports for a session of this lifetime: `None` for the
/// configured one, which tower-sessions has no word for.
fn tower_expiry(lifetime: Lifetime) -> Option<Expiry> {
    Some(match lifetime {
        Lifetime::BrowserSession => Expiry::OnSessionEnd,
        Lifetime::Idle(idle) => {
            Expiry::OnInactivity(time::Duration::try_from(idle).unwrap_or(time::Duration::MAX))
        }
        Lifetime::Until(at) => {
            // `time`'s own conversion panics past its range; the latest date it holds will do.
            let secs = i64::try_from(to_unix(at)).unwrap_or(i64::MAX);
            let at = time::OffsetDateTime::from_unix_timestamp(secs)
                .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc());
            Expiry::AtDateTime(at)
        }
        _ => return None,
    })
}

/// The lifetime a tower-sessions `Expiry` asks for. `None` is the layer's default, which here
/// is the configuration's; a time before the Unix epoch, or a negative duration, ends the
/// session at once.
fn lifetime(expiry: Option<Expiry>) -> Lifetime {
    match expiry {
        None => Lifetime::Configured,
        Some(Expiry::OnSessionEnd) => Lifetime::BrowserSession,
        Some(Expiry::OnInactivity(idle)) => {
            Lifetime::Idle(Duration::try_from(idle).unwrap_or(Duration::ZERO))
        }
        Some(Expiry::AtDateTime(at)) => {
            let secs = u64::try_from(at.unix_timestamp()).unwrap_or(0);
            Lifetime::Until(from_unix(secs))
        }
    }
}

#[cfg(test)]
mod tests;
