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

/// A vector of optional slots that reuses freed slots, so indices stay dense
/// under churn.
#[derive(Debug)]
pub(crate) struct Slab<I, T> {
    /// The slots; `None` marks a free one.
    slots: Vec<Option<T>>,
    /// Freed slots, reused before the vector grows.
    free: Vec<I>,
}

impl<I: Dense, T> Default for Slab<I, T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<I: Dense, T> Slab<I, T> {
    /// Stores a value and returns its index.
    pub(crate) fn insert(&mut self, value: T) -> I {
        if let Some(ix) = self.free.pop() {
            self.slots[ix.get()] = Some(value);
            return ix;
        }
        let ix = next_index(self.slots.len());
        self.slots.push(Some(value));
        ix
    }

    /// Takes a value out, freeing its slot.
    pub(crate) fn remove(&mut self, ix: I) -> Option<T> {
        let value = self.slots.get_mut(ix.get())?.take();
        if value.is_some() {
            self.free.push(ix);
        }
        value
    }

    /// The value at an index, if the slot is in use.
    pub(crate) fn get(&self, ix: I) -> Option<&T> {
        self.slots.get(ix.get())?.as_ref()
    }

    /// The value at an index, mutably, if the slot is in use.
    pub(crate) fn get_mut(&mut self, ix: I) -> Option<&mut T> {
        self.slots.get_mut(ix.get())?.as_mut()
    }

    /// Every value in use, in slot order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
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
