//! The eviction algorithm: an exact, cost-bounded least-recently-used map, with Qt's `QCache`
//! rules. It knows nothing about threads, pixmaps or C: values are any `V`, costs are KB numbers,
//! and everything it lets go of is handed back to the caller (so the caller can drop values
//! outside its lock).
//!
//! Layout (chosen for the hot paths, see docs/ARCHITECTURE.md):
//! - `slots`: a slab of nodes (key, hash, cost, value), recycled through a free list;
//! - `list`: the recency list as `prev`/`next` slot numbers (and the free list), kept apart
//!   from the nodes so that moving an entry to the front does not dirty the cache lines lookups
//!   read. It sits in a `Mutex` of its own, because lookups never read it: a caller that shares
//!   the map with readers ([`Lru::peek`] only) can still move entries to the front through
//!   [`Lru::touches`], beside them. Every `&mut self` method reaches it with `Mutex::get_mut`,
//!   which takes no lock;
//! - `table`: a `hashbrown::HashTable<u32>` of slot numbers, looked up by a hash the caller
//!   computed (outside any lock) and the key stored once, in the slot. A map made with
//!   [`Lru::with_placed_ids`] keeps generated keys out of the table: its caller remembers the
//!   slot each one was stored in ([`Lru::insert`] returns it) and finds, removes and checks
//!   them there ([`Lru::get_at`], [`Lru::remove_at`]); the slot's node still holds the key, so
//!   a stale slot number finds nothing.
//!
//! Invariants (checked by `check_invariants` in tests):
//! - the table holds exactly the occupied slots (but generated keys' with placed ids); the list
//!   links exactly the occupied slots, most recent first;
//! - `total` is the sum of the occupied slots' costs, and `total <= max(limit, 0)` after every
//!   public operation;
//! - with a count limit `n > 0`, at most `n` entries after every public operation;
//! - every key appears at most once.
//!
//! Entries it lets go of go to a [`Sink`] with their key and cost: a [`Garbage`] bag keeps the
//! values only (Qt's cache), a caller that reports removals keeps the keys too.
//!
//! It also remembers which slots it freed (a few, or "all") until asked ([`Lru::take_freed`]), for
//! a caller that keeps something per slot beside the map (the cache's spare shares, spares.rs).

use std::sync::{Mutex, MutexGuard, PoisonError};

use hashbrown::HashTable;

use crate::garbage::Garbage;
use crate::name::Name;

/// The key an entry is stored under: a string or a generated id. Both kinds share one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKey {
    /// A string key (`QPixmapCache::insert(QString, ...)`).
    Name(Name),
    /// A generated key's raw value (`QPixmapCache::insert(QPixmap)`).
    Id(u64),
}

/// A borrowed [`EntryKey`], for lookups without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRef<'a> {
    /// A string key's bytes (UTF-8 for every stored key, so other bytes simply match nothing).
    Name(&'a [u8]),
    /// A generated key's raw value.
    Id(u64),
}

impl EntryKey {
    /// The key, borrowed.
    pub fn as_key_ref(&self) -> KeyRef<'_> {
        match self {
            EntryKey::Name(s) => KeyRef::Name(s.as_bytes()),
            EntryKey::Id(id) => KeyRef::Id(*id),
        }
    }
}

const NIL: u32 = u32::MAX;
/// `Link::prev` of a free slot, so that [`Lru::touch`] can tell a free slot from the links
/// alone, without reading the slot's node (a cache line a replay would otherwise load for
/// every hit it replays).
const FREE: u32 = u32::MAX - 1;

struct Node<V> {
    key: EntryKey,
    hash: u64,
    cost: i64,
    value: V,
}

#[derive(Clone, Copy)]
struct Link {
    /// [`FREE`] for a free slot.
    prev: u32,
    /// For a free slot: the next free slot.
    next: u32,
}

/// Where entries the map lets go of (evicted, trimmed, cleared) go.
pub trait Sink<V> {
    /// Takes an entry that left the map: its key, the hash it was stored under, value and cost.
    fn take(&mut self, key: EntryKey, hash: u64, value: V, cost: i64);

    /// Whether [`Sink::take`] wants the key, or [`Sink::take_value`] will do (the key is then
    /// dropped where it is, without being moved: the eviction path of Qt's cache).
    fn wants_keys(&self) -> bool {
        true
    }

    /// Takes the value of an entry that left, when [`Sink::wants_keys`] is false.
    fn take_value(&mut self, value: V);

