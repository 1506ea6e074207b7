//! How a [`Session`](crate::Session) stores its values.
//!
//! An opened session keeps the decrypted MessagePack sections in one buffer and, for each value,
//! where its key and bytes lie in it: opening costs one allocation however many values there
//! are, and the buffer is wiped when the session is dropped. The first change turns the values
//! into an ordinary map of owned entries; a request that only reads never pays for that.

use std::collections::BTreeMap;
use std::ops::Range;

use smallvec::SmallVec;
use zeroize::Zeroizing;

/// A value a handler stored: its MessagePack bytes, and whether it is sensitive.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) bytes: Vec<u8>,
    pub(crate) sensitive: bool,
}

/// Where one opened value lies in [`Opened::bytes`]. Offsets are `u32`: a state is bounded far
/// below 4 GiB by the configuration.
#[derive(Clone, Copy)]
pub(crate) struct Slot {
    key_at: u32,
    value_at: u32,
    value_len: u32,
    key_len: u8,
    sensitive: bool,
}

impl Slot {
    /// An entry whose key text and value bytes lie at `key` and `value` in the buffer; `None`
    /// if an offset does not fit. The key must be valid UTF-8 of at most 255 bytes.
    pub(crate) fn new(key: Range<usize>, value: Range<usize>, sensitive: bool) -> Option<Slot> {
        Some(Slot {
            key_at: u32::try_from(key.start).ok()?,
            key_len: u8::try_from(key.len()).ok()?,
            value_at: u32::try_from(value.start).ok()?,
            value_len: u32::try_from(value.len()).ok()?,
            sensitive,
        })
    }

    fn key(self) -> Range<usize> {
        let at = self.key_at as usize;
        at..at + usize::from(self.key_len)
    }

    fn value(self) -> Range<usize> {
        let at = self.value_at as usize;
        at..at + self.value_len as usize
    }
}

/// The values of an opened session: the plaintext sections in one buffer (wiped on drop) and
/// the slots of its entries, sorted by key.
#[derive(Clone)]
pub(crate) struct Opened {
    bytes: Zeroizing<Vec<u8>>,
    slots: Slots,
}

/// The slots of an opened session's entries (four fit without an allocation).
pub(crate) type Slots = SmallVec<[Slot; 4]>;

impl Opened {
    /// The entries `slots` of the sections in `bytes`, sorted by key; `None` if a key
    /// appears twice.
    pub(crate) fn new(bytes: Vec<u8>, slots: Slots) -> Option<Opened> {
        let mut opened = Opened { bytes: Zeroizing::new(bytes), slots };
        opened.finish().then_some(opened)
    }

    /// Sorts the entries by key; `false` if a key appears twice.
    fn finish(&mut self) -> bool {
        let bytes = &self.bytes;
        self.slots.sort_unstable_by(|a, b| bytes[a.key()].cmp(&bytes[b.key()]));
        self.slots.windows(2).all(|pair| bytes[pair[0].key()] != bytes[pair[1].key()])
    }

    fn key(&self, slot: Slot) -> &str {
        // Checked to be UTF-8 when the entry was read (`msgpack::map_entries`).
        std::str::from_utf8(&self.bytes[slot.key()]).unwrap_or_default()
    }

    fn find(&self, key: &str) -> Option<Slot> {
        let index =
            self.slots.binary_search_by(|slot| self.bytes[slot.key()].cmp(key.as_bytes())).ok()?;
        Some(self.slots[index])
    }
}

/// A session's values: as opened (`opened` is `Some` and `owned` empty), or owned once
/// changed.
#[derive(Clone, Default)]
pub(crate) struct Values {
    opened: Option<Opened>,
    owned: BTreeMap<String, Entry>,
}

impl Values {
    /// The values of an opened session.
    pub(crate) fn opened(opened: Opened) -> Values {
        Values { opened: Some(opened), owned: BTreeMap::new() }
    }

    /// The value under `key`: its bytes and whether it is sensitive.
    pub(crate) fn get(&self, key: &str) -> Option<(&[u8], bool)> {
        match &self.opened {
            Some(opened) => {
                opened.find(key).map(|slot| (&opened.bytes[slot.value()], slot.sensitive))
            }
            None => self.owned.get(key).map(|entry| (&entry.bytes[..], entry.sensitive)),
        }
    }

    /// The entries in key order: key, bytes, sensitive.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &[u8], bool)> {
        let opened = self.opened.iter().flat_map(|opened| {
            opened
                .slots
                .iter()
                .map(|&slot| (opened.key(slot), &opened.bytes[slot.value()], slot.sensitive))
        });
        let owned =
            self.owned.iter().map(|(key, entry)| (key.as_str(), &entry.bytes[..], entry.sensitive));
        opened.chain(owned)
    }

    pub(crate) fn len(&self) -> usize {
        self.opened.as_ref().map_or(self.owned.len(), |opened| opened.slots.len())
    }

    /// The values as an owned map, copying opened values out on the first change.
    pub(crate) fn owned(&mut self) -> &mut BTreeMap<String, Entry> {
        if let Some(opened) = self.opened.take() {
            self.owned = opened
                .slots
                .iter()
                .map(|&slot| {
                    let bytes = opened.bytes[slot.value()].to_vec();
                    (opened.key(slot).to_owned(), Entry { bytes, sensitive: slot.sensitive })
                })
                .collect();
        }
        &mut self.owned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::msgpack;

    fn opened(pairs: &[(&str, u32)]) -> Option<Opened> {
        let mut bytes = Vec::new();
        msgpack::write_map_len(pairs.len(), &mut bytes);
        for (key, value) in pairs {
            msgpack::write_key(key, &mut bytes);
            bytes.extend_from_slice(&rmp_serde::to_vec(value).unwrap());
        }
        let slots = msgpack::map_entries(&bytes)
            .unwrap()
            .map(|entry| entry.and_then(|(key, value)| Slot::new(key, value, false)))
            .collect::<Option<Slots>>()
            .unwrap();
        Opened::new(bytes, slots)
    }

    #[test]
    fn opened_values_are_found_in_key_order() {
        let values = Values::opened(opened(&[("zeta", 1), ("alpha", 2), ("mid", 3)]).unwrap());
        let keys: Vec<_> = values.iter().map(|(key, _, _)| key).collect();
        assert_eq!(keys, ["alpha", "mid", "zeta"]);
        assert_eq!(values.get("mid"), Some((&[3u8][..], false)));
        assert_eq!(values.get("absent"), None);
        assert_eq!(values.len(), 3);
    }

    #[test]
    fn a_repeated_key_is_refused() {
        assert!(opened(&[("a", 1), ("b", 2), ("a", 3)]).is_none());
    }

    #[test]
    fn the_first_change_keeps_every_value() {
        let mut values = Values::opened(opened(&[("b", 2), ("a", 1)]).unwrap());
        values.owned().insert("c".into(), Entry { bytes: vec![3], sensitive: true });
        let entries: Vec<_> = values.iter().collect();
        assert_eq!(
            entries,
            [("a", &[1u8][..], false), ("b", &[2][..], false), ("c", &[3][..], true)]
        );
    }
}
