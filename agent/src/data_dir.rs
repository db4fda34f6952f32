//! Where the agent keeps what it writes: the queue and the service's logs. On Windows that is
//! `%ProgramData%\telemetry-agent`, where a service may write and an upgrade of the executable
//! leaves it alone (beside an executable under Program Files, a service account may not write,
//! and an installer replaces the folder). Elsewhere it stays beside the executable.

use std::path::{Path, PathBuf};

/// The folder under `%ProgramData%`.
const FOLDER: &str = "telemetry-agent";

/// The default `DATA_DIR`: `%ProgramData%\telemetry-agent` on Windows (when the variable is
/// set; a service started by Windows has it), otherwise the executable's folder. `env` looks a
/// variable up.
pub(crate) fn default_data_dir(
    windows: bool,
    env: impl Fn(&str) -> Option<String>,
    exe_dir: Option<PathBuf>,
) -> PathBuf {
    let named = |key: &str| env(key).filter(|d| !d.is_empty());
    // ALLUSERSPROFILE is the same folder under its older name.
    let program_data = windows.then(|| named("ProgramData").or_else(|| named("ALLUSERSPROFILE")));
    let program_data = program_data.flatten();
    match program_data {
        Some(dir) => Path::new(&dir).join(FOLDER),
        None => exe_dir.unwrap_or_else(|| PathBuf::from(".")),
    }
}

/// The folder of the running executable.
pub(crate) fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe().ok()?.parent().map(Path::to_path_buf)
}

/// Agents before `DATA_DIR` kept their queue beside the executable. When the queue's place is
/// the default and holds nothing yet, an old queue there moves in, so an upgrade neither
/// strands batches nor sends them twice. Returns the folder moved, if one was.
pub fn adopt_old_queue(old: &Path, new: &Path) -> std::io::Result<Option<PathBuf>> {
    if old == new || !old.is_dir() || new.exists() {
        return Ok(None);
    }
    if let Some(parent) = new.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // A rename moves every file at once or none; across volumes it fails, and the old queue
    // stays where it is, to be named with QUEUE_PATH.
    std::fs::rename(old, new)?;
    Ok(Some(old.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_keeps_data_under_program_data_and_others_beside_the_executable() {
        let exe = Some(PathBuf::from("/opt/agent"));
        let env = |k: &str| (k == "ProgramData").then(|| "C:\\ProgramData".to_owned());
        assert_eq!(
            default_data_dir(true, env, exe.clone()),
            Path::new("C:\\ProgramData").join("telemetry-agent")
        );
        assert_eq!(default_data_dir(false, env, exe.clone()), PathBuf::from("/opt/agent"));
        assert_eq!(default_data_dir(true, |_| None, exe.clone()), PathBuf::from("/opt/agent"));
        assert_eq!(default_data_dir(true, |_| Some(String::new()), None), PathBuf::from("."));
        let older = |k: &str| (k == "ALLUSERSPROFILE").then(|| "D:\\Data".to_owned());
        assert_eq!(
            default_data_dir(true, older, None),
            Path::new("D:\\Data").join("telemetry-agent")
        );
    }

    #[test]
    fn an_old_queue_moves_in_whole_once_and_never_over_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("exe").join("queue");
        let new = dir.path().join("data").join("queue");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("00000001.json"), "{}").unwrap();
        assert_eq!(adopt_old_queue(&old, &new).unwrap(), Some(old.clone()));
        assert_eq!(std::fs::read_to_string(new.join("00000001.json")).unwrap(), "{}");
        assert!(!old.exists());
        // Nothing left to move, and a queue in place is never replaced.
        assert_eq!(adopt_old_queue(&old, &new).unwrap(), None);
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("00000002.json"), "{}").unwrap();
        assert_eq!(adopt_old_queue(&old, &new).unwrap(), None);
        assert!(old.join("00000002.json").exists() && !new.join("00000002.json").exists());
        assert_eq!(adopt_old_queue(&new, &new).unwrap(), None);
    }
}
