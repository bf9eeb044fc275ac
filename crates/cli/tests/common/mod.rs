//! Helpers of the command-line tests: they run the built `multiret` binary.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The evaluation tests' helpers: the data directory, the fixtures, temporary directories.
#[path = "../../../eval/tests/common/mod.rs"]
mod eval_common;
#[allow(unused_imports)] // Not every test binary uses each.
pub use eval_common::{data_dir, fixture, TempDir};

/// The `multiret` binary with `args`, in an environment that cannot fetch a model (a bogus
/// `MULTIRET_PYTHON`: a test that needs none must not download one) and without the user's
/// embedding cache.
pub fn multiret(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_multiret"));
    cmd.args(args)
        .env("MULTIRET_PYTHON", "/nonexistent/multiret-test-python")
        .env_remove("MULTIRET_EMBED_CACHE");
    cmd
}

/// Runs `cmd` to its end.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("the multiret binary runs")
}

/// Runs `multiret args` and asserts success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = output(&mut multiret(args));
    assert!(
        out.status.success(),
        "multiret {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `multiret args`, asserts that it fails with exit code `code` (1: the command's error,
/// 2: clap's usage error) and returns stderr.
pub fn fails(code: i32, args: &[&str]) -> String {
    let out = output(&mut multiret(args));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "multiret {args:?}: {}\n{stderr}",
        out.status
    );
    stderr
}

/// Reads a JSON file.
pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A path inside a temporary directory, as a string (an argument).
pub fn arg_path(dir: &TempDir, name: &str) -> String {
    dir.path().join(name).to_str().unwrap().to_string()
}
