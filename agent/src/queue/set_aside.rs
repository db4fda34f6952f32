//! `rejected/` and `corrupt/`: batches kept for a person to look at, bounded together in bytes so
//! that a backend refusing every batch for weeks, or a failing disk, cannot fill the disk. The
//! oldest go first, since the newest say best what is wrong now.

use super::fs::Fs;
use super::{BATCH_EXT, CORRUPT_DIR, REASON_EXT, REJECTED_DIR, file_name};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub(super) struct SetAside {
    root: PathBuf,
    max_bytes: u64,
    /// (seq, folder) -> bytes of that batch's files there
    entries: BTreeMap<(u64, &'static str), u64>,
    total_bytes: u64,
}

/// The batch a set-aside file belongs to: its batch file or the reason beside it.
fn seq_of(name: &str) -> Option<u64> {
    name.strip_suffix(BATCH_EXT).or_else(|| name.strip_suffix(REASON_EXT))?.parse().ok()
}

impl SetAside {
    /// What earlier runs left in both folders below `root`.
    pub(super) fn scan(fs: &impl Fs, root: &Path, max_bytes: u64) -> io::Result<Self> {
        let mut this =
            Self { root: root.to_owned(), max_bytes, entries: BTreeMap::new(), total_bytes: 0 };
        for folder in [CORRUPT_DIR, REJECTED_DIR] {
            let dir = root.join(folder);
            for name in fs.list(&dir)? {
                if let Some(seq) = seq_of(&name) {
                    this.insert(seq, folder, fs.size(&dir.join(&name)).unwrap_or(0));
                }
            }
        }
        Ok(this)
    }

    /// The highest number in either folder, so that a new batch never takes one of their names.
    pub(super) fn last_seq(&self) -> Option<u64> {
        self.entries.keys().next_back().map(|(seq, _)| *seq)
    }

    fn insert(&mut self, seq: u64, folder: &'static str, bytes: u64) {
        *self.entries.entry((seq, folder)).or_default() += bytes;
        self.total_bytes += bytes;
    }

    /// Counts a batch just moved into `folder`, then makes room; returns how many older ones
    /// were removed for it.
    pub(super) fn add(&mut self, fs: &impl Fs, seq: u64, folder: &'static str, bytes: u64) -> u64 {
        self.insert(seq, folder, bytes);
        self.trim(fs)
    }

    /// Removes the oldest until the folders are within their limit; returns how many went.
    pub(super) fn trim(&mut self, fs: &impl Fs) -> u64 {
        let mut removed = 0;
        while self.total_bytes > self.max_bytes {
            let Some(((seq, folder), bytes)) = self.entries.pop_first() else { break };
            self.total_bytes -= bytes;
            // A file that cannot be removed now is found again by the next start's scan.
            for ext in [BATCH_EXT, REASON_EXT] {
                let _ = fs.remove(&self.root.join(folder).join(file_name(seq, ext)));
            }
            removed += 1;
            tracing::error!(
                seq,
                folder,
                "set-aside batches over SET_ASIDE_MAX_MB: removed the oldest (data lost)"
            );
        }
        removed
    }
}
