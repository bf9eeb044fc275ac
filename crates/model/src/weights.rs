//! Canonical f32 weights with HF tensor names, and HF safetensors reading and writing.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::table::{MappedFile, Table};

/// A dense layer: `y = x W^T + b`, `W` row-major `[out, in]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    /// Output size.
    pub out: usize,
    /// Input size.
    pub inp: usize,
    /// `[out, in]` row-major.
    pub w: Vec<f32>,
    /// `[out]`.
    pub b: Vec<f32>,
}

/// LayerNorm parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Norm {
    /// Gamma.
    pub w: Vec<f32>,
    /// Beta.
    pub b: Vec<f32>,
}

/// One encoder layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Query projection.
    pub q: Linear,
    /// Key projection.
    pub k: Linear,
    /// Value projection.
    pub v: Linear,
    /// Attention output projection.
    pub ao: Linear,
    /// LayerNorm after attention.
    pub aln: Norm,
    /// FFN input (intermediate) projection.
    pub fi: Linear,
    /// FFN output projection.
    pub fo: Linear,
    /// LayerNorm after the FFN.
    pub oln: Norm,
}

/// All weights of an encoder, f32.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// `[vocab, hidden]`: owned, or read in place from a memory-mapped safetensors file
    /// ([`Weights::from_safetensors_file`]).
    pub word: Table,
    /// `[max_pos, hidden]`.
    pub pos: Vec<f32>,
    /// `[type_vocab, hidden]`.
    pub typ: Vec<f32>,
    /// Embedding LayerNorm.
    pub emb_ln: Norm,
    /// Layers.
    pub layers: Vec<Layer>,
}

/// The HF name and shape of every tensor of a config, in a fixed order.
pub fn tensor_specs(c: &Config) -> Vec<(String, Vec<usize>)> {
    let h = c.hidden;
    let mut v = vec![
        (
            "embeddings.word_embeddings.weight".to_string(),
            vec![c.vocab, h],
        ),
        (
            "embeddings.position_embeddings.weight".to_string(),
            vec![c.max_pos, h],
        ),
        (
            "embeddings.token_type_embeddings.weight".to_string(),
            vec![c.type_vocab, h],
        ),
        ("embeddings.LayerNorm.weight".to_string(), vec![h]),
        ("embeddings.LayerNorm.bias".to_string(), vec![h]),
    ];
    for i in 0..c.layers {
        let p = format!("encoder.layer.{i}.");
        for (n, o, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", c.ffn, h),
            ("output.dense", h, c.ffn),
        ] {
            v.push((format!("{p}{n}.weight"), vec![o, inp]));
            v.push((format!("{p}{n}.bias"), vec![o]));
            if n == "attention.output.dense" {
                v.push((format!("{p}attention.output.LayerNorm.weight"), vec![h]));
                v.push((format!("{p}attention.output.LayerNorm.bias"), vec![h]));
            }
        }
        v.push((format!("{p}output.LayerNorm.weight"), vec![h]));
        v.push((format!("{p}output.LayerNorm.bias"), vec![h]));
    }
    v
}

