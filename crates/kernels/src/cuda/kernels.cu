// multiret GPU kernels, compiled once per `Gpu` at run time by NVRTC.
//
// No header is included (NVRTC's built-in math functions and intrinsics only), so the source
// compiles with any NVRTC 12.x without include paths. Every kernel takes plain pointers (null =
// absent), `int` sizes that the host checked against `i32::MAX`, and `long long` element counts.
//
// Requirements on the launch (the host side guarantees them):
// - row kernels (`mr_softmax_rows`, `mr_layer_norm_rows`, `mr_l2_normalize_rows`,
//   `mr_top_k_rows`): one block per row (grid-stride over rows), blockDim.x a multiple of 32
//   and at most 1024;
// - element-wise kernels: any launch shape (grid-stride loops).
//
// Numerics follow the CPU kernels of this crate: `scale * x + mask`, `x + residual` and
// `x + bias` are rounded in f32 exactly as the CPU does (explicit `_rn` intrinsics, so no FMA
// contraction changes them); reductions are deterministic for a given launch shape (fixed
// tree order).

#define MR_INF __int_as_float(0x7f800000)

__device__ __forceinline__ bool mr_isnan(float v) { return v != v; }

// Sum of `v` over the block; every thread gets the same value. `red` is shared, >= 32 floats.
__device__ __forceinline__ float mr_block_sum(float v, float* red) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    __syncthreads();  // earlier readers of `red` are done
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = 0.0f;
    for (int w = 0; w < nwarps; ++w) t += red[w];
    return t;
}

// Max of `v` over the block, NaN ignored (fmaxf), -inf when every value is -inf or NaN.
__device__ __forceinline__ float mr_block_max(float v, float* red) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = -MR_INF;
    for (int w = 0; w < nwarps; ++w) t = fmaxf(t, red[w]);
    return t;
}

// Row-wise softmax of `scale * x + mask`, in place. `mask` (may be null) has one row of `cols`
// additive values per `mask_group` consecutive rows of `x` (row r uses mask row r / mask_group).
// A row whose values are all -inf (or NaN) gives 0 except NaN entries, which stay NaN; any NaN
// or +inf otherwise makes the whole row NaN (as the formula does), like the CPU kernel.
extern "C" __global__ void mr_softmax_rows(float* __restrict__ x, int rows, int cols, float scale,
                                           const float* __restrict__ mask, int mask_group) {
    __shared__ float red[32];
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        float* r = x + row * cols;
        const float* m = mask ? mask + (row / mask_group) * cols : 0;
        float mx = -MR_INF;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            float v = __fmul_rn(r[j], scale);
            if (m) v = __fadd_rn(v, m[j]);
            r[j] = v;
            mx = fmaxf(mx, v);
        }
        mx = mr_block_max(mx, red);
        if (mx == -MR_INF) {  // uniform over the block
            for (int j = threadIdx.x; j < cols; j += blockDim.x) {
                if (!mr_isnan(r[j])) r[j] = 0.0f;
            }
            continue;
        }
        float s = 0.0f;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            const float e = expf(r[j] - mx);
            r[j] = e;
            s += e;
        }
        s = mr_block_sum(s, red);
        for (int j = threadIdx.x; j < cols; j += blockDim.x) r[j] = __fdiv_rn(r[j], s);
    }
}

// In place x = LayerNorm(x + residual) per row (residual may be null): biased variance in two
// passes, y = (v - mean) / sqrt(var + eps) * gamma + beta.
extern "C" __global__ void mr_layer_norm_rows(float* __restrict__ x,
                                              const float* __restrict__ residual,
                                              const float* __restrict__ gamma,
                                              const float* __restrict__ beta, int rows, int cols,
                                              float eps) {
    __shared__ float red[32];
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        float* r = x + row * cols;
        const float* res = residual ? residual + row * cols : 0;
        float s = 0.0f;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            float v = r[j];
            if (res) {
                v = __fadd_rn(v, res[j]);
                r[j] = v;
            }
            s += v;
        }
        const float mean = __fdiv_rn(mr_block_sum(s, red), (float)cols);
        float q = 0.0f;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            const float d = r[j] - mean;
            q = fmaf(d, d, q);
        }
        const float var = __fdiv_rn(mr_block_sum(q, red), (float)cols);
        const float inv = __fdiv_rn(1.0f, sqrtf(var + eps));
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            r[j] = fmaf((r[j] - mean) * inv, gamma[j], beta[j]);
        }
    }
}

// GELU, erf form, evaluated in double like the CPU scalar path: 0.5 x erfc(-x / sqrt 2);
// gelu(-inf) = -0, gelu(+inf) = +inf, NaN stays NaN.
__device__ __forceinline__ float mr_gelu(float v) {
    if (v == -MR_INF) return -0.0f;
    const double d = (double)v;
    return (float)(0.5 * d * erfc(-d * 0.70710678118654752440));
}

// x[i] = gelu?(x[i] + bias[i % cols]) over n elements (bias may be null).
extern "C" __global__ void mr_bias_gelu(float* __restrict__ x, const float* __restrict__ bias,
                                        long long n, int cols, int gelu) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float v = x[i];
        if (bias) v = __fadd_rn(v, bias[i % cols]);
        if (gelu) v = mr_gelu(v);
        x[i] = v;
    }
}

