//! The layers after pooling: sentence-transformers `Dense` modules (`y = act(x W^T + b)`),
//! applied to the pooled vectors before the final L2 normalisation. LaBSE's head is one of
//! them (768 -> 768, tanh).

use multiret_kernels::gemm::{gemm_f32, Epilogue};
use multiret_kernels::norm::l2_normalize_rows;
use multiret_kernels::{MatMut, MatRef, Par};

use crate::error::{ModelError, Result};

/// The activation of a `Dense` module, by its torch class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `torch.nn.Identity`.
    Identity,
    /// `torch.nn.Tanh` (sentence-transformers' default).
    Tanh,
    /// `torch.nn.ReLU`.
    Relu,
    /// `torch.nn.GELU` (the erf form, torch's default).
    Gelu,
    /// `torch.nn.Sigmoid`.
    Sigmoid,
    /// `torch.nn.SiLU`.
    Silu,
    /// `torch.nn.LeakyReLU` with torch's default slope 0.01.
    LeakyRelu,
    /// `torch.nn.ELU` with torch's default alpha 1.
    Elu,
    /// `torch.nn.Softplus` with torch's defaults (beta 1, linear above 20).
    Softplus,
    /// `torch.nn.Mish`.
    Mish,
    /// `torch.nn.Hardtanh` with torch's default range [-1, 1].
    Hardtanh,
    /// `torch.nn.Softsign`.
    Softsign,
}

impl Activation {
    const NAMES: [(Activation, &'static str); 12] = [
        (Activation::Identity, "torch.nn.modules.linear.Identity"),
        (Activation::Tanh, "torch.nn.modules.activation.Tanh"),
        (Activation::Relu, "torch.nn.modules.activation.ReLU"),
        (Activation::Gelu, "torch.nn.modules.activation.GELU"),
        (Activation::Sigmoid, "torch.nn.modules.activation.Sigmoid"),
        (Activation::Silu, "torch.nn.modules.activation.SiLU"),
        (
            Activation::LeakyRelu,
            "torch.nn.modules.activation.LeakyReLU",
        ),
        (Activation::Elu, "torch.nn.modules.activation.ELU"),
        (Activation::Softplus, "torch.nn.modules.activation.Softplus"),
        (Activation::Mish, "torch.nn.modules.activation.Mish"),
        (Activation::Hardtanh, "torch.nn.modules.activation.Hardtanh"),
        (Activation::Softsign, "torch.nn.modules.activation.Softsign"),
    ];

    /// The activation of a torch class name as sentence-transformers writes it
    /// (`torch.nn.modules.activation.Tanh`); the short forms `torch.nn.Tanh` and `Tanh` are
    /// accepted too. `None` for any other class.
    pub fn from_torch_name(name: &str) -> Option<Activation> {
        let short = name.rsplit('.').next().unwrap_or(name);
        Activation::NAMES
            .iter()
            .find(|(_, full)| full.rsplit('.').next() == Some(short))
            .map(|&(a, _)| a)
    }

    /// The full torch class name (what sentence-transformers writes).
    pub fn torch_name(self) -> &'static str {
        Activation::NAMES
            .iter()
            .find(|(a, _)| *a == self)
            .map(|&(_, n)| n)
            .unwrap_or("torch.nn.modules.linear.Identity")
    }

