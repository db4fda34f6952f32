//! The disk queue: one file per batch, oldest first, bounded in bytes.
//!
//! Each file is written to a temporary name, synced, then renamed, so a crash leaves either no
//! file or a whole one. A checksum header catches what a crash or a bad disk does to a file
//! afterwards (truncation, flipped bytes): such files move to `corrupt/` and are counted.

pub mod fs;
pub mod outbox;
mod set_aside;

use fs::Fs;
use set_aside::SetAside;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

const MAGIC: &str = "TQ1";
const BATCH_EXT: &str = ".batch";
const TMP_EXT: &str = ".tmp";
const REASON_EXT: &str = ".reason.txt";
/// Subfolder of the queue folder for damaged batch files.
pub const CORRUPT_DIR: &str = "corrupt";
/// Subfolder of the queue folder for batches the backend refused, each with its reason beside it.
pub const REJECTED_DIR: &str = "rejected";

/// Why the queue folder could not be used.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The folder or its subfolders could not be created or listed.
    #[error("cannot prepare the queue folder {path}: {source}")]
    Open {
        /// The queue folder.
        path: PathBuf,
        /// What the filesystem answered.
        source: io::Error,
    },
    /// A batch could not be stored: the disk is full or the folder read-only.
    #[error("cannot write to the queue folder {path} (disk full or read-only?): {source}")]
    Write {
        /// The queue folder.
        path: PathBuf,
        /// What the filesystem answered.
        source: io::Error,
    },
}

/// How much the queue folder may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of queued batches; past it the oldest are dropped.
    pub queued: u64,
    /// Bytes in `rejected/` and `corrupt/` together; past it the oldest there are removed.
    pub set_aside: u64,
}

impl Limits {
    /// No limit on either: nothing is ever dropped or removed for its size.
    pub const NONE: Limits = Limits { queued: u64::MAX, set_aside: u64::MAX };
}

/// What has happened to batches that were not delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Oldest batches removed to stay within the size limit.
    pub dropped: u64,
    /// Damaged files moved to `corrupt/`.
    pub corrupt: u64,
    /// Batches the backend refused, moved to `rejected/`.
    pub rejected: u64,
    /// Batches removed from `rejected/` or `corrupt/` to stay within their limit.
    pub set_aside_dropped: u64,
}

/// A queued batch: its place in the queue and the exact JSON body to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Its place in the queue: a later batch has a higher number.
    pub seq: u64,
    pub(crate) body: Vec<u8>,
}

/// The queue of one folder, on the filesystem `F`: batch files oldest first, beside the
/// subfolders for damaged and refused ones.
#[derive(Debug)]
pub struct DiskQueue<F: Fs> {
    fs: F,
    dir: PathBuf,
    max_bytes: u64,
    /// seq -> file size
    entries: BTreeMap<u64, u64>,
    total_bytes: u64,
    next_seq: u64,
    set_aside: SetAside,
    stats: QueueStats,
}

fn encode(body: &[u8]) -> Vec<u8> {
    let mut out = format!("{MAGIC} {}\n", hex::encode(Sha256::digest(body))).into_bytes();
    out.extend_from_slice(body);
    out
}

/// The body, if the header is intact and the checksum matches.
fn decode(data: &[u8]) -> Option<&[u8]> {
    let newline = data.iter().position(|b| *b == b'\n')?;
    let header = std::str::from_utf8(&data[..newline]).ok()?;
    let digest = header.strip_prefix(MAGIC)?.strip_prefix(' ')?;
    let body = &data[newline + 1..];
    (hex::encode(Sha256::digest(body)) == digest).then_some(body)
}

fn file_name(seq: u64, ext: &str) -> String {
    format!("{seq:020}{ext}")
}

impl<F: Fs> DiskQueue<F> {
    /// Opens (creating) the queue in `dir`, removing half-written temporary files, and trims
    /// what is set aside to its limit (which may have been lowered since the last run).
    pub fn open(fs: F, dir: &Path, limits: Limits) -> Result<Self, QueueError> {
        let open_err = |source| QueueError::Open { path: dir.to_owned(), source };
        for sub in [CORRUPT_DIR, REJECTED_DIR] {
            fs.create_dir_all(&dir.join(sub)).map_err(open_err)?;
        }
        let mut entries = BTreeMap::new();
        let mut total_bytes = 0;
        for name in fs.list(dir).map_err(open_err)? {
            if name.ends_with(TMP_EXT) {
                // A write that never reached its rename: the batch was never reported queued.
                let _ = fs.remove(&dir.join(&name));
            } else if let Some(seq) = name.strip_suffix(BATCH_EXT).and_then(|s| s.parse().ok()) {
                let size = fs.size(&dir.join(&name)).unwrap_or(0);
                entries.insert(seq, size);
                total_bytes += size;
            }
        }
        let mut set_aside = SetAside::scan(&fs, dir, limits.set_aside).map_err(open_err)?;
        // Numbers continue past those kept in corrupt/ and rejected/ too: restarting at 0 once
        // the queue is empty would give a later damaged or refused batch the name of an earlier
        // one and overwrite that evidence.
        let last = entries.keys().next_back().copied().max(set_aside.last_seq());
        let next_seq = last.map_or(0, |last| last + 1);
        let stats = QueueStats { set_aside_dropped: set_aside.trim(&fs), ..QueueStats::default() };
        Ok(Self {
            fs,
            dir: dir.to_owned(),
            max_bytes: limits.queued,
            entries,
            total_bytes,
            next_seq,
            set_aside,
            stats,
        })
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(file_name(seq, BATCH_EXT))
    }

