//! Checkpoint directories, written atomically.
//!
//! A checkpoint is an HF and sentence-transformers directory ([`multiret_model::Model::save_hf_dir`]),
//! so `multiret eval --model DIR`, Python `transformers` and `sentence-transformers` load it; a resumable one also holds `optimizer.mpk` and
//! `trainer_state.json`. A directory is written whole under a hidden temporary name in the
//! same parent (`.NAME.tmp-PID-N`), its files synced, then renamed into place; an existing
//! directory of that name is first renamed aside (`.NAME.old-PID-N`) and removed after. A run
//! interrupted at any point leaves either the old directory or the new one under `NAME` (or,
//! between the two renames, the old one under its `.old` name, which [`recover`] puts back),
//! never a partial one; leftover temporary directories are removed by [`recover`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Result, TrainError};

/// File name of the training state inside a resumable checkpoint.
pub const STATE_FILE: &str = "trainer_state.json";
/// File name of the optimiser state inside a resumable checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.mpk";
/// Prefix of the periodic checkpoints (`checkpoint-STEP`).
pub const PERIODIC_PREFIX: &str = "checkpoint-";
/// The final checkpoint.
pub const FINAL_DIR: &str = "checkpoint";
/// The checkpoint with the best validation loss.
pub const BEST_DIR: &str = "best";
/// The merge of the final checkpoint with the starting model (`--merge-grid`).
pub const MERGED_DIR: &str = "merged";
/// The scores of every weight of the merge grid, and the one chosen.
pub const MERGE_FILE: &str = "merge.json";

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn sync_dir_files(dir: &Path) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| TrainError::io(dir, e))?;
        let p = entry.path();
        if p.is_file() {
            std::fs::File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| TrainError::io(&p, e))?;
        } else if p.is_dir() {
            sync_dir_files(&p)?;
            sync_dir(&p);
        }
    }
    Ok(())
}

/// Copies the files of directory `from` into `to`, subdirectories included (a model
/// directory's module folders), leaving out the top-level entries named in `skip`.
pub fn copy_dir(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    let rd = std::fs::read_dir(from).map_err(|e| TrainError::io(from, e))?;
    for e in rd {
        let e = e.map_err(|e| TrainError::io(from, e))?;
        if skip.iter().any(|s| e.file_name() == *s) {
            continue;
        }
        let src = e.path();
        let dst = to.join(e.file_name());
        if src.is_dir() {
            std::fs::create_dir_all(&dst).map_err(|err| TrainError::io(&dst, err))?;
            copy_dir(&src, &dst, &[])?;
        } else {
            std::fs::copy(&src, &dst).map_err(|err| TrainError::io(&dst, err))?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    // Best effort: persists the renames on file systems that need it.
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Writes directory `dest` atomically: `fill` writes the files into a fresh temporary
/// directory, which then replaces `dest` (see the module docs).
pub fn write_dir_atomic(dest: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| TrainError::checkpoint(dest, "not a directory name"))?;
    std::fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
    let tmp = parent.join(format!(".{name}.tmp-{}", unique()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    std::fs::create_dir(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    let filled = fill(&tmp).and_then(|()| sync_dir_files(&tmp));
    if let Err(e) = filled {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = parent.join(format!(".{name}.old-{}", unique()));
    let had_old = dest.exists();
    if had_old {
        std::fs::rename(dest, &old).map_err(|e| TrainError::io(dest, e))?;
    }
    if let Err(e) = std::fs::rename(&tmp, dest) {
        if had_old {
            let _ = std::fs::rename(&old, dest);
        }
        return Err(TrainError::io(dest, e));
    }
    sync_dir(parent);
    if had_old {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    }
    Ok(())
}

/// Cleans up after an interrupted write in `dir`: removes leftover temporary directories
/// (`.NAME.tmp-*`), and for each set-aside `.NAME.old-*` either puts it back (when `NAME` is
/// missing: the run stopped between the two renames) or removes it. Returns the paths removed
/// or restored.
pub fn recover(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut touched = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(touched);
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let Some(fname) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(rest) = fname.strip_prefix('.') else {
            continue;
        };
        if let Some((_, _)) = rest.rsplit_once(".tmp-") {
            if p.is_dir() {
                std::fs::remove_dir_all(&p).map_err(|e| TrainError::io(&p, e))?;
                touched.push(p);
            }
        } else if let Some((name, _)) = rest.rsplit_once(".old-") {
            if !p.is_dir() || name.is_empty() {
                continue;
            }
            let dest = dir.join(name);
            if dest.exists() {
                std::fs::remove_dir_all(&p).map_err(|e| TrainError::io(&p, e))?;
            } else {
                std::fs::rename(&p, &dest).map_err(|e| TrainError::io(&p, e))?;
            }
            touched.push(p);
        }
    }
    Ok(touched)
}

/// The periodic checkpoints in `dir` that hold a training state, sorted by step.
pub fn periodic_checkpoints(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(step) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PERIODIC_PREFIX))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let p = e.path();
        if p.join(STATE_FILE).is_file() {
            out.push((step, p));
        }
    }
    out.sort();
    out
}

/// Removes all but the newest `keep` periodic checkpoints.
pub fn prune(dir: &Path, keep: usize) -> Result<()> {
    let all = periodic_checkpoints(dir);
    let n = all.len().saturating_sub(keep);
    for (_, p) in &all[..n] {
        std::fs::remove_dir_all(p).map_err(|e| TrainError::io(p, e))?;
    }
    Ok(())
}

/// Writes `bytes` to `dir/name` (inside a directory being filled by [`write_dir_atomic`]).
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let p = dir.join(name);
    std::fs::write(&p, bytes).map_err(|e| TrainError::io(&p, e))
}