    /// The short names of every supported activation, for error messages.
    pub fn supported() -> String {
        Activation::NAMES
            .iter()
            .map(|(_, n)| n.rsplit('.').next().unwrap_or(n))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Applies the activation to every element, in place (f64 arithmetic per element, except
    /// GELU, which runs the kernels' vector erf GELU).
    pub fn apply(self, x: &mut [f32]) {
        let f: fn(f64) -> f64 = match self {
            Activation::Identity => return,
            Activation::Gelu => return multiret_kernels::activation::gelu(x),
            Activation::Tanh => f64::tanh,
            Activation::Relu => |v| v.max(0.0),
            Activation::Sigmoid => sigmoid,
            Activation::Silu => |v| v * sigmoid(v),
            Activation::LeakyRelu => |v| if v >= 0.0 { v } else { 0.01 * v },
            Activation::Elu => |v| if v > 0.0 { v } else { v.exp_m1() },
            Activation::Softplus => softplus,
            Activation::Mish => |v| v * softplus(v).tanh(),
            Activation::Hardtanh => |v| v.clamp(-1.0, 1.0),
            Activation::Softsign => |v| v / (1.0 + v.abs()),
        };
        for v in x {
            *v = f(*v as f64) as f32;
        }
    }
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

fn softplus(v: f64) -> f64 {
    if v > 20.0 {
        v
    } else {
        v.exp().ln_1p()
    }
}

/// One `Dense` module: `y = act(x W^T + b)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Input size.
    pub inp: usize,
    /// Output size.
    pub out: usize,
    /// `[out, in]` row-major (torch `linear.weight`).
    pub w: Vec<f32>,
    /// `[out]` (torch `linear.bias`), or `None` for a layer without bias.
    pub b: Option<Vec<f32>>,
    /// The activation.
    pub act: Activation,
}

impl Dense {
    /// Checks the weight and bias sizes against `inp` and `out`.
    pub fn check(&self) -> Result<()> {
        if self.inp == 0 || self.out == 0 {
            return Err(ModelError::Input(format!(
                "Dense layer {} -> {}: zero size",
                self.inp, self.out
            )));
        }
        if self.w.len() != self.inp * self.out {
            return Err(ModelError::Input(format!(
                "Dense layer {} -> {}: weight has {} values, expected {} ([out, in])",
                self.inp,
                self.out,
                self.w.len(),
                self.inp * self.out
            )));
        }
        if let Some(b) = &self.b {
            if b.len() != self.out {
                return Err(ModelError::Input(format!(
                    "Dense layer {} -> {}: bias has {} values, expected {}",
                    self.inp,
                    self.out,
                    b.len(),
                    self.out
                )));
            }
        }
        Ok(())
    }

    /// `act(x W^T + b)` of `rows` rows of `inp` values.
    pub fn forward(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let mut y = vec![0.0f32; rows * self.out];
        if rows == 0 {
            return Ok(y);
        }
        let a = MatRef::row_major(&x[..rows * self.inp], rows, self.inp)?;
        let w = MatRef::row_major(&self.w, self.out, self.inp)?;
        let epi = match &self.b {
            Some(b) => Epilogue::Bias(b),
            None => Epilogue::None,
        };
        gemm_f32(
            1.0,
            a,
            w.t(),
            0.0,
            MatMut::row_major(&mut y, rows, self.out)?,
            epi,
            Par::Seq,
        )?;
        self.act.apply(&mut y);
        Ok(y)
    }
}

/// The modules between pooling and normalisation (empty for E5 and most encoders).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Head {
    /// The `Dense` modules, in order.
    pub dense: Vec<Dense>,
}

impl Head {
    /// Whether there is no module (the pooled vector is the embedding).
    pub fn is_empty(&self) -> bool {
        self.dense.is_empty()
    }

    /// The embedding size for pooled vectors of `hidden` values.
    pub fn dim(&self, hidden: usize) -> usize {
        self.dense.last().map_or(hidden, |d| d.out)
    }

    /// Checks that the layers chain from `hidden` values and that each has its sizes.
    pub fn check(&self, hidden: usize) -> Result<()> {
        let mut dim = hidden;
        for (i, d) in self.dense.iter().enumerate() {
            d.check()?;
            if d.inp != dim {
                return Err(ModelError::Input(format!(
                    "Dense module {i} takes {} values, but receives {dim}",
                    d.inp
                )));
            }
            dim = d.out;
        }
        Ok(())
    }

    /// Runs the modules over `rows` pooled vectors (`[rows, hidden]`), then L2-normalises
    /// each row when `normalize`.
    pub fn apply(&self, pooled: Vec<f32>, rows: usize, normalize: bool) -> Result<Vec<f32>> {
        let mut x = pooled;
        for d in &self.dense {
            x = d.forward(&x, rows)?;
        }
        if normalize && rows > 0 {
            let dim = x.len() / rows;
            l2_normalize_rows(&mut x, dim)?;
        }
        Ok(x)
    }
}
