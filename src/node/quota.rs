//! Bounded shares of a listener's clients: at most `total` held at once, and at most
//! `per_key` by any one key (an IP address, a uid). A slot is given back when dropped.
//! The dashboard bounds its connections with one, the control socket its clients with two.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub(crate) struct Quota<K> {
    counts: Arc<Mutex<Counts<K>>>,
    total: usize,
    per_key: usize,
}

#[derive(Debug)]
struct Counts<K> {
    total: usize,
    per_key: HashMap<K, usize>,
}

/// One held place of a [`Quota`].
#[derive(Debug)]
pub(crate) struct QuotaSlot<K: Hash + Eq> {
    counts: Arc<Mutex<Counts<K>>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Quota<K> {
    pub(crate) fn new(total: usize, per_key: usize) -> Self {
        Self { counts: Arc::new(Mutex::new(Counts { total: 0, per_key: HashMap::new() })), total, per_key }
    }

    /// A place for `key`, if both bounds allow one.
    pub(crate) fn take(&self, key: K) -> Option<QuotaSlot<K>> {
        // The counts hold no invariant a panicking holder could break half-way.
        let mut c = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = c.per_key.get(&key).copied().unwrap_or(0);
        if c.total >= self.total || mine >= self.per_key {
            return None;
        }
        c.total += 1;
        c.per_key.insert(key.clone(), mine + 1);
        Some(QuotaSlot { counts: self.counts.clone(), key })
    }

    /// Places held now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.counts.lock().map_or(0, |c| c.total)
    }
}

impl<K: Hash + Eq> Drop for QuotaSlot<K> {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        c.total -= 1;
        if let Some(n) = c.per_key.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.per_key.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_total_and_per_key_and_given_back() {
        let q = Quota::new(5, 2);
        let a: Vec<_> = (0..2).map(|_| q.take('a').unwrap()).collect();
        assert!(q.take('a').is_none(), "per key");
        let b: Vec<_> = ['b', 'b', 'c'].into_iter().map(|k| q.take(k).unwrap()).collect();
        assert!(q.take('d').is_none(), "in total");
        drop(a);
        assert!(q.take('a').is_some(), "given back");
        drop(b);
        assert_eq!(q.held(), 0);
    }
}
