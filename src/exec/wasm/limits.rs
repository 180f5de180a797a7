//! What a WebAssembly task may allocate: its own `--memory`, and a share of the node's.
//!
//! Each task's [`Limits`] is the wasmtime `ResourceLimiter` of its `Store`. It refuses a
//! memory growth past the task's own limit, and it reserves every growth of a memory or a
//! table from the node's [`MemoryBudget`], shared by all the tasks of a runtime. The
//! reservation is given back when the task's `Limits` is dropped, that is when its `Store`
//! and its data are, after its instance's memory is gone.
//!
//! Invariant: the bytes reserved by all running tasks never exceed the budget's limit. So
//! a node runs at most [`MemoryBudget::limit`] bytes of linear memory and tables however
//! many workers it has and whatever `--memory` its jobs ask: a member cannot make a node
//! with 8 workers allocate 8 × 4 GiB.
//!
//! A growth the budget cannot cover fails at once, as a refused `memory.grow` (the module
//! sees -1, as with its own limit), and the task's error names the budget. It does not
//! wait for memory: a task waiting inside `memory.grow` would keep what it holds, so two
//! tasks each holding half could wait on each other until their timeouts, and a worker
//! would sit blocked instead of taking other work. A failed task is retried (`--retries`),
//! later or on another node.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use wasmtime::ResourceLimiter;

/// Tables one task may have, and elements per table: a module cannot grow memory past
/// `--memory` through tables either.
pub const MAX_TABLES: usize = 4;
pub const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// The budget where this machine's memory cannot be read (no `/proc/meminfo`).
pub const UNKNOWN_MEMORY_BUDGET: usize = 1 << 30;

/// Bytes a table element takes in wasmtime (a pointer, as its `ResourceLimiter` says).
const TABLE_ELEMENT_BYTES: usize = size_of::<usize>();

/// The bytes of linear memory and tables that all WebAssembly tasks of a node may hold
/// at once.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
    /// The most `used` has ever been: what tests check the invariant against.
    peak: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self { limit, used: AtomicUsize::new(0), peak: AtomicUsize::new(0) })
    }

    /// This machine's budget: half of its memory ([`crate::exec::memory::memory_mb`]), leaving the
    /// other half to the system, the node itself and any other runtimes (Python workers
    /// have their own cap); [`UNKNOWN_MEMORY_BUDGET`] where the memory cannot be read.
    pub fn host() -> Arc<Self> {
        Self::new(host_budget(crate::exec::memory::memory_mb()))
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes reserved by running tasks now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The most bytes ever reserved at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Acquire)
    }

    /// Reserves `bytes` if they fit; the sum never passes the limit, even for a moment.
    fn take(&self, bytes: usize) -> bool {
        let fits = |used: usize| used.checked_add(bytes).filter(|&n| n <= self.limit);
        match self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, fits) {
            Ok(before) => {
                self.peak.fetch_max(before + bytes, Ordering::AcqRel);
                true
            }
            Err(_) => false,
        }
    }

    fn give(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Half of `memory_mb` MiB, or [`UNKNOWN_MEMORY_BUDGET`] when it is 0 (unknown).
pub fn host_budget(memory_mb: u64) -> usize {
    if memory_mb == 0 {
        return UNKNOWN_MEMORY_BUDGET;
    }
    usize::try_from((memory_mb << 20) / 2).unwrap_or(usize::MAX)
}

/// Why a growth was refused, kept so the task's error can say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Past the task's own `--memory`; `asked` is the size it asked for.
    Task { asked: usize },
    /// Past what the node's budget had left: `others` bytes were held by other tasks.
    Host { asked: usize, others: usize },
}

/// One task's memory bounds and its reservation from the node's budget.
#[derive(Debug)]
pub struct Limits {
    max_memory: usize,
    budget: Arc<MemoryBudget>,
    /// Bytes held for the task's one linear memory: its size, or more while a growth that
    /// was allowed and then failed in wasmtime has not been given back.
    memory: usize,
    /// Bytes held for its tables' elements.
    tables: usize,
    /// The first refused growth.
    pub denied: Option<Denied>,
}

impl Limits {
    /// Bounds of a task that may have `max_memory` bytes of linear memory, drawn from
    /// `budget`.
    pub fn new(max_memory: usize, budget: Arc<MemoryBudget>) -> Self {
        Self { max_memory, budget, memory: 0, tables: 0, denied: None }
    }

