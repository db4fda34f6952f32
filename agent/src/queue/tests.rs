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

fn queued(bytes: u64) -> Limits {
    Limits { queued: bytes, ..Limits::NONE }
}

fn set_aside(bytes: u64) -> Limits {
    Limits { set_aside: bytes, ..Limits::NONE }
}

/// The bytes in `rejected/` and `corrupt/`, and the numbers of the batches there.
fn set_aside_on_disk(fs: &MemFs) -> (u64, Vec<u64>) {
    let (mut bytes, mut seqs) = (0, Vec::new());
    for sub in [REJECTED_DIR, CORRUPT_DIR] {
        for name in fs.list(&dir().join(sub)).unwrap() {
            bytes += fs.size(&dir().join(sub).join(&name)).unwrap();
            if let Some(seq) = name.strip_suffix(BATCH_EXT) {
                seqs.push(seq.parse().unwrap());
            }
        }
    }
    seqs.sort_unstable();
    (bytes, seqs)
}

#[test]
fn batches_come_back_oldest_first_and_survive_reopening() {
    let fs = MemFs::default();
    let mut q = DiskQueue::open(fs.clone(), &dir(), Limits::NONE).unwrap();
    for body in ["a", "b", "c"] {
        q.push(body.as_bytes()).unwrap();
    }
    let first = q.oldest().unwrap();
    assert_eq!(first.body, b"a");
    q.ack(first.seq);
    drop(q);
    let mut q = DiskQueue::open(fs, &dir(), Limits::NONE).unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(q.oldest().unwrap().body, b"b");
    // New batches sort after the old ones.
    let seq = q.push(b"d").unwrap();
    assert!(seq > q.oldest().unwrap().seq);
}

#[test]
fn the_oldest_are_dropped_to_stay_within_the_limit() {
    let per_file = encode(b"0123456789").len() as u64;
    let mut q = DiskQueue::open(MemFs::default(), &dir(), queued(per_file * 3)).unwrap();
    for i in 0..5u8 {
        q.push(&[b'0' + i; 10]).unwrap();
    }
    assert_eq!(q.len(), 3);
    assert!(q.total_bytes <= per_file * 3);
    assert_eq!(q.stats().dropped, 2);
    assert_eq!(q.oldest().unwrap().body, [b'2'; 10]);
}

#[test]
fn damaged_files_are_counted_and_skipped() {
    let fs = MemFs::default();
    let mut q = DiskQueue::open(fs.clone(), &dir(), Limits::NONE).unwrap();
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
    let mut q = DiskQueue::open(fs.clone(), &dir(), Limits::NONE).unwrap();
    q.push(b"kept").unwrap();
    *fs.fail_next_write.lock().unwrap() = true;
    assert!(q.push(b"lost in the crash").is_err());
    drop(q);
    let mut q = DiskQueue::open(fs.clone(), &dir(), Limits::NONE).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q.oldest().unwrap().body, b"kept");
    assert!(fs.list(&dir()).unwrap().iter().all(|n| !n.ends_with(TMP_EXT)));
}

#[test]
fn a_read_only_folder_is_an_error_not_a_panic() {
    let fs = MemFs::default();
    let mut q = DiskQueue::open(fs.clone(), &dir(), Limits::NONE).unwrap();
    *fs.read_only.lock().unwrap() = true;
    let err = q.push(b"x").unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(q.is_empty());
}

#[test]
fn rejected_batches_keep_their_reason() {
    let fs = MemFs::default();
    let mut q = DiskQueue::open(fs.clone(), &dir(), Limits::NONE).unwrap();
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
    let mut q = DiskQueue::open(fs.clone(), &dir(), Limits::NONE).unwrap();
    let first = q.push(b"first refused").unwrap();
    q.reject(first, "422 first");
    drop(q);
    // Empty queue, reopened: the next refused batch must get a name of its own.
    let mut q = DiskQueue::open(fs.clone(), &dir(), Limits::NONE).unwrap();
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
fn set_aside_batches_stay_within_their_limit_oldest_removed_first() {
    let fs = MemFs::default();
    let one = encode(b"refused 0").len() as u64 + "422 invalid".len() as u64;
    let mut q = DiskQueue::open(fs.clone(), &dir(), set_aside(one * 3)).unwrap();
    let damaged = q.push(b"damaged 9").unwrap();
    fs.flip_byte(&q.path(damaged), 70);
    let mut refused = Vec::new();
    for i in 0..5 {
        let seq = q.push(format!("refused {i}").as_bytes()).unwrap();
        let oldest = q.oldest().unwrap();
        assert_eq!(oldest.seq, seq);
        q.reject(seq, "422 invalid");
        refused.push(seq);
    }
    let (bytes, kept) = set_aside_on_disk(&fs);
    assert!(bytes <= one * 3, "{bytes} bytes kept, over the limit of {}", one * 3);
    assert_eq!(kept, refused[2..], "the newest are kept");
    assert_eq!((q.stats().rejected, q.stats().corrupt, q.stats().set_aside_dropped), (5, 1, 3));
    // Each reason went with its batch.
    assert_eq!(fs.list(&dir().join(REJECTED_DIR)).unwrap().len(), 2 * kept.len());
}

#[test]
fn a_lowered_limit_is_applied_when_the_queue_opens() {
    let fs = MemFs::default();
    let mut q = DiskQueue::open(fs.clone(), &dir(), Limits::NONE).unwrap();
    for body in ["a", "b", "c"] {
        let seq = q.push(body.as_bytes()).unwrap();
        q.reject(seq, "422 invalid");
    }
    drop(q);
    let one = encode(b"a").len() as u64 + "422 invalid".len() as u64;
    let q = DiskQueue::open(fs.clone(), &dir(), set_aside(one)).unwrap();
    assert_eq!(q.stats().set_aside_dropped, 2);
    assert_eq!(set_aside_on_disk(&fs), (one, vec![2]));
    // Numbering still continues past what was set aside.
    drop(q);
    let mut q = DiskQueue::open(fs, &dir(), set_aside(one)).unwrap();
    assert_eq!(q.push(b"d").unwrap(), 3);
}

#[test]
fn a_vanished_file_gives_back_its_bytes() {
    let fs = MemFs::default();
    let mut q = DiskQueue::open(fs.clone(), &dir(), Limits::NONE).unwrap();
    let seq = q.push(b"removed behind the queue's back").unwrap();
    fs.remove(&q.path(seq)).unwrap();
    assert_eq!(q.oldest(), None);
    assert_eq!(q.total_bytes, 0);
}

#[test]
fn works_on_the_real_filesystem() {
    let tmp = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(StdFs, tmp.path(), Limits::NONE).unwrap();
    let seq = q.push(b"{}").unwrap();
    drop(q);
    let mut q = DiskQueue::open(StdFs, tmp.path(), Limits::NONE).unwrap();
    assert_eq!(q.oldest(), Some(Queued { seq, body: b"{}".to_vec() }));
    q.ack(seq);
    assert!(q.is_empty());
    assert!(tmp.path().join(REJECTED_DIR).is_dir() && tmp.path().join(CORRUPT_DIR).is_dir());
}

#[derive(Debug, Clone)]
enum Op {
    Push(u8),
    AckOldest,
    RejectOldest,
    Crash,
    CrashMidWrite(u8),
    FlipByte(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u8>().prop_map(Op::Push),
        3 => Just(Op::AckOldest),
        1 => Just(Op::RejectOldest),
        1 => Just(Op::Crash),
        1 => any::<u8>().prop_map(Op::CrashMidWrite),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(i, at)| Op::FlipByte(i, at)),
    ]
}

