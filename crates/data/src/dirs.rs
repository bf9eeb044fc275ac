//! Where datasets and caches live.
//!
//! - The **data directory** holds one folder per named dataset (`xquad-r/`, `mlqa-r/`). Given
//!   explicitly (`--data-dir`, `MULTIRET_DATA`), it is the only place looked in. Otherwise a
//!   name is looked for in the repository's `data/` (located at compile time: this crate's
//!   manifest directory `/../../data`), then in `CACHE/data`; [`default_data_dir`] is the first
//!   of the two that exists (the repository's, in a checkout).
//! - The **cache directory** is `$MULTIRET_CACHE`, else `~/.cache/multiret`
//!   ([`default_cache_dir`]).

use std::ffi::OsString;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::error::{DataError, Result};

/// The environment variable naming the data directory (read by the command-line tools).
pub const DATA_ENV: &str = "MULTIRET_DATA";
/// The environment variable naming the cache directory.
pub const CACHE_ENV: &str = "MULTIRET_CACHE";

/// The repository's `data/`, as this crate was compiled (it may not exist at run time, e.g.
/// when the crate was built from a registry copy).
const REPOSITORY_DATA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data");

/// The cache directory: `$MULTIRET_CACHE` when set and non-empty, else `~/.cache/multiret`
/// (`./.cache/multiret` when `HOME` is unset).
pub fn default_cache_dir() -> PathBuf {
    cache_dir_from(std::env::var_os(CACHE_ENV), std::env::var_os("HOME"))
}

fn cache_dir_from(cache: Option<OsString>, home: Option<OsString>) -> PathBuf {
    if let Some(d) = cache.filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    home.map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache")
        .join("multiret")
}

/// The repository's `data/` directory (without `..` components), whether or not it exists.
pub fn repository_data_dir() -> PathBuf {
    normalize(Path::new(REPOSITORY_DATA_DIR))
}

/// The data directory inside the cache: [`default_cache_dir`]`/data`.
pub fn cache_data_dir() -> PathBuf {
    default_cache_dir().join("data")
}

/// The default data directory: the repository's `data/` when it exists, else
/// [`cache_data_dir`].
pub fn default_data_dir() -> PathBuf {
    let repo = repository_data_dir();
    if repo.is_dir() {
        repo
    } else {
        cache_data_dir()
    }
}

/// The data directory the environment asks for: `$MULTIRET_DATA` when set and non-empty, else
/// [`default_data_dir`]. For tools without a `--data-dir` option (examples, benches, tests).
pub fn env_data_dir() -> PathBuf {
    std::env::var_os(DATA_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(default_data_dir)
}

/// Why a directory was searched for a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDirOrigin {
    /// The data directory was given (`--data-dir`, `MULTIRET_DATA`, or by the caller).
    Given,
    /// The repository's `data/`.
    Repository,
    /// The data directory inside the cache (`MULTIRET_CACHE` or `~/.cache/multiret`).
    Cache,
}

impl fmt::Display for DataDirOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataDirOrigin::Given => "given by --data-dir or MULTIRET_DATA",
            DataDirOrigin::Repository => "the repository's data/",
            DataDirOrigin::Cache => "the cache's data/, under MULTIRET_CACHE or ~/.cache/multiret",
        })
    }
}

/// One place a dataset was looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchedDir {
    /// The dataset directory that was looked for (`DATA_DIR/NAME`).
    pub path: PathBuf,
    /// Which data directory it is in.
    pub origin: DataDirOrigin,
}

/// The places searched, for people: `A (why)`, `A (why) and B (why)`, `A (why), B (why), and
/// C (why)`.
#[derive(Debug, Clone, Copy)]
pub struct Searched<'a>(pub &'a [SearchedDir]);

impl fmt::Display for Searched<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(match (self.0.len(), i + 1 == self.0.len()) {
                    (2, _) => " and ",
                    (_, true) => ", and ",
                    _ => ", ",
                })?;
            }
            write!(f, "{} ({})", s.path.display(), s.origin)?;
        }
        Ok(())
    }
}

