//! Exact serde for `f64` configuration values.
//!
//! Floats are written as their shortest round-trip decimal string (`"0.5"`), which every
//! format and every parser turns back into the same bits, so a resumed sampler draws with
//! exactly the same probabilities. Plain numbers are accepted on input too.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An `f64` serialised as a string.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exact(pub(crate) f64);

impl Serialize for Exact {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:?}", self.0))
    }
}

impl<'de> Deserialize<'de> for Exact {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Exact, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Exact;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or a string holding a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Exact, E> {
                Ok(Exact(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Exact, E> {
                Ok(Exact(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Exact, E> {
                Ok(Exact(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Exact, E> {
                v.trim()
                    .parse::<f64>()
                    .map(Exact)
                    .map_err(|_| E::custom(format!("`{v}` is not a number")))
            }
        }
        d.deserialize_any(V)
    }
}

/// `#[serde(with = ...)]` for `f64`.
pub(crate) mod f64_exact {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        Exact(*v).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Exact::deserialize(d).map(|e| e.0)
    }
}

/// `#[serde(with = ...)]` for `Option<Vec<f64>>`.
pub(crate) mod opt_vec_f64_exact {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &Option<Vec<f64>>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref()
            .map(|v| v.iter().map(|&x| Exact(x)).collect::<Vec<_>>())
            .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<f64>>, D::Error> {
        Option::<Vec<Exact>>::deserialize(d)
            .map(|v| v.map(|v| v.into_iter().map(|e| e.0).collect()))
    }
}
