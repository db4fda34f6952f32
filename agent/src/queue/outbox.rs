//! The disk queue plus a small memory fallback for when the disk cannot be written (full or
//! read-only): the agent goes on collecting and sending, and says what it could not keep.

use super::fs::Fs;
use super::{DiskQueue, QueueStats};
use std::collections::VecDeque;

/// Batches kept in memory at most while the disk refuses writes.
pub(crate) const MEMORY_FALLBACK: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    Disk(u64),
    Memory(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    pub(crate) key: Key,
    pub(crate) body: Vec<u8>,
}

/// What the agent delivers from: the disk queue, and the memory fallback while the disk refuses
/// writes.
#[derive(Debug)]
pub struct Outbox<F: Fs> {
    disk: DiskQueue<F>,
    memory: VecDeque<(u64, Vec<u8>)>,
    next_memory: u64,
    /// Batches dropped from the memory fallback: neither on disk nor delivered.
    pub(crate) lost: u64,
    disk_failing: bool,
}

impl<F: Fs> Outbox<F> {
    /// An outbox on `disk`, with an empty memory fallback.
    pub fn new(disk: DiskQueue<F>) -> Self {
        Self { disk, memory: VecDeque::new(), next_memory: 0, lost: 0, disk_failing: false }
    }

    pub(crate) fn push(&mut self, body: Vec<u8>) {
        match self.disk.push(&body) {
            Ok(_) => {
                if self.disk_failing {
                    self.disk_failing = false;
                    tracing::info!("the queue folder is writable again");
                }
            }
            Err(e) => {
                if !self.disk_failing {
                    self.disk_failing = true;
                    tracing::warn!(error = %e, "keeping batches in memory until the queue folder can be written");
                }
                self.memory.push_back((self.next_memory, body));
                self.next_memory += 1;
                if self.memory.len() > MEMORY_FALLBACK {
                    self.memory.pop_front();
                    self.lost += 1;
                    tracing::error!("memory fallback full: dropped the oldest batch (data lost)");
                }
            }
        }
    }

    /// Disk batches first: they are older than anything held in memory since the disk failed.
    pub(crate) fn oldest(&mut self) -> Option<Item> {
        if let Some(q) = self.disk.oldest() {
            return Some(Item { key: Key::Disk(q.seq), body: q.body });
        }
        self.memory.front().map(|(id, body)| Item { key: Key::Memory(*id), body: body.clone() })
    }

    pub(crate) fn ack(&mut self, key: Key) {
        match key {
            Key::Disk(seq) => self.disk.ack(seq),
            Key::Memory(id) => self.memory.retain(|(m, _)| *m != id),
        }
    }

    pub(crate) fn reject(&mut self, key: Key, reason: &str) {
        match key {
            Key::Disk(seq) => self.disk.reject(seq, reason),
            Key::Memory(id) => {
                self.memory.retain(|(m, _)| *m != id);
                self.lost += 1;
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.disk.len() + self.memory.len()
    }

    pub(crate) fn stats(&self) -> QueueStats {
        self.disk.stats()
    }
}