/// The data directories searched for a dataset name when the data directory is `data_dir`:
/// when it is one of the defaults ([`repository_data_dir`], [`cache_data_dir`]), both of them
/// (repository first); otherwise `data_dir` alone.
pub fn search_path(data_dir: &Path) -> Vec<(PathBuf, DataDirOrigin)> {
    let given = normalize(data_dir);
    let (repo, cache) = (repository_data_dir(), normalize(&cache_data_dir()));
    if given == repo || given == cache {
        let mut v = vec![(repo, DataDirOrigin::Repository)];
        if cache != v[0].0 {
            v.push((cache, DataDirOrigin::Cache));
        }
        v
    } else {
        vec![(data_dir.to_path_buf(), DataDirOrigin::Given)]
    }
}

/// The directory of dataset `name` (`xquad-r`, `mlqa-r`, ...) for the data directory
/// `data_dir`, looked for in every directory of [`search_path`].
///
/// Errors: [`DataError::InvalidName`] when `name` is not a plain directory name (a path, `.`,
/// `..`, empty); [`DataError::DatasetNotFound`] listing every place looked in when no such
/// directory exists.
pub fn dataset_dir(data_dir: &Path, name: &str) -> Result<PathBuf> {
    let p = Path::new(name);
    let plain = matches!(
        p.components().collect::<Vec<_>>().as_slice(),
        [Component::Normal(_)]
    );
    if !plain || name.contains(['/', '\\']) {
        return Err(DataError::InvalidName {
            name: name.to_string(),
        });
    }
    let mut searched = Vec::new();
    for (dir, origin) in search_path(data_dir) {
        let path = dir.join(name);
        if path.is_dir() {
            return Ok(path);
        }
        searched.push(SearchedDir { path, origin });
    }
    Err(DataError::DatasetNotFound {
        name: name.to_string(),
        searched,
    })
}

/// `path` with `.` components dropped and each `..` cancelling the component before it
/// (lexically: symbolic links are not resolved).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push(c);
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dir_precedence() {
        assert_eq!(
            cache_dir_from(Some("/c".into()), Some("/h".into())),
            PathBuf::from("/c")
        );
        assert_eq!(
            cache_dir_from(Some("".into()), Some("/h".into())),
            PathBuf::from("/h/.cache/multiret")
        );
        assert_eq!(
            cache_dir_from(None, None),
            PathBuf::from("./.cache/multiret")
        );
    }

    #[test]
    fn repository_data_is_found() {
        let repo = repository_data_dir();
        assert!(repo.ends_with("data"), "{}", repo.display());
        assert!(!repo.components().any(|c| c == Component::ParentDir));
        assert!(repo.join("xquad-r").is_dir() && repo.join("mlqa-r").is_dir());
        assert_eq!(default_data_dir(), repo);
        assert_eq!(
            dataset_dir(&default_data_dir(), "xquad-r").unwrap(),
            repo.join("xquad-r")
        );
    }

    #[test]
    fn normalizes_lexically() {
        assert_eq!(
            normalize(Path::new("/a/b/../c/./d")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(normalize(Path::new("../x/..")), PathBuf::from(".."));
    }

    #[test]
    fn missing_dataset_names_every_place() {
        let e = dataset_dir(&default_data_dir(), "no-such-set").unwrap_err();
        let DataError::DatasetNotFound { searched, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(searched[0].origin, DataDirOrigin::Repository);
        assert_eq!(searched.last().unwrap().origin, DataDirOrigin::Cache);
        let msg = e.to_string();
        assert!(
            msg.contains("no-such-set") && msg.contains("MULTIRET_DATA"),
            "{msg}"
        );
        assert!(msg.contains("repository") && msg.contains("cache"), "{msg}");

        let given = Path::new("/definitely/not/here");
        let e = dataset_dir(given, "xquad-r").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("/definitely/not/here/xquad-r") && msg.contains("--data-dir"),
            "{msg}"
        );
        assert!(!msg.contains("repository"), "{msg}");
    }

    #[test]
    fn names_must_be_plain() {
        for bad in ["", ".", "..", "a/b", "/abs", "a\\b"] {
            let e = dataset_dir(Path::new("/tmp"), bad).unwrap_err();
            assert!(matches!(e, DataError::InvalidName { .. }), "{bad}: {e}");
        }
    }
}