    /// Takes `more` bytes from the budget for a growth to `desired` bytes, or records why
    /// not.
    fn reserve(&mut self, more: usize, desired: usize) -> bool {
        if self.budget.take(more) {
            return true;
        }
        let others = self.budget.used().saturating_sub(self.memory + self.tables);
        self.denied.get_or_insert(Denied::Host { asked: desired, others });
        false
    }
}

// wasmtime may call the `*_grow_failed` hooks without a growth having been allowed just
// before (a size its type cannot represent), so they give nothing back. What a failed
// growth of the memory reserved is given back at the next growth, which tells the real
// size, or when the task ends; a failed table growth's, when the task ends. So the
// reservation may be more than the task holds for a while, never less.
impl ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if self.memory > current {
            self.budget.give(self.memory - current);
            self.memory = current;
        }
        if desired > self.max_memory {
            self.denied.get_or_insert(Denied::Task { asked: desired });
            return Ok(false);
        }
        // Past the module's own maximum wasmtime refuses anyway: nothing to reserve.
        if maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        let more = desired.saturating_sub(self.memory);
        let ok = self.reserve(more, desired);
        if ok {
            self.memory += more;
        }
        Ok(ok)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS || maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        let more = desired.saturating_sub(current) * TABLE_ELEMENT_BYTES;
        let ok = self.reserve(more, desired * TABLE_ELEMENT_BYTES);
        if ok {
            self.tables += more;
        }
        Ok(ok)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        Ok(())
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        Ok(())
    }

    // One instance with one memory, so the memory limit is the task's limit; a few
    // tables, each bounded above.
    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

impl Drop for Limits {
    fn drop(&mut self) {
        self.budget.give(self.memory + self.tables);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn growths_reserve_and_a_dropped_task_gives_back() {
        let budget = MemoryBudget::new(10 * MIB);
        let mut a = Limits::new(16 * MIB, budget.clone());
        assert!(a.memory_growing(0, 6 * MIB, None).unwrap());
        assert!(a.memory_growing(6 * MIB, 7 * MIB, None).unwrap());
        let mut b = Limits::new(16 * MIB, budget.clone());
        assert!(!b.memory_growing(0, 4 * MIB, None).unwrap(), "7 + 4 is past 10");
        assert_eq!(b.denied, Some(Denied::Host { asked: 4 * MIB, others: 7 * MIB }));
        assert!(b.memory_growing(0, 3 * MIB, None).unwrap(), "7 + 3 fits");
        assert_eq!(budget.used(), 10 * MIB);
        drop(a);
        assert_eq!(budget.used(), 3 * MIB);
        assert!(Limits::new(16 * MIB, budget.clone()).memory_growing(0, 7 * MIB, None).unwrap());
        drop(b);
        assert_eq!((budget.used(), budget.peak()), (0, 10 * MIB));
    }

    #[test]
    fn a_failed_growth_and_tables_are_accounted() {
        let budget = MemoryBudget::new(10 * MIB);
        let mut a = Limits::new(16 * MIB, budget.clone());
        assert!(a.memory_growing(0, 2 * MIB, None).unwrap());
        assert!(a.memory_growing(2 * MIB, 5 * MIB, None).unwrap());
        a.memory_grow_failed(wasmtime::Error::msg("mmap")).unwrap();
        assert_eq!(budget.used(), 5 * MIB, "held until wasmtime tells the real size");
        assert!(a.memory_growing(2 * MIB, 3 * MIB, None).unwrap());
        assert_eq!(budget.used(), 3 * MIB, "the failed growth is given back");
        a.memory_grow_failed(wasmtime::Error::msg("a size the type cannot have")).unwrap();
        assert_eq!(budget.used(), 3 * MIB, "a failure of no allowed growth gives nothing back");
        assert!(!a.memory_growing(3 * MIB, 4 * MIB, Some(3 * MIB)).unwrap(), "past the module's maximum");
        assert_eq!(a.denied, None, "that is the module's own bound, not mesh's");
        assert!(a.table_growing(0, 1000, None).unwrap());
        assert_eq!(budget.used(), 3 * MIB + 1000 * TABLE_ELEMENT_BYTES);
        assert!(!a.memory_growing(3 * MIB, 17 * MIB, None).unwrap());
        assert_eq!(a.denied, Some(Denied::Task { asked: 17 * MIB }));
        drop(a);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn the_host_budget_is_half_the_memory() {
        assert_eq!(host_budget(1024), 512 * MIB);
        assert_eq!(host_budget(0), UNKNOWN_MEMORY_BUDGET);
    }
}
