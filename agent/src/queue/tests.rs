use super::fs::{Fs, StdFs};
use super::*;
use proptest::prelude::*;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// An in-memory filesystem where every finished operation is durable, so "a crash" is simply
/// dropping the queue and opening it again; writes can be made to fail half-way.
#[derive(Debug, Clone, Default)]
struct MemFs {
    files: Arc<Mutex<HashMap<PathBuf, Vec<u8>>>>,
    fail_next_write: Arc<Mutex<bool>>,
    read_only: Arc<Mutex<bool>>,
}

impl MemFs {
    fn flip_byte(&self, path: &Path, at: usize) {
        let mut files = self.files.lock().unwrap();
        let data = files.get_mut(path).unwrap();
        let i = at % data.len();
        data[i] ^= 0x20;
    }
}

impl Fs for MemFs {
    fn create_dir_all(&self, _: &Path) -> io::Result<()> {
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let files = self.files.lock().unwrap();
        Ok(files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect())
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files.lock().unwrap().get(path).cloned().ok_or(io::ErrorKind::NotFound.into())
    }
    fn write_synced(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        if *self.read_only.lock().unwrap() {
            return Err(io::ErrorKind::PermissionDenied.into());
        }
        let mut fail = self.fail_next_write.lock().unwrap();
        if *fail {
            *fail = false;
            // The crash came in the middle of the write: half a temporary file remains.
            self.files.lock().unwrap().insert(path.to_owned(), data[..data.len() / 2].to_vec());
            return Err(io::Error::other("crashed mid-write"));
        }
        self.files.lock().unwrap().insert(path.to_owned(), data.to_vec());
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut files = self.files.lock().unwrap();
        let data = files.remove(from).ok_or(io::Error::from(io::ErrorKind::NotFound))?;
        files.insert(to.to_owned(), data);
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        if *self.read_only.lock().unwrap() {
            return Err(io::ErrorKind::PermissionDenied.into());
        }
        self.files.lock().unwrap().remove(path);
        Ok(())
    }
    fn size(&self, path: &Path) -> io::Result<u64> {
        self.read(path).map(|d| d.len() as u64)
    }
}

fn dir() -> PathBuf {
    PathBuf::from("/q")
}

#[test]
fn batches_come_back_oldest_first_and_survive_reopening() {
    let fs = MemFs::default();
    let mut q = DiskQueue::open(fs.clone(), &dir(), u64::MAX).unwrap();
    for body in ["a", "b", "c"] {
        q.push(body.as_bytes()).unwrap();
    }
    let first = q.oldest().unwrap();
    assert_eq!(first.body, b"a");
    q.ack(first.seq);
    drop(q);
    let mut q = DiskQueue::open(fs, &dir(), u64::MAX).unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(q.oldest().unwrap().body, b"b");
    // New batches sort after the old ones.
    let seq = q.push(b"d").unwrap();
    assert!(seq > q.oldest().unwrap().seq);
}

#[test]
fn the_oldest_are_dropped_to_stay_within_the_limit() {
    let per_file = encode(b"0123456789").len() as u64;
    let mut q = DiskQueue::open(MemFs::default(), &dir(), per_file * 3).unwrap();
    for i in 0..5u8 {
        q.push(&[b'0' + i; 10]).unwrap();
    }
    assert_eq!(q.len(), 3);
    assert!(q.bytes() <= per_file * 3);
    assert_eq!(q.stats().dropped, 2);
    assert_eq!(q.oldest().unwrap().body, [b'2'; 10]);
}

#[test]
fn damaged_files_are_counted_and_skipped() {
    let fs = MemFs::default();
    let mut q = DiskQueue::open(fs.clone(), &dir(), u64::MAX).unwrap();
    let a = q.push(b"{\"a\":1}").unwrap();
    let b = q.push(b"{\"b\":2}").unwrap();
    q.push(b"{\"c\":3}").unwrap();
    fs.flip_byte(&q.path(a), 80);
    let truncated = fs.read(&q.path(b)).unwrap()[..10].to_vec();
    fs.files.lock().unwrap().insert(q.path(b), truncated);
    assert_eq!(q.oldest().unwrap().body, b"{\"c\":3}");
    assert_eq!(q.stats().corrupt, 2);
    assert!(fs.read(&dir().join(CORRUPT_DIR).join(file_name(a, BATCH_EXT))).is_ok());
}

#[test]
fn a_crash_mid_write_leaves_nothing_half_queued() {
    let fs = MemFs::default();
    let mut q = DiskQueue::open(fs.clone(), &dir(), u64::MAX).unwrap();
    q.push(b"kept").unwrap();
    *fs.fail_next_write.lock().unwrap() = true;
    assert!(q.push(b"lost in the crash").is_err());
    drop(q);
    let mut q = DiskQueue::open(fs.clone(), &dir(), u64::MAX).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q.oldest().unwrap().body, b"kept");
    assert!(fs.list(&dir()).unwrap().iter().all(|n| !n.ends_with(TMP_EXT)));
}

#[test]
fn a_read_only_folder_is_an_error_not_a_panic() {
    let fs = MemFs::default();
    let mut q = DiskQueue::open(fs.clone(), &dir(), u64::MAX).unwrap();
    *fs.read_only.lock().unwrap() = true;
    let err = q.push(b"x").unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(q.is_empty());
}

