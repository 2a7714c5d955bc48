//! Dense internal indices and the slab that hands them out, so hot paths
//! index vectors instead of hashing string ids.

/// A dense index into one of the engine's tables.
pub(crate) trait Dense: Copy {
    /// Wraps a raw slot number.
    fn from_raw(raw: u32) -> Self;
    /// The slot number, for indexing a vector.
    fn get(self) -> usize;
}

/// Defines a dense index newtype, so an agent index cannot reach the queue table.
macro_rules! dense_index {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) struct $name(u32);

        impl Dense for $name {
            fn from_raw(raw: u32) -> Self {
                Self(raw)
            }

            fn get(self) -> usize {
                self.0 as usize
            }
        }
    };
}

dense_index!(
    /// An agent's slot in the engine's agent table.
    AgentIx
);
dense_index!(
    /// A queue's slot in the engine's queue table.
    QueueIx
);
dense_index!(
    /// A live work item's slot in the item slab.
    ItemIx
);
dense_index!(
    /// An interned skill name.
    SkillIx
);
dense_index!(
    /// A requirement class's slot in the class slab.
    ClassIx
);

/// Converts a table length to the next index; tables never reach 2^32 entries.
pub(crate) fn next_index<I: Dense>(len: usize) -> I {
    I::from_raw(u32::try_from(len).expect("engine tables hold fewer than 2^32 entries"))
}

/// Slots per page of a [`Slab`]; a power of two.
const PAGE: usize = 1024;

/// Optional slots that reuse freed slots, so indices stay dense under churn.
/// The slots live in fixed pages rather than one vector: a vector of half a
/// million items would grow by copying all of them into one twice as large
/// (a pause of milliseconds and a jump in memory); a slab grows a page at a time.
#[derive(Debug)]
pub(crate) struct Slab<I, T> {
    /// Pages of [`PAGE`] slots; `None` marks a free one.
    pages: Vec<Box<[Option<T>]>>,
    /// Slots handed out so far (free or not); the next new slot's index.
    len: usize,
    /// Freed slots, reused before the slab grows.
    free: Vec<I>,
}

impl<I: Dense, T> Default for Slab<I, T> {
    fn default() -> Self {
        Self {
            pages: Vec::new(),
            len: 0,
            free: Vec::new(),
        }
    }
}

impl<I: Dense, T> Slab<I, T> {
    /// Stores a value and returns its index.
    pub(crate) fn insert(&mut self, value: T) -> I {
        if let Some(ix) = self.free.pop() {
            self.pages[ix.get() / PAGE][ix.get() % PAGE] = Some(value);
            return ix;
        }
        if self.len == self.pages.len() * PAGE {
            let mut page = Vec::with_capacity(PAGE);
            page.resize_with(PAGE, || None);
            self.pages.push(page.into_boxed_slice());
        }
        let ix = next_index(self.len);
        self.pages[self.len / PAGE][self.len % PAGE] = Some(value);
        self.len += 1;
        ix
    }

    /// The slot at an index, if it was ever handed out.
    fn slot(&mut self, ix: I) -> Option<&mut Option<T>> {
        self.pages
            .get_mut(ix.get() / PAGE)?
            .get_mut(ix.get() % PAGE)
    }

    /// Takes a value out, freeing its slot.
    pub(crate) fn remove(&mut self, ix: I) -> Option<T> {
        let value = self.slot(ix)?.take();
        if value.is_some() {
            self.free.push(ix);
        }
        value
    }

    /// The value at an index, if the slot is in use.
    pub(crate) fn get(&self, ix: I) -> Option<&T> {
        self.pages.get(ix.get() / PAGE)?[ix.get() % PAGE].as_ref()
    }

    /// The value at an index, mutably, if the slot is in use.
    pub(crate) fn get_mut(&mut self, ix: I) -> Option<&mut T> {
        self.slot(ix)?.as_mut()
    }

    /// Every value in use, in slot order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.pages.iter().flat_map(|page| page.iter().flatten())
    }
}

/// Indexing is for slots the engine knows are live (an index held by another
/// structure always points at a live slot); a dead slot here is a bug.
impl<I: Dense, T> std::ops::Index<I> for Slab<I, T> {
    type Output = T;

    fn index(&self, ix: I) -> &T {
        self.get(ix)
            .expect("index held by the engine points at a live slot")
    }
}

impl<I: Dense, T> std::ops::IndexMut<I> for Slab<I, T> {
    fn index_mut(&mut self, ix: I) -> &mut T {
        self.get_mut(ix)
            .expect("index held by the engine points at a live slot")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slab_reuses_freed_slots_across_pages() {
        let mut slab: Slab<ItemIx, usize> = Slab::default();
        for n in 0..PAGE + 10 {
            assert_eq!(slab.insert(n).get(), n);
        }
        let last = ItemIx::from_raw((PAGE + 5) as u32);
        assert_eq!(slab.remove(last), Some(PAGE + 5));
        assert_eq!(slab.remove(last), None);
        assert!(slab.get(last).is_none());
        assert_eq!(slab.insert(7), last);
        assert_eq!(slab[last], 7);
        assert_eq!(slab.values().count(), PAGE + 10);
        assert!(slab.get(ItemIx::from_raw(5 * PAGE as u32)).is_none());
    }
}
