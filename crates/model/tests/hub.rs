//! `hf:ORG/NAME[@REVISION]` against a local HTTP server on 127.0.0.1 that serves the st-tiny
//! fixtures in the Hub's URL layout (`/ORG/NAME/resolve/REVISION/FILE`) with the headers the
//! client reads (`ETag`, `X-Repo-Commit`, `Content-Range`). The server is started and stopped
//! by the tests themselves; no other address is contacted.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use multiret_model::hub::{HubOptions, HubSpec};
use multiret_model::{EmbedOptions, Kind, Model, Precision};
use sha2::{Digest, Sha256};

mod common;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// One request the server saw: the path and the Authorization header.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

struct Server {
    endpoint: String,
    seen: Seen,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.endpoint.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn files_of(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = format!("{prefix}{}", e.file_name().to_str().unwrap());
        if e.path().is_dir() {
            files_of(&e.path(), &format!("{name}/"), out);
        } else {
            out.insert(name, std::fs::read(e.path()).unwrap());
        }
    }
}

/// Serves `repos` (repository id -> folder) at every revision.
fn serve(repos: &[(&str, PathBuf)]) -> Server {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (id, dir) in repos {
        let mut f = BTreeMap::new();
        files_of(dir, "", &mut f);
        for (name, bytes) in f {
            files.insert(format!("{id}/{name}"), bytes);
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (seen2, stop2) = (seen.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        for conn in listener.incoming() {
            if stop2.load(Ordering::SeqCst) {
                break;
            }
            let Ok(conn) = conn else { continue };
            let _ = handle(conn, &files, &seen2);
        }
    });
    Server {
        endpoint,
        seen,
        stop,
        thread: Some(thread),
    }
}

fn handle(
    mut conn: TcpStream,
    files: &BTreeMap<String, Vec<u8>>,
    seen: &Seen,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        // A bare connection (the client's reachability check).
        return Ok(());
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let (mut range, mut auth, mut body_len) = (None, None, 0usize);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "range" => range = Some(v.trim().to_string()),
            "authorization" => auth = Some(v.trim().to_string()),
            "content-length" => body_len = v.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    let mut sink = vec![0u8; body_len];
    reader.read_exact(&mut sink)?;
    seen.lock().unwrap().push((path.clone(), auth));
    // /ORG/NAME/resolve/REVISION/FILE...
    let segs: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    let key = match segs.as_slice() {
        [org, name, "resolve", _rev, file] => Some(format!("{org}/{name}/{file}")),
        _ => None,
    };
    let Some(bytes) = key.and_then(|k| files.get(&k)) else {
        let msg = b"Entry not found";
        write!(
            conn,
            "HTTP/1.1 404 Not Found\r\nX-Error-Code: EntryNotFound\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            msg.len()
        )?;
        conn.write_all(msg)?;
        return conn.flush();
    };
    let n = bytes.len();
    let etag: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let common = format!(
        "ETag: \"{etag}\"\r\nX-Repo-Commit: {COMMIT}\r\nAccept-Ranges: bytes\r\n\
         Content-Type: application/octet-stream\r\nConnection: close\r\n"
    );
    let (start, end) = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
        Some(r) => {
            let (s, e) = r.split_once('-').unwrap_or((r, ""));
            let s: usize = s.parse().unwrap_or(0);
            let e: usize = e.parse().unwrap_or(n - 1).min(n - 1);
            (s, e)
        }
        None => (0, n - 1),
    };
    if method == "HEAD" {
        write!(
            conn,
            "HTTP/1.1 200 OK\r\n{common}Content-Length: {n}\r\n\r\n"
        )?;
    } else if range.is_some() {
        write!(
            conn,
            "HTTP/1.1 206 Partial Content\r\n{common}Content-Range: bytes {start}-{end}/{n}\r\n\
             Content-Length: {}\r\n\r\n",
            end + 1 - start
        )?;
        conn.write_all(&bytes[start..=end])?;
    } else {
        write!(
            conn,
            "HTTP/1.1 200 OK\r\n{common}Content-Range: bytes 0-{}/{n}\r\nContent-Length: {n}\r\n\r\n",
            n - 1
        )?;
        conn.write_all(bytes)?;
    }
    conn.flush()
}

fn st_tiny(name: &str) -> PathBuf {
    common::fixture_path("st-tiny/expected.json")
        .parent()
        .unwrap()
        .join(name)
}

