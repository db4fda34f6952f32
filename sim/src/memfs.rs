//! An in-memory disk for the agent's queue that can "crash": after a chosen number of writes
//! every operation fails, with the interrupted one left half done (a partial temporary file, a
//! rename that did or did not happen). Memory makes thousands of fake agents cheap and keeps the
//! paused clock in charge, since nothing waits on a real disk.

use crate::numbered::Stamp;
use agent::queue::fs::Fs;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub(crate) struct MemFs(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    crashed: Notify,
}

#[derive(Debug)]
struct State {
    /// The queue folder; `*.batch` files directly in it are the queue.
    root: PathBuf,
    files: BTreeMap<PathBuf, Vec<u8>>,
    /// Writes left before the crash, when one is armed.
    crash_in: Option<u64>,
    crashed: bool,
    rng: fastrand::Rng,
    /// Readings that ever became a queued batch (renamed into the queue), so the crash scenario
    /// knows what was durably accepted.
    queued: Vec<u64>,
    max_queue_bytes: u64,
}

const BATCH: &str = ".batch";

fn crashed_error() -> io::Error {
    io::Error::other("simulated crash")
}

/// The reading inside a queue file (header line, then the JSON body).
fn reading_of(data: &[u8]) -> Option<u64> {
    let newline = data.iter().position(|b| *b == b'\n')?;
    Stamp::of(&data[newline + 1..]).ok().map(|s| s.seq)
}

/// How the interrupted operation ends: "done" or "not done", both as a crash.
enum Step {
    Normal,
    Crash,
}

