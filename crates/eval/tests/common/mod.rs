//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

mod fixture;
#[allow(unused_imports)] // Not every test binary reads a fixture.
pub use fixture::fixture;

/// The evaluation data: `MULTIRET_DATA`, else the repository's `data/`
/// ([`multiret_data::env_data_dir`]). Panics with a clear message when it is missing (the
/// real-data tests must not pass silently).
pub fn data_dir() -> PathBuf {
    let dir = multiret_data::env_data_dir();
    assert!(
        dir.join("xquad-r").is_dir() && dir.join("mlqa-r").is_dir(),
        "evaluation data not found: {} must hold xquad-r/ and mlqa-r/ (set MULTIRET_DATA to the \
         directory that does)",
        dir.display()
    );
    dir
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty temporary directory (removed when dropped).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!(
            "multiret-eval-test-{}-{}-{tag}-{n}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
