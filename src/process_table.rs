//! Who is the parent? Process facts kept from exec (and fork/exit) events, for `process.parent.*`.
//!
//! Parent fields come from state, not from `/proc` at alert time: most short-lived parents are
//! gone from `/proc` by the time their child's exec is processed (linux-audit.md §7). Each pid
//! maps to its *current* image with a generation (exec serial or start time on Linux, pidversion
//! on macOS) so a reused pid never lends its facts to a stranger. The table is bounded: past
//! `capacity` the least recently used entries go, and dead processes are dropped after a grace
//! period (their children may still be in flight).
//!
//! Images that leave the table (replaced, evicted, pruned) and that no one else still holds can be
//! kept as spares ([`ProcessTable::keep_spares`]), so a source fills the next image into their
//! allocations instead of allocating a score of strings per exec.

use std::sync::Arc;

use crate::event::ProcessInfo;
use crate::id_hash::{id_map, IdMap};

/// Table limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most entries kept; the least recently used beyond this are evicted.
    pub capacity: usize,
    /// How long a process known to be dead stays resolvable (its children's events may lag).
    pub dead_grace_ns: i64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            capacity: 32_768,
            dead_grace_ns: 30_000_000_000,
        }
    }
}

/// Counters for the stats line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    pub entries: usize,
    pub evicted: u64,
    pub pruned: u64,
    pub hits: u64,
    pub misses: u64,
    /// Lookups answered by the fallback (e.g. `/proc`).
    pub fallbacks: u64,
}

#[derive(Debug)]
struct Entry {
    info: Arc<ProcessInfo>,
    generation: u64,
    last_used: u64,
    /// Event time at which the process was seen to end.
    dead_since: Option<i64>,
}

/// pid → current process image.
#[derive(Debug)]
pub struct ProcessTable {
    entries: IdMap<u32, Entry>,
    limits: Limits,
    clock: u64,
    stats: TableStats,
    /// Images gone from the table that no one else holds, for [`ProcessTable::take_spare`].
    spares: Vec<Arc<ProcessInfo>>,
    max_spares: usize,
    /// Scratch for eviction, kept so evicting does not allocate (it runs every capacity/8 inserts).
    ages: Vec<(u64, u32)>,
}

impl ProcessTable {
    pub fn new(limits: Limits) -> ProcessTable {
        ProcessTable {
            entries: id_map(),
            limits: Limits {
                capacity: limits.capacity.max(16),
                ..limits
            },
            clock: 0,
            stats: TableStats::default(),
            spares: Vec::new(),
            ages: Vec::new(),
            max_spares: 0,
        }
    }

    /// Keep images that leave the table, up to one eviction batch (an eighth of the capacity, so
    /// table and spares together stay within the capacity), for [`take_spare`](Self::take_spare).
    /// Off by default: only a source that takes spares should keep them.
    pub fn keep_spares(&mut self) {
        self.max_spares = self.limits.capacity / 8;
    }

    /// An image no one else holds (`Arc::get_mut` succeeds on it), whose allocations the caller
    /// may reuse for a new image after overwriting every field.
    ///
    /// Spares are the least recently used images, long out of the CPU caches, and filling one
    /// writes a dozen cache lines scattered over the heap. So each take also asks the CPU to fetch
    /// what the next takes will write, one pointer level per take: the image itself three takes
    /// ahead, its argument list, id and command-line buffers two ahead (their pointers are in the
    /// image fetched last time), and the argument strings one ahead.
    pub fn take_spare(&mut self) -> Option<Arc<ProcessInfo>> {
        loop {
            let mut spare = self.spares.pop()?;
            self.prefetch_next_spares();
            // Checked here, not when the image left the table: its reference counts were
            // prefetched takes ago, while on leaving they cost a cache miss per image.
            if Arc::get_mut(&mut spare).is_some() {
                return Some(spare);
            }
        }
    }

    fn prefetch_next_spares(&self) {
        let n = self.spares.len();
        if let Some(far) = n.checked_sub(3).and_then(|i| self.spares.get(i)) {
            // The reference counts sit just before the image: Arc::get_mut reads them.
            let counts = 2 * std::mem::size_of::<usize>();
            let image = Arc::as_ptr(far).cast::<u8>().wrapping_sub(counts);
            prefetch_bytes(image, counts + std::mem::size_of::<ProcessInfo>());
        }
        if let Some(near) = n.checked_sub(2).and_then(|i| self.spares.get(i)) {
            prefetch_bytes(
                near.args.as_ptr().cast(),
                near.args.len() * std::mem::size_of::<String>(),
            );
            prefetch_bytes(near.entity_id.as_ptr(), near.entity_id.len());
            prefetch_bytes(near.command_line.as_ptr(), near.command_line.len());
        }
        if let Some(next) = n.checked_sub(1).and_then(|i| self.spares.get(i)) {
            for arg in next.args.iter().take(MAX_PREFETCHED_ARGS) {
                prefetch_bytes(arg.as_ptr(), arg.len());
            }
        }
    }

