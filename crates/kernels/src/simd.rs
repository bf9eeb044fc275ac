//! A small SIMD abstraction: the elementwise and row kernels are written once, generic over
//! [`Simd`], and instantiated per ISA inside `#[target_feature]` functions.
//!
//! A value of an ISA type (a token) can only be made after checking that the CPU supports it,
//! so the trait's methods are safe to call.

/// Vector operations on f32 lanes.
pub(crate) trait Simd: Copy + Send + Sync {
    type V: Copy;
    type M: Copy;
    const LANES: usize;
    fn splat(self, x: f32) -> Self::V;
    /// Loads the first `LANES` elements of `s` (panics when shorter).
    fn load(self, s: &[f32]) -> Self::V;
    /// Stores into the first `LANES` elements of `s` (panics when shorter).
    fn store(self, s: &mut [f32], v: Self::V);
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c`, fused where the ISA has FMA.
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Maximum; NaN-propagating in neither operand (callers handle NaN).
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    fn min(self, a: Self::V, b: Self::V) -> Self::V;
    fn abs(self, a: Self::V) -> Self::V;
    fn lt(self, a: Self::V, b: Self::V) -> Self::M;
    fn is_nan(self, a: Self::V) -> Self::M;
    /// `m ? t : f` per lane.
    fn select(self, m: Self::M, t: Self::V, f: Self::V) -> Self::V;
    /// Round to nearest integer (ties to even).
    fn round(self, a: Self::V) -> Self::V;
    /// `2^n` for integral `n` in `[-126, 127]`.
    fn pow2i(self, n: Self::V) -> Self::V;
    fn reduce_sum(self, a: Self::V) -> f32;
    fn reduce_max(self, a: Self::V) -> f32;
}

/// The portable one-lane implementation.
#[derive(Clone, Copy)]
pub(crate) struct Scalar;

impl Simd for Scalar {
    type V = f32;
    type M = bool;
    const LANES: usize = 1;
    #[inline(always)]
    fn splat(self, x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> f32 {
        s[0]
    }
    #[inline(always)]
    fn store(self, s: &mut [f32], v: f32) {
        s[0] = v;
    }
    #[inline(always)]
    fn add(self, a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    fn sub(self, a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    fn mul(self, a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    fn div(self, a: f32, b: f32) -> f32 {
        a / b
    }
    /// Unfused (a software FMA would be slow); the scalar GELU uses an f64 formula instead.
    #[inline(always)]
    fn fma(self, a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
    #[inline(always)]
    fn max(self, a: f32, b: f32) -> f32 {
        if a > b {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn min(self, a: f32, b: f32) -> f32 {
        if a < b {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn abs(self, a: f32) -> f32 {
        libm::fabsf(a)
    }
    #[inline(always)]
    fn lt(self, a: f32, b: f32) -> bool {
        a < b
    }
    #[inline(always)]
    fn is_nan(self, a: f32) -> bool {
        a.is_nan()
    }
    #[inline(always)]
    fn select(self, m: bool, t: f32, f: f32) -> f32 {
        if m {
            t
        } else {
            f
        }
    }
    #[inline(always)]
    fn round(self, a: f32) -> f32 {
        libm::rintf(a)
    }
    #[inline(always)]
    fn pow2i(self, n: f32) -> f32 {
        f32::from_bits((((n as i32) + 127) as u32) << 23)
    }
    #[inline(always)]
    fn reduce_sum(self, a: f32) -> f32 {
        a
    }
    #[inline(always)]
    fn reduce_max(self, a: f32) -> f32 {
        a
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Simd;
    use crate::Isa;
    use core::arch::x86_64::*;

    /// AVX-512F token: exists only when the CPU has AVX-512F.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512(());

    impl Avx512 {
        /// The token, when the CPU supports AVX-512F.
        pub(crate) fn new() -> Option<Self> {
            Isa::Avx512.is_supported().then_some(Self(()))
        }
    }

    /// AVX2 + FMA token: exists only when the CPU has both.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2(());

    impl Avx2 {
        /// The token, when the CPU supports AVX2 and FMA.
        pub(crate) fn new() -> Option<Self> {
            Isa::Avx2.is_supported().then_some(Self(()))
        }
    }

    // Every method below runs an intrinsic whose CPU feature the token proves present; the
    // SAFETY comments say so once per method.
    macro_rules! simd_impl {
        ($tok:ident, $v:ty, $m:ty, $lanes:expr, $f:literal,
         splat: $splat:ident, load: $load:ident, store: $store:ident, add: $add:ident,
         sub: $sub:ident, mul: $mul:ident, div: $div:ident, fma: $fma:ident, max: $max:ident,
         min: $min:ident) => {
            impl Simd for $tok {
                type V = $v;
                type M = $m;
                const LANES: usize = $lanes;
                #[inline(always)]
                fn splat(self, x: f32) -> $v {
                    // SAFETY: the token proves the CPU feature.
                    unsafe { $splat(x) }
                }
                #[inline(always)]
                fn load(self, s: &[f32]) -> $v {
                    let s = &s[..$lanes];
                    // SAFETY: `s` has LANES readable elements; the token proves the feature.
                    unsafe { $load(s.as_ptr()) }
                }
                #[inline(always)]
                fn store(self, s: &mut [f32], v: $v) {
                    let s = &mut s[..$lanes];
                    // SAFETY: `s` has LANES writable elements; the token proves the feature.
                    unsafe { $store(s.as_mut_ptr(), v) }
                }
                #[inline(always)]
                fn add(self, a: $v, b: $v) -> $v {
                    // SAFETY: the token proves the CPU feature.
                    unsafe { $add(a, b) }
                }
                #[inline(always)]
                fn sub(self, a: $v, b: $v) -> $v {
                    // SAFETY: the token proves the CPU feature.
                    unsafe { $sub(a, b) }
                }
                #[inline(always)]
                fn mul(self, a: $v, b: $v) -> $v {
                    // SAFETY: the token proves the CPU feature.
                    unsafe { $mul(a, b) }
                }
                #[inline(always)]
                fn div(self, a: $v, b: $v) -> $v {
                    // SAFETY: the token proves the CPU feature.
                    unsafe { $div(a, b) }
                }
                #[inline(always)]
                fn fma(self, a: $v, b: $v, c: $v) -> $v {
                    // SAFETY: the token proves the CPU feature (FMA is part of both tokens).
                    unsafe { $fma(a, b, c) }
                }
                #[inline(always)]
                fn max(self, a: $v, b: $v) -> $v {
                    // SAFETY: the token proves the CPU feature.
                    unsafe { $max(a, b) }
                }
                #[inline(always)]
                fn min(self, a: $v, b: $v) -> $v {
                    // SAFETY: the token proves the CPU feature.
                    unsafe { $min(a, b) }
                }
                simd_impl!(@extra $tok, $v, $m);
            }
        };
        (@extra Avx512, $v:ty, $m:ty) => {
            #[inline(always)]
            fn abs(self, a: __m512) -> __m512 {
                // SAFETY: the token proves avx512f.
                unsafe { _mm512_abs_ps(a) }
            }
            #[inline(always)]
            fn lt(self, a: __m512, b: __m512) -> __mmask16 {
                // SAFETY: the token proves avx512f.
                unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b) }
            }
            #[inline(always)]
            fn is_nan(self, a: __m512) -> __mmask16 {
                // SAFETY: the token proves avx512f.
                unsafe { _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a) }
            }
            #[inline(always)]
            fn select(self, m: __mmask16, t: __m512, f: __m512) -> __m512 {
                // SAFETY: the token proves avx512f.
                unsafe { _mm512_mask_blend_ps(m, f, t) }
            }
            #[inline(always)]
            fn round(self, a: __m512) -> __m512 {
                // SAFETY: the token proves avx512f.
                unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
            }
            #[inline(always)]
            fn pow2i(self, n: __m512) -> __m512 {
                // SAFETY: the token proves avx512f.
                unsafe {
                    let i = _mm512_cvtps_epi32(n);
                    _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(i, _mm512_set1_epi32(127))))
                }
            }
            #[inline(always)]
            fn reduce_sum(self, a: __m512) -> f32 {
                // SAFETY: the token proves avx512f.
                unsafe { _mm512_reduce_add_ps(a) }
            }
            #[inline(always)]
            fn reduce_max(self, a: __m512) -> f32 {
                // SAFETY: the token proves avx512f.
                unsafe { _mm512_reduce_max_ps(a) }
            }
        };
        (@extra Avx2, $v:ty, $m:ty) => {
            #[inline(always)]
            fn abs(self, a: __m256) -> __m256 {
                // SAFETY: the token proves avx2.
                unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), a) }
            }
            #[inline(always)]
            fn lt(self, a: __m256, b: __m256) -> __m256 {
                // SAFETY: the token proves avx2.
                unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(a, b) }
            }
            #[inline(always)]
            fn is_nan(self, a: __m256) -> __m256 {
                // SAFETY: the token proves avx2.
                unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(a, a) }
            }
            #[inline(always)]
            fn select(self, m: __m256, t: __m256, f: __m256) -> __m256 {
                // SAFETY: the token proves avx2.
                unsafe { _mm256_blendv_ps(f, t, m) }
            }
            #[inline(always)]
            fn round(self, a: __m256) -> __m256 {
                // SAFETY: the token proves avx2.
                unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
            }
            #[inline(always)]
            fn pow2i(self, n: __m256) -> __m256 {
                // SAFETY: the token proves avx2.
                unsafe {
                    let i = _mm256_cvtps_epi32(n);
                    _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(i, _mm256_set1_epi32(127))))
                }
            }
            #[inline(always)]
            fn reduce_sum(self, a: __m256) -> f32 {
                // SAFETY: the token proves avx2.
                unsafe {
                    let s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
                    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                    let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
                    _mm_cvtss_f32(s)
                }
            }
            #[inline(always)]
            fn reduce_max(self, a: __m256) -> f32 {
                // SAFETY: the token proves avx2.
                unsafe {
                    let s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
                    let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
                    let s = _mm_max_ss(s, _mm_shuffle_ps::<1>(s, s));
                    _mm_cvtss_f32(s)
                }
            }
        };
    }

    simd_impl!(Avx512, __m512, __mmask16, 16, "avx512f",
        splat: _mm512_set1_ps, load: _mm512_loadu_ps, store: _mm512_storeu_ps, add: _mm512_add_ps,
        sub: _mm512_sub_ps, mul: _mm512_mul_ps, div: _mm512_div_ps, fma: _mm512_fmadd_ps,
        max: _mm512_max_ps, min: _mm512_min_ps);
    simd_impl!(Avx2, __m256, __m256, 8, "avx2",
        splat: _mm256_set1_ps, load: _mm256_loadu_ps, store: _mm256_storeu_ps, add: _mm256_add_ps,
        sub: _mm256_sub_ps, mul: _mm256_mul_ps, div: _mm256_div_ps, fma: _mm256_fmadd_ps,
        max: _mm256_max_ps, min: _mm256_min_ps);
}

/// Defines `$name_with(isa, args...)` that runs the generic `$generic::<S>(S, args...)` inside a
/// `#[target_feature]` function for the best token `isa` allows.
macro_rules! dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty => $generic:ident) => {
        $(#[$meta])*
        #[allow(clippy::unused_unit)]
        $vis fn $name(isa: $crate::Isa, $($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512(s: $crate::simd::Avx512, $($arg: $ty),*) -> $ret {
                    $generic(s, $($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2(s: $crate::simd::Avx2, $($arg: $ty),*) -> $ret {
                    $generic(s, $($arg),*)
                }
                if matches!(isa, $crate::Isa::Avx512 | $crate::Isa::Avx512Bf16 | $crate::Isa::Amx) {
                    if let Some(s) = $crate::simd::Avx512::new() {
                        // SAFETY: the token exists, so the CPU has avx512f.
                        return unsafe { avx512(s, $($arg),*) };
                    }
                }
                if matches!(isa, $crate::Isa::Avx2 | $crate::Isa::Avx512 | $crate::Isa::Avx512Bf16 | $crate::Isa::Amx) {
                    if let Some(s) = $crate::simd::Avx2::new() {
                        // SAFETY: the token exists, so the CPU has avx2 and fma.
                        return unsafe { avx2(s, $($arg),*) };
                    }
                }
            }
            let _ = isa;
            $generic($crate::simd::Scalar, $($arg),*)
        }
    };
}
pub(crate) use dispatch;