impl MemFs {
    pub(crate) fn new(root: &Path, seed: u64) -> Self {
        Self(Arc::new(Shared {
            state: Mutex::new(State {
                root: root.to_owned(),
                files: BTreeMap::new(),
                crash_in: None,
                crashed: false,
                rng: fastrand::Rng::with_seed(seed),
                queued: Vec::new(),
                max_queue_bytes: 0,
            }),
            crashed: Notify::new(),
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The machine dies during the `writes`-th write from now.
    pub(crate) fn crash_after(&self, writes: u64) {
        self.state().crash_in = Some(writes.max(1));
    }

    /// Resolves once the armed crash has happened.
    pub(crate) async fn crashed(&self) {
        self.0.crashed.notified().await;
    }

    /// After the reboot: the disk works again, with whatever the crash left on it.
    pub(crate) fn reboot(&self) {
        let mut s = self.state();
        s.crashed = false;
        s.crash_in = None;
    }

    /// Truncates or flips a byte in one random queued file, as a bad disk would; returns the
    /// reading that file held.
    pub(crate) fn damage_one(&self) -> Option<u64> {
        let mut s = self.state();
        let root = s.root.clone();
        let batches: Vec<PathBuf> =
            s.files.keys().filter(|p| is_batch(&root, p)).cloned().collect();
        if batches.is_empty() {
            return None;
        }
        let path = batches[s.rng.usize(..batches.len())].clone();
        let truncate = s.rng.bool();
        let cut = s.rng.usize(..);
        let data = s.files.get_mut(&path)?;
        let seq = reading_of(data)?;
        if truncate {
            data.truncate(cut % data.len());
        } else {
            let at = cut % data.len();
            data[at] ^= 0x01;
        }
        Some(seq)
    }

    /// `*.batch` files in `dir`.
    pub(crate) fn count_batches(&self, dir: &Path) -> usize {
        let s = self.state();
        s.files.keys().filter(|p| is_batch(dir, p)).count()
    }

    pub(crate) fn queued_readings(&self) -> Vec<u64> {
        self.state().queued.clone()
    }

    pub(crate) fn max_queue_bytes(&self) -> u64 {
        self.state().max_queue_bytes
    }

    /// Counts a write towards the armed crash; fails once crashed.
    fn step(&self, s: &mut State) -> io::Result<Step> {
        if s.crashed {
            return Err(crashed_error());
        }
        match &mut s.crash_in {
            Some(1) => {
                s.crashed = true;
                s.crash_in = None;
                self.0.crashed.notify_one();
                Ok(Step::Crash)
            }
            Some(n) => {
                *n -= 1;
                Ok(Step::Normal)
            }
            None => Ok(Step::Normal),
        }
    }

    fn readable(s: &State) -> io::Result<()> {
        if s.crashed { Err(crashed_error()) } else { Ok(()) }
    }
}

fn is_batch(dir: &Path, path: &Path) -> bool {
    path.parent() == Some(dir) && path.to_string_lossy().ends_with(BATCH)
}

impl State {
    fn track_queue(&mut self) {
        let root = &self.root;
        let bytes: u64 =
            self.files.iter().filter(|(p, _)| is_batch(root, p)).map(|(_, d)| d.len() as u64).sum();
        self.max_queue_bytes = self.max_queue_bytes.max(bytes);
    }
}

impl Fs for MemFs {
    fn create_dir_all(&self, _: &Path) -> io::Result<()> {
        Self::readable(&self.state())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.state();
        Self::readable(&s)?;
        Ok(s.files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let s = self.state();
        Self::readable(&s)?;
        s.files.get(path).cloned().ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn write_synced(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut s = self.state();
        match self.step(&mut s)? {
            Step::Normal => {
                s.files.insert(path.to_owned(), data.to_vec());
                Ok(())
            }
            Step::Crash => {
                let cut = s.rng.usize(..=data.len());
                s.files.insert(path.to_owned(), data[..cut].to_vec());
                Err(crashed_error())
            }
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state();
        let step = self.step(&mut s)?;
        // A rename is atomic: the crash comes before or after it.
        if matches!(step, Step::Normal) || s.rng.bool() {
            let data = s.files.remove(from).ok_or(io::Error::from(io::ErrorKind::NotFound))?;
            if is_batch(&s.root, to)
                && let Some(seq) = reading_of(&data)
            {
                s.queued.push(seq);
            }
            s.files.insert(to.to_owned(), data);
            s.track_queue();
        }
        match step {
            Step::Normal => Ok(()),
            Step::Crash => Err(crashed_error()),
        }
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state();
        let step = self.step(&mut s)?;
        if matches!(step, Step::Normal) || s.rng.bool() {
            s.files.remove(path);
        }
        match step {
            Step::Normal => Ok(()),
            Step::Crash => Err(crashed_error()),
        }
    }

    fn size(&self, path: &Path) -> io::Result<u64> {
        self.read(path).map(|d| d.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent::queue::{DiskQueue, Limits};

    fn body(seq: u64) -> Vec<u8> {
        let stamp = format!(
            r#"{{"agent_id":"a","ts":"2026-01-01T00:00:00Z","platform":"linux","batch_id":"{seq}","events":[{{"type":"metric","cpu":0.1,"mem_free":1,"uptime_s":{seq}}}]}}"#
        );
        stamp.into_bytes()
    }

    #[test]
    fn a_crash_stops_everything_and_reboot_keeps_what_was_renamed() {
        let root = PathBuf::from("/q");
        let fs = MemFs::new(&root, 1);
        let mut q = DiskQueue::open(fs.clone(), &root, Limits::NONE).unwrap();
        q.push(&body(1)).unwrap();
        fs.crash_after(1);
        assert!(q.push(&body(2)).is_err());
        assert!(q.push(&body(3)).is_err(), "the disk must stay dead until the reboot");
        fs.reboot();
        let mut q = DiskQueue::open(fs.clone(), &root, Limits::NONE).unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(fs.queued_readings(), [1]);
        assert_eq!(
            reading_of(&fs.read(&root.join("00000000000000000000.batch")).unwrap()),
            Some(1)
        );
        assert!(q.oldest().is_some());
    }

    #[test]
    fn damage_is_detected_by_the_queue() {
        let root = PathBuf::from("/q");
        let fs = MemFs::new(&root, 3);
        let mut q = DiskQueue::open(fs.clone(), &root, Limits::NONE).unwrap();
        for seq in 1..=20 {
            q.push(&body(seq)).unwrap();
        }
        let damaged: Vec<u64> = (0..5).filter_map(|_| fs.damage_one()).collect();
        let distinct: std::collections::BTreeSet<_> = damaged.iter().collect();
        let mut delivered = 0;
        while let Some(item) = q.oldest() {
            q.ack(item.seq);
            delivered += 1;
        }
        assert_eq!(q.stats().corrupt as usize, distinct.len());
        assert_eq!(delivered + distinct.len(), 20);
        assert_eq!(fs.count_batches(&root.join("corrupt")), distinct.len());
    }
}
