//! How a [`Session`](crate::Session) stores its values.
//!
//! An opened session keeps the decrypted MessagePack sections in one buffer and, for each value,
//! where its key and bytes lie in it: opening costs one allocation however many values there
//! are, and the buffer is wiped when the session is dropped. Changes are kept apart, in an
//! ordinary map of owned entries; a request that only reads never pays for one.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Range;

use smallvec::SmallVec;
use zeroize::Zeroize as _;

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
    bytes: Plaintext,
    slots: Slots,
}

/// Decrypted bytes, wiped when dropped.
#[derive(Clone)]
struct Plaintext(Vec<u8>);

impl Plaintext {
    /// Zeroes the bytes and the spare capacity behind them. As slices: `zeroize` writes a
    /// `Vec<u8>` one volatile byte at a time, a slice at `memset` speed behind an optimization
    /// barrier, which wipes the same bytes for a few hundred instructions less per request.
    fn wipe(&mut self) {
        self.0.as_mut_slice().zeroize();
        self.0.spare_capacity_mut().zeroize();
    }
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl std::ops::Deref for Plaintext {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// The slots of an opened session's entries (four fit without an allocation).
pub(crate) type Slots = SmallVec<[Slot; 4]>;

impl Opened {
    /// The entries `slots` of the sections in `bytes`, sorted by key; `None` if a key
    /// appears twice.
    pub(crate) fn new(bytes: Vec<u8>, slots: Slots) -> Option<Opened> {
        let mut opened = Opened { bytes: Plaintext(bytes), slots };
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

/// A session's values: those it was opened with, if any, and the changes made since, which
/// take precedence over them. Changing one value of an opened session copies none of the
/// others out of its buffer (copying every value into an owned key and vector, two allocations
/// each, was most of what a handler's one change cost).
#[derive(Clone, Default)]
pub(crate) struct Values {
    opened: Option<Opened>,
    /// Each value set since opening (all the values of a session that was not opened), or
    /// `None` where an opened value was removed. No map until the first change: even an empty
    /// one costs a call to drop, and every request drops sessions that never change (the
    /// fresh session an opened one replaces, and every session's `ended_values`).
    changes: Option<BTreeMap<String, Option<Entry>>>,
}

impl Values {
    /// The values of an opened session.
    pub(crate) fn opened(opened: Opened) -> Values {
        Values { opened: Some(opened), changes: None }
    }

    /// The value under `key`: its bytes and whether it is sensitive.
    pub(crate) fn get(&self, key: &str) -> Option<(&[u8], bool)> {
        match self.changes.as_ref().and_then(|changes| changes.get(key)) {
            Some(change) => change.as_ref().map(|entry| (&entry.bytes[..], entry.sensitive)),
            None => self.get_opened(key),
        }
    }

    /// The value `key` was opened with, whatever changed since.
    pub(crate) fn get_opened(&self, key: &str) -> Option<(&[u8], bool)> {
        let opened = self.opened.as_ref()?;
        opened.find(key).map(|slot| (&opened.bytes[slot.value()], slot.sensitive))
    }

    /// The entries in key order: key, bytes, sensitive. The opened entries and the changes
    /// are both in key order; they are merged, a change replacing the opened entry of its key.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &[u8], bool)> {
        let opened = self.opened.as_ref();
        let slots = opened.map_or(&[][..], |opened| &opened.slots[..]);
        let mut slots = slots.iter().copied().peekable();
        let mut changes = self.changes.iter().flatten().peekable();
        std::iter::from_fn(move || {
            loop {
                let next_is_opened = match (slots.peek(), changes.peek()) {
                    (None, None) => return None,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (Some(&slot), Some((changed_key, _))) => {
                        let opened_key = opened.map_or(&[][..], |opened| &opened.bytes[slot.key()]);
                        match opened_key.cmp(changed_key.as_bytes()) {
                            Ordering::Less => true,
                            Ordering::Greater => false,
                            Ordering::Equal => {
                                // Replaced or removed since opening.
                                slots.next();
                                false
                            }
                        }
                    }
                };
                if next_is_opened {
                    let (slot, opened) = slots.next().zip(opened)?;
                    return Some((opened.key(slot), &opened.bytes[slot.value()], slot.sensitive));
                }
                if let Some((key, Some(entry))) = changes.next() {
                    return Some((key.as_str(), &entry.bytes[..], entry.sensitive));
                }
                // A removed value: on to the next.
            }
        })
    }

    pub(crate) fn len(&self) -> usize {
        match &self.opened {
            Some(opened) if self.changes.as_ref().is_none_or(BTreeMap::is_empty) => {
                opened.slots.len()
            }
            _ => self.iter().count(),
        }
    }

    /// Sets the value under `key`.
    pub(crate) fn insert(&mut self, key: String, entry: Entry) {
        self.changes.get_or_insert_default().insert(key, Some(entry));
    }

    /// Removes the value under `key`, returning it.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Entry> {
        let opened = self.get_opened(key);
        let Some((bytes, sensitive)) = opened else {
            return self.changes.as_mut()?.remove(key).flatten();
        };
        let opened = Entry { bytes: bytes.to_vec(), sensitive };
        // The opened value stays in the buffer, marked removed.
        match self.changes.get_or_insert_default().insert(key.to_owned(), None) {
            Some(change) => change,
            None => Some(opened),
        }
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
    fn plaintext_is_wiped() {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(b"secret state");
        let mut plaintext = Plaintext(bytes);
        plaintext.wipe();
        assert_eq!(plaintext.0, [0; 12]);
    }

    #[test]
    fn a_repeated_key_is_refused() {
        assert!(opened(&[("a", 1), ("b", 2), ("a", 3)]).is_none());
    }

    #[test]
    fn the_first_change_keeps_every_value() {
        let mut values = Values::opened(opened(&[("b", 2), ("a", 1)]).unwrap());
        values.insert("c".into(), Entry { bytes: vec![3], sensitive: true });
        let entries: Vec<_> = values.iter().collect();
        assert_eq!(
            entries,
            [("a", &[1u8][..], false), ("b", &[2][..], false), ("c", &[3][..], true)]
        );
    }

    /// One change to a session's values, for the property test.
    #[derive(Debug, Clone)]
    enum Change {
        Insert(&'static str, u8, bool),
        Remove(&'static str),
    }

    fn change() -> impl proptest::strategy::Strategy<Value = Change> {
        use proptest::prelude::*;
        let key = prop::sample::select(&["a", "b", "bb", "c", "d"][..]);
        prop_oneof![
            (key.clone(), any::<u8>(), any::<bool>())
                .prop_map(|(key, value, sensitive)| Change::Insert(key, value, sensitive)),
            key.prop_map(Change::Remove),
        ]
    }

    proptest::proptest! {
        #[test]
        fn changes_read_as_an_ordinary_map(
            initial in proptest::collection::btree_map(
                proptest::sample::select(&["a", "b", "bb", "c", "d"][..]),
                0..100u32,
                0..5,
            ),
            changes in proptest::collection::vec(change(), 0..12),
        ) {
            // The same changes made to an opened session and to a map of owned entries.
            let pairs: Vec<(&str, u32)> = initial.iter().map(|(&key, &value)| (key, value)).collect();
            let mut values = Values::opened(opened(&pairs).unwrap());
            let mut expected: BTreeMap<String, Entry> = pairs
                .iter()
                .map(|&(key, value)| {
                    let bytes = rmp_serde::to_vec(&value).unwrap();
                    (key.to_owned(), Entry { bytes, sensitive: false })
                })
                .collect();
            for change in changes {
                match change {
                    Change::Insert(key, value, sensitive) => {
                        let entry = Entry { bytes: vec![value], sensitive };
                        values.insert(key.to_owned(), entry.clone());
                        expected.insert(key.to_owned(), entry);
                    }
                    Change::Remove(key) => {
                        proptest::prop_assert!(values.remove(key) == expected.remove(key));
                    }
                }
                let entries: Vec<_> = values.iter().collect();
                let wanted: Vec<_> = expected
                    .iter()
                    .map(|(key, entry)| (key.as_str(), &entry.bytes[..], entry.sensitive))
                    .collect();
                proptest::prop_assert_eq!(&entries, &wanted);
                proptest::prop_assert_eq!(values.len(), expected.len());
                for key in ["a", "b", "bb", "c", "d", "e"] {
                    let wanted = expected.get(key).map(|entry| (&entry.bytes[..], entry.sensitive));
                    proptest::prop_assert_eq!(values.get(key), wanted);
                }
            }
        }
    }
}