// Every row divided by its L2 norm, in place; a zero row stays zero.
extern "C" __global__ void mr_l2_normalize_rows(float* __restrict__ x, int rows, int cols) {
    __shared__ float red[32];
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        float* r = x + row * cols;
        float s = 0.0f;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) s = fmaf(r[j], r[j], s);
        const float nrm = sqrtf(mr_block_sum(s, red));
        if (nrm == 0.0f) continue;  // uniform over the block
        for (int j = threadIdx.x; j < cols; j += blockDim.x) r[j] = __fdiv_rn(r[j], nrm);
    }
}

// f32 -> bf16 bits, round to nearest even, NaN kept quiet (bit-identical to half::bf16::from_f32).
extern "C" __global__ void mr_f32_to_bf16(const float* __restrict__ src,
                                          unsigned short* __restrict__ dst, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const unsigned int u = __float_as_uint(src[i]);
        unsigned int h;
        if ((u & 0x7fffffffu) > 0x7f800000u) {
            h = (u >> 16) | 0x40u;
        } else {
            h = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        }
        dst[i] = (unsigned short)h;
    }
}

// bf16 bits -> f32 (exact).
extern "C" __global__ void mr_bf16_to_f32(const unsigned short* __restrict__ src,
                                          float* __restrict__ dst, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        dst[i] = __uint_as_float(((unsigned int)src[i]) << 16);
    }
}

// Order-preserving key of a score: a larger key ranks first. NaN -> 0 (below every number),
// -0 and +0 share a key (they compare equal), so equal scores have equal keys.
__device__ __forceinline__ unsigned int mr_score_key(float f) {
    if (mr_isnan(f)) return 0u;
    const unsigned int u = (f == 0.0f) ? 0u : __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Top-k of every row of `scores` (rows x cols), 1 <= k <= cols: higher score first, equal
// scores by lower index, NaN last (the order of crate::cosine::top_k). One block per row:
// a 4-pass radix select (8 bits a pass) finds the k-th key T; the elements above T and the
// lowest-index elements equal to T (an ordered block-wide compaction) fill k slots in shared
// memory, which are then ranked (keys are unique once paired with their index).
// Dynamic shared memory: k * 8 bytes.
extern "C" __global__ void mr_top_k_rows(const float* __restrict__ scores, int rows, int cols,
                                         int k, int* __restrict__ out_index,
                                         float* __restrict__ out_score) {
    extern __shared__ unsigned int mr_topk_smem[];
    unsigned int* sel_key = mr_topk_smem;
    int* sel_idx = (int*)(mr_topk_smem + k);
    __shared__ unsigned int hist[256];
    __shared__ unsigned int warp_cnt[32];
    __shared__ unsigned int s_prefix, s_mask, s_rem, s_gt;
    const int tid = threadIdx.x, bd = blockDim.x;
    const int lane = tid & 31, warp = tid >> 5, nwarps = bd >> 5;
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const float* s = scores + row * cols;
        if (tid == 0) {
            s_prefix = 0u;
            s_mask = 0u;
            s_rem = (unsigned int)k;
            s_gt = 0u;
        }
        // Radix select, most significant byte first. Invariant: at least s_rem keys match
        // the prefix, and s_rem of the k best are among them.
        for (int shift = 24; shift >= 0; shift -= 8) {
            for (int b = tid; b < 256; b += bd) hist[b] = 0u;
            __syncthreads();
            const unsigned int prefix = s_prefix, msk = s_mask;
            for (int j = tid; j < cols; j += bd) {
                const unsigned int key = mr_score_key(s[j]);
                if ((key & msk) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
            }
            __syncthreads();
            if (tid == 0) {
                unsigned int rem = s_rem;
                int b = 255;
                while (b > 0 && hist[b] < rem) {
                    rem -= hist[b];
                    --b;
                }
                s_prefix = prefix | ((unsigned int)b << shift);
                s_mask = msk | (255u << shift);
                s_rem = rem;
            }
            __syncthreads();
        }
        const unsigned int thr = s_prefix;        // the k-th key
        const unsigned int need_eq = s_rem;       // how many keys == thr to take (>= 1)
        const unsigned int n_gt = (unsigned int)k - need_eq;  // keys > thr, all taken
        unsigned int eq_base = 0u;                // keys == thr seen in earlier tiles
        for (int base = 0; base < cols; base += bd) {
            const int j = base + tid;
            unsigned int key = 0u;
            bool gt = false, eq = false;
            if (j < cols) {
                key = mr_score_key(s[j]);
                gt = key > thr;
                eq = key == thr;
            }
            if (gt) {
                const unsigned int p = atomicAdd(&s_gt, 1u);
                sel_key[p] = key;
                sel_idx[p] = j;
            }
            const unsigned int ballot = __ballot_sync(0xffffffffu, eq);
            if (lane == 0) warp_cnt[warp] = __popc(ballot);
            __syncthreads();
            unsigned int before = eq_base, total = 0u;
            for (int w = 0; w < nwarps; ++w) {
                if (w < warp) before += warp_cnt[w];
                total += warp_cnt[w];
            }
            before += __popc(ballot & ((1u << lane) - 1u));
            if (eq && before < need_eq) {
                sel_key[n_gt + before] = key;
                sel_idx[n_gt + before] = j;
            }
            eq_base += total;
            __syncthreads();  // warp_cnt is rewritten by the next tile
        }
        for (int i = tid; i < k; i += bd) {
            const unsigned int ki = sel_key[i];
            const int ii = sel_idx[i];
            int rank = 0;
            for (int m = 0; m < k; ++m) {
                const unsigned int km = sel_key[m];
                rank += (km > ki) || (km == ki && sel_idx[m] < ii);
            }
            out_index[row * k + rank] = ii;
            out_score[row * k + rank] = s[ii];
        }
        __syncthreads();  // shared state is reset by the next row
    }
}
