//! The table in a named shared-memory segment.
//!
//! Layout: a 128-byte header, then `capacity` cells of 16 bytes. All header fields are
//! little-endian:
//!
//! | offset | field |
//! |---|---|
//! | 0 | magic `ASRLTBL\0` |
//! | 8 | layout version (u32) |
//! | 12 | cell size (u32), 16 |
//! | 16 | cell alignment (u32), 16 |
//! | 20 | header size (u32), 128 |
//! | 24 | capacity (u64) |
//! | 32 | config fingerprint (u64): policies, rules and routes |
//! | 40 | hash seed (2 x u64) |
//! | 56 | layout hash (u64) of bytes 0..56 |
//!
//! A new segment is built under a temporary name and published with `link(2)`, which
//! fails if the name exists: no process ever maps a half-built segment, and of two
//! processes creating one at once, one wins and the other opens the winner's. Cells are
//! updated only by compare-and-swap, so nothing in the segment is ever locked, and a
//! process killed mid-update leaves every other count exact.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aisoule_ratelimit::{Cell, Config, Seed, CELL_SIZE};
use memmap2::MmapMut;

/// The first 8 bytes of a segment.
pub const MAGIC: [u8; 8] = *b"ASRLTBL\0";
/// The layout version this code reads and writes. It changes with anything that moves a
/// key's cell: the header, the cell, or where a fingerprint's probe sequence starts
/// (version 2: the rule tag mixed into the top byte of the fingerprint, not remixed by
/// a multiply; bit 8 of the fingerprint word holds bit 64 of the state).
pub const LAYOUT_VERSION: u32 = 2;
/// The header's size; cells start here (a multiple of the cell alignment).
pub const HEADER_BYTES: usize = 128;
const LAYOUT_HASH_AT: usize = 56;

/// Why a segment could not be opened. Nothing was written to an existing segment.
#[derive(Debug)]
#[non_exhaustive]
pub enum SharedError {
    /// A system call failed (missing directory, permission, read-only file system...).
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// The file does not start with the segment magic.
    NotASegment(PathBuf),
    /// The segment was written by another layout version.
    LayoutVersion {
        /// In the file.
        found: u32,
        /// This code's.
        expected: u32,
    },
    /// The segment's cells have another size or alignment.
    CellLayout {
        /// Size and alignment in the file.
        found: (u32, u32),
        /// This code's.
        expected: (u32, u32),
    },
    /// The segment has another number of cells than asked for.
    Capacity {
        /// In the file.
        found: u64,
        /// Asked for.
        expected: u64,
    },
    /// The segment was made for other policies or routes.
    Policies {
        /// The fingerprint in the file.
        found: u64,
        /// This config's.
        expected: u64,
    },
    /// The file is shorter or longer than its header says.
    Truncated {
        /// Bytes in the file.
        found: u64,
        /// Bytes the header implies.
        expected: u64,
    },
    /// The header's layout hash does not match its fields.
    Corrupt(PathBuf),
    /// A capacity of 0 or one whose segment would not fit the address space.
    InvalidCapacity(u64),
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SharedError::Io { op, path, source } => write!(f, "{}: cannot {op}: {source}", path.display()),
            SharedError::NotASegment(p) => write!(f, "{}: not a rate-limit table segment (bad magic)", p.display()),
            SharedError::LayoutVersion { found, expected } => {
                write!(f, "segment layout version {found}, this library reads version {expected}")
            }
            SharedError::CellLayout { found, expected } => write!(
                f,
                "segment cells are {} bytes aligned to {}, this library's are {} aligned to {}",
                found.0, found.1, expected.0, expected.1
            ),
            SharedError::Capacity { found, expected } => {
                write!(f, "segment has capacity {found}, this process asked for {expected}")
            }
            SharedError::Policies { found, expected } => write!(
                f,
                "segment was made for other policies or routes (config fingerprint {found:016x}, this process has {expected:016x})"
            ),
            SharedError::Truncated { found, expected } => {
                write!(f, "segment file is {found} bytes, its header implies {expected}")
            }
            SharedError::Corrupt(p) => write!(f, "{}: segment header is corrupt (layout hash mismatch)", p.display()),
            SharedError::InvalidCapacity(c) => write!(f, "capacity {c} is out of range (1 to 2^32 cells)"),
        }
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SharedError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A table mapped from a shared-memory segment (a file in `/dev/shm`, or any path).
#[derive(Debug)]
pub struct SharedTable {
    map: MmapMut,
    capacity: usize,
    seed: Seed,
    path: PathBuf,
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> SharedError + 'p {
    move |source| SharedError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn layout_hash(header: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x6173_726c_7368_6d31, 0x6c61_796f_7574_0001);
    h.write(&header[..LAYOUT_HASH_AT]);
    h.finish()
}