    /// Stores a batch durably; then drops the oldest batches if the queue is over its limit.
    pub fn push(&mut self, body: &[u8]) -> Result<u64, QueueError> {
        let seq = self.next_seq;
        let data = encode(body);
        let tmp = self.dir.join(file_name(seq, TMP_EXT));
        let write =
            self.fs.write_synced(&tmp, &data).and_then(|()| self.fs.rename(&tmp, &self.path(seq)));
        if let Err(source) = write {
            let _ = self.fs.remove(&tmp);
            return Err(QueueError::Write { path: self.dir.clone(), source });
        }
        self.next_seq += 1;
        self.entries.insert(seq, data.len() as u64);
        self.total_bytes += data.len() as u64;
        while self.total_bytes > self.max_bytes && self.entries.len() > 1 {
            let Some((&oldest, _)) = self.entries.first_key_value() else { break };
            self.forget(oldest);
            self.stats.dropped += 1;
            tracing::error!(seq = oldest, "queue is full: dropped the oldest batch (data lost)");
        }
        Ok(seq)
    }

    /// The oldest intact batch; damaged files on the way are moved to `corrupt/`.
    pub fn oldest(&mut self) -> Option<Queued> {
        while let Some((&seq, _)) = self.entries.first_key_value() {
            match self.fs.read(&self.path(seq)) {
                Ok(data) => match decode(&data) {
                    Some(body) => return Some(Queued { seq, body: body.to_vec() }),
                    None => self.quarantine(seq, "checksum mismatch or truncated"),
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if let Some(size) = self.entries.remove(&seq) {
                        self.total_bytes -= size;
                    }
                }
                Err(e) => self.quarantine(seq, &e.to_string()),
            }
        }
        None
    }

    /// Delivered: the file goes.
    pub fn ack(&mut self, seq: u64) {
        self.forget(seq);
    }

    /// Refused by the backend: kept in `rejected/` with the reason beside it.
    pub fn reject(&mut self, seq: u64, reason: &str) {
        self.set_aside(seq, REJECTED_DIR, Some(reason));
        self.forget(seq);
        self.stats.rejected += 1;
    }

    fn quarantine(&mut self, seq: u64, why: &str) {
        if !self.set_aside(seq, CORRUPT_DIR, None) {
            let _ = self.fs.remove(&self.path(seq));
        }
        if let Some(size) = self.entries.remove(&seq) {
            self.total_bytes -= size;
        }
        self.stats.corrupt += 1;
        tracing::error!(seq, why, "a queued batch is damaged; moved to corrupt/ (data lost)");
    }

    /// Moves a queued batch's file into `folder` with its reason beside it, then makes room
    /// there; false if the file could not move.
    fn set_aside(&mut self, seq: u64, folder: &'static str, reason: Option<&str>) -> bool {
        let target = self.dir.join(folder).join(file_name(seq, BATCH_EXT));
        if self.fs.rename(&self.path(seq), &target).is_err() {
            return false;
        }
        let mut bytes = self.entries.get(&seq).copied().unwrap_or(0);
        if let Some(reason) = reason {
            let note = self.dir.join(folder).join(file_name(seq, REASON_EXT));
            if self.fs.write_synced(&note, reason.as_bytes()).is_ok() {
                bytes += reason.len() as u64;
            }
        }
        self.stats.set_aside_dropped += self.set_aside.add(&self.fs, seq, folder, bytes);
        true
    }

    fn forget(&mut self, seq: u64) {
        let _ = self.fs.remove(&self.path(seq));
        if let Some(size) = self.entries.remove(&seq) {
            self.total_bytes -= size;
        }
    }

    /// Batches queued, not counting those set aside.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No batch queued; those set aside do not count.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What was dropped, found damaged or refused since the queue was opened.
    pub fn stats(&self) -> QueueStats {
        self.stats
    }
}

#[cfg(test)]
mod tests;
