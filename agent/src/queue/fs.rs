//! The few filesystem operations the queue needs, behind a trait so that tests can inject
//! crashes, full disks and read-only folders at any step.

use std::io;
use std::path::Path;

/// The filesystem under the queue: [`StdFs`] in production, one with injected faults in tests
/// and the simulator.
pub trait Fs: Send + 'static {
    /// Creates `dir` and its parents; existing ones are fine.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// File names (not paths) in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Writes and flushes to stable storage (the data, not yet the name).
    fn write_synced(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    /// Atomic replace: after a crash either the old name or the new one exists, whole.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file; one that is already gone is not an error.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// The file's length in bytes.
    fn size(&self, path: &Path) -> io::Result<u64>;
}

/// The real filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

impl Fs for StdFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn write_synced(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(path)?;
        file.write_all(data)?;
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)?;
        // Persisting the new name is best effort: the rename has happened either way, and an
        // error here must not make the caller think the batch was not queued (it would be sent
        // and also kept, which is harmless, but the count would be wrong). Windows cannot open
        // a directory for syncing at all.
        #[cfg(unix)]
        if let Some(dir) = to.parent() {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn size(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }
}