    /// Told the id of a generated key that left, before its value, when [`Sink::wants_keys`]
    /// is false (for a sink that follows generated keys without taking the keys).
    #[inline]
    fn departed_id(&mut self, _id: u64) {}

    /// Makes room for `additional` more entries.
    fn reserve(&mut self, _additional: usize) {}
}

/// A bag keeps the values and drops the keys.
impl<V> Sink<V> for Garbage<V> {
    #[inline]
    fn take(&mut self, _key: EntryKey, _hash: u64, value: V, _cost: i64) {
        self.push(value);
    }

    #[inline]
    fn wants_keys(&self) -> bool {
        false
    }

    #[inline]
    fn take_value(&mut self, value: V) {
        self.push(value);
    }

    fn reserve(&mut self, additional: usize) {
        Garbage::reserve(self, additional);
    }
}

/// Why an insert was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefuseReason {
    /// The entry costs more than the whole limit (Qt refuses it; nothing is evicted).
    TooCostly,
    /// The table could not grow: the allocator refused (nothing is evicted either).
    OutOfMemory,
}

/// An insert that did not happen.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused<V> {
    /// The value that was not inserted, handed back.
    pub value: V,
    /// Why.
    pub reason: RefuseReason,
}

/// An exact LRU map bounded by total cost. See the module documentation.
pub struct Lru<V> {
    table: HashTable<u32>,
    slots: Vec<Option<Node<V>>>,
    list: Mutex<List>,
    len: usize,
    total: i64,
    limit: i64,
    /// At most this many entries; 0: no count limit (Qt's cache has none).
    count_limit: usize,
    freed: Freed,
    /// Generated keys are in the table too (false: [`Lru::with_placed_ids`]).
    ids_in_table: bool,
}

/// How many freed slot numbers [`Freed`] keeps before it just says "many".
const FREED_KEPT: usize = 4;

/// The slots freed since [`Lru::take_freed`] was last called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freed {
    slots: [u32; FREED_KEPT],
    /// How many slots were freed; more than [`FREED_KEPT`] (or a clear) means: assume all were.
    count: u32,
}

impl Freed {
    const NONE: Freed = Freed {
        slots: [0; FREED_KEPT],
        count: 0,
    };
    const ALL: Freed = Freed {
        slots: [0; FREED_KEPT],
        count: u32::MAX,
    };

    #[inline]
    fn push(&mut self, slot: u32) {
        if let Some(kept) = self.slots.get_mut(self.count as usize) {
            *kept = slot;
        }
        self.count = self.count.saturating_add(1);
    }

    /// True when no slot was freed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The slots freed, or `None` when too many to list (any slot may have been).
    pub fn slots(&self) -> Option<&[u32]> {
        self.slots.get(..self.count as usize)
    }
}

/// The recency list (most recent first) and the free list, threaded through one `Link` per
/// slot.
struct List {
    links: Vec<Link>,
    free: u32,
    head: u32,
    tail: u32,
}

/// The list of a map accessed exclusively: no lock is taken (a panic while it was locked
/// through [`Lru::touches`] leaves it poisoned, which [`Lru::is_poisoned`] reports).
#[inline]
fn list_of(list: &mut Mutex<List>) -> &mut List {
    list.get_mut().unwrap_or_else(PoisonError::into_inner)
}

/// Moves entries of a map shared with readers to the front ([`Lru::touches`]).
pub struct Touches<'a> {
    list: MutexGuard<'a, List>,
}

impl Touches<'_> {
    /// [`Lru::touch`].
    #[inline]
    pub fn touch(&mut self, slot: u32) {
        self.list.touch(slot);
    }
}

impl List {
    const EMPTY: List = List {
        links: Vec::new(),
        free: NIL,
        head: NIL,
        tail: NIL,
    };

    #[inline(always)]
    fn touch(&mut self, slot: u32) {
        let occupied = self
            .links
            .get(slot as usize)
            .is_some_and(|l| l.prev != FREE);
        debug_assert!(occupied, "touch of free slot {slot}");
        // A mutation test (scripts/test-qt.sh) builds the library with this rule broken and
        // checks that the differential test against Qt notices.
        #[cfg(not(pixcache_mutant = "find_no_refresh"))]
        if occupied {
            self.move_to_front(slot);
        }
    }