impl Weights {
    /// Checks every size against the configuration: the embedding tables, the layer count,
    /// each LayerNorm and each linear layer's weight and bias. The one such check, run by
    /// every engine before it prepares the weights.
    pub fn check(&self, c: &Config) -> Result<()> {
        let h = c.hidden;
        let bad = |what: String, have: usize, need: usize| {
            Err(ModelError::Input(format!(
                "weights do not fit the configuration: {what} has {have} values, needs {need}"
            )))
        };
        if self.word.len() != c.vocab * h {
            return bad("the word table".into(), self.word.len(), c.vocab * h);
        }
        if self.pos.len() != c.max_pos * h {
            return bad("the position table".into(), self.pos.len(), c.max_pos * h);
        }
        if self.typ.len() != c.type_vocab * h {
            return bad(
                "the token-type table".into(),
                self.typ.len(),
                c.type_vocab * h,
            );
        }
        if self.layers.len() != c.layers {
            return bad("the layer list".into(), self.layers.len(), c.layers);
        }
        let norm = |what: String, n: &Norm| {
            if n.w.len() != h {
                return bad(format!("{what} weight"), n.w.len(), h);
            }
            if n.b.len() != h {
                return bad(format!("{what} bias"), n.b.len(), h);
            }
            Ok(())
        };
        norm("the embedding LayerNorm".into(), &self.emb_ln)?;
        for (i, l) in self.layers.iter().enumerate() {
            for (name, lin, out, inp) in [
                ("query", &l.q, h, h),
                ("key", &l.k, h, h),
                ("value", &l.v, h, h),
                ("attention output", &l.ao, h, h),
                ("intermediate", &l.fi, c.ffn, h),
                ("output", &l.fo, h, c.ffn),
            ] {
                if lin.out != out || lin.inp != inp || lin.w.len() != out * inp {
                    return bad(
                        format!("layer {i} {name} weight ({} x {})", lin.out, lin.inp),
                        lin.w.len(),
                        out * inp,
                    );
                }
                if lin.b.len() != out {
                    return bad(format!("layer {i} {name} bias"), lin.b.len(), out);
                }
            }
            norm(format!("layer {i} attention LayerNorm"), &l.aln)?;
            norm(format!("layer {i} output LayerNorm"), &l.oln)?;
        }
        Ok(())
    }

    /// A copy of the embedding tables and their LayerNorm, without the layers (what an engine
    /// keeps on the host after preparing the layers).
    pub fn tables_only(&self) -> Weights {
        Weights {
            word: self.word.clone(),
            pos: self.pos.clone(),
            typ: self.typ.clone(),
            emb_ln: self.emb_ln.clone(),
            layers: Vec::new(),
        }
    }

    /// Builds the weights from a map of HF-named f32 tensors, checking every shape and that
    /// every value is finite.
    pub fn from_named(c: &Config, t: BTreeMap<String, Vec<f32>>, path: &Path) -> Result<Self> {
        Weights::from_parts(c, t, None, path)
    }

    /// [`Weights::from_named`] with the word table given apart (`word`, e.g. mapped; its
    /// shape is checked, its values are not read: the engines check the rows they gather).
    fn from_parts(
        c: &Config,
        mut t: BTreeMap<String, Vec<f32>>,
        word: Option<Table>,
        path: &Path,
    ) -> Result<Self> {
        const WORD: &str = "embeddings.word_embeddings.weight";
        for (name, shape) in tensor_specs(c) {
            let n: usize = shape.iter().product();
            if name == WORD {
                if let Some(w) = &word {
                    if w.len() != n {
                        return Err(ModelError::format(
                            path,
                            format!(
                                "tensor {name} has {} elements, config needs {shape:?} = {n}",
                                w.len()
                            ),
                        ));
                    }
                    continue;
                }
            }
            match t.get(&name) {
                None => return Err(ModelError::format(path, format!("missing tensor {name}"))),
                Some(v) if v.len() != n => {
                    return Err(ModelError::format(
                        path,
                        format!(
                            "tensor {name} has {} elements, config needs {shape:?} = {n}",
                            v.len()
                        ),
                    ))
                }
                Some(v) if v.iter().any(|x| !x.is_finite()) => {
                    return Err(ModelError::format(
                        path,
                        format!("tensor {name} holds NaN or infinite values"),
                    ))
                }
                _ => {}
            }
        }
        let mut take = |n: &str| t.remove(n).expect("checked above");
        let h = c.hidden;
        let word = match word {
            Some(w) => w,
            None => take(WORD).into(),
        };
        let pos = take("embeddings.position_embeddings.weight");
        let typ = take("embeddings.token_type_embeddings.weight");
        let emb_ln = Norm {
            w: take("embeddings.LayerNorm.weight"),
            b: take("embeddings.LayerNorm.bias"),
        };
        let mut layers = Vec::with_capacity(c.layers);
        for i in 0..c.layers {
            let p = format!("encoder.layer.{i}.");
            let mut lin = |n: &str, out: usize, inp: usize| Linear {
                out,
                inp,
                w: take(&format!("{p}{n}.weight")),
                b: take(&format!("{p}{n}.bias")),
            };
            let q = lin("attention.self.query", h, h);
            let k = lin("attention.self.key", h, h);
            let v = lin("attention.self.value", h, h);
            let ao = lin("attention.output.dense", h, h);
            let fi = lin("intermediate.dense", c.ffn, h);
            let fo = lin("output.dense", h, c.ffn);
            let aln = Norm {
                w: take(&format!("{p}attention.output.LayerNorm.weight")),
                b: take(&format!("{p}attention.output.LayerNorm.bias")),
            };
            let oln = Norm {
                w: take(&format!("{p}output.LayerNorm.weight")),
                b: take(&format!("{p}output.LayerNorm.bias")),
            };
            layers.push(Layer {
                q,
                k,
                v,
                ao,
                aln,
                fi,
                fo,
                oln,
            });
        }
        Ok(Weights {
            word,
            pos,
            typ,
            emb_ln,
            layers,
        })
    }

