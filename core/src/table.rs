//! The fixed table of cells, in memory the caller provides.
//!
//! A cell is 16 bytes: a 64-bit fingerprint of (key, policy, rule) and that rule's state,
//! updated together by one 128-bit compare-and-swap. The fingerprint's low byte names the
//! rule (1 + its index in the config; 0 marks an empty cell, 0xFF a cell given back), so
//! any process can tell whether another key's cell is neutral and may be reused. Bit 8 of
//! the fingerprint word is not the key's: it holds bit 64 of the state (a GCRA `tat` may
//! pass `u64::MAX` ns, see the `rule` module); the high 64 bits hold the rest.
//!
//! A key's cells live within [`PROBE_LIMIT`] cells of its home (linear probing). Cells
//! are never emptied again, only reused, so a lookup may stop at the first empty cell.

use crate::sync::{AtomicU128, Ordering};

/// How many cells from its home a key's cell may be. With 64, the first full-table
/// answer comes at about 60% load on a table of a million cells (measured), and a lookup
/// stops at the first empty cell, so the bound only costs time near full.
pub const PROBE_LIMIT: usize = 64;

const TAG_MASK: u64 = 0xff;
const TAG_EMPTY: u64 = 0;
const TAG_TOMB: u64 = 0xff;
/// A cell given back: reusable by any key, and (unlike an empty cell) not the end of a
/// probe sequence.
pub(crate) const WORD_TOMB: u128 = TAG_TOMB as u128;
/// The bit of the fingerprint word that holds bit 64 of the state.
const STATE_BIT_64: u64 = 1 << 8;

/// One table cell: a fingerprint and a rule state, in one 16-byte atomic word.
///
/// `#[repr(C)]`, 16-byte aligned, no pointers: a table can be a `static` array, a heap
/// block, or a shared-memory segment mapped at different addresses by several processes.
/// An all-zero cell is empty, so zeroed memory is a valid empty table.
#[repr(C, align(16))]
#[derive(Debug)]
pub struct Cell {
    /// Low 64 bits: the fingerprint; high 64 bits: the state.
    word: AtomicU128,
}

impl Cell {
    /// An empty cell.
    #[cfg(not(loom))]
    pub const fn new() -> Cell {
        Cell {
            word: AtomicU128::new(0),
        }
    }

    /// An empty cell.
    #[cfg(loom)]
    pub fn new() -> Cell {
        Cell {
            word: AtomicU128::new(0),
        }
    }

    /// The cell's two 64-bit halves, read atomically (for inspection and tests): the
    /// fingerprint word (rule tag in the low byte, bit 8 the state's bit 64) and the low
    /// 64 bits of the state.
    pub fn load(&self) -> (u64, u64) {
        let w = self.word.load(Ordering::Acquire);
        (w as u64, (w >> 64) as u64)
    }

    #[inline]
    pub(crate) fn word(&self) -> u128 {
        self.word.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn swap_word(&self, current: u128, new: u128) -> Result<u128, u128> {
        self.word
            .compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
    }
}

impl Default for Cell {
    fn default() -> Self {
        Cell::new()
    }
}

/// The size of one cell in bytes (16).
pub const CELL_SIZE: usize = core::mem::size_of::<Cell>();

/// The cell word of fingerprint `fp` (bit 8 clear) and `state` (below 2^65).
pub(crate) const fn word(fp: u64, state: u128) -> u128 {
    let high = ((state >> 64) as u64 & 1) * STATE_BIT_64;
    ((state as u64 as u128) << 64) | (fp | high) as u128
}

/// The fingerprint of a cell word (bit 8, the state's, cleared).
pub(crate) const fn fp_of(w: u128) -> u64 {
    w as u64 & !STATE_BIT_64
}

/// The state of a cell word.
pub(crate) const fn state_of(w: u128) -> u128 {
    (w >> 64) | (((w as u64 & STATE_BIT_64) as u128) << (64 - 8))
}

/// The rule tag of a fingerprint: `Some(rule slot)` for a live cell.
pub(crate) fn rule_slot(fp: u64) -> Option<usize> {
    match fp & TAG_MASK {
        TAG_EMPTY | TAG_TOMB => None,
        t => Some(t as usize - 1),
    }
}

/// A fingerprint for a key hash and a rule slot (`slot < 254`): 55 bits of the hash, bit 8
/// left for the state, the rule tag in the low byte.
pub(crate) const fn fingerprint(key_hash: u64, slot: usize) -> u64 {
    (key_hash & !(TAG_MASK | STATE_BIT_64)) | (slot as u64 + 1)
}

/// The first cell of a fingerprint's probe sequence.
pub(crate) fn home(fp: u64, capacity: usize) -> usize {
    // The fingerprint's high bits are the key hash's, uniform: their multiply-high with the
    // capacity is the home. The rule tag (the low byte) is mixed into the top byte, so one
    // key's rules start in different places. Five cycles shorter than a remix by multiply
    // and xor-shift, and the home is on every check's critical path. Changing it moves
    // every cell: `LAYOUT_VERSION` of shared segments counts it.
    let mixed = fp ^ (fp << 56);
    ((mixed as u128 * capacity as u128) >> 64) as usize
}

/// The cell after `index`, wrapping (no division on the probe path).
#[inline]
fn next(index: usize, cap: usize) -> usize {
    if index + 1 == cap {
        0
    } else {
        index + 1
    }
}

/// Where a fingerprint is, or where it could go.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Slot {
    /// The key's cell, and the word it held.
    Found { index: usize, word: u128 },
    /// No cell for the key; the first empty, given-back or neutral cell and its word.
    Vacant { index: usize, word: u128 },
    /// No cell for the key, and nowhere to put one.
    Full,
}