    #[inline(always)]
    fn unlink(&mut self, slot: u32) {
        let Link { prev, next } = self.links[slot as usize];
        if prev != NIL {
            self.links[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.links[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
    }

    #[inline(always)]
    fn link_front(&mut self, slot: u32) {
        self.links[slot as usize] = Link {
            prev: NIL,
            next: self.head,
        };
        if self.head != NIL {
            self.links[self.head as usize].prev = slot;
        } else {
            self.tail = slot;
        }
        self.head = slot;
    }

    #[cfg_attr(pixcache_mutant = "find_no_refresh", allow(dead_code))]
    #[inline(always)]
    fn move_to_front(&mut self, slot: u32) {
        if self.head != slot {
            self.unlink(slot);
            self.link_front(slot);
        }
    }

    /// Unlinks an occupied slot and puts it on the free list.
    fn free(&mut self, slot: u32) {
        self.unlink(slot);
        self.links[slot as usize] = Link {
            prev: FREE,
            next: self.free,
        };
        self.free = slot;
    }
}

impl<V> Lru<V> {
    /// An empty map holding at most `limit` cost units (nothing at all when `limit <= 0`).
    pub fn new(limit: i64) -> Self {
        Lru {
            table: HashTable::new(),
            slots: Vec::new(),
            list: Mutex::new(List::EMPTY),
            len: 0,
            total: 0,
            limit,
            count_limit: 0,
            freed: Freed::NONE,
            ids_in_table: true,
        }
    }

    /// [`Lru::new`] for a caller that remembers where each generated key's entry is: those
    /// entries stay out of the table, so inserting and evicting them does no table work (a
    /// third of a thread-affine key insert's time in the map, docs/PERFORMANCE.md §7), and
    /// lookups by [`KeyRef::Id`] through the table find nothing: use [`Lru::get_at`],
    /// [`Lru::remove_at`] with the slot [`Lru::insert`] returned.
    pub fn with_placed_ids(limit: i64) -> Self {
        Lru {
            ids_in_table: false,
            ..Lru::new(limit)
        }
    }

    /// True when the entry under `key` is in the table.
    #[inline(always)]
    fn in_table(&self, key: &EntryKey) -> bool {
        self.ids_in_table || matches!(key, EntryKey::Name(_))
    }

    /// The slots freed since the last call (see the module documentation); starts over.
    #[inline]
    pub fn take_freed(&mut self) -> Freed {
        std::mem::replace(&mut self.freed, Freed::NONE)
    }

    /// [`Lru::take_freed`] for a caller that does not need to know.
    #[inline]
    pub fn forget_freed(&mut self) {
        self.freed.count = 0;
    }

    /// True when a slot was freed since the last [`Lru::take_freed`].
    #[inline]
    pub fn freed_any(&self) -> bool {
        !self.freed.is_empty()
    }

    /// The count limit (0: none).
    pub fn count_limit(&self) -> usize {
        self.count_limit
    }

    /// Sets the count limit (0: none) and evicts least recently used entries until the count
    /// fits it.
    pub fn set_count_limit(&mut self, n: usize, evicted: &mut impl Sink<V>) -> usize {
        self.count_limit = n;
        let max_len = if n == 0 { usize::MAX } else { n };
        self.trim_to(self.total, max_len, evicted)
    }

    /// The limit, as set.
    pub fn limit(&self) -> i64 {
        self.limit
    }

    /// Sum of the costs of the entries.
    pub fn total(&self) -> i64 {
        self.total
    }

    /// Slots, occupied or free: the most entries the map has held at once. A new entry goes
    /// to a slot below this number, or to this one.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn find_slot(&self, hash: u64, key: KeyRef<'_>) -> Option<u32> {
        // One probe loop per kind of key, each with the smallest compare, so that the compiler
        // keeps inlining the lookup into its callers (one loop comparing both kinds did not).
        let slots = &self.slots;
        let node = |i: u32| slots[i as usize].as_ref();
        match key {
            KeyRef::Id(_) if !self.ids_in_table => None,
            KeyRef::Id(id) => self.table.find(hash, |&i| {
                node(i).is_some_and(|n| matches!(n.key, EntryKey::Id(k) if k == id))
            }),
            KeyRef::Name(name) => self.table.find(hash, |&i| {
                node(i).is_some_and(|n| matches!(&n.key, EntryKey::Name(k) if k.is(name)))
            }),
        }
        .copied()
    }

    fn node(&self, slot: u32) -> &Node<V> {
        self.slots[slot as usize]
            .as_ref()
            .expect("linked slot is occupied")
    }

    /// Looks `key` up and, on a hit, makes it the most recently used entry.
    #[inline]
    pub fn get(&mut self, hash: u64, key: KeyRef<'_>) -> Option<&V> {
        let slot = self.find_slot(hash, key)?;
        self.touch(slot);
        Some(&self.node(slot).value)
    }

    /// Looks `key` up *without* touching recency, returning the entry's slot number with its
    /// value. A lookup that must not write (a reader sharing the map with other readers) records
    /// the slot and hands it to [`Lru::touch`] later, before any slot can be freed or reused.
    pub fn peek(&self, hash: u64, key: KeyRef<'_>) -> Option<(u32, &V)> {
        let slot = self.find_slot(hash, key)?;
        Some((slot, &self.node(slot).value))
    }

    /// The slot of the entry of generated key `id`, when `slot` (from [`Lru::insert`]) still
    /// holds it.
    #[inline(always)]
    fn id_at(&self, slot: u32, id: u64) -> Option<u32> {
        let node = self.slots.get(slot as usize)?.as_ref()?;
        matches!(node.key, EntryKey::Id(k) if k == id).then_some(slot)
    }

    /// [`Lru::get`] of generated key `id` in a map with placed ids, at the slot [`Lru::insert`]
    /// returned for it: `None` when that slot no longer holds it.
    #[inline(always)]
    pub fn get_at(&mut self, slot: u32, id: u64) -> Option<&V> {
        let slot = self.id_at(slot, id)?;
        self.touch(slot);
        Some(&self.node(slot).value)
    }

    /// [`Lru::remove`] of generated key `id` in a map with placed ids, at the slot
    /// [`Lru::insert`] returned for it: `None` when that slot no longer holds it.
    pub fn remove_at(&mut self, slot: u32, id: u64) -> Option<(EntryKey, V, i64)> {
        debug_assert!(
            !self.ids_in_table,
            "remove_at in a map with ids in its table"
        );
        let slot = self.id_at(slot, id)?;
        let node = self.release_slot(slot);
        Some((node.key, node.value, node.cost))
    }

    /// The value in `slot`, if that slot holds an entry.
    #[inline]
    pub fn value_at(&self, slot: u32) -> Option<&V> {
        self.slots.get(slot as usize)?.as_ref().map(|n| &n.value)
    }

    /// Makes the entry in `slot` (a slot number from [`Lru::peek`]) the most recently used.
    /// A slot that is not occupied is ignored (it cannot happen while the caller keeps the
    /// promise above; ignoring it keeps a broken promise from corrupting the free list).
    #[inline(always)]
    pub fn touch(&mut self, slot: u32) {
        list_of(&mut self.list).touch(slot);
    }

    /// [`Lru::touch`] through a shared reference, for a caller that shares the map with readers
    /// ([`Lru::peek`], [`Lru::value_at`]: they never read the recency list) while nothing else
    /// changes it. Two callers at once take turns on the list's lock.
    pub fn touches(&self) -> Touches<'_> {
        Touches {
            list: self.locked_list(),
        }
    }

    /// The list, locked (a poisoned lock is taken all the same: see [`Lru::is_poisoned`]).
    fn locked_list(&self) -> MutexGuard<'_, List> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True when a panic interrupted [`Lru::touches`]' holder: the order may be half replayed.
    pub fn is_poisoned(&self) -> bool {
        self.list.is_poisoned()
    }

    /// True when `key` is present; does not touch recency.
    pub fn contains(&self, hash: u64, key: KeyRef<'_>) -> bool {
        self.find_slot(hash, key).is_some()
    }

    /// Inserts `value` under `key` (which must not be present) as the most recently used entry,
    /// first evicting least recently used entries into `evicted` until it fits, and returns the
    /// slot it went to. An entry whose cost exceeds the whole limit is refused and nothing is
    /// evicted for it (Qt's `QCache`).
    #[inline(always)]
    pub fn insert(
        &mut self,
        hash: u64,
        key: EntryKey,
        value: V,
        cost: i64,
        evicted: &mut impl Sink<V>,
    ) -> Result<u32, Refused<V>> {
        debug_assert!(
            !self.contains(hash, key.as_key_ref()),
            "insert of a present key"
        );
        self.insert_with(hash, |_| key, value, cost, evicted)
    }

    /// [`Lru::insert`] with the key made from the slot the entry goes to, for a caller whose
    /// keys name their slot (the thread-affine cache's generated keys, with placed ids). The
    /// key must not be present.
    #[inline(always)]
    pub fn insert_with(
        &mut self,
        hash: u64,
        key: impl FnOnce(u32) -> EntryKey,
        value: V,
        cost: i64,
        evicted: &mut impl Sink<V>,
    ) -> Result<u32, Refused<V>> {
        // A limit of 0 or less holds nothing, not even an entry costing 0 (explicit costs).
        if cost > self.limit || self.limit <= 0 {
            return Err(Refused {
                value,
                reason: RefuseReason::TooCostly,
            });
        }
        // Grow first, fallibly, so an allocation failure changes nothing (no eviction either).
        if !self.reserve_one() {
            return Err(Refused {
                value,
                reason: RefuseReason::OutOfMemory,
            });
        }
        let room = match self.count_limit {
            0 => usize::MAX,
            n => n - 1,
        };
        self.trim_to(self.limit - cost, room, evicted);
        let list = list_of(&mut self.list);
        let slot = if list.free != NIL {
            let slot = list.free;
            list.free = list.links[slot as usize].next;
            slot
        } else {
            let slot = u32::try_from(self.slots.len())
                .ok()
                .filter(|&s| s < FREE)
                .expect("more than 4 billion cache entries");
            self.slots.push(None);
            list.links.push(Link {
                prev: NIL,
                next: NIL,
            });
            slot
        };
        list.link_front(slot);
        let key = key(slot);
        let in_table = self.in_table(&key);
        // A free slot holds no node, so there is none to drop before storing this one. Said so
        // to the compiler: with a drop (a value's release) between making the node and storing
        // it, the node was made on the stack and copied with wide loads of narrow stores, a
        // store-forwarding stall (~3 ns an insert).
        match &mut self.slots[slot as usize] {
            place @ None => {
                *place = Some(Node {
                    key,
                    hash,
                    cost,
                    value,
                })
            }
            Some(_) => unreachable!("free slot {slot} holds a node"),
        }
        if in_table {
            let slots = &self.slots;
            self.table.insert_unique(hash, slot, |&i| {
                slots[i as usize].as_ref().map_or(0, |n| n.hash)
            });
        }
        self.len += 1;
        self.total += cost;
        Ok(slot)
    }

    /// Makes sure one more entry fits without allocating; false when the allocator refuses.
    fn reserve_one(&mut self) -> bool {
        let list = list_of(&mut self.list);
        if list.free == NIL
            && (self.slots.try_reserve(1).is_err() || list.links.try_reserve(1).is_err())
        {
            return false;
        }
        let slots = &self.slots;
        self.table
            .try_reserve(1, |&i| slots[i as usize].as_ref().map_or(0, |n| n.hash))
            .is_ok()
    }

    /// Removes `key`, handing back its key, value and cost; `None` when absent.
    pub fn remove(&mut self, hash: u64, key: KeyRef<'_>) -> Option<(EntryKey, V, i64)> {
        self.remove_entry(hash, key).map(|(k, _, v, c)| (k, v, c))
    }

    /// [`Lru::remove`], also handing back the hash.
    fn remove_entry(&mut self, hash: u64, key: KeyRef<'_>) -> Option<(EntryKey, u64, V, i64)> {
        let slots = &self.slots;
        let entry = self
            .table
            .find_entry(hash, |&i| {
                slots[i as usize]
                    .as_ref()
                    .is_some_and(|n| n.key.as_key_ref() == key)
            })
            .ok()?;
        let (slot, _) = entry.remove();
        let node = self.release_slot(slot);
        Some((node.key, node.hash, node.value, node.cost))
    }

    /// The cost of the entry under `key`, if present. Does not touch recency.
    pub fn cost_of(&self, hash: u64, key: KeyRef<'_>) -> Option<i64> {
        let slot = self.find_slot(hash, key)?;
        Some(self.node(slot).cost)
    }

    /// Sets the limit and evicts least recently used entries until the total fits it.
    pub fn set_limit(&mut self, limit: i64, evicted: &mut impl Sink<V>) -> usize {
        self.limit = limit;
        self.trim(limit, evicted)
    }

    /// Evicts least recently used entries into `evicted` until `total <= target`.
    /// Returns how many went.
    pub fn trim(&mut self, target: i64, evicted: &mut impl Sink<V>) -> usize {
        self.trim_to(target, usize::MAX, evicted)
    }

    /// Evicts least recently used entries into `evicted` until `total <= target` and
    /// `len <= max_len`. Returns how many went.
    fn trim_to(&mut self, target: i64, max_len: usize, evicted: &mut impl Sink<V>) -> usize {
        let mut count = 0;
        // A target of 0 or less leaves nothing, also entries that cost 0 (explicit costs).
        while self.total > target || self.len > max_len || (target <= 0 && self.len > 0) {
            let slot = list_of(&mut self.list).tail;
            if slot == NIL {
                break;
            }
            let node = self.node(slot);
            if self.in_table(&node.key) {
                match self.table.find_entry(node.hash, |&i| i == slot) {
                    Ok(entry) => {
                        entry.remove();
                    }
                    Err(_) => unreachable!("linked slot {slot} missing from the table"),
                }
            }
            self.release_into(slot, evicted);
            count += 1;
        }
        count
    }

    /// Removes every entry, handing the values to `evicted`.
    pub fn clear(&mut self, evicted: &mut impl Sink<V>) {
        evicted.reserve(self.len);
        // Least recently used first, as evictions go.
        let order = self.slots_by_recency();
        for slot in order.into_iter().rev() {
            if let Some(node) = self.slots[slot as usize].take() {
                evicted.take(node.key, node.hash, node.value, node.cost);
            }
        }
        self.slots.clear();
        self.table.clear();
        let list = list_of(&mut self.list);
        list.links.clear();
        list.free = NIL;
        list.head = NIL;
        list.tail = NIL;
        self.len = 0;
        self.total = 0;
        self.freed = Freed::ALL;
    }

    /// The keys from most to least recently used (for tests and diagnostics).
    pub fn keys_by_recency(&self) -> Vec<EntryKey> {
        self.slots_by_recency()
            .into_iter()
            .map(|slot| self.node(slot).key.clone())
            .collect()
    }

    /// The occupied slots from most to least recently used.
    fn slots_by_recency(&self) -> Vec<u32> {
        let list = self.locked_list();
        let mut out = Vec::with_capacity(self.len);
        let mut at = list.head;
        while at != NIL {
            out.push(at);
            at = list.links[at as usize].next;
        }
        out
    }

    /// [`Lru::release_slot`], handing the entry to `evicted` (without moving its key out of
    /// the slot unless `evicted` wants it).
    #[inline]
    fn release_into(&mut self, slot: u32, evicted: &mut impl Sink<V>) {
        let Some(node) = self.slots[slot as usize].take() else {
            unreachable!("released slot {slot} is occupied");
        };
        list_of(&mut self.list).free(slot);
        self.freed.push(slot);
        self.len -= 1;
        self.total -= node.cost;
        if evicted.wants_keys() {
            evicted.take(node.key, node.hash, node.value, node.cost);
        } else {
            if let EntryKey::Id(id) = &node.key {
                evicted.departed_id(*id);
            }
            evicted.take_value(node.value);
        }
    }

    /// Unlinks an occupied slot that is already out of the table and frees it.
    fn release_slot(&mut self, slot: u32) -> Node<V> {
        let node = self.slots[slot as usize]
            .take()
            .expect("released slot is occupied");
        list_of(&mut self.list).free(slot);
        self.freed.push(slot);
        self.len -= 1;
        self.total -= node.cost;
        node
    }

    /// Panics when an invariant of the module documentation is broken (tests only).
    #[cfg(test)]
    pub fn check_invariants(&self) {
        let order = self.keys_by_recency();
        assert_eq!(order.len(), self.len, "list length");
        let tabled = self
            .slots
            .iter()
            .flatten()
            .filter(|n| self.in_table(&n.key))
            .count();
        assert_eq!(self.table.len(), tabled, "table length");
        let occupied = self.slots.iter().flatten().count();
        assert_eq!(occupied, self.len, "occupied slots");
        let total: i64 = self.slots.iter().flatten().map(|n| n.cost).sum();
        assert_eq!(total, self.total, "total cost");
        assert!(self.total <= self.limit.max(0), "total within limit");
        assert!(
            self.limit > 0 || self.len == 0,
            "a limit of 0 or less holds nothing"
        );
        assert!(
            self.count_limit == 0 || self.len <= self.count_limit,
            "count within the count limit"
        );
        for (slot, node) in self.slots.iter().enumerate() {
            let Some(node) = node else { continue };
            let found = match node.key {
                EntryKey::Id(id) if !self.ids_in_table => self.id_at(slot as u32, id).is_some(),
                _ => self.contains(node.hash, node.key.as_key_ref()),
            };
            assert!(found, "every node is found where its key says");
        }
        let list = self.locked_list();
        if list.tail != NIL {
            assert_eq!(list.links[list.tail as usize].next, NIL);
        }
        for (slot, node) in self.slots.iter().enumerate() {
            assert_eq!(
                list.links[slot].prev == FREE,
                node.is_none(),
                "free slots, and only they, are marked free"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> (u64, EntryKey) {
        // A deliberately weak hash, so collisions are exercised.
        let h = s.bytes().map(u64::from).sum::<u64>();
        (h, EntryKey::Name(Name::new(s).unwrap()))
    }

    fn put(lru: &mut Lru<&'static str>, k: &'static str, cost: i64) -> Vec<&'static str> {
        let (h, key) = name(k);
        let mut ev = Garbage::new();
        lru.insert(h, key, k, cost, &mut ev).unwrap();
        lru.check_invariants();
        ev.into_vec()
    }

    /// `touches` moves entries to the front through a shared reference, while other threads
    /// look entries up (peek) at the same time; a panic while holding it is reported.
    #[test]
    fn touches_reorder_through_a_shared_reference_beside_lookups() {
        let mut lru = Lru::new(10);
        for k in ["a", "b", "c"] {
            put(&mut lru, k, 1);
        }
        let slot =
            |lru: &Lru<&str>, k: &str| lru.peek(name(k).0, KeyRef::Name(k.as_bytes())).unwrap().0;
        let (a, b) = (slot(&lru, "a"), slot(&lru, "b"));
        std::thread::scope(|scope| {
            let lru = &lru;
            let mut touches = lru.touches();
            touches.touch(a);
            // A lookup on another thread completes while the list is locked (it must not need
            // the list): it would time out if it did.
            let (tx, rx) = std::sync::mpsc::channel();
            scope.spawn(move || tx.send(slot(lru, "c")).unwrap());
            let found = rx.recv_timeout(std::time::Duration::from_secs(10));
            touches.touch(b);
            drop(touches);
            assert_eq!(found, Ok(slot(lru, "c")), "a lookup waited for the list");
        });
        assert_eq!(
            lru.keys_by_recency(),
            ["b", "a", "c"].map(|k| name(k).1).to_vec()
        );
        lru.check_invariants();
        assert!(!lru.is_poisoned());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _touches = lru.touches();
            panic!("a replay interrupted");
        }));
        assert!(panicked.is_err());
        assert!(lru.is_poisoned());
        // Exclusive access goes on (the caller decides what to do with a poisoned order).
        assert_eq!(put(&mut lru, "d", 8), vec!["c"]);
    }