    /// Keeps an image that left the table; whether someone else still holds it is asked when
    /// it is taken (see [`take_spare`](Self::take_spare)).
    fn spare(&mut self, info: Arc<ProcessInfo>) {
        if self.spares.len() < self.max_spares {
            self.spares.push(info);
        }
    }

    /// A process (re)started an image: it becomes the pid's current entry.
    pub fn insert(&mut self, info: Arc<ProcessInfo>, generation: u64) {
        self.clock += 1;
        let pid = info.pid;
        let replaced = self.entries.insert(
            pid,
            Entry {
                info,
                generation,
                last_used: self.clock,
                dead_since: None,
            },
        );
        if let Some(old) = replaced {
            self.spare(old.info);
        }
        if self.entries.len() > self.limits.capacity {
            self.evict_lru();
        }
    }

    /// A fork: the child runs its parent's image under a new pid until it execs.
    pub fn fork(
        &mut self,
        parent_pid: u32,
        parent_generation: Option<u64>,
        child_pid: u32,
        child_generation: u64,
        child_start_ns: Option<i64>,
    ) -> bool {
        let Some(parent) = self.get(parent_pid, parent_generation) else {
            return false;
        };
        let mut child = (*parent).clone();
        child.pid = child_pid;
        child.ppid = parent_pid;
        child.start_ns = child_start_ns.or(child.start_ns);
        self.insert(Arc::new(child), child_generation);
        true
    }

    /// The process ended at `time_ns`; it stays resolvable for the grace period.
    pub fn exit(&mut self, pid: u32, generation: Option<u64>, time_ns: i64) {
        if let Some(e) = self.entries.get_mut(&pid) {
            if generation.is_none_or(|g| g == e.generation) {
                e.dead_since.get_or_insert(time_ns);
            }
        }
    }