/// Looks `fp` up in `cells`; `neutral(fp, state)` says whether another key's cell may be
/// reused. Cells in `taken` (already chosen for the other rules of the same request) are
/// never offered as vacant, and an empty one there does not end the probe: two rules of
/// one request must never aim their compare-and-swap at the same cell, or the second
/// always fails, the first is undone, and the request retries forever.
// Inlined on 64-bit targets: returned through memory, the slot was written with 8-byte
// stores and copied out with 16-byte loads, which stall on store-to-load forwarding
// (about 11 ns of a two-rule check). On a microcontroller the flash matters more.
#[cfg_attr(target_pointer_width = "64", inline(always))]
pub(crate) fn find(cells: &[Cell], fp: u64, neutral: &impl Fn(u64, u128) -> bool, taken: &[usize]) -> Slot {
    let cap = cells.len();
    if cap == 0 {
        return Slot::Full;
    }
    let start = home(fp, cap);
    let probe = PROBE_LIMIT.min(cap);
    // First pass: the key's own cell, up to the first empty cell. Whether another key's
    // cell is neutral (a rule's arithmetic) is only asked when the key has no cell, in
    // the second pass: a key found after passing other keys' cells pays nothing for them.
    let mut index = start;
    let mut vacant: Option<(usize, u128)> = None;
    let mut end = probe;
    for step in 0..probe {
        let w = cells[index].word();
        let f = fp_of(w);
        if f == fp {
            return Slot::Found { index, word: w };
        }
        if !taken.contains(&index) {
            match f & TAG_MASK {
                TAG_EMPTY => {
                    end = step;
                    vacant = Some((index, w));
                    break;
                }
                TAG_TOMB if vacant.is_none() => vacant = Some((index, w)),
                _ => {}
            }
        }
        index = next(index, cap);
    }
    // Second pass: the first given-back or neutral cell before that point, in probe order.
    let mut index = start;
    for _ in 0..end {
        if let Some((v, _)) = vacant {
            if v == index {
                break;
            }
        }
        if !taken.contains(&index) {
            let w = cells[index].word();
            let f = fp_of(w);
            let reusable = match f & TAG_MASK {
                TAG_EMPTY | TAG_TOMB => true,
                _ => f != fp && neutral(f, state_of(w)),
            };
            if reusable {
                return Slot::Vacant { index, word: w };
            }
        }
        index = next(index, cap);
    }
    match vacant {
        Some((index, word)) => Slot::Vacant { index, word },
        None => Slot::Full,
    }
}

/// After claiming a cell for `fp`, folds any other cell claimed for the same key at the
/// same time into the first one in probe order, so a key never counts in two places.
/// `merge(a, b)` folds two states of the key.
pub(crate) fn fold_duplicates(cells: &[Cell], fp: u64, merge: &impl Fn(u128, u128) -> u128) {
    let cap = cells.len();
    let start = home(fp, cap);
    let mut first: Option<usize> = None;
    for off in 0..PROBE_LIMIT.min(cap) {
        let index = (start + off) % cap;
        let mut w = cells[index].word();
        if fp_of(w) & TAG_MASK == TAG_EMPTY {
            return;
        }
        if fp_of(w) != fp {
            continue;
        }
        let Some(keep) = first else {
            first = Some(index);
            continue;
        };
        // Give this duplicate back, then add what it held to the first cell.
        let stolen = loop {
            if fp_of(w) != fp {
                break None;
            }
            match cells[index].swap_word(w, WORD_TOMB) {
                Ok(_) => break Some(state_of(w)),
                Err(now) => w = now,
            }
        };
        let Some(stolen) = stolen else { continue };
        let mut k = cells[keep].word();
        while fp_of(k) == fp {
            let merged = word(fp, merge(state_of(k), stolen));
            match cells[keep].swap_word(k, merged) {
                Ok(_) => break,
                Err(now) => k = now,
            }
        }
    }
}