fn temp_cache(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("multiret-hub-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn options(endpoint: &str, cache: &Path) -> HubOptions {
    HubOptions {
        endpoint: endpoint.to_string(),
        token: None,
        offline: false,
        cache_dir: cache.to_path_buf(),
    }
}

fn embed(m: &Model) -> Vec<f32> {
    m.embedder(Precision::F32)
        .unwrap()
        .embed(
            &["Where is the Eiffel tower?", "Der Eiffelturm"],
            Kind::Query,
            EmbedOptions::default(),
            &|_| {},
        )
        .unwrap()
}

#[test]
fn downloads_into_the_hugging_face_cache_and_loads() {
    let server = serve(&[
        ("org/labse-tiny", st_tiny("labse-cls-dense")),
        ("org/e5-tiny", st_tiny("e5-prompts")),
    ]);
    let cache = temp_cache("dl");
    let mut opts = options(&server.endpoint, &cache);
    opts.token = Some("hf_secret".into());
    for (spec, fixture) in [
        ("hf:org/labse-tiny", "labse-cls-dense"),
        ("hf:org/e5-tiny@v1.0", "e5-prompts"),
    ] {
        let m = Model::load_hub(spec, &opts).unwrap();
        assert_eq!(m.name, spec);
        let local = Model::load_hf_dir(&st_tiny(fixture)).unwrap();
        assert_eq!(m.settings, local.settings, "{spec}");
        assert_eq!(m.head, local.head, "{spec}");
        assert_eq!(embed(&m), embed(&local), "{spec}");
    }
    // The huggingface_hub layout: blobs, refs/REVISION holding the commit, snapshot links
    // (module folders included).
    let repo = cache.join("models--org--labse-tiny");
    assert_eq!(
        std::fs::read_to_string(repo.join("refs").join("main")).unwrap(),
        COMMIT
    );
    let snap = repo.join("snapshots").join(COMMIT);
    for f in [
        "modules.json",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "1_Pooling/config.json",
        "2_Dense/config.json",
        "2_Dense/model.safetensors",
    ] {
        assert!(snap.join(f).is_file(), "{f}");
    }
    assert!(std::fs::symlink_metadata(snap.join("config.json"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(
        std::fs::read_to_string(cache.join("models--org--e5-tiny").join("refs").join("v1.0"))
            .is_ok()
    );
    // The revision is in the URL and the token in every request.
    let seen = server.seen.lock().unwrap().clone();
    assert!(seen
        .iter()
        .any(|(p, _)| p == "/org/e5-tiny/resolve/v1.0/modules.json"));
    assert!(seen
        .iter()
        .all(|(_, a)| a.as_deref() == Some("Bearer hf_secret")));

    // Offline: from the cache, with no request.
    let before = server.seen.lock().unwrap().len();
    let mut off = options(&server.endpoint, &cache);
    off.offline = true;
    let m = Model::load_hub("hf:org/labse-tiny", &off).unwrap();
    assert_eq!(
        embed(&m),
        embed(&Model::load_hf_dir(&st_tiny("labse-cls-dense")).unwrap())
    );
    assert_eq!(server.seen.lock().unwrap().len(), before);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn offline_cache_miss_and_unreachable_endpoint_are_clear_errors() {
    let cache = temp_cache("miss");
    let mut off = options("http://127.0.0.1:9", &cache);
    off.offline = true;
    let e = Model::load_hub("hf:org/absent", &off)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("HF_HUB_OFFLINE") && e.contains("config.json") && e.contains("hf:org/absent"),
        "{e}"
    );

    // A port nothing listens on: refused at once, named in the error.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let e = Model::load_hub("hf:org/absent", &options(&endpoint, &cache))
        .unwrap_err()
        .to_string();
    assert!(e.contains(&endpoint) && e.contains("unreachable"), "{e}");

    // A repository the server does not have: the 404 of its config.json.
    let server = serve(&[("org/e5-tiny", st_tiny("e5-prompts"))]);
    let e = Model::load_hub("hf:org/other", &options(&server.endpoint, &cache))
        .unwrap_err()
        .to_string();
    assert!(e.contains("config.json") && e.contains("404"), "{e}");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn specs_and_environment() {
    assert_eq!(
        HubSpec::parse("hf:intfloat/multilingual-e5-small@v1")
            .unwrap()
            .unwrap(),
        HubSpec {
            repo: "intfloat/multilingual-e5-small".into(),
            revision: "v1".into()
        }
    );
    assert_eq!(HubSpec::parse("hf:a/b").unwrap().unwrap().revision, "main");
    assert!(HubSpec::parse("e5-small").is_none());
    for bad in [
        "hf:",
        "hf:noslash",
        "hf:a/b/c",
        "hf:../x",
        "hf:a/b@",
        "hf:a/ b",
    ] {
        assert!(HubSpec::parse(bad).unwrap().is_err(), "{bad}");
    }
    let home = temp_cache("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("token"), "hf_from_file\n").unwrap();
    let env = |pairs: &[(&str, &str)]| {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubOptions::from_lookup(move |k| map.get(k).cloned())
    };
    let h = home.to_str().unwrap();
    let o = env(&[("HF_HOME", h), ("HF_ENDPOINT", "http://127.0.0.1:1/")]);
    assert_eq!(o.endpoint, "http://127.0.0.1:1");
    assert_eq!(o.cache_dir, home.join("hub"));
    assert_eq!(o.token.as_deref(), Some("hf_from_file"));
    assert!(!o.offline);
    let o = env(&[
        ("HF_HOME", h),
        ("HF_TOKEN", "hf_env"),
        ("HF_HUB_OFFLINE", "1"),
        ("HF_HUB_CACHE", "/x/hub"),
    ]);
    assert_eq!(o.token.as_deref(), Some("hf_env"));
    assert!(o.offline);
    assert_eq!(o.cache_dir, PathBuf::from("/x/hub"));
    let o = env(&[("HOME", "/home/u")]);
    assert_eq!(o.endpoint, "https://huggingface.co");
    assert_eq!(o.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
    let _ = std::fs::remove_dir_all(&home);
}