    /// The current image of `pid`; with `generation`, only if it is that one.
    pub fn get(&mut self, pid: u32, generation: Option<u64>) -> Option<Arc<ProcessInfo>> {
        self.clock += 1;
        match self.entries.get_mut(&pid) {
            Some(e) if generation.is_none_or(|g| g == e.generation) => {
                e.last_used = self.clock;
                self.stats.hits += 1;
                Some(Arc::clone(&e.info))
            }
            _ => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Like [`get`](Self::get), asking `fallback` on a miss (e.g. `/proc/<pid>`, trusted only when
    /// its start time is plausible) and remembering what it returns.
    pub fn get_or_fetch(
        &mut self,
        pid: u32,
        generation: Option<u64>,
        fallback: impl FnOnce(u32) -> Option<(ProcessInfo, u64)>,
    ) -> Option<Arc<ProcessInfo>> {
        if let Some(found) = self.get(pid, generation) {
            return Some(found);
        }
        let (info, generation) = fallback(pid)?;
        self.stats.fallbacks += 1;
        let info = Arc::new(info);
        self.insert(Arc::clone(&info), generation);
        Some(info)
    }

    /// Drops dead entries past their grace period, and entries whose pid `is_alive` denies
    /// (marking them dead now, so they too get the grace period). Call every few seconds.
    pub fn prune(&mut self, now_ns: i64, mut is_alive: impl FnMut(u32) -> bool) {
        let grace = self.limits.dead_grace_ns;
        let mut gone = Vec::new();
        for (&pid, e) in self.entries.iter_mut() {
            if e.dead_since.is_none() && !is_alive(pid) {
                e.dead_since = Some(now_ns);
            }
            if e.dead_since
                .is_some_and(|t| now_ns.saturating_sub(t) >= grace)
            {
                gone.push(pid);
            }
        }
        for pid in &gone {
            if let Some(e) = self.entries.remove(pid) {
                self.spare(e.info);
            }
        }
        self.stats.pruned += gone.len() as u64;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn stats(&self) -> TableStats {
        TableStats {
            entries: self.entries.len(),
            ..self.stats
        }
    }

    /// Evicts the least recently used eighth of the table at once, so eviction costs
    /// O(log n) per insert amortized instead of a scan per insert.
    fn evict_lru(&mut self) {
        let target = self.limits.capacity - self.limits.capacity / 8;
        let excess = self.entries.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        let mut ages = std::mem::take(&mut self.ages);
        ages.clear();
        ages.extend(self.entries.iter().map(|(&pid, e)| (e.last_used, pid)));
        ages.select_nth_unstable(excess - 1);
        for &(_, pid) in &ages[..excess] {
            if let Some(e) = self.entries.remove(&pid) {
                self.spare(e.info);
            }
        }
        self.ages = ages;
        self.stats.evicted += excess as u64;
    }
}

/// A full table holds tens of thousands of images scattered over the heap, each a handful of
/// allocations; freed in hash order nearly every free is a cache miss (a replay's end spent a
/// tenth of its time here). So the images are gathered and freed in address order (an image's
/// strings were mostly allocated with it, so neighbouring blocks are freed together, and the
/// allocator merges them with memory it just touched), each prefetched a few frees ahead: its
/// header farthest, its strings nearer, its arguments' text nearest.
impl Drop for ProcessTable {
    fn drop(&mut self) {
        let mut images = std::mem::take(&mut self.spares);
        images.extend(self.entries.drain().map(|(_, e)| e.info));
        images.sort_unstable_by_key(|image| std::cmp::Reverse(Arc::as_ptr(image) as usize));
        while let Some(image) = images.pop() {
            let n = images.len();
            if let Some(far) = n.checked_sub(DROP_AHEAD).and_then(|i| images.get(i)) {
                let counts = 2 * std::mem::size_of::<usize>();
                let header = Arc::as_ptr(far).cast::<u8>().wrapping_sub(counts);
                prefetch_bytes(header, counts + std::mem::size_of::<ProcessInfo>());
            }
            if let Some(near) = n.checked_sub(DROP_AHEAD / 2).and_then(|i| images.get(i)) {
                prefetch_allocation(near.args.as_ptr().cast(), 0);
                prefetch_allocation(near.entity_id.as_ptr(), 0);
                prefetch_allocation(near.command_line.as_ptr(), 0);
            }
            if let Some(next) = n.checked_sub(1).and_then(|i| images.get(i)) {
                for arg in next.args.iter().take(MAX_PREFETCHED_ARGS) {
                    prefetch_allocation(arg.as_ptr(), 0);
                }
            }
            drop(image);
        }
    }
}

/// How many images ahead of the one being freed [`ProcessTable`]'s drop prefetches.
const DROP_AHEAD: usize = 8;

/// Hint the CPU to bring in the start of a heap block and the allocator's size word just
/// before it, which `free` reads (`len` more bytes of the block, within [`prefetch_bytes`]'s
/// limit).
#[inline(always)]
fn prefetch_allocation(p: *const u8, len: usize) {
    let word = std::mem::size_of::<usize>();
    prefetch_bytes(p.wrapping_sub(word), len + word);
}

/// Arguments of a spare prefetched (most commands have a few; a long list is rare and costs
/// its misses like any other image would).
const MAX_PREFETCHED_ARGS: usize = 8;

/// Hint the CPU to bring `len` bytes at `p` into its caches (at most five lines: enough for an
/// image or a short string, not a flood for a long one). Only a hint: `p` is never dereferenced,
/// so any address, dangling or null, is harmless.
#[inline(always)]
fn prefetch_bytes(p: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let lines = (len + (p as usize & 63)).div_ceil(64).clamp(1, 5);
        for i in 0..lines {
            // SAFETY: PREFETCH is a hint that never faults and reads no data into the program;
            // SSE is part of the x86_64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(i * 64).cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, exe: &str) -> Arc<ProcessInfo> {
        let mut p = ProcessInfo {
            pid,
            executable: exe.into(),
            args: vec![exe.into()],
            ..Default::default()
        };
        p.derive_names();
        Arc::new(p)
    }

    #[test]
    fn generation_guards_against_pid_reuse() {
        let mut t = ProcessTable::new(Limits::default());
        t.insert(proc(10, "/bin/bash"), 1);
        assert_eq!(&*t.get(10, Some(1)).unwrap().name, "bash");
        assert!(t.get(10, Some(2)).is_none());
        t.insert(proc(10, "/usr/bin/python3"), 2);
        assert_eq!(&*t.get(10, None).unwrap().name, "python3");
        assert!(t.get(10, Some(1)).is_none());
    }

    #[test]
    fn fork_copies_the_parent_image() {
        let mut t = ProcessTable::new(Limits::default());
        t.insert(proc(10, "/bin/zsh"), 7);
        assert!(t.fork(10, Some(7), 11, 1, Some(5)));
        let child = t.get(11, Some(1)).unwrap();
        assert_eq!(
            (child.pid, child.ppid, &*child.name, child.start_ns),
            (11, 10, "zsh", Some(5))
        );
        assert!(!t.fork(99, None, 12, 1, None));
    }

    #[test]
    fn dead_parents_stay_for_the_grace_period() {
        let mut t = ProcessTable::new(Limits {
            capacity: 100,
            dead_grace_ns: 10,
        });
        t.insert(proc(10, "/bin/sh"), 1);
        t.insert(proc(11, "/bin/ls"), 1);
        t.exit(10, Some(1), 100);
        t.prune(105, |_| true);
        assert!(t.get(10, None).is_some(), "within grace");
        t.prune(110, |_| true);
        assert!(t.get(10, None).is_none(), "past grace");
        // pid 11 vanished without an exit event: pruning notices, then waits out the grace.
        t.prune(200, |pid| pid != 11);
        assert!(t.get(11, None).is_some());
        t.prune(211, |pid| pid != 11);
        assert!(t.get(11, None).is_none());
        assert_eq!(t.stats().pruned, 2);
    }

    #[test]
    fn bounded_with_lru_eviction() {
        let mut t = ProcessTable::new(Limits {
            capacity: 64,
            dead_grace_ns: 1,
        });
        t.insert(proc(1, "/sbin/init"), 1);
        for pid in 2..1000 {
            t.insert(proc(pid, "/bin/true"), 1);
            // Keep init hot: it is everybody's ancestor.
            assert!(t.get(1, None).is_some());
        }
        assert!(t.len() <= 64);
        assert!(t.get(999, None).is_some());
        assert!(t.get(2, None).is_none());
        assert!(t.stats().evicted >= 1000 - 64);
    }

    #[test]
    fn images_nobody_holds_become_spares_when_asked() {
        let mut t = ProcessTable::new(Limits {
            capacity: 64,
            dead_grace_ns: 10,
        });
        t.insert(proc(10, "/bin/sh"), 1);
        t.insert(proc(10, "/bin/ls"), 2);
        assert!(t.take_spare().is_none(), "off by default");

        t.keep_spares();
        t.insert(proc(10, "/bin/cat"), 3);
        let mut spare = t.take_spare().expect("the replaced image");
        assert_eq!(&*spare.name, "ls");
        assert!(Arc::get_mut(&mut spare).is_some(), "no one else holds it");
        assert!(t.take_spare().is_none());

        // Still held elsewhere (an event in flight): not a spare.
        let held = t.get(10, None).unwrap();
        t.insert(proc(10, "/bin/echo"), 4);
        assert!(t.take_spare().is_none());
        assert_eq!(&*held.name, "cat");

        // Pruned and evicted images, up to an eighth of the capacity.
        t.exit(10, None, 0);
        t.prune(100, |_| true);
        assert_eq!(
            t.take_spare().map(|p| p.name.clone()).as_deref(),
            Some("echo")
        );
        for pid in 100..200 {
            t.insert(proc(pid, "/bin/true"), 1);
        }
        assert!(t.stats().evicted > 8);
        let mut spares = 0;
        while t.take_spare().is_some() {
            spares += 1;
        }
        assert_eq!(spares, 64 / 8);
    }

    #[test]
    fn fallback_fills_misses_once() {
        let mut t = ProcessTable::new(Limits::default());
        let mut calls = 0;
        for _ in 0..3 {
            let got = t.get_or_fetch(5, None, |pid| {
                calls += 1;
                Some(((*proc(pid, "/usr/sbin/sshd")).clone(), 0))
            });
            assert_eq!(&*got.unwrap().name, "sshd");
        }
        assert_eq!(calls, 1);
        assert!(t.get_or_fetch(6, None, |_| None).is_none());
        assert_eq!(t.stats().fallbacks, 1);
    }

    #[test]
    fn dropping_the_table_frees_its_images_and_spares_but_not_held_ones() {
        let mut t = ProcessTable::new(Limits::default());
        t.keep_spares();
        let mut watched = Vec::new();
        for pid in 0..100 {
            let image = proc(pid, "/bin/sh");
            watched.push(Arc::downgrade(&image));
            t.insert(image, 1);
        }
        // pids 0..10 exec again: their first images become spares.
        for pid in 0..10 {
            let image = proc(pid, "/bin/true");
            watched.push(Arc::downgrade(&image));
            t.insert(image, 2);
        }
        let held = t.get(50, None).unwrap();
        drop(t);
        assert_eq!(&*held.name, "sh");
        let alive: Vec<_> = watched.iter().filter_map(|w| w.upgrade()).collect();
        assert_eq!(alive.len(), 1, "only the held image outlives the table");
        assert!(Arc::ptr_eq(&alive[0], &held));
    }
}