#[test]
fn rejected_batches_keep_their_reason() {
    let fs = MemFs::default();
    let mut q = DiskQueue::open(fs.clone(), &dir(), u64::MAX).unwrap();
    let seq = q.push(b"bad").unwrap();
    q.reject(seq, "422: events must not be empty");
    assert!(q.is_empty());
    assert_eq!(q.stats().rejected, 1);
    let reason = fs.read(&dir().join(REJECTED_DIR).join(file_name(seq, ".reason.txt"))).unwrap();
    assert_eq!(reason, b"422: events must not be empty");
}

#[test]
fn set_aside_batches_are_not_overwritten_after_the_queue_empties() {
    let fs = MemFs::default();
    let mut q = DiskQueue::open(fs.clone(), &dir(), u64::MAX).unwrap();
    let first = q.push(b"first refused").unwrap();
    q.reject(first, "422 first");
    drop(q);
    // Empty queue, reopened: the next refused batch must get a name of its own.
    let mut q = DiskQueue::open(fs.clone(), &dir(), u64::MAX).unwrap();
    let second = q.push(b"second refused").unwrap();
    q.reject(second, "422 second");
    let rejected = dir().join(REJECTED_DIR);
    assert_eq!(
        fs.read(&rejected.join(file_name(first, BATCH_EXT))).unwrap(),
        encode(b"first refused")
    );
    assert_eq!(fs.list(&rejected).unwrap().len(), 4);
}

#[test]
fn a_vanished_file_gives_back_its_bytes() {
    let fs = MemFs::default();
    let mut q = DiskQueue::open(fs.clone(), &dir(), u64::MAX).unwrap();
    let seq = q.push(b"removed behind the queue's back").unwrap();
    fs.remove(&q.path(seq)).unwrap();
    assert_eq!(q.oldest(), None);
    assert_eq!(q.bytes(), 0);
}

#[test]
fn works_on_the_real_filesystem() {
    let tmp = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(StdFs, tmp.path(), u64::MAX).unwrap();
    let seq = q.push(b"{}").unwrap();
    drop(q);
    let mut q = DiskQueue::open(StdFs, tmp.path(), u64::MAX).unwrap();
    assert_eq!(q.oldest(), Some(Queued { seq, body: b"{}".to_vec() }));
    q.ack(seq);
    assert!(q.is_empty());
    assert!(tmp.path().join(REJECTED_DIR).is_dir() && tmp.path().join(CORRUPT_DIR).is_dir());
}

#[derive(Debug, Clone)]
enum Op {
    Push(u8),
    AckOldest,
    Crash,
    CrashMidWrite(u8),
    FlipByte(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u8>().prop_map(Op::Push),
        3 => Just(Op::AckOldest),
        1 => Just(Op::Crash),
        1 => any::<u8>().prop_map(Op::CrashMidWrite),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(i, at)| Op::FlipByte(i, at)),
    ]
}

proptest! {
    /// The queue against a model (a plain list): after any sequence of pushes, acks, crashes,
    /// crashes in the middle of a write and damaged files, it yields exactly the model's
    /// batches in order, and counts exactly the damaged ones.
    #[test]
    fn behaves_like_a_list_through_crashes_and_damage(ops in proptest::collection::vec(op(), 1..60)) {
        let fs = MemFs::default();
        let mut q = DiskQueue::open(fs.clone(), &dir(), u64::MAX).unwrap();
        let mut model: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
        let (mut corrupt_seen, mut flipped) = (0, 0);
        let mut counter = 0u32;
        for op in ops {
            match op {
                Op::Push(n) => {
                    counter += 1;
                    let body = format!("{{\"n\":{n},\"i\":{counter}}}").into_bytes();
                    let seq = q.push(&body).unwrap();
                    model.push_back((seq, body));
                }
                Op::AckOldest => {
                    let got = q.oldest();
                    prop_assert_eq!(got.as_ref().map(|g| &g.body), model.front().map(|m| &m.1));
                    if let Some(g) = got {
                        q.ack(g.seq);
                        model.pop_front();
                    }
                }
                Op::Crash => {
                    corrupt_seen += q.stats().corrupt;
                    q = DiskQueue::open(fs.clone(), &dir(), u64::MAX).unwrap();
                }
                Op::CrashMidWrite(n) => {
                    *fs.fail_next_write.lock().unwrap() = true;
                    prop_assert!(q.push(&[n]).is_err());
                    corrupt_seen += q.stats().corrupt;
                    q = DiskQueue::open(fs.clone(), &dir(), u64::MAX).unwrap();
                }
                Op::FlipByte(i, at) => {
                    if !model.is_empty() {
                        let (seq, _) = model.remove(i % model.len()).unwrap();
                        fs.flip_byte(&q.path(seq), at);
                        flipped += 1;
                    }
                }
            }
        }
        // Drain: exactly the model's batches, in order.
        while let Some(got) = q.oldest() {
            let (_, expected) = model.pop_front().expect("queue yielded more than the model");
            prop_assert_eq!(got.body, expected);
            q.ack(got.seq);
        }
        prop_assert!(model.is_empty());
        prop_assert_eq!(corrupt_seen + q.stats().corrupt, flipped);
    }
}
