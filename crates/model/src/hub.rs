//! Models from the Hugging Face Hub: `hf:ORG/NAME[@REVISION]`, downloaded with the `hf-hub`
//! client into the standard Hugging Face cache (the `huggingface_hub` layout:
//! `models--ORG--NAME/{blobs,refs,snapshots}`), so that Python tools share the files.
//!
//! The environment, as `huggingface_hub` reads it ([`HubOptions::from_env`]):
//! - `HF_ENDPOINT`: the Hub's address (default `https://huggingface.co`);
//! - `HF_TOKEN`, else the token file (`HF_TOKEN_PATH`, else `HF_HOME/token`);
//! - `HF_HUB_OFFLINE=1`: no network; every file must be in the cache;
//! - `HF_HUB_CACHE`, else `HF_HOME/hub`, else `XDG_CACHE_HOME/huggingface/hub`, else
//!   `~/.cache/huggingface/hub`.
//!
//! What is fetched: `modules.json` if the repository has one, then the files of each module it
//! names (the Transformer's `config.json`, `model.safetensors`, `tokenizer.json` and tokenizer
//! configuration, `sentence_bert_config.json`; each Pooling's and Dense's own files), and
//! `config_sentence_transformers.json`; without `modules.json`, the HF files.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{ModelError, Result};
use crate::st::{self, ModuleKind};

/// The Hub's address when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// A model on the Hub: `hf:ORG/NAME[@REVISION]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSpec {
    /// `ORG/NAME`.
    pub repo: String,
    /// A branch, tag or commit (`main` when not given).
    pub revision: String,
}

impl HubSpec {
    /// Parses `hf:ORG/NAME[@REVISION]`; `None` when `spec` does not start with `hf:`, an error
    /// when it does but is malformed.
    pub fn parse(spec: &str) -> Option<Result<HubSpec>> {
        let rest = spec.strip_prefix("hf:")?;
        let (repo, revision) = match rest.split_once('@') {
            Some((r, v)) => (r, v),
            None => (rest, "main"),
        };
        let valid_part = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        let ok = match repo.split_once('/') {
            Some((org, name)) => valid_part(org) && valid_part(name),
            None => false,
        };
        if !ok || revision.is_empty() || revision.contains("..") {
            return Some(Err(ModelError::Input(format!(
                "model {spec:?}: expected hf:ORG/NAME or hf:ORG/NAME@REVISION"
            ))));
        }
        Some(Ok(HubSpec {
            repo: repo.to_string(),
            revision: revision.to_string(),
        }))
    }
}

/// Where and how to reach the Hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// The Hub's address.
    pub endpoint: String,
    /// The access token, if any.
    pub token: Option<String>,
    /// Cache only: no network.
    pub offline: bool,
    /// The cache (the `hub` directory of the huggingface_hub layout).
    pub cache_dir: PathBuf,
}

impl HubOptions {
    /// The options the environment sets (see the module docs).
    pub fn from_env() -> HubOptions {
        HubOptions::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// The options from a variable lookup (`from_env` with `std::env::var`).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> HubOptions {
        let home = var("HOME").map(PathBuf::from).unwrap_or_else(|| ".".into());
        let hf_home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".cache"))
                .join("huggingface")
        });
        let cache_dir = var("HF_HUB_CACHE")
            .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let token = var("HF_TOKEN").or_else(|| {
            let path = var("HF_TOKEN_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| hf_home.join("token"));
            std::fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
        });
        HubOptions {
            endpoint: var("HF_ENDPOINT")
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
                .trim_end_matches('/')
                .to_string(),
            token,
            offline,
            cache_dir,
        }
    }
}

/// A source of repository files: the network (through the cache) or the cache alone.
enum Source {
    Online(Box<hf_hub::api::sync::ApiRepo>),
    Offline(hf_hub::CacheRepo),
}

struct Fetcher<'a> {
    spec: &'a HubSpec,
    opts: &'a HubOptions,
    source: Source,
    cache_dir: PathBuf,
    /// Why the cache alone serves (HF_HUB_OFFLINE, or the endpoint's error).
    offline_reason: String,
}

impl Fetcher<'_> {
    fn what(&self) -> String {
        format!("hf:{}@{}", self.spec.repo, self.spec.revision)
    }

    /// The cached path of `file`, fetched when online; `None` for an absent optional file.
    fn get(&self, file: &str, required: bool) -> Result<Option<PathBuf>> {
        match &self.source {
            Source::Offline(cache) => {
                let hit = cache.get(file).or_else(|| {
                    // A commit pinned by Python leaves no refs/ entry: look in its snapshot.
                    let rev = &self.spec.revision;
                    let is_commit = rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit());
                    let p = self
                        .cache_dir
                        .join(format!("models--{}", self.spec.repo.replace('/', "--")))
                        .join("snapshots")
                        .join(rev)
                        .join(file);
                    (is_commit && p.is_file()).then_some(p)
                });
                match hit {
                    Some(p) => Ok(Some(p)),
                    None if !required => Ok(None),
                    None => Err(ModelError::Fetch(format!(
                        "{}: {file} is not in the Hugging Face cache {}, and {}",
                        self.what(),
                        self.cache_dir.display(),
                        self.offline_reason
                    ))),
                }
            }
            Source::Online(repo) => match repo.get(file) {
                Ok(p) => Ok(Some(p)),
                Err(ApiError::RequestError(e))
                    if !required && matches!(*e, ureq::Error::StatusCode(404)) =>
                {
                    Ok(None)
                }
                Err(e) => Err(ModelError::Fetch(format!(
                    "{}: downloading {file} from {}: {e}",
                    self.what(),
                    self.opts.endpoint
                ))),
            },
        }
    }
}

