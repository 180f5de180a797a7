//! A small cache of things loaded by content id (a compiled module, a job's task list),
//! shared by a node's worker threads: at most `cap` entries, the least recently used
//! evicted first. The first worker to ask loads an entry; workers asking meanwhile wait
//! for it rather than load it again. A failed load is forgotten, so the next task tries
//! again (a blob fetch can succeed later).

use crate::id::ContentId;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

type Slot<T, E> = Arc<OnceLock<Result<Arc<T>, E>>>;

pub(crate) struct Cache<T, E> {
    inner: Mutex<Lru<T, E>>,
}

struct Lru<T, E> {
    cap: usize,
    map: HashMap<ContentId, Slot<T, E>>,
    order: VecDeque<ContentId>,
}

impl<T, E: Clone> Cache<T, E> {
    pub(crate) fn new(cap: usize) -> Self {
        Self { inner: Mutex::new(Lru { cap, map: HashMap::new(), order: VecDeque::new() }) }
    }

    /// The entry for `id`, loaded by `load` if nobody has yet.
    pub(crate) fn get(&self, id: ContentId, load: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E> {
        let slot = self.lock().slot(id);
        let got = slot.get_or_init(|| load().map(Arc::new)).clone();
        if got.is_err() {
            self.lock().forget(id);
        }
        got
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru<T, E>> {
        // The map holds no invariant a panicking holder could break half-way.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<T, E> Lru<T, E> {
    /// The slot for `id`, now the most recently used.
    fn slot(&mut self, id: ContentId) -> Slot<T, E> {
        if let Some(s) = self.map.get(&id) {
            if let Some(i) = self.order.iter().position(|&o| o == id) {
                self.order.remove(i);
                self.order.push_back(id);
            }
            return s.clone();
        }
        if self.order.len() >= self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.map.remove(&old);
        }
        self.order.push_back(id);
        self.map.entry(id).or_insert_with(|| Arc::new(OnceLock::new())).clone()
    }

    fn forget(&mut self, id: ContentId) {
        self.map.remove(&id);
        self.order.retain(|&o| o != id);
    }
}

impl<T, E> std::fmt::Debug for Cache<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cache")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_once_evicts_the_oldest_and_forgets_failures() {
        let c: Cache<u32, String> = Cache::new(2);
        let (a, b, d) = (ContentId::of(b"a"), ContentId::of(b"b"), ContentId::of(b"d"));
        assert_eq!(*c.get(a, || Ok(1)).unwrap(), 1);
        assert_eq!(*c.get(a, || Ok(99)).unwrap(), 1, "loaded once");
        assert_eq!(c.get(b, || Err("no".into())).unwrap_err(), "no");
        assert_eq!(*c.get(b, || Ok(2)).unwrap(), 2, "a failure is tried again");
        c.get(a, || Ok(99)).unwrap(); // a is now the most recent
        c.get(d, || Ok(4)).unwrap(); // evicts b
        assert_eq!(*c.get(a, || Ok(99)).unwrap(), 1);
        assert_eq!(*c.get(b, || Ok(20)).unwrap(), 20, "b was evicted");
    }
}