fn segment_bytes(capacity: u64) -> Option<u64> {
    capacity
        .checked_mul(CELL_SIZE as u64)?
        .checked_add(HEADER_BYTES as u64)
}

impl SharedTable {
    /// Opens the segment at `path`, or creates it (mode 0600) with `capacity` cells and a
    /// fresh seed from the operating system. `capacity: None` accepts an existing
    /// segment's capacity (and needs one to exist).
    ///
    /// # Errors
    ///
    /// A [`SharedError`] naming what differs (layout, capacity, policies), or the system
    /// error (missing directory, read-only path, ...). An existing segment is never
    /// modified by a failed open.
    pub fn open(
        path: impl AsRef<Path>,
        capacity: Option<u64>,
        config: &Config,
    ) -> Result<SharedTable, SharedError> {
        let path = path.as_ref();
        if let Some(c) = capacity {
            if c == 0 || c > 1 << 32 || segment_bytes(c).and_then(|b| usize::try_from(b).ok()).is_none() {
                return Err(SharedError::InvalidCapacity(c));
            }
        }
        loop {
            match OpenOptions::new().read(true).write(true).open(path) {
                Ok(file) => return Self::attach(file, path, capacity, config),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("open", path)(e)),
            }
            let Some(capacity) = capacity else {
                return Err(io_err("open", path)(io::Error::from(io::ErrorKind::NotFound)));
            };
            if let Some(table) = Self::create(path, capacity, config)? {
                return Ok(table);
            }
            // Another process published the segment first: open theirs.
        }
    }

    /// Builds a segment under a temporary name and links it into place. `None` when
    /// another process linked one first.
    fn create(path: &Path, capacity: u64, config: &Config) -> Result<Option<SharedTable>, SharedError> {
        let bytes = segment_bytes(capacity).ok_or(SharedError::InvalidCapacity(capacity))?;
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(format!(".tmp-{}-{}", std::process::id(), crate::monotonic_ns()));
        let tmp = PathBuf::from(tmp_name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        let result = (|| {
            file.set_len(bytes).map_err(io_err("size", &tmp))?;
            // SAFETY: the file was just created by this process under a unique name and
            // nobody else maps it; the mapping lives in the returned SharedTable.
            let mut map = unsafe { MmapMut::map_mut(&file) }.map_err(io_err("map", &tmp))?;
            let seed = crate::try_os_seed().map_err(io_err("seed (getrandom)", &tmp))?;
            let header = &mut map[..HEADER_BYTES];
            header[0..8].copy_from_slice(&MAGIC);
            header[8..12].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
            header[12..16].copy_from_slice(&(CELL_SIZE as u32).to_le_bytes());
            header[16..20].copy_from_slice(&(core::mem::align_of::<Cell>() as u32).to_le_bytes());
            header[20..24].copy_from_slice(&(HEADER_BYTES as u32).to_le_bytes());
            header[24..32].copy_from_slice(&capacity.to_le_bytes());
            header[32..40].copy_from_slice(&config.fingerprint().to_le_bytes());
            header[40..48].copy_from_slice(&seed.0[0].to_le_bytes());
            header[48..56].copy_from_slice(&seed.0[1].to_le_bytes());
            let hash = layout_hash(header);
            header[LAYOUT_HASH_AT..LAYOUT_HASH_AT + 8].copy_from_slice(&hash.to_le_bytes());
            // The cells are zero (an empty table): set_len fills with zeros.
            match std::fs::hard_link(&tmp, path) {
                Ok(()) => Ok(Some(SharedTable {
                    map,
                    capacity: capacity as usize,
                    seed,
                    path: path.to_owned(),
                })),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(io_err("publish (link)", path)(e)),
            }
        })();
        let _ = std::fs::remove_file(&tmp);
        result
    }

    fn attach(
        file: File,
        path: &Path,
        capacity: Option<u64>,
        config: &Config,
    ) -> Result<SharedTable, SharedError> {
        let len = file.metadata().map_err(io_err("stat", path))?.len();
        if len < HEADER_BYTES as u64 {
            return Err(SharedError::Truncated {
                found: len,
                expected: HEADER_BYTES as u64,
            });
        }
        // SAFETY: the mapping is only read through `&[u8]` here and through `Cell`'s
        // atomics later; other processes change the cells only with atomics too. A file
        // truncated under us is the remaining hazard of any file mapping: the size is
        // checked below, and segments are published whole by link(2).
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(io_err("map", path))?;
        let header = &map[..HEADER_BYTES];
        if header[0..8] != MAGIC {
            return Err(SharedError::NotASegment(path.to_owned()));
        }
        let version = u32_at(header, 8);
        if version != LAYOUT_VERSION {
            return Err(SharedError::LayoutVersion {
                found: version,
                expected: LAYOUT_VERSION,
            });
        }
        if layout_hash(header) != u64_at(header, LAYOUT_HASH_AT) {
            return Err(SharedError::Corrupt(path.to_owned()));
        }
        let cell = (u32_at(header, 12), u32_at(header, 16));
        let ours = (CELL_SIZE as u32, core::mem::align_of::<Cell>() as u32);
        if cell != ours || u32_at(header, 20) != HEADER_BYTES as u32 {
            return Err(SharedError::CellLayout {
                found: cell,
                expected: ours,
            });
        }
        let found_capacity = u64_at(header, 24);
        if let Some(expected) = capacity {
            if found_capacity != expected {
                return Err(SharedError::Capacity {
                    found: found_capacity,
                    expected,
                });
            }
        }
        let expected_len =
            segment_bytes(found_capacity).ok_or(SharedError::InvalidCapacity(found_capacity))?;
        if len != expected_len {
            return Err(SharedError::Truncated {
                found: len,
                expected: expected_len,
            });
        }
        let fingerprint = u64_at(header, 32);
        if fingerprint != config.fingerprint() {
            return Err(SharedError::Policies {
                found: fingerprint,
                expected: config.fingerprint(),
            });
        }
        let seed = Seed([u64_at(header, 40), u64_at(header, 48)]);
        let capacity =
            usize::try_from(found_capacity).map_err(|_| SharedError::InvalidCapacity(found_capacity))?;
        Ok(SharedTable {
            map,
            capacity,
            seed,
            path: path.to_owned(),
        })
    }

    /// The hash seed stored in the segment: every process sharing it must use this one.
    pub fn seed(&self) -> Seed {
        self.seed
    }

    /// The number of cells.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The segment's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AsRef<[Cell]> for SharedTable {
    fn as_ref(&self) -> &[Cell] {
        let base = self.map[HEADER_BYTES..].as_ptr();
        // SAFETY: the mapping is page-aligned and HEADER_BYTES is a multiple of 16, so
        // `base` is aligned for `Cell`; the file length was checked to be exactly
        // HEADER_BYTES + capacity * 16, so `capacity` cells lie inside the mapping; any
        // bit pattern is a valid `Cell` (one AtomicU128), and all mutation of this memory,
        // by this process or another, goes through `Cell`'s atomic operations; the slice
        // borrows `self`, which owns the mapping.
        unsafe { std::slice::from_raw_parts(base.cast::<Cell>(), self.capacity) }
    }
}