/// Fails fast, with the reason, when nothing listens at the endpoint (the client would wait
/// for the system's connect timeout).
fn check_reachable(endpoint: &str) -> std::result::Result<(), String> {
    let unreachable = |why: String| why;
    let (scheme, rest) = endpoint
        .split_once("://")
        .ok_or_else(|| unreachable("not an http(s) URL".into()))?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        other => return Err(unreachable(format!("unsupported scheme {other:?}"))),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    };
    let addrs: Vec<_> = host_port
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .collect();
    let mut last = String::from("no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, Duration::from_secs(10)) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(unreachable(last))
}

/// The repository path of `name` inside a module's folder (`""`: the repository root).
fn in_folder(folder: &str, name: &str) -> String {
    if folder.is_empty() {
        name.to_string()
    } else {
        format!("{folder}/{name}")
    }
}

/// Downloads (or, offline, finds in the cache) the files of a Hub model and returns the
/// snapshot directory that holds them, ready for [`crate::Model::load_hf_dir`].
pub fn fetch(spec: &HubSpec, opts: &HubOptions) -> Result<PathBuf> {
    let cache_dir =
        std::path::absolute(&opts.cache_dir).map_err(|e| ModelError::io(&opts.cache_dir, e))?;
    let repo = Repo::with_revision(spec.repo.clone(), RepoType::Model, spec.revision.clone());
    let what = format!("hf:{}@{}", spec.repo, spec.revision);
    let reachable = if opts.offline {
        Err("HF_HUB_OFFLINE is set (download it once without HF_HUB_OFFLINE)".to_string())
    } else {
        check_reachable(&opts.endpoint).map_err(|why| {
            format!(
                "the Hugging Face endpoint {} is unreachable ({why}); set HF_ENDPOINT to a \
                 reachable Hub",
                opts.endpoint
            )
        })
    };
    // Unreachable, the cache alone serves (as huggingface_hub falls back to it).
    let (source, offline_reason) = if let Err(why) = reachable {
        (
            Source::Offline(Cache::new(cache_dir.clone()).repo(repo)),
            why,
        )
    } else {
        std::fs::create_dir_all(&cache_dir).map_err(|e| ModelError::io(&cache_dir, e))?;
        let api = ApiBuilder::from_cache(Cache::new(cache_dir.clone()))
            .with_endpoint(opts.endpoint.clone())
            .with_token(opts.token.clone())
            .with_progress(false)
            .build()
            .map_err(|e| ModelError::Fetch(format!("{what}: the Hub client: {e}")))?;
        (Source::Online(Box::new(api.repo(repo))), String::new())
    };
    let f = Fetcher {
        spec,
        opts,
        source,
        cache_dir,
        offline_reason,
    };
    let modules_file = f.get(st::MODULES_FILE, false)?;
    let mut tdir = String::new();
    if let Some(p) = &modules_file {
        let root = p.parent().expect("a file in a snapshot").to_path_buf();
        let modules = st::read_modules(&root)?.expect("modules.json was fetched");
        for m in &modules {
            let join = |name: &str| in_folder(&m.path, name);
            match m.kind {
                ModuleKind::Transformer => tdir = m.path.clone(),
                ModuleKind::Pooling => {
                    f.get(&join("config.json"), true)?;
                }
                ModuleKind::Dense => {
                    f.get(&join("config.json"), true)?;
                    // Missing weights are reported by the loader, with the file's name.
                    f.get(&join("model.safetensors"), false)?;
                }
                ModuleKind::Normalize => {
                    f.get(&join("config.json"), false)?;
                }
            }
        }
        f.get(st::ST_CONFIG_FILE, false)?;
    }
    let in_tdir = |name: &str| in_folder(&tdir, name);
    let config = f
        .get(&in_tdir("config.json"), true)?
        .expect("a required file");
    for (name, required) in [
        ("model.safetensors", true),
        ("tokenizer.json", true),
        ("tokenizer_config.json", false),
        ("special_tokens_map.json", false),
        (st::SBERT_CONFIG_FILE, false),
    ] {
        f.get(&in_tdir(name), required)?;
    }
    // The snapshot root: config.json's folder, less the Transformer's path.
    let mut root: &Path = config.parent().expect("a file in a snapshot");
    for _ in Path::new(&tdir).components() {
        root = root.parent().expect("inside the snapshot");
    }
    Ok(root.to_path_buf())
}