/// Room for about two set-aside batches, so that the model check keeps removing some.
const SET_ASIDE_LIMIT: u64 = 200;

/// The counts of one life of the queue added to those of the earlier ones.
fn add(total: &mut QueueStats, life: QueueStats) {
    total.corrupt += life.corrupt;
    total.rejected += life.rejected;
    total.set_aside_dropped += life.set_aside_dropped;
}

proptest! {
    /// The queue against a model (a plain list): after any sequence of pushes, acks, refusals,
    /// crashes, crashes in the middle of a write and damaged files, it yields exactly the
    /// model's batches in order, counts exactly the damaged ones, and keeps `rejected/` and
    /// `corrupt/` within their limit, holding the newest of what was set aside.
    #[test]
    fn behaves_like_a_list_through_crashes_and_damage(ops in proptest::collection::vec(op(), 1..60)) {
        let fs = MemFs::default();
        let limits = set_aside(SET_ASIDE_LIMIT);
        let mut q = DiskQueue::open(fs.clone(), &dir(), limits).unwrap();
        let mut model: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
        let mut earlier = QueueStats::default();
        let mut flipped = 0;
        let mut set_aside_seqs = Vec::new();
        let mut counter = 0u32;
        for op in ops {
            match op {
                Op::Push(n) => {
                    counter += 1;
                    let body = format!("{{\"n\":{n},\"i\":{counter}}}").into_bytes();
                    let seq = q.push(&body).unwrap();
                    model.push_back((seq, body));
                }
                Op::AckOldest | Op::RejectOldest => {
                    let got = q.oldest();
                    prop_assert_eq!(got.as_ref().map(|g| &g.body), model.front().map(|m| &m.1));
                    if let Some(g) = got {
                        if matches!(op, Op::AckOldest) {
                            q.ack(g.seq);
                        } else {
                            q.reject(g.seq, "422 invalid");
                            set_aside_seqs.push(g.seq);
                        }
                        model.pop_front();
                    }
                }
                Op::Crash => {
                    add(&mut earlier, q.stats());
                    q = DiskQueue::open(fs.clone(), &dir(), limits).unwrap();
                }
                Op::CrashMidWrite(n) => {
                    *fs.fail_next_write.lock().unwrap() = true;
                    prop_assert!(q.push(&[n]).is_err());
                    add(&mut earlier, q.stats());
                    q = DiskQueue::open(fs.clone(), &dir(), limits).unwrap();
                }
                Op::FlipByte(i, at) => {
                    if !model.is_empty() {
                        let (seq, _) = model.remove(i % model.len()).unwrap();
                        fs.flip_byte(&q.path(seq), at);
                        flipped += 1;
                        set_aside_seqs.push(seq);
                    }
                }
            }
            let (bytes, _) = set_aside_on_disk(&fs);
            prop_assert!(bytes <= SET_ASIDE_LIMIT, "{} bytes set aside", bytes);
        }
        // Drain: exactly the model's batches, in order.
        while let Some(got) = q.oldest() {
            let (_, expected) = model.pop_front().expect("queue yielded more than the model");
            prop_assert_eq!(got.body, expected);
            q.ack(got.seq);
        }
        prop_assert!(model.is_empty());
        add(&mut earlier, q.stats());
        prop_assert_eq!(earlier.corrupt, flipped);
        // Batches are set aside oldest first, so what is kept is the newest of them.
        let (_, kept) = set_aside_on_disk(&fs);
        set_aside_seqs.sort_unstable();
        prop_assert_eq!(set_aside_seqs.len() as u64, earlier.corrupt + earlier.rejected);
        prop_assert_eq!(kept.len() as u64, set_aside_seqs.len() as u64 - earlier.set_aside_dropped);
        prop_assert_eq!(&kept[..], &set_aside_seqs[set_aside_seqs.len() - kept.len()..]);
    }
}
