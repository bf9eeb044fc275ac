//! The CPU inference engine: [`Encoder`], the engine of [`crate::engine`] on its CPU backend
//! ([`crate::engine::cpu`]), and the weight [`Precision`].

pub use crate::engine::cpu::Encoder;
pub use crate::engine::Precision;