    /// Deterministic small random weights for a configuration (xorshift from `seed | 1`;
    /// matrices in [-0.3, 0.3), biases in [-0.1, 0.1), LayerNorm gains near 1, embeddings in
    /// [-1, 1)): tiny models for tests, benchmarks and fuzzing seeds.
    pub fn random(c: &Config, seed: u64) -> Self {
        let mut state = seed | 1;
        let mut vec = |n: usize, scale: f32| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * scale
                })
                .collect()
        };
        let h = c.hidden;
        let lin = |out: usize, inp: usize, vec: &mut dyn FnMut(usize, f32) -> Vec<f32>| Linear {
            out,
            inp,
            w: vec(out * inp, 0.3),
            b: vec(out, 0.1),
        };
        let norm = |vec: &mut dyn FnMut(usize, f32) -> Vec<f32>| Norm {
            w: vec(h, 0.2).iter().map(|v| 1.0 + v).collect(),
            b: vec(h, 0.1),
        };
        let layers = (0..c.layers)
            .map(|_| Layer {
                q: lin(h, h, &mut vec),
                k: lin(h, h, &mut vec),
                v: lin(h, h, &mut vec),
                ao: lin(h, h, &mut vec),
                aln: norm(&mut vec),
                fi: lin(c.ffn, h, &mut vec),
                fo: lin(h, c.ffn, &mut vec),
                oln: norm(&mut vec),
            })
            .collect();
        Weights {
            word: vec(c.vocab * h, 1.0).into(),
            pos: vec(c.max_pos * h, 0.5),
            typ: vec(c.type_vocab * h, 0.5),
            emb_ln: norm(&mut vec),
            layers,
        }
    }

    /// The tensors with their HF names and shapes, in [`tensor_specs`] order.
    pub fn named(&self, c: &Config) -> Vec<(String, Vec<usize>, &[f32])> {
        let mut data: Vec<&[f32]> = vec![
            &self.word,
            &self.pos,
            &self.typ,
            &self.emb_ln.w,
            &self.emb_ln.b,
        ];
        for l in &self.layers {
            for (lin, norm) in [
                (&l.q, None),
                (&l.k, None),
                (&l.v, None),
                (&l.ao, Some(&l.aln)),
                (&l.fi, None),
                (&l.fo, None),
            ] {
                data.push(&lin.w);
                data.push(&lin.b);
                if let Some(n) = norm {
                    data.push(&n.w);
                    data.push(&n.b);
                }
            }
            data.push(&l.oln.w);
            data.push(&l.oln.b);
        }
        tensor_specs(c)
            .into_iter()
            .zip(data)
            .map(|((n, s), d)| (n, s, d))
            .collect()
    }

    /// Reads HF safetensors (f32, f16 or bf16 tensors; the `bert.` / `roberta.` prefixes and
    /// the old `gamma` / `beta` LayerNorm names are accepted).
    pub fn from_safetensors(c: &Config, bytes: &[u8], path: &Path) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| ModelError::format(path, format!("not a valid safetensors file: {e}")))?;
        let mut map = BTreeMap::new();
        for (name, view) in st.tensors() {
            let canon = canonical_name(&name);
            let Some(canon) = canon else { continue };
            let vals = tensor_f32(&view, &name, path)?;
            map.insert(canon, vals);
        }
        Weights::from_named(c, map, path)
    }

    /// Reads an HF safetensors file like [`Weights::from_safetensors`], memory-mapping it: an
    /// f32 word table stays in the file and is read in place (only the rows a batch uses are
    /// ever loaded; see [`Table`]), the other tensors are copied out. The file must not be
    /// modified while the weights live (model files are replaced, not edited, by the tools
    /// that write them; multiret writes atomically).
    pub fn from_safetensors_file(c: &Config, path: &Path) -> Result<Self> {
        let file = MappedFile::open(path).map_err(|e| ModelError::io(path, e))?;
        let bytes = file.bytes();
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| ModelError::format(path, format!("not a valid safetensors file: {e}")))?;
        let mut map = BTreeMap::new();
        let mut word = None;
        for (name, view) in st.tensors() {
            let Some(canon) = canonical_name(&name) else {
                continue;
            };
            if canon == "embeddings.word_embeddings.weight" && view.dtype() == Dtype::F32 {
                let data = view.data();
                // The tensor's data is a slice of the mapped bytes: its offset in the file.
                let offset = data.as_ptr() as usize - bytes.as_ptr() as usize;
                word = Table::mapped(file.clone(), offset, data.len() / 4);
                if word.is_some() {
                    continue;
                }
            }
            map.insert(canon, tensor_f32(&view, &name, path)?);
        }
        Weights::from_parts(c, map, word, path)
    }

    /// Serialises as HF safetensors (f32, HF names).
    pub fn to_safetensors(&self, c: &Config) -> Result<Vec<u8>> {
        let named = self.named(c);
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = named
            .iter()
            .map(|(n, s, d)| {
                let bytes: &[u8] = bytemuck::cast_slice(d);
                let view = safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), bytes)
                    .expect("shape matches data");
                (n.clone(), view)
            })
            .collect();
        let mut meta = std::collections::HashMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        safetensors::serialize(views, Some(meta))
            .map_err(|e| ModelError::Input(format!("safetensors serialisation: {e}")))
    }
}

/// The values of a safetensors tensor as f32 (f32, f16 or bf16 stored); any other dtype is an
/// error naming the tensor and the file.
pub(crate) fn tensor_f32(
    view: &safetensors::tensor::TensorView<'_>,
    name: &str,
    path: &Path,
) -> Result<Vec<f32>> {
    let data = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => {
            return Err(ModelError::format(
                path,
                format!("tensor {name}: unsupported dtype {other:?}"),
            ))
        }
    })
}

/// Maps checkpoint names to the canonical HF names this crate uses (None: not ours, e.g. a
/// pooler or position_ids buffer).
fn canonical_name(name: &str) -> Option<String> {
    let mut n = name;
    for p in ["bert.", "roberta.", "xlm_roberta.", "model."] {
        if let Some(rest) = n.strip_prefix(p) {
            n = rest;
        }
    }
    if !(n.starts_with("embeddings.") || n.starts_with("encoder.layer."))
        || n.ends_with("position_ids")
    {
        return None;
    }
    let n = n
        .replace("LayerNorm.gamma", "LayerNorm.weight")
        .replace("LayerNorm.beta", "LayerNorm.bias");
    Some(n)
}
