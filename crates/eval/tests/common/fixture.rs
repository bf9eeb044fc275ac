//! The location of the reference fixtures, shared by the tests of several crates (the model's
//! tests include this file with `#[path]`).

use std::path::PathBuf;

/// A reference fixture file: in `MULTIRET_FIXTURES` (a directory), else in the repository's
/// `tests/fixtures/` (see its README). Panics with a clear message when it is missing (the
/// fixture tests must not pass silently).
pub fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("MULTIRET_FIXTURES")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // `crates/NAME/` -> the repository root (this file is compiled into several crates).
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures"))
        });
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "reference fixture not found: {} (set MULTIRET_FIXTURES to the directory that holds \
         {name})",
        path.display()
    );
    path
}
