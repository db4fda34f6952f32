//! The service's log file, bounded: past `LOG_MAX_MB` it is renamed `agent.1.log` (the older ones
//! move up a number) and a new one starts, so at most `LOG_FILES` files are ever kept. A service
//! runs for months; a log that only grows fills the system drive.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// How large each file may grow and how many are kept, the current one included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Bytes after which the current file is rotated.
    pub max_bytes: u64,
    /// Files kept: the current one and `files - 1` older ones.
    pub files: usize,
}

/// A log file that rotates itself; every write is one whole log line (tracing writes an event
/// at once), so lines are never split across files.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    limits: LogLimits,
    file: File,
    written: u64,
}

impl RotatingFile {
    /// Opens `path` for appending (creating its folder), counting what it already holds.
    pub fn open(path: &Path, limits: LogLimits) -> io::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        Ok(Self { path: path.to_owned(), limits, file, written })
    }

    /// `agent.log`'s `n`th older file: `agent.1.log`, `agent.2.log`, ...
    fn older(&self, n: usize) -> PathBuf {
        let stem = self.path.file_stem().unwrap_or_default().to_string_lossy();
        let name = match self.path.extension() {
            Some(ext) => format!("{stem}.{n}.{}", ext.to_string_lossy()),
            None => format!("{stem}.{n}"),
        };
        self.path.with_file_name(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        let oldest = self.limits.files.saturating_sub(1);
        if oldest == 0 {
            self.file.set_len(0)?;
        } else {
            remove_if_there(&self.older(oldest))?;
            for n in (1..oldest).rev() {
                rename_if_there(&self.older(n), &self.older(n + 1))?;
            }
            // Renamed while open: Rust opens files on Windows sharing delete access, which a
            // rename needs.
            rename_if_there(&self.path, &self.older(1))?;
            self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        }
        self.written = 0;
        Ok(())
    }
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename_if_there(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.limits.max_bytes {
            // A file held open by another program (a viewer, an antivirus scan) cannot be
            // renamed: the line goes on in the current file, and the next rotation is tried
            // after another `max_bytes`.
            if self.rotate().is_err() {
                self.written = 0;
            }
        }
        self.file.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    #[test]
    fn files_rotate_at_the_bound_and_only_so_many_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("agent.log");
        let limits = LogLimits { max_bytes: 20, files: 3 };
        let mut log = RotatingFile::open(&path, limits).unwrap();
        for i in 0..10 {
            // 10 bytes a line: two lines a file.
            log.write_all(format!("line {i:03}\n").as_bytes()).unwrap();
        }
        assert_eq!(lines(&path), ["line 008", "line 009"]);
        assert_eq!(lines(&dir.path().join("logs/agent.1.log")), ["line 006", "line 007"]);
        assert_eq!(lines(&dir.path().join("logs/agent.2.log")), ["line 004", "line 005"]);
        let kept = std::fs::read_dir(dir.path().join("logs")).unwrap().count();
        assert_eq!(kept, 3, "the oldest files are gone");
    }

    #[test]
    fn a_reopened_file_counts_what_it_holds_and_a_long_line_is_never_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        std::fs::write(&path, "from an earlier run\n").unwrap();
        let limits = LogLimits { max_bytes: 25, files: 2 };
        let mut log = RotatingFile::open(&path, limits).unwrap();
        log.write_all(b"next\n").unwrap();
        assert_eq!(lines(&path), ["from an earlier run", "next"]);
        let long = format!("{}\n", "x".repeat(60));
        log.write_all(long.as_bytes()).unwrap();
        assert_eq!(lines(&path), ["x".repeat(60)]);
        assert_eq!(lines(&dir.path().join("agent.1.log")), ["from an earlier run", "next"]);
    }

    #[test]
    fn one_file_is_emptied_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        let mut log = RotatingFile::open(&path, LogLimits { max_bytes: 10, files: 1 }).unwrap();
        for line in ["aaaaaaaa\n", "bbbbbbbb\n"] {
            log.write_all(line.as_bytes()).unwrap();
        }
        assert_eq!(lines(&path), ["bbbbbbbb"]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
