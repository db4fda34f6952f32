//! The last Event Log record read of each channel, kept in the data folder, so that a restart
//! (an update, a reboot) reads on from there: nothing is lost and nothing sent twice.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Record ids by channel, and the file they are kept in.
#[derive(Debug)]
pub(crate) struct Bookmarks {
    path: PathBuf,
    ids: BTreeMap<String, u64>,
    /// What the file holds, so that a check that read nothing writes nothing.
    saved: BTreeMap<String, u64>,
}

#[cfg_attr(not(windows), allow(dead_code))]
impl Bookmarks {
    /// The bookmarks in `path`; none when it is missing, or damaged (said at WARN: entries
    /// written while the agent was stopped are then not sent).
    pub(crate) fn load(path: PathBuf) -> Self {
        let ids: BTreeMap<String, u64> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "ignoring damaged Event Log bookmarks");
                BTreeMap::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not read the Event Log bookmarks");
                BTreeMap::new()
            }
        };
        Self { path, saved: ids.clone(), ids }
    }

    /// The last record read of `channel`, if one was.
    pub(crate) fn get(&self, channel: &str) -> Option<u64> {
        self.ids.get(channel).copied()
    }

    pub(crate) fn set(&mut self, channel: &str, record_id: u64) {
        self.ids.insert(channel.to_owned(), record_id);
    }

    /// Writes the file when something changed: whole or not at all (a new file renamed over
    /// the old one).
    pub(crate) fn save(&mut self) -> std::io::Result<()> {
        if self.ids == self.saved {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temp = self.path.with_extension("json.tmp");
        std::fs::write(&temp, serde_json::to_vec_pretty(&self.ids)?)?;
        std::fs::rename(&temp, &self.path)?;
        self.saved = self.ids.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookmarks_survive_a_restart_and_damage_is_forgiven() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("event-log.json");
        let mut b = Bookmarks::load(path.clone());
        assert_eq!(b.get("System"), None);
        b.save().unwrap();
        assert!(!path.exists(), "nothing to keep yet");
        b.set("System", 48213);
        b.set("Application", 19233);
        b.save().unwrap();
        let again = Bookmarks::load(path.clone());
        assert_eq!((again.get("System"), again.get("Application")), (Some(48213), Some(19233)));
        let written = std::fs::metadata(&path).unwrap().modified().unwrap();
        let mut same = again;
        same.set("System", 48213);
        same.save().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), written);
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(Bookmarks::load(path).get("System"), None);
    }
}