    /// The count limit evicts least recent entries beside the cost limit, on insert and when
    /// lowered; the sink sees each entry's key and cost; clear hands entries over least recent
    /// first.
    #[test]
    fn count_limit_and_sinks() {
        struct Keys(Vec<(EntryKey, &'static str, i64)>);
        impl Sink<&'static str> for Keys {
            fn take(&mut self, key: EntryKey, _hash: u64, value: &'static str, cost: i64) {
                self.0.push((key, value, cost));
            }
            fn take_value(&mut self, _value: &'static str) {
                unreachable!("wants keys");
            }
        }
        let mut lru = Lru::new(100);
        let mut sink = Keys(Vec::new());
        assert_eq!(lru.set_count_limit(2, &mut sink), 0);
        for (k, cost) in [("a", 1), ("b", 2), ("c", 3)] {
            let (h, key) = name(k);
            lru.insert(h, key, k, cost, &mut sink).unwrap();
            lru.check_invariants();
        }
        assert_eq!(sink.0, vec![(name("a").1, "a", 1)]);
        assert_eq!((lru.len(), lru.total()), (2, 5));
        assert_eq!(lru.set_count_limit(1, &mut sink), 1);
        assert_eq!(sink.0[1], (name("b").1, "b", 2));
        assert_eq!(lru.set_count_limit(0, &mut sink), 0);
        for k in ["d", "e"] {
            put(&mut lru, k, 1);
        }
        assert_eq!(lru.len(), 3, "no count limit");
        lru.get(name("c").0, KeyRef::Name(b"c"));
        sink.0.clear();
        lru.clear(&mut sink);
        let order: Vec<_> = sink.0.iter().map(|e| e.1).collect();
        assert_eq!(order, ["d", "e", "c"]);
        lru.check_invariants();
    }

    #[test]
    fn evicts_least_recent_first_and_get_refreshes() {
        let mut lru = Lru::new(3);
        put(&mut lru, "a", 1);
        put(&mut lru, "b", 1);
        put(&mut lru, "c", 1);
        let (h, _) = name("a");
        assert_eq!(lru.get(h, KeyRef::Name(b"a")), Some(&"a"));
        assert_eq!(put(&mut lru, "d", 1), vec!["b"]);
        assert_eq!(put(&mut lru, "e", 2), vec!["c", "a"]);
        lru.check_invariants();
    }

    #[test]
    fn too_costly_is_refused_without_evicting() {
        let mut lru = Lru::new(10);
        put(&mut lru, "a", 5);
        let (h, key) = name("big");
        let mut ev = Garbage::new();
        assert_eq!(
            lru.insert(h, key, "big", 11, &mut ev),
            Err(Refused {
                value: "big",
                reason: RefuseReason::TooCostly
            })
        );
        assert!(ev.is_empty());
        assert_eq!(lru.len(), 1);
        assert_eq!(put(&mut lru, "eq", 10), vec!["a"]);
    }

    #[test]
    fn non_positive_limit_holds_nothing() {
        for limit in [0, -5] {
            let mut lru = Lru::new(limit);
            let (h, key) = name("a");
            assert!(lru.insert(h, key, "a", 1, &mut Garbage::new()).is_err());
        }
    }

    #[test]
    fn lowering_the_limit_evicts_and_raising_does_not() {
        let mut lru = Lru::new(10);
        for k in ["a", "b", "c", "d"] {
            put(&mut lru, k, 2);
        }
        let mut ev = Garbage::new();
        lru.set_limit(100, &mut ev);
        assert!(ev.is_empty());
        lru.set_limit(5, &mut ev);
        assert_eq!(ev.into_vec(), vec!["a", "b"]);
        let mut ev = Garbage::new();
        lru.set_limit(-1, &mut ev);
        assert_eq!(lru.len(), 0);
        lru.check_invariants();
    }

    #[test]
    fn slots_are_recycled_and_clear_empties() {
        let mut lru = Lru::new(2);
        for k in ["a", "b", "c", "d", "e"] {
            put(&mut lru, k, 1);
        }
        assert_eq!(lru.slots.len(), 2, "evicted slots are reused");
        let (h, _) = name("e");
        assert_eq!(
            lru.remove(h, KeyRef::Name(b"e")).map(|(_, v, _)| v),
            Some("e")
        );
        assert_eq!(lru.remove(h, KeyRef::Name(b"e")), None);
        let mut ev = Garbage::new();
        lru.clear(&mut ev);
        assert_eq!(ev.into_vec(), vec!["d"]);
        assert!(lru.is_empty());
        put(&mut lru, "x", 1);
    }

    #[test]
    fn placed_ids_stay_out_of_the_table_and_are_found_at_their_slot() {
        let mut lru = Lru::with_placed_ids(3);
        let mut ev = Garbage::new();
        let (h, a) = name("a");
        lru.insert(h, a, "a", 1, &mut ev).unwrap();
        let one = lru.insert(11, EntryKey::Id(11), "11", 1, &mut ev).unwrap();
        let two = lru.insert(12, EntryKey::Id(12), "12", 1, &mut ev).unwrap();
        lru.check_invariants();
        assert_eq!(lru.table.len(), 1, "only the string key is in the table");
        // Through the table an id finds nothing; at its slot it does, and only its own.
        assert_eq!(lru.get(11, KeyRef::Id(11)), None);
        assert_eq!(lru.get_at(one, 11), Some(&"11"));
        assert_eq!(lru.get_at(one, 12), None);
        assert_eq!(lru.get_at(99, 11), None);
        // "a" is now the least recently used: evicted first, out of the table.
        lru.insert(13, EntryKey::Id(13), "13", 1, &mut ev).unwrap();
        lru.check_invariants();
        assert_eq!(lru.table.len(), 0);
        // Evicting an id, and reusing its slot for another: the old id's slot finds nothing.
        let four = lru.insert(14, EntryKey::Id(14), "14", 1, &mut ev).unwrap();
        assert_eq!(ev.into_vec(), vec!["a", "12"]);
        assert_eq!(four, two, "the evicted id's slot is reused");
        assert_eq!(lru.get_at(two, 12), None);
        assert_eq!(lru.get_at(four, 14), Some(&"14"));
        assert_eq!(lru.remove_at(one, 11), Some((EntryKey::Id(11), "11", 1)));
        assert_eq!(lru.remove_at(one, 11), None);
        lru.check_invariants();
        assert_eq!((lru.len(), lru.total()), (2, 2));
    }
}
