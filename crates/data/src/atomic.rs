//! The one atomic file writer of the workspace.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{DataError, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temporary sibling `path` is written through: `.NAME.tmp-PID-N` in the same directory
/// (so the final rename stays on one file system), unique within the process.
fn tmp_sibling(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Writes `bytes` to `path` atomically: the parent directory is created if needed, the bytes
/// go to a temporary sibling (`.NAME.tmp-PID-N`), which is synced to disk and then renamed
/// over `path`. A reader (or a crash) sees the old content or the new one, never a part of
/// it; on failure the temporary file is removed and `path` is left as it was.
///
/// Errors: [`DataError::BadFile`] when `path` has no file name (`/`, `..`);
/// [`DataError::Io`] naming the directory, the temporary file or `path`, whichever failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let Some(name) = path.file_name() else {
        return Err(DataError::bad_file(path, "not a file path (no file name)"));
    };
    let name = name.to_string_lossy();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let tmp = tmp_sibling(dir, &name);
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(DataError::io(&tmp, e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(DataError::io(path, e));
    }
    // Best effort: persists the rename on file systems that need the directory synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "multiret-data-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn writes_replaces_and_leaves_no_temporary() {
        let dir = temp_dir("atomic");
        let p = dir.join("sub/x.bin");
        write_atomic(&p, b"one").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"two!").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two!");
        let names: Vec<_> = std::fs::read_dir(dir.join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x.bin"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_name_the_path() {
        let dir = temp_dir("atomic-err");
        // The target is a non-empty directory: the rename fails, the old content stays.
        let p = dir.join("d");
        std::fs::create_dir_all(p.join("inside")).unwrap();
        let e = write_atomic(&p, b"x").unwrap_err();
        assert!(matches!(e, DataError::Io { .. }), "{e}");
        assert!(e.to_string().contains(&*p.to_string_lossy()), "{e}");
        assert!(p.join("inside").is_dir());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // A parent that is a file.
        let f = dir.join("f");
        std::fs::write(&f, b"").unwrap();
        let e = write_atomic(&f.join("x"), b"x").unwrap_err();
        assert!(e.to_string().contains(&*f.to_string_lossy()), "{e}");
        let e = write_atomic(Path::new("/"), b"x").unwrap_err();
        assert!(matches!(e, DataError::BadFile { .. }), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
