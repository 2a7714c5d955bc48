//! Hash maps keyed by ids: a fast hasher, and a sharded map for work items
//! and interactions that grows a shard at a time instead of rehashing every
//! key at once.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

/// A multiply-xorshift hasher for ids the engine looks up on every command.
/// SipHash's resistance to chosen keys buys nothing here: work item ids are
/// UUIDs Switchboard generates, and agent, queue and skill ids come from
/// supervisors' configuration, never from the public.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher {
    /// The state so far.
    hash: u64,
}

/// An odd constant with well-spread bits (from splitmix64).
const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

impl IdHasher {
    /// Folds one word into the state.
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(23) ^ word).wrapping_mul(MIX);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let mut tail = [0; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.add(u64::from_le_bytes(tail) ^ bytes.len() as u64);
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    /// Finishes with splitmix64's avalanche, so that the low bits (which pick
    /// a bucket) and the high bits (which pick a shard) both depend on every input bit.
    fn finish(&self) -> u64 {
        let mut hash = self.hash;
        hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        hash ^ (hash >> 31)
    }
}

/// A hash map with the fast id hasher.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// How many shards a [`ShardedMap`] has; a power of two.
const SHARDS: usize = 256;

/// A map split into [`SHARDS`] maps by a slice of the key's hash. A hash map
/// grows by rehashing into a table twice its size, and it rehashes in place
/// when removals have left too many tombstones; with half a million work
/// items either stalls the engine for milliseconds and doubles its memory in
/// one step. A shard holds a 256th of the items, so it does either in microseconds.
///
/// Keys hash with the fast id hasher unless `S` says otherwise: keys that
/// come from outside Switchboard (the bridge's interaction ids) keep
/// SipHash with a random key, `std`'s `RandomState`.
#[derive(Debug)]
pub(crate) struct ShardedMap<K, V, S = BuildHasherDefault<IdHasher>> {
    /// The shards, chosen by bits 40 to 47 of the hash: the shards' own
    /// tables use the low bits and the top seven, so those stay well spread.
    shards: Vec<HashMap<K, V, S>>,
    /// Hashes keys to pick their shard; each shard's table hashes alike.
    hasher: S,
}

impl<K: Hash + Eq, V, S: BuildHasher + Clone + Default> Default for ShardedMap<K, V, S> {
    fn default() -> Self {
        let hasher = S::default();
        let mut shards = Vec::with_capacity(SHARDS);
        for _ in 0..SHARDS {
            shards.push(HashMap::with_hasher(hasher.clone()));
        }
        Self { shards, hasher }
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> ShardedMap<K, V, S> {
    /// The shard that holds a key.
    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        let hash = self.hasher.hash_one(key);
        (hash >> 40) as usize & (SHARDS - 1)
    }

    /// The value for a key.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard(key)].get(key)
    }

    /// The value for a key, to change it.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key);
        self.shards[shard].get_mut(key)
    }

    /// How many keys it holds.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }

    /// Every key and value, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|shard| shard.iter())
    }

    /// Whether a key is present.
    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Stores a value under a key, returning the one it replaces.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let shard = self.shard(&key);
        self.shards[shard].insert(key, value)
    }

    /// Takes a key's value out.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key);
        self.shards[shard].remove(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharded_map_finds_what_it_stored_and_spreads_it() {
        let mut map: ShardedMap<u128, u32> = ShardedMap::default();
        for n in 0..10_000u128 {
            map.insert(n, n as u32);
        }
        assert_eq!(map.get(&1234), Some(&1234));
        assert_eq!(map.len(), 10_000);
        if let Some(value) = map.get_mut(&4321) {
            *value = 1;
        }
        assert_eq!(map.get(&4321), Some(&1));
        let sum: u128 = map.iter().map(|(key, _)| key).sum();
        assert_eq!(sum, (0..10_000u128).sum::<u128>());
        assert!(map.contains_key(&9_999));
        assert_eq!(map.remove(&1234), Some(1234));
        assert!(!map.contains_key(&1234));
        let mut smallest = usize::MAX;
        let mut largest = 0;
        for shard in &map.shards {
            smallest = smallest.min(shard.len());
            largest = largest.max(shard.len());
        }
        // 10,000 sequential keys over 256 shards: about 39 each.
        assert!(smallest >= 15 && largest <= 70, "{smallest}..{largest}");
    }

    #[test]
    fn a_sharded_map_with_a_random_key_finds_what_it_stored() {
        let mut map: ShardedMap<String, usize, std::hash::RandomState> = ShardedMap::default();
        for n in 0..1_000 {
            map.insert(format!("call-{n}"), n);
        }
        assert_eq!(map.get("call-500"), Some(&500));
        assert_eq!(map.remove("call-500"), Some(500));
        assert_eq!(map.get("call-500"), None);
        assert_eq!(map.len(), 999);
        let used = map.shards.iter().filter(|shard| !shard.is_empty()).count();
        assert!(used > 200, "1,000 keys over {used} of 256 shards");
    }
}
