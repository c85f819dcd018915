// TokenInterpolation CUDA kernels (see ti_kernel.h). One source for the TensorRT plugin and the
// PyTorch extension (inti_edge/kernels.py).
//
// Fused path, per frame pair, a cluster of R CTAs; CTA r owns channels [r*slice, (r+1)*slice):
//   1  cp.async its channel slice of both frames, all N tokens, into shared memory (x is read once)
//   2  per-token partial LayerNorm statistics (mean, M2) over its slice              -> cluster barrier
//   3  token owners (tokens split in R ranges) combine the R partials (Chan)         -> cluster barrier
//   4  gather (mean, rstd) of every token; projection of its slice of z = (x-mean)*rstd
//      onto W_in on tensor cores (fp16/bf16 MMA, fp32 as 3xTF32), partial u (HW, D)   -> cluster barrier
//   5  owners sum the R partial u of their tokens, + b_in                            -> cluster barrier
//   6  owners gather their tokens' u plus a halo of neighbours, run the depthwise
//      dilated convs, GELU, W_out, softmax/sigmoid: the pair weights of their tokens  -> cluster barrier
//   7  gather all weights; CLS weights = mean of the patch weights (or 1/2); blend the
//      own channel slice of every token from shared memory and store it.
// Fallback path: stats+projection, weights, blend as three plain kernels through a workspace.
#include "ti_kernel.h"

#pragma nv_diag_suppress 177  // helpers only the sm_90 kernel uses are unreferenced in older-arch passes

#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>

namespace inti {
namespace {

constexpr int kThreads = 256;  // fused kernel: 8 warps
constexpr int kWarps = kThreads / 32;
constexpr int kMT = 2;  // m-tiles (16 tokens) per warp in the projection -> H*W <= 256
constexpr int kMaxHWFused = kWarps * kMT * 16;
constexpr int kMaxR = 16;  // CTAs per cluster (non-portable above 8)
constexpr int kGather = 4;  // DSMEM gathers: remote loads issued per thread before the first use
constexpr int kMaxG2 = 32;  // 2 * groups
constexpr int kFbTokens = 8;  // fallback projection: tokens per block (one per warp)

struct KParams {
  void const* x;
  void* out;
  float const *w_in, *b_in, *dw_w, *dw_b, *w_out, *b_out;
  int P, H, W, HW, N, C, D, G, S, softmax, cls_mean, cpg, dmax;
  int dil[kTIMaxScales];
  float eps;
  // fused geometry
  int R, slice, kpad, stride, tpo, halo, D4;
  int o_A, o_pst, o_sall, o_wfrag, o_fst, o_uown, o_wown, o_wsum, o_wall;
  // token-split geometry (ti_tok_kernel)
  int T, tstride, kpadT, NQT, mt, KP, units, reach;
  int o_st, o_red, o_u, o_w, o_twsum;
  // split path (ti_sp_*): weight bands per pair, W_in chunks per frame, column blocks, n-tiles per block
  int sp_nb, sp_nch, sp_ny, sp_nt;
  int spl_reach, spl_dp, spl_dpad;  // lane weights kernel: tokens the convolutions reach, u stride, padded D
  uint4 const* wpack;     // packed W_in fragments (workspace)
  float const* wcolsum;   // (2, D) column sums of the packed W_in (workspace)
  // fallback workspace
  float* ws_u;
  float* ws_w;
  float* ws_wt;  // split path: pair weights (P, HW, 2G)
  // tile path (ti_tile_kernel): patch tokens per tile, tiles per pair, padded row bytes in shared memory,
  // tokens the convolutions reach, stride of a token's features, offset of the reduction / weights area
  int tl_ri, tl_nm, tl_rs, tl_reach, tl_ksp, tl_ob;
  int* tl_flags;   // (P, nM) tile u written (released)
  int* tl_done;    // (P) tiles blended
  int* tl_ticket;  // tiles handed out
  float* tl_part;  // (P, nM, 2G) partial CLS sums
  int* zero;       // ints the pack kernel zeroes before the launch that uses them (tile path)
  int nzero;
};

template <typename T>
struct Traits;
template <>
struct Traits<float> {
  static constexpr int kK = 8;  // m16n8k8 tf32
};
template <>
struct Traits<__half> {
  static constexpr int kK = 16;  // m16n8k16 f16
};
template <>
struct Traits<__nv_bfloat16> {
  static constexpr int kK = 16;  // m16n8k16 bf16
};

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T>
__device__ __forceinline__ T from_f(float v);
template <>
__device__ __forceinline__ float from_f<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

__device__ __forceinline__ float gelu(float v) { return 0.5f * v * (1.f + erff(v * 0.70710678118654752440f)); }

// Programmatic dependent launch (sm_90+; the split path's kernels A, B, C, each after the one before):
// pdl_trigger lets the next kernel of the stream, if launched with programmatic stream serialization, start
// its CTAs where room frees up; pdl_wait blocks until the previous kernel has completed and its writes are
// visible (a no-op in a kernel launched without the attribute, and below sm_90). Reads of a previous
// kernel's output come after it.
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// the pair's two weights from its two logits: softmax over the pair, or an independent sigmoid each
__device__ __forceinline__ void pair_weights(float l0, float l1, bool softmax, float& w0, float& w1) {
  if (softmax) {
    float const m = fmaxf(l0, l1), e0 = expf(l0 - m), e1 = expf(l1 - m), inv = 1.f / (e0 + e1);
    w0 = e0 * inv;
    w1 = e1 * inv;
  } else {
    w0 = 1.f / (1.f + expf(-l0));
    w1 = 1.f / (1.f + expf(-l1));
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One warp: the pair weights (2G values, group-major (g, member)) of patch token t, from u.
// u holds the context features of tokens [lo, ...), token t' at u + (t' - lo) * ustride.
__device__ void warp_token_weights(KParams const& p, float const* u, int lo, int ustride, int t, float* wout) {
  int const lane = threadIdx.x & 31;
  int const i = t / p.W, j = t - i * p.W;
  int const G2 = 2 * p.G;
  float lp[kMaxG2];
#pragma unroll
  for (int q = 0; q < kMaxG2; ++q) lp[q] = 0.f;
  for (int d = lane; d < p.D; d += 32) {
    float h = gelu(u[(t - lo) * ustride + d]);
    float const* wo = p.w_out + d * G2;
#pragma unroll
    for (int q = 0; q < kMaxG2; ++q)
      if (q < G2) lp[q] = fmaf(h, __ldg(wo + q), lp[q]);
    for (int s = 0; s < p.S; ++s) {
      int const dl = p.dil[s];
      float acc = __ldg(p.dw_b + s * p.D + d);
      float const* k = p.dw_w + (s * p.D + d) * 9;
#pragma unroll
      for (int a = 0; a < 3; ++a) {
        int const ii = i + (a - 1) * dl;
        if (ii < 0 || ii >= p.H) continue;
#pragma unroll
        for (int b = 0; b < 3; ++b) {
          int const jj = j + (b - 1) * dl;
          if (jj < 0 || jj >= p.W) continue;
          acc = fmaf(__ldg(k + a * 3 + b), u[(ii * p.W + jj - lo) * ustride + d], acc);
        }
      }
      h = gelu(acc);
      wo = p.w_out + ((1 + s) * p.D + d) * G2;
#pragma unroll
      for (int q = 0; q < kMaxG2; ++q)
        if (q < G2) lp[q] = fmaf(h, __ldg(wo + q), lp[q]);
    }
  }
#pragma unroll
  for (int q = 0; q < kMaxG2; ++q)
    if (q < G2) lp[q] = warp_sum(lp[q]);
  if (lane == 0) {
#pragma unroll
    for (int g = 0; g < kMaxG2 / 2; ++g) {
      if (g >= p.G) break;
      float const l0 = lp[2 * g] + __ldg(p.b_out + 2 * g), l1 = lp[2 * g + 1] + __ldg(p.b_out + 2 * g + 1);
      float w0, w1;
      pair_weights(l0, l1, p.softmax, w0, w1);
      wout[2 * g] = w0;
      wout[2 * g + 1] = w1;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Fused path (sm_90: clusters, DSMEM, cp.async, ldmatrix, mma.sync)
// ---------------------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_u32(void const* p) { return uint32_t(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void cp_async16(void* dst, void const* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(dst)), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], void const* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}

template <typename T>
__device__ __forceinline__ void mma16(float (&c)[4], uint32_t const (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16<__half>(float (&c)[4], uint32_t const (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16<__nv_bfloat16>(float (&c)[4], uint32_t const (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void mma_tf32(float (&c)[4], uint32_t const (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// v = big + small: big = v rounded to tf32 (half an ulp added to the bit pattern, then truncated: round half
// away from zero, as cvt.rna.tf32.f32), small = v - big, exact in fp32, which the mma reads as tf32 (it
// ignores the low 13 bits: rounded toward zero). big*big + big*small + small*big carry ~fp32 accuracy (the
// split CUTLASS's 3xTF32 uses). Three integer / fp32 instructions per value, where two cvt.rna.tf32.f32 took
// nine (sm_80 / sm_90 emulate them with an inf / NaN check each). A NaN or inf in v gives a NaN small.
__device__ __forceinline__ void split_tf32(float v, uint32_t& big, uint32_t& small) {
  big = (__float_as_uint(v) + 0x1000u) & 0xffffe000u;
  small = __float_as_uint(v - __uint_as_float(big));
}

template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}
template <typename T>
__device__ __forceinline__ float2 unpack2(uint32_t v);
template <>
__device__ __forceinline__ float2 unpack2<__half>(uint32_t v) {
  return __half22float2(*reinterpret_cast<__half2*>(&v));
}
template <>
__device__ __forceinline__ float2 unpack2<__nv_bfloat16>(uint32_t v) {
  return __bfloat1622float2(*reinterpret_cast<__nv_bfloat162*>(&v));
}
template <typename T>
__device__ __forceinline__ uint32_t norm2(uint32_t v, float mu, float rs) {
  float2 f = unpack2<T>(v);
  return pack2<T>((f.x - mu) * rs, (f.y - mu) * rs);
}

__device__ __forceinline__ void cluster_arrive() { asm volatile("barrier.cluster.arrive.release;\n" ::: "memory"); }
__device__ __forceinline__ void cluster_wait() { asm volatile("barrier.cluster.wait.acquire;\n" ::: "memory"); }
__device__ __forceinline__ void cluster_sync_all() {
  cluster_arrive();
  cluster_wait();
}
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
// Generic address of the same shared-memory object in CTA `rank` of the cluster (DSMEM).
template <typename P>
__device__ __forceinline__ P* dsmem(P* local, int rank) {
  return cooperative_groups::this_cluster().map_shared_rank(local, rank);
}
#endif

// W_in slice of this CTA in mma B-fragment order: entry ((ks * NQ + q) * 32 + lane) holds the
// fragments of n-tiles 2q and 2q+1 of k-step ks (ks over frame 0 then frame 1 of the slice).
template <typename T, int NT>
__device__ void build_wfrag(KParams const& p, unsigned char* dst, int c0, int len) {
  constexpr int KK = Traits<T>::kK;
  constexpr int NQ = NT / 2;
  int const nks = p.kpad / KK;
  int const total = 2 * nks * NQ * 32;
  for (int i = threadIdx.x; i < total; i += kThreads) {
    int const ln = i & 31, q = (i >> 5) % NQ, ks = (i >> 5) / NQ;
    int const f = ks / nks, k0 = (ks - f * nks) * KK;
    int const g = ln >> 2, t = ln & 3;
    auto W = [&](int k, int n) -> float {
      return (k < len && n < p.D) ? __ldg(p.w_in + size_t(f * p.C + c0 + k) * p.D + n) : 0.f;
    };
    int const na = 16 * q + g, nb = na + 8;
    if constexpr (KK == 16) {
      uint4 v;
      v.x = pack2<T>(W(k0 + 2 * t, na), W(k0 + 2 * t + 1, na));
      v.y = pack2<T>(W(k0 + 2 * t + 8, na), W(k0 + 2 * t + 9, na));
      v.z = pack2<T>(W(k0 + 2 * t, nb), W(k0 + 2 * t + 1, nb));
      v.w = pack2<T>(W(k0 + 2 * t + 8, nb), W(k0 + 2 * t + 9, nb));
      reinterpret_cast<uint4*>(dst)[i] = v;
    } else {
      reinterpret_cast<float4*>(dst)[i] = make_float4(W(k0 + t, na), W(k0 + t + 4, na), W(k0 + t, nb), W(k0 + t + 4, nb));
    }
  }
}

// Partial u of this CTA's channel slice: acc[mi][j] = m-tile (warp + mi*kWarps), n-tile j.
template <typename T, int NT>
__device__ __forceinline__ void project(KParams const& p, unsigned char const* sm, float2 const* sall,
                                        float (&acc)[kMT][NT][4], int warp, int lane) {
  constexpr int KK = Traits<T>::kK;
  constexpr int NQ = NT / 2;
  int const nks = p.kpad / KK, mtiles = (p.HW + 15) / 16;
  int const g = lane >> 2, t4 = lane & 3;
  uint4 const* wfrag = reinterpret_cast<uint4 const*>(sm + p.o_wfrag);
#pragma unroll 1
  for (int f = 0; f < 2; ++f) {
    float mu[kMT][2], rs[kMT][2];
#pragma unroll
    for (int mi = 0; mi < kMT; ++mi) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        int const m = warp + mi * kWarps, r = m * 16 + g + 8 * h;
        float2 const s = (m < mtiles && r < p.HW) ? sall[f * p.HW + r] : make_float2(0.f, 0.f);
        mu[mi][h] = s.x;
        rs[mi][h] = s.y;
      }
    }
#pragma unroll 1
    for (int ks = 0; ks < nks; ++ks) {
      uint4 bq[NQ];
#pragma unroll
      for (int q = 0; q < NQ; ++q) bq[q] = wfrag[((f * nks + ks) * NQ + q) * 32 + lane];
#pragma unroll
      for (int mi = 0; mi < kMT; ++mi) {
        int const m = warp + mi * kWarps;
        if (m >= mtiles) continue;  // warp-uniform
        if constexpr (KK == 16) {
          int const r = (lane & 7) + ((lane >> 3) & 1) * 8, kofs = (lane >> 4) * 8;
          int const n = min(1 + m * 16 + r, p.N - 1);
          uint32_t a[4];
          ldmatrix_x4(a, sm + (f * p.N + n) * p.stride + (ks * 16 + kofs) * 2);
          a[0] = norm2<T>(a[0], mu[mi][0], rs[mi][0]);
          a[1] = norm2<T>(a[1], mu[mi][1], rs[mi][1]);
          a[2] = norm2<T>(a[2], mu[mi][0], rs[mi][0]);
          a[3] = norm2<T>(a[3], mu[mi][1], rs[mi][1]);
#pragma unroll
          for (int j = 0; j < NT; ++j) {
            uint32_t const b0 = (j & 1) ? bq[j / 2].z : bq[j / 2].x;
            uint32_t const b1 = (j & 1) ? bq[j / 2].w : bq[j / 2].y;
            mma16<T>(acc[mi][j], a, b0, b1);
          }
        } else {
          int const n0 = min(1 + m * 16 + g, p.N - 1), n1 = min(1 + m * 16 + g + 8, p.N - 1);
          float const* r0 = reinterpret_cast<float const*>(sm + (f * p.N + n0) * p.stride) + ks * 8 + t4;
          float const* r1 = reinterpret_cast<float const*>(sm + (f * p.N + n1) * p.stride) + ks * 8 + t4;
          uint32_t ab[4], as[4];
          split_tf32((r0[0] - mu[mi][0]) * rs[mi][0], ab[0], as[0]);
          split_tf32((r1[0] - mu[mi][1]) * rs[mi][1], ab[1], as[1]);
          split_tf32((r0[4] - mu[mi][0]) * rs[mi][0], ab[2], as[2]);
          split_tf32((r1[4] - mu[mi][1]) * rs[mi][1], ab[3], as[3]);
#pragma unroll
          for (int j = 0; j < NT; ++j) {
            float const w0 = __uint_as_float((j & 1) ? bq[j / 2].z : bq[j / 2].x);
            float const w1 = __uint_as_float((j & 1) ? bq[j / 2].w : bq[j / 2].y);
            uint32_t bb0, bs0, bb1, bs1;
            split_tf32(w0, bb0, bs0);
            split_tf32(w1, bb1, bs1);
            mma_tf32(acc[mi][j], as, bb0, bb1);
            mma_tf32(acc[mi][j], ab, bs0, bs1);
            mma_tf32(acc[mi][j], ab, bb0, bb1);
          }
        }
      }
    }
  }
}

template <typename T>
__device__ __forceinline__ uint4 blend16(uint4 a, uint4 b, float const* wn, int c, int cpg, int G) {
  constexpr int VEC = 16 / int(sizeof(T));
  T const* xa = reinterpret_cast<T const*>(&a);
  T const* xb = reinterpret_cast<T const*>(&b);
  uint4 o;
  T* xo = reinterpret_cast<T*>(&o);
  if (G == 1) {
    float const w0 = wn[0], w1 = wn[1];
#pragma unroll
    for (int e = 0; e < VEC; ++e) xo[e] = from_f<T>(w0 * to_f(xa[e]) + w1 * to_f(xb[e]));
  } else {
    int g = c / cpg, bnd = (g + 1) * cpg;
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      if (c + e >= bnd) {
        ++g;
        bnd += cpg;
      }
      xo[e] = from_f<T>(wn[2 * g] * to_f(xa[e]) + wn[2 * g + 1] * to_f(xb[e]));
    }
  }
  return o;
}

// 16-bit inputs with D <= 32 fit 3 CTAs per SM (80 registers, 73 KB shared memory at vit-b16 / R=16).
template <typename T, int NT>
__global__ void __launch_bounds__(kThreads, (sizeof(T) == 2 && NT <= 4) ? 3 : 2) ti_fused_kernel(KParams const p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(128) unsigned char sm[];
  constexpr int VEC = 16 / int(sizeof(T));
  int const tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  int const rank = int(cooperative_groups::this_cluster().block_rank());
  int const pair = blockIdx.x / p.R;
  int const N = p.N, HW = p.HW, C = p.C, G2 = 2 * p.G;
  int const c0 = rank * p.slice, len = min(p.slice, C - c0), nv = len / VEC;

  // 1. this CTA's channel slice of both frames, all tokens -> shared memory rows (f * N + n)
  T const* xg = static_cast<T const*>(p.x) + size_t(pair) * 2 * N * C + c0;
  for (int i = tid; i < 2 * N * nv; i += kThreads) {
    int const row = i / nv, v = i - row * nv;
    cp_async16(sm + row * p.stride + v * 16, xg + size_t(row) * C + v * VEC);
  }
  cp_async_commit();
  if (p.kpad > len) {  // zero the k-padding columns the MMA reads
    int const nq = (p.kpad - len) * int(sizeof(T)) / 16;
    for (int i = tid; i < 2 * N * nq; i += kThreads) {
      int const row = i / nq, q = i - row * nq;
      *reinterpret_cast<uint4*>(sm + row * p.stride + len * int(sizeof(T)) + q * 16) = make_uint4(0, 0, 0, 0);
    }
  }
  build_wfrag<T, NT>(p, sm + p.o_wfrag, c0, len);
  cp_async_wait_all();
  __syncthreads();

  // 2. partial statistics (mean, M2) of each (frame, patch token) over this slice
  float2* pst = reinterpret_cast<float2*>(sm + p.o_pst);
  for (int i = tid; i < 2 * HW; i += kThreads) {
    int const f = i / HW, t = i - f * HW;
    uint4 const* row = reinterpret_cast<uint4 const*>(sm + (f * N + 1 + t) * p.stride);
    float s = 0.f;
    for (int v = 0; v < nv; ++v) {
      uint4 const q = row[v];
      T const* e = reinterpret_cast<T const*>(&q);
#pragma unroll
      for (int k = 0; k < VEC; ++k) s += to_f(e[k]);
    }
    float const mean = s / float(len);
    float m2 = 0.f;
    for (int v = 0; v < nv; ++v) {
      uint4 const q = row[v];
      T const* e = reinterpret_cast<T const*>(&q);
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        float const dlt = to_f(e[k]) - mean;
        m2 = fmaf(dlt, dlt, m2);
      }
    }
    pst[i] = make_float2(mean, m2);
  }
  cluster_sync_all();  // #1 partial statistics visible

  // 3. owners combine the statistics of their tokens, 8 partials in flight at a time, shifted by the
  //    local partial mean K: mean = K + S1 / C, M2 = S2 - S1^2 / C with
  //    S1 = sum n_r (mean_r - K), S2 = sum (M2_r + n_r (mean_r - K)^2)
  int const tb = rank * p.tpo, te = min(HW, tb + p.tpo), nown = max(0, te - tb);
  float2* fst = reinterpret_cast<float2*>(sm + p.o_fst);
  for (int i = tid; i < 2 * nown; i += kThreads) {
    int const f = i / nown, tl = i - f * nown, t = tb + tl;
    float const K = pst[f * HW + t].x;
    float s1 = 0.f, s2 = 0.f;
#pragma unroll
    for (int r0 = 0; r0 < kMaxR; r0 += 8) {
      float2 v[8];
#pragma unroll
      for (int r = 0; r < 8; ++r)
        if (r0 + r < p.R) v[r] = dsmem(pst, r0 + r)[f * HW + t];
#pragma unroll
      for (int r = 0; r < 8; ++r)
        if (r0 + r < p.R) {
          float const nb = float(min(p.slice, C - (r0 + r) * p.slice)), dlt = v[r].x - K;
          s1 = fmaf(nb, dlt, s1);
          s2 += fmaf(nb * dlt, dlt, v[r].y);
        }
    }
    float const mean = K + s1 / float(C);
    float const m2 = s2 - s1 * (s1 / float(C));
    float const var = fmaxf(m2 / float(C), 0.f);
    fst[f * p.tpo + tl] = make_float2(mean, 1.f / sqrtf(var + p.eps));
  }
  cluster_sync_all();  // #2 statistics of every token at its owner

  // 4. gather (mean, rstd) of all tokens; projection of this slice
  float2* sall = reinterpret_cast<float2*>(sm + p.o_sall);
  for (int i0 = tid; i0 < 2 * HW; i0 += kGather * kThreads) {  // kGather remote loads in flight per thread
    float2 v[kGather];
#pragma unroll
    for (int k = 0; k < kGather; ++k) {
      int const i = i0 + k * kThreads, f = i / HW, t = i - f * HW, o = t / p.tpo;
      if (i < 2 * HW) v[k] = dsmem(fst, o)[f * p.tpo + (t - o * p.tpo)];
    }
#pragma unroll
    for (int k = 0; k < kGather; ++k)
      if (i0 + k * kThreads < 2 * HW) sall[i0 + k * kThreads] = v[k];
  }
  __syncthreads();
  float acc[kMT][NT][4];
#pragma unroll
  for (int mi = 0; mi < kMT; ++mi)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mi][j][e] = 0.f;
  project<T, NT>(p, sm, sall, acc, warp, lane);
  __syncthreads();  // statistics, W fragments dead: the partial u overlays them
  float* upart = reinterpret_cast<float*>(sm + p.o_A);
  {
    int const mtiles = (HW + 15) / 16, g = lane >> 2, t4 = lane & 3;
#pragma unroll
    for (int mi = 0; mi < kMT; ++mi) {
      int const m = warp + mi * kWarps;
      if (m >= mtiles) continue;
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        int const col = 8 * j + 2 * t4;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          int const row = m * 16 + g + 8 * h;
          if (row >= HW) continue;
          if (col < p.D) upart[row * p.D4 + col] = acc[mi][j][2 * h];
          if (col + 1 < p.D) upart[row * p.D4 + col + 1] = acc[mi][j][2 * h + 1];
        }
      }
    }
    // the padding columns of a row are summed below (never used): keep them finite
    if (p.D4 > p.D)
      for (int i = tid; i < HW * (p.D4 - p.D); i += kThreads) {
        int const row = i / (p.D4 - p.D);
        upart[row * p.D4 + p.D + (i - row * (p.D4 - p.D))] = 0.f;
      }
  }
  cluster_sync_all();  // #3 partial u visible

  // 5. owners: u of their tokens = sum of the R partials + b_in
  int const D4q = p.D4 / 4;
  float* uown = reinterpret_cast<float*>(sm + p.o_uown);
  for (int i = tid; i < nown * D4q; i += kThreads) {
    int const tl = i / D4q, q = i - tl * D4q, t = tb + tl;
    float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int r0 = 0; r0 < kMaxR; r0 += 8) {  // 8 partials in flight at once, summed in rank order
      float4 v[8];
#pragma unroll
      for (int r = 0; r < 8; ++r)
        if (r0 + r < p.R) v[r] = reinterpret_cast<float4 const*>(dsmem(upart, r0 + r))[t * D4q + q];
#pragma unroll
      for (int r = 0; r < 8; ++r)
        if (r0 + r < p.R) {
          s.x += v[r].x;
          s.y += v[r].y;
          s.z += v[r].z;
          s.w += v[r].w;
        }
    }
    int const d = 4 * q;
    s.x += d < p.D ? __ldg(p.b_in + d) : 0.f;
    s.y += d + 1 < p.D ? __ldg(p.b_in + d + 1) : 0.f;
    s.z += d + 2 < p.D ? __ldg(p.b_in + d + 2) : 0.f;
    s.w += d + 3 < p.D ? __ldg(p.b_in + d + 3) : 0.f;
    reinterpret_cast<float4*>(uown)[i] = s;
  }
  cluster_sync_all();  // #4 u of every token at its owner

  // 6. owners: halo of u, multi-scale context, weights of their tokens
  float* uhalo = reinterpret_cast<float*>(sm + p.o_A);  // partial u dead after #4
  float* wown = reinterpret_cast<float*>(sm + p.o_wown);
  float* wsum = reinterpret_cast<float*>(sm + p.o_wsum);
  if (nown > 0) {
    int const reach = p.dmax * p.W + p.dmax;
    int const lo = max(0, tb - reach), hi = min(HW, te + reach);
    int const nh = (hi - lo) * D4q;
    for (int i0 = tid; i0 < nh; i0 += kGather * kThreads) {
      float4 v[kGather];
#pragma unroll
      for (int k = 0; k < kGather; ++k) {
        int const i = i0 + k * kThreads, tt = i / D4q, q = i - tt * D4q, t = lo + tt, o = t / p.tpo;
        if (i < nh) v[k] = reinterpret_cast<float4 const*>(dsmem(uown, o))[(t - o * p.tpo) * D4q + q];
      }
#pragma unroll
      for (int k = 0; k < kGather; ++k)
        if (i0 + k * kThreads < nh) reinterpret_cast<float4*>(uhalo)[i0 + k * kThreads] = v[k];
    }
    __syncthreads();
    for (int tl = warp; tl < nown; tl += kWarps) warp_token_weights(p, uhalo, lo, p.D4, tb + tl, wown + tl * G2);
  }
  __syncthreads();
  if (tid < G2) {
    float s = 0.f;
    for (int tl = 0; tl < nown; ++tl) s += wown[tl * G2 + tid];
    wsum[tid] = s;
  }
  cluster_sync_all();  // #5 weights at their owners

  // 7. all weights (CLS first), blend this channel slice of every token
  float* wall = reinterpret_cast<float*>(sm + p.o_wall);
  for (int i0 = tid; i0 < HW * G2; i0 += kGather * kThreads) {
    float v[kGather];
#pragma unroll
    for (int k = 0; k < kGather; ++k) {
      int const i = i0 + k * kThreads, t = i / G2, q = i - t * G2, o = t / p.tpo;
      if (i < HW * G2) v[k] = dsmem(wown, o)[(t - o * p.tpo) * G2 + q];
    }
#pragma unroll
    for (int k = 0; k < kGather; ++k)
      if (i0 + k * kThreads < HW * G2) wall[G2 + i0 + k * kThreads] = v[k];
  }
  if (tid < G2) {
    float v = 0.5f;
    if (p.cls_mean) {
      float part[kMaxR];
#pragma unroll
      for (int r = 0; r < kMaxR; ++r)
        if (r < p.R) part[r] = dsmem(wsum, r)[tid];
      float s = 0.f;
#pragma unroll
      for (int r = 0; r < kMaxR; ++r)
        if (r < p.R) s += part[r];
      v = s / float(HW);
    }
    wall[tid] = v;
  }
  cluster_arrive();  // this CTA reads no other CTA's shared memory from here on
  __syncthreads();
  T* og = static_cast<T*>(p.out) + size_t(pair) * N * C + c0;
  for (int i = tid; i < N * nv; i += kThreads) {
    int const n = i / nv, v = i - n * nv;
    uint4 const a = *reinterpret_cast<uint4 const*>(sm + n * p.stride + v * 16);
    uint4 const b = *reinterpret_cast<uint4 const*>(sm + (N + n) * p.stride + v * 16);
    *reinterpret_cast<uint4*>(og + size_t(n) * C + v * VEC) = blend16<T>(a, b, wall + n * G2, c0 + v * VEC, p.cpg, p.G);
  }
  cluster_wait();  // no CTA leaves while another may still read its shared memory
#endif
}

// ---------------------------------------------------------------------------------------------
// Token-split fused path (sm_90, 16-bit inputs): a cluster of R CTAs per frame pair, CTA r owning
// whole tokens [r*T, r*T + T) of both frames (all C channels) in shared memory:
//   1  cp.async its token rows (x read from DRAM once)
//   2  LayerNorm statistics of its rows (local: a row is whole); W x on tensor cores with the raw
//      rows as A (LayerNorm folded: proj(LN(x)) = rstd * (W x - mean * W 1)); W fragments packed
//      once per launch (ti_pack_kernel) into the workspace, read through L1 / L2
//   3  u of its patch tokens                                                       -> cluster barrier
//   4  gather u of its tokens plus the halo of the dilated convolutions from the neighbours (DSMEM),
//      pair weights of its tokens; partial CLS sums to CTA 0       -> cluster arrive (no waiting)
//   5  blend its patch tokens from shared memory; CTA 0 waits for the partial sums, blends the CLS
//      token; every CTA waits before it exits (its u may still be read until then)
// ---------------------------------------------------------------------------------------------

// W_in of both frames in mma B-fragment order (same per-k-step layout as build_wfrag; k-steps over
// frame 0 then frame 1, each frame zero-padded to kpadT channels), then S (2, D): per frame the
// column sums of the rounded W_in (the mean term of the folded LayerNorm).
template <typename T>
__global__ void __launch_bounds__(256) ti_pack_kernel(KParams const p, int fragBlocks) {
  int const NQ = p.NQT;
  int const nks = p.kpadT / 16;
  if (int(blockIdx.x) < fragBlocks) {
    int const total = 2 * nks * NQ * 32;
    int const i = int(blockIdx.x) * 256 + int(threadIdx.x);
    if (i >= total) return;
    int const ln = i & 31, q = (i >> 5) % NQ, ks = (i >> 5) / NQ;
    int const f = ks / nks, k0 = (ks - f * nks) * 16;
    int const g = ln >> 2, t = ln & 3;
    auto W = [&](int k, int n) -> float {
      return (k < p.C && n < p.D) ? __ldg(p.w_in + size_t(f * p.C + k) * p.D + n) : 0.f;
    };
    int const na = 16 * q + g, nb = na + 8;
    uint4 v;
    v.x = pack2<T>(W(k0 + 2 * t, na), W(k0 + 2 * t + 1, na));
    v.y = pack2<T>(W(k0 + 2 * t + 8, na), W(k0 + 2 * t + 9, na));
    v.z = pack2<T>(W(k0 + 2 * t, nb), W(k0 + 2 * t + 1, nb));
    v.w = pack2<T>(W(k0 + 2 * t + 8, nb), W(k0 + 2 * t + 9, nb));
    const_cast<uint4*>(p.wpack)[i] = v;
  } else {
    // one block per (frame, d): S[f][d] = sum_c round(W[f*C + c][d]), fixed order (deterministic)
    int const fd = int(blockIdx.x) - fragBlocks, f = fd / p.D, d = fd - f * p.D;
    __shared__ float part[256];
    float s = 0.f;
    for (int c = threadIdx.x; c < p.C; c += 256) s += to_f(from_f<T>(__ldg(p.w_in + size_t(f * p.C + c) * p.D + d)));
    part[threadIdx.x] = s;
    __syncthreads();
    for (int o = 128; o > 0; o >>= 1) {
      if (int(threadIdx.x) < o) part[threadIdx.x] += part[threadIdx.x + o];
      __syncthreads();
    }
    if (threadIdx.x == 0) const_cast<float*>(p.wcolsum)[f * p.D + d] = part[0];
  }
}

template <typename T, int NT>
__global__ void __launch_bounds__(kThreads, 2) ti_tok_kernel(KParams const p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(128) unsigned char sm[];
  constexpr int VEC = 16 / int(sizeof(T));
  constexpr int NQ = NT / 2;
  constexpr int ND = 8 * NT;  // columns of a partial-product tile
  int const tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  int const rank = int(cooperative_groups::this_cluster().block_rank());
  int const pair = blockIdx.x / p.R;
  int const N = p.N, HW = p.HW, C = p.C, G2 = 2 * p.G, TT = p.T;
  int const t0 = rank * TT, nt = max(0, min(TT, N - t0)), nv = C / VEC;

  // 1. this CTA's token rows of both frames -> shared memory rows (f * T + i)
  T const* xg = static_cast<T const*>(p.x) + size_t(pair) * 2 * N * C;
  for (int i = tid; i < 2 * nt * nv; i += kThreads) {
    int const row = i / nv, v = i - row * nv, f = row >= nt, ii = row - f * nt;
    cp_async16(sm + (f * TT + ii) * p.tstride + v * 16, xg + (size_t(f) * N + t0 + ii) * C + v * VEC);
  }
  cp_async_commit();
  if (p.kpadT > C) {  // zero the k-padding columns the MMA reads
    int const nq = (p.kpadT - C) * int(sizeof(T)) / 16;
    for (int i = tid; i < 2 * nt * nq; i += kThreads) {
      int const row = i / nq, q = i - row * nq, f = row >= nt, ii = row - f * nt;
      *reinterpret_cast<uint4*>(sm + (f * TT + ii) * p.tstride + C * int(sizeof(T)) + q * 16) = make_uint4(0, 0, 0, 0);
    }
  }
  cp_async_wait_all();
  __syncthreads();

  // 2a. statistics of every row (one warp per row), shifted by the row's first value
  float2* st = reinterpret_cast<float2*>(sm + p.o_st);
  for (int row = warp; row < 2 * nt; row += kWarps) {
    int const f = row >= nt, ii = row - f * nt;
    unsigned char const* rp = sm + (f * TT + ii) * p.tstride;
    float const K = to_f(*reinterpret_cast<T const*>(rp));
    float s1 = 0.f, s2 = 0.f;
    for (int v = lane; v < nv; v += 32) {
      uint4 const q = reinterpret_cast<uint4 const*>(rp)[v];
      T const* e = reinterpret_cast<T const*>(&q);
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        float const dl = to_f(e[k]) - K;
        s1 += dl;
        s2 = fmaf(dl, dl, s2);
      }
    }
    s1 = warp_sum(s1);
    s2 = warp_sum(s2);
    float const mo = s1 / float(C), var = fmaxf(s2 / float(C) - mo * mo, 0.f);
    if (lane == 0) st[f * TT + ii] = make_float2(K + mo, 1.f / sqrtf(var + p.eps));
  }

  // 2b. W x of the raw rows: unit = (m-tile, frame, k-part), one 16 x ND partial tile each
  float* red = reinterpret_cast<float*>(sm + p.o_red);
  {
    int const nks = p.kpadT / 16;
    int const g = lane >> 2, t4 = lane & 3;
    int const r = (lane & 7) + ((lane >> 3) & 1) * 8, kofs = (lane >> 4) * 8;
    uint4 const* wp = p.wpack;
    for (int unit = warp; unit < p.units; unit += kWarps) {
      int const m = unit % p.mt, rest = unit / p.mt, f = rest & 1, kp = rest >> 1;
      int const ks0 = kp * nks / p.KP, ks1 = (kp + 1) * nks / p.KP;
      int const ii = min(m * 16 + r, nt - 1);
      unsigned char const* ab = sm + (f * TT + ii) * p.tstride + kofs * 2;
      uint4 const* wb = wp + size_t(f * nks) * NQ * 32 + lane;
      float acc[NT][4];
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[j][e] = 0.f;
      uint4 bq[NQ], bn[NQ];
#pragma unroll
      for (int q = 0; q < NQ; ++q) bq[q] = __ldg(wb + (ks0 * NQ + q) * 32);
#pragma unroll 2
      for (int ks = ks0; ks < ks1; ++ks) {
        int const kn = min(ks + 1, ks1 - 1);  // prefetch the next k-step's B fragments
#pragma unroll
        for (int q = 0; q < NQ; ++q) bn[q] = __ldg(wb + (kn * NQ + q) * 32);
        uint32_t a[4];
        ldmatrix_x4(a, ab + ks * 32);
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          uint32_t const b0 = (j & 1) ? bq[j / 2].z : bq[j / 2].x;
          uint32_t const b1 = (j & 1) ? bq[j / 2].w : bq[j / 2].y;
          mma16<T>(acc[j], a, b0, b1);
        }
#pragma unroll
        for (int q = 0; q < NQ; ++q) bq[q] = bn[q];
      }
      float* rt = red + unit * 16 * ND;
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        int const col = 8 * j + 2 * t4;
        *reinterpret_cast<float2*>(rt + g * ND + col) = make_float2(acc[j][0], acc[j][1]);
        *reinterpret_cast<float2*>(rt + (g + 8) * ND + col) = make_float2(acc[j][2], acc[j][3]);
      }
    }
  }
  __syncthreads();

  // 3. u of the local tokens: rstd0 (A0 - mean0 S0) + rstd1 (A1 - mean1 S1) + b_in (CLS: unused, 0)
  float* ub = reinterpret_cast<float*>(sm + p.o_u);
  for (int i = tid; i < nt * p.D; i += kThreads) {
    int const ii = i / p.D, d = i - ii * p.D, m = ii >> 4, rr = ii & 15;
    float a0 = 0.f, a1 = 0.f;
    for (int kp = 0; kp < p.KP; ++kp) {
      a0 += red[((kp * 2 + 0) * p.mt + m) * 16 * ND + rr * ND + d];
      a1 += red[((kp * 2 + 1) * p.mt + m) * 16 * ND + rr * ND + d];
    }
    float2 const s0 = st[ii], s1 = st[TT + ii];
    float const u = s0.y * (a0 - s0.x * __ldg(p.wcolsum + d)) + s1.y * (a1 - s1.x * __ldg(p.wcolsum + p.D + d)) +
                    __ldg(p.b_in + d);
    ub[ii * p.D4 + d] = (t0 + ii == 0) ? 0.f : u;
  }
  cluster_sync_all();  // #1 u of every token visible in the cluster

  // 4. u of the own patch tokens and their halo -> uh (overlays the partial tiles); pair weights
  int const pa = max(t0, 1) - 1, pb = t0 + nt - 1;  // own patch tokens [pa, pb)
  float* uh = reinterpret_cast<float*>(sm + p.o_red);
  float* wown = reinterpret_cast<float*>(sm + p.o_w);
  float* wsum = reinterpret_cast<float*>(sm + p.o_twsum);
  int const lo = max(0, pa - p.reach), hi = min(HW, pb + p.reach);
  if (pb > pa) {
    int const D4q = p.D4 / 4, nh = (hi - lo) * D4q;
    for (int i0 = tid; i0 < nh; i0 += kGather * kThreads) {
      float4 v[kGather];
#pragma unroll
      for (int k = 0; k < kGather; ++k) {
        int const i = i0 + k * kThreads, tt = i / D4q, q = i - tt * D4q, tok = lo + tt + 1, o = tok / TT;
        if (i < nh) v[k] = reinterpret_cast<float4 const*>(dsmem(ub, o))[(tok - o * TT) * D4q + q];
      }
#pragma unroll
      for (int k = 0; k < kGather; ++k)
        if (i0 + k * kThreads < nh) reinterpret_cast<float4*>(uh)[i0 + k * kThreads] = v[k];
    }
    __syncthreads();
    for (int t = pa + warp; t < pb; t += kWarps) warp_token_weights(p, uh, lo, p.D4, t, wown + (t - pa) * G2);
  }
  __syncthreads();
  if (p.cls_mean && tid < G2) {  // partial CLS sum of this CTA, into CTA 0's slot (fixed order there)
    float s = 0.f;
    for (int t = pa; t < pb; ++t) s += wown[(t - pa) * G2 + tid];
    dsmem(wsum, 0)[rank * G2 + tid] = s;
  }
  cluster_arrive();  // #2: done reading the neighbours' u; partial sums written

  // 5. blend the own patch tokens from shared memory
  T* og = static_cast<T*>(p.out) + size_t(pair) * N * C;
  for (int i = tid; i < nt * nv; i += kThreads) {
    int const ii = i / nv, v = i - ii * nv, tok = t0 + ii;
    if (tok == 0) continue;
    uint4 const a = *reinterpret_cast<uint4 const*>(sm + ii * p.tstride + v * 16);
    uint4 const b = *reinterpret_cast<uint4 const*>(sm + (TT + ii) * p.tstride + v * 16);
    *reinterpret_cast<uint4*>(og + size_t(tok) * C + v * VEC) = blend16<T>(a, b, wown + (tok - 1 - pa) * G2, v * VEC, p.cpg, p.G);
  }
  cluster_wait();  // #2 complete: every partial sum is in CTA 0, nobody reads this CTA's u any more
  if (rank == 0) {  // CLS token: the mean of the patch weights (or 1/2)
    float* wc = wsum + p.R * G2;
    if (tid < G2) {
      float v = 0.5f;
      if (p.cls_mean) {
        float s = 0.f;
        for (int r = 0; r < p.R; ++r) s += wsum[r * G2 + tid];
        v = s / float(HW);
      }
      wc[tid] = v;
    }
    __syncthreads();
    for (int v = tid; v < nv; v += kThreads) {
      uint4 const a = *reinterpret_cast<uint4 const*>(sm + v * 16);
      uint4 const b = *reinterpret_cast<uint4 const*>(sm + TT * p.tstride + v * 16);
      *reinterpret_cast<uint4*>(og + v * VEC) = blend16<T>(a, b, wc, v * VEC, p.cpg, p.G);
    }
  }
#endif
}

// ---------------------------------------------------------------------------------------------
// Fallback path (any GPU, any shape)
// ---------------------------------------------------------------------------------------------

// u[pair, t, :] = LayerNorm-free projection of the pair's two normalised rows; one token per warp.
template <typename T>
__global__ void __launch_bounds__(kFbTokens * 32) ti_fb_proj_kernel(KParams const p) {
  __shared__ float ws[2][32][33];
  __shared__ float zs[kFbTokens][2][32];
  int const tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  int const pair = blockIdx.y, t = blockIdx.x * kFbTokens + warp, C = p.C, D = p.D;
  bool const valid = t < p.HW;
  T const* xr[2];
  float mu[2] = {0.f, 0.f}, rs[2] = {0.f, 0.f};
  for (int f = 0; f < 2; ++f) {
    xr[f] = static_cast<T const*>(p.x) + (size_t(pair * 2 + f) * p.N + 1 + (valid ? t : 0)) * C;
    if (valid) {
      float s = 0.f;
      for (int c = lane; c < C; c += 32) s += to_f(xr[f][c]);
      float const mean = warp_sum(s) / float(C);
      float m2 = 0.f;
      for (int c = lane; c < C; c += 32) {
        float const dl = to_f(xr[f][c]) - mean;
        m2 = fmaf(dl, dl, m2);
      }
      mu[f] = mean;
      rs[f] = 1.f / sqrtf(warp_sum(m2) / float(C) + p.eps);
    }
  }
  for (int d0 = 0; d0 < D; d0 += 32) {
    // two-level sum: fp32 over one 32-channel chunk of both frames, double across chunks (a plain
    // fp32 running sum over 2C products drifts to ~1e-5 at the output for C = 768)
    double acc = 0.0;
    for (int cc = 0; cc < C; cc += 32) {
      __syncthreads();
      for (int i = tid; i < 2 * 32 * 32; i += kFbTokens * 32) {
        int const f = i >> 10, k = (i >> 5) & 31, n = i & 31, c = cc + k, d = d0 + n;
        ws[f][k][n] = (c < C && d < D) ? __ldg(p.w_in + size_t(f * C + c) * D + d) : 0.f;
      }
      for (int f = 0; f < 2; ++f) {
        int const c = cc + lane;
        zs[warp][f][lane] = (valid && c < C) ? (to_f(xr[f][c]) - mu[f]) * rs[f] : 0.f;
      }
      __syncthreads();
      float part = 0.f;
#pragma unroll
      for (int f = 0; f < 2; ++f)
#pragma unroll 8
        for (int k = 0; k < 32; ++k) part = fmaf(zs[warp][f][k], ws[f][k][lane], part);
      acc += double(part);
    }
    if (valid && d0 + lane < D)
      p.ws_u[(size_t(pair) * p.HW + t) * D + d0 + lane] = float(acc + double(__ldg(p.b_in + d0 + lane)));
  }
}

__global__ void __launch_bounds__(256) ti_fb_weights_kernel(KParams const p) {
  int const pair = blockIdx.x, warp = threadIdx.x >> 5, G2 = 2 * p.G;
  float const* u = p.ws_u + size_t(pair) * p.HW * p.D;
  float* w = p.ws_w + size_t(pair) * p.N * G2;
  for (int t = warp; t < p.HW; t += 8) warp_token_weights(p, u, 0, p.D, t, w + (1 + t) * G2);
  __syncthreads();
  if (int(threadIdx.x) < G2) {
    float v = 0.5f;
    if (p.cls_mean) {
      float s = 0.f;
      for (int t = 0; t < p.HW; ++t) s += w[(1 + t) * G2 + threadIdx.x];
      v = s / float(p.HW);
    }
    w[threadIdx.x] = v;
  }
}

template <typename T>
__global__ void __launch_bounds__(256) ti_fb_blend_kernel(KParams const p) {
  size_t const total = size_t(p.P) * p.N * p.C;
  int const G2 = 2 * p.G;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += size_t(gridDim.x) * blockDim.x) {
    size_t const pn = i / p.C;
    int const c = int(i - pn * p.C), g = c / p.cpg;
    size_t const pair = pn / p.N, n = pn - pair * p.N;
    T const* x = static_cast<T const*>(p.x);
    float const* w = p.ws_w + pn * G2;
    float const x0 = to_f(x[(pair * 2 * p.N + n) * p.C + c]), x1 = to_f(x[((pair * 2 + 1) * p.N + n) * p.C + c]);
    static_cast<T*>(p.out)[i] = from_f<T>(w[2 * g] * x0 + w[2 * g + 1] * x1);
  }
}

// ---------------------------------------------------------------------------------------------
// Split path ("split" variant; sm_80+, 16-byte vectors): streaming kernels, no clusters, through the
// workspace (packed W_in, u, pair weights, partial CLS sums):
//   0  ti_sp_pack_kernel     W_in in mma B-fragment order (per 16-byte chunk of channels: the k order
//                            matches the order of a row's 16-byte loads) + column sums of W_in
//   A  ti_sp_proj_kernel     warp = (m-tile of 16 rows (pair, patch token), frame): the rows' 16-byte
//                            chunks straight from global memory into mma A fragments (kPF chunks in
//                            flight), LayerNorm statistics gathered on the way (shift K = mean of the
//                            row's first chunk), W x on tensor cores (fp16 / bf16: m16n8k16, fp32:
//                            3xTF32 m16n8k8 on x - K, two-level sums), LayerNorm folded in after the loop:
//                            proj(LN(x)) = rstd * (W (x-K) - (mean-K) W 1); the frame-1 warp hands its
//                            part to the frame-0 warp through shared memory; u (P, HW, D) fp32.
//   B  ti_sp_weights_lane_kernel  per (pair, band of kSpLTok patch tokens), 4 threads per token, u of the
//                            band and its reach in shared memory: pair weights -> (P, HW, 2G), partial CLS
//                            sums per band; where its tile does not fit, ti_sp_weights_kernel (one warp
//                            per token, u from L2, bands of kSpBand tokens)
//   C  ti_sp_blend_kernel    every patch token's 16-byte vectors blended straight from global memory
//                            (kSpBatch vectors of both frames in flight per thread); CTA b < P also
//                            blends the CLS token of pair b (mean of the band partials, or 1/2)
// x is read twice (A, C) and out written once: 5/3 of the fused bytes (at most 60% of copy bandwidth),
// at streaming efficiency. On sm_90+ A, B and C are launched as programmatic dependents of the kernel
// before (pdl_trigger / pdl_wait): A loads its first x chunks, B its context-network parameters and C its x
// vectors before they wait for the previous kernel's output. INTI_TI_PDL=0: plain launches.
// ---------------------------------------------------------------------------------------------
constexpr int kSpWarps = 4;   // projection CTA: 2 m-tiles (32 rows) x 2 frames
constexpr int kSpBand = 8;    // weights: patch tokens per CTA (one warp each)
constexpr int kSpBatch = 4;   // blend: 16-byte vectors (of each frame) in flight per thread
constexpr int kSpGroup = 4;   // fp32 projection: chunks per inner sum (two-level accumulation)

template <typename T>
struct SpCfg {
  static constexpr int kPF = 3;  // chunks in flight per row (fp16 / bf16 chunk: 32 channels)
};
template <>
struct SpCfg<float> {
  static constexpr int kPF = 2;  // fp32 chunk: 16 channels
};

__device__ __forceinline__ uint4 ldg_stream(void const* ptr) {  // read-once data: keep L1 for W_in
  uint4 r;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(ptr));
  return r;
}

// fp32 chunk of the projection (split and tile paths): acc += W (x - K) as 3xTF32 (big*big + big*small +
// small*big), from this lane's x - K of rows a / b and the packed W fragments of the chunk
template <int NT>
__device__ __forceinline__ void mma_chunk_3xtf32(float const (&xfa)[4], float const (&xfb)[4], uint4 const (&w)[NT],
                                                 float (&acc)[NT][4]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    uint32_t ahi[4], alo[4];
    split_tf32(xfa[2 * h], ahi[0], alo[0]);
    split_tf32(xfb[2 * h], ahi[1], alo[1]);
    split_tf32(xfa[2 * h + 1], ahi[2], alo[2]);
    split_tf32(xfb[2 * h + 1], ahi[3], alo[3]);
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      uint32_t const wb0 = h ? w[j].z : w[j].x, wb1 = h ? w[j].w : w[j].y;
      uint32_t bh0, bl0, bh1, bl1;
      split_tf32(__uint_as_float(wb0), bh0, bl0);
      split_tf32(__uint_as_float(wb1), bh1, bl1);
      mma_tf32(acc[j], alo, bh0, bh1);
      mma_tf32(acc[j], ahi, bl0, bl1);
      mma_tf32(acc[j], ahi, bh0, bh1);
    }
  }
}

// tot += acc; acc = 0 (the fp32 projection's two-level sums)
template <int NT>
__device__ __forceinline__ void flush_acc(float (&acc)[NT][4], float (&tot)[NT][4]) {
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      tot[j][e] += acc[j][e];
      acc[j][e] = 0.f;
    }
}

// 16-bit chunk of the projection (split and tile paths): acc += W x on the raw rows a / b. kStats (tile
// path): the LayerNorm statistics from the same fragments too (exact products, fp32 sums): sx += X 1 (one:
// 1.0 twice in T), q0 / q1 += X times rows 0-7 / 8-15 of X^T (the B fragments of X^T are X's A fragments)
template <typename T, int NT, bool kStats>
__device__ __forceinline__ void mma_chunk16(uint4 const& va, uint4 const& vb, uint4 const (&w)[NT], float (&acc)[NT][4],
                                            float (&sx)[4], float (&q0)[4], float (&q1)[4], uint32_t one) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    uint32_t const* ra = reinterpret_cast<uint32_t const*>(&va);
    uint32_t const* rb = reinterpret_cast<uint32_t const*>(&vb);
    uint32_t const a[4] = {ra[2 * h], rb[2 * h], ra[2 * h + 1], rb[2 * h + 1]};
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      uint32_t const wb0 = h ? w[j].z : w[j].x, wb1 = h ? w[j].w : w[j].y;
      mma16<T>(acc[j], a, wb0, wb1);
    }
    if constexpr (kStats) {
      mma16<T>(sx, a, one, one);
      mma16<T>(q0, a, a[0], a[2]);
      mma16<T>(q1, a, a[1], a[3]);
    }
  }
}

// Entry (((f * nch + s) * ny + y) * NT + j) * 32 + lane (lane = 4 g + t) holds W_in rows
// f*C + s*CH + VEC*t + e (e < VEC), column y*8*NT + 8 j + g, as T (fp32: raw floats); zero outside.
// Blocks >= fragBlocks: column sums S[f][n] of the T-rounded W_in (n < ny*8*NT), fixed order.
template <typename T>
__global__ void __launch_bounds__(256) ti_sp_pack_kernel(KParams const p, int fragBlocks) {
  constexpr int VEC = 16 / int(sizeof(T));
  constexpr int CH = 4 * VEC;
  int const NT = p.sp_nt, ny = p.sp_ny, nch = p.sp_nch, Dp = ny * 8 * NT, C = p.C, D = p.D;
  pdl_trigger();
  if (int(blockIdx.x) < fragBlocks) {
    int const i = int(blockIdx.x) * 256 + int(threadIdx.x);
    if (i < p.nzero) p.zero[i] = 0;  // tile path: its counters and flags
    if (i >= 2 * nch * ny * NT * 32) return;
    int const ln = i & 31;
    int r = i >> 5;
    int const j = r % NT;
    r /= NT;
    int const y = r % ny;
    r /= ny;
    int const s = r % nch, f = r / nch;
    int const n = y * 8 * NT + 8 * j + (ln >> 2), c0 = s * CH + VEC * (ln & 3);
    float v[VEC];
#pragma unroll
    for (int e = 0; e < VEC; ++e)
      v[e] = (c0 + e < C && n < D) ? __ldg(p.w_in + size_t(f * C + c0 + e) * D + n) : 0.f;
    uint4 o;
    if constexpr (sizeof(T) == 4) {
      o = make_uint4(__float_as_uint(v[0]), __float_as_uint(v[1]), __float_as_uint(v[2]), __float_as_uint(v[3]));
    } else {
      o = make_uint4(pack2<T>(v[0], v[1]), pack2<T>(v[2], v[3]), pack2<T>(v[4], v[5]), pack2<T>(v[6], v[7]));
    }
    const_cast<uint4*>(p.wpack)[i] = o;
  } else {
    int const fn = int(blockIdx.x) - fragBlocks, f = fn / Dp, n = fn - f * Dp;
    __shared__ float part[256];
    float s = 0.f;
    if (n < D)
      for (int c = threadIdx.x; c < C; c += 256) s += to_f(from_f<T>(__ldg(p.w_in + size_t(f * C + c) * D + n)));
    part[threadIdx.x] = s;
    __syncthreads();
    for (int o = 128; o > 0; o >>= 1) {
      if (int(threadIdx.x) < o) part[threadIdx.x] += part[threadIdx.x + o];
      __syncthreads();
    }
    if (threadIdx.x == 0) const_cast<float*>(p.wcolsum)[f * Dp + n] = part[0];
  }
}

// The projection of two rows a / b (g, g + 8 of an m-tile) of one frame, for the lanes' fragment columns
// (split path): 16-byte chunks straight from global memory into mma A fragments (PF chunks in
// flight), LayerNorm statistics on the way (shift K = mean of the row's first chunk), W x on tensor cores
// (fp16 / bf16: m16n8k16, fp32: 3xTF32 m16n8k8 on x - K, two-level sums), LayerNorm folded in after the
// loop: res = rstd * (W (x-K) - (mean-K) W 1) for columns n0 + 8 j (+1), without b_in. xa / xb: the rows'
// first element of this lane (+ VEC * t); wp: packed W_in of this frame and column block (+ lane), chunk s
// at wp + s * wstep; S: the block's column sums.
template <typename T, int NT, int PF>
__device__ __forceinline__ void sp_project_rows(KParams const& p, T const* xa, T const* xb, uint4 const* wp, int wstep,
                                                float const* S, int n0, float2 (&res)[NT][2]) {
  constexpr bool kF32 = sizeof(T) == 4;
  constexpr int VEC = 16 / int(sizeof(T));
  constexpr int CH = 4 * VEC;  // channels per chunk (4 lanes x 16 bytes per row)
  int const t = threadIdx.x & 3, C = p.C, nch = p.sp_nch;
  auto ld = [&](T const* base, int s) -> uint4 {
    if (!(s < nch && s * CH + VEC * t < C)) return make_uint4(0, 0, 0, 0);  // this form: 1-4% shorter SASS than ?:
    return ldg_stream(base + s * CH);
  };
  uint4 ba[PF], bb[PF];
#pragma unroll
  for (int i = 0; i < PF; ++i) {
    ba[i] = ld(xa, i);
    bb[i] = ld(xb, i);
  }
  pdl_wait();  // the packed W_in and column sums (kernel 0); x is the op's input
  // shift K of rows a / b: the mean of their first chunk
  float Ka = 0.f, Kb = 0.f;
  {
    T const* ea = reinterpret_cast<T const*>(&ba[0]);
    T const* eb = reinterpret_cast<T const*>(&bb[0]);
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      Ka += to_f(ea[e]);
      Kb += to_f(eb[e]);
    }
    Ka += __shfl_xor_sync(0xffffffffu, Ka, 1);
    Kb += __shfl_xor_sync(0xffffffffu, Kb, 1);
    Ka += __shfl_xor_sync(0xffffffffu, Ka, 2);
    Kb += __shfl_xor_sync(0xffffffffu, Kb, 2);
    float const inv = 1.f / float(min(C, CH));
    Ka *= inv;
    Kb *= inv;
  }
  float s1a = 0.f, s2a = 0.f, s1b = 0.f, s2b = 0.f;
  float acc[NT][4], tot[NT][4];
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[j][e] = tot[j][e] = 0.f;

#pragma unroll 1
  for (int s0 = 0; s0 < nch; s0 += PF) {
#pragma unroll
    for (int i = 0; i < PF; ++i) {
      int const s = s0 + i;
      if (s < nch) {
        uint4 const va = ba[i], vb = bb[i];
        ba[i] = ld(xa, s + PF);
        bb[i] = ld(xb, s + PF);
        uint4 w[NT];
#pragma unroll
        for (int j = 0; j < NT; ++j) w[j] = __ldg(wp + size_t(s) * wstep + j * 32);
        bool const valid = s * CH + VEC * t < C;
        float xfa[VEC], xfb[VEC];  // x - K (0 outside the row)
        {
          T const* ea = reinterpret_cast<T const*>(&va);
          T const* eb = reinterpret_cast<T const*>(&vb);
          float p1a = 0.f, p2a = 0.f, p1b = 0.f, p2b = 0.f;
#pragma unroll
          for (int e = 0; e < VEC; ++e) {
            xfa[e] = valid ? to_f(ea[e]) - Ka : 0.f;
            xfb[e] = valid ? to_f(eb[e]) - Kb : 0.f;
            p1a += xfa[e];
            p2a = fmaf(xfa[e], xfa[e], p2a);
            p1b += xfb[e];
            p2b = fmaf(xfb[e], xfb[e], p2b);
          }
          s1a += p1a;
          s2a += p2a;
          s1b += p1b;
          s2b += p2b;
        }
        if constexpr (kF32) {
          mma_chunk_3xtf32<NT>(xfa, xfb, w, acc);
          if (s % kSpGroup == kSpGroup - 1 || s == nch - 1) flush_acc<NT>(acc, tot);
        } else {
          float none[4];
          mma_chunk16<T, NT, false>(va, vb, w, acc, none, none, none, 0u);
        }
      }
    }
  }
  if constexpr (!kF32) {
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) tot[j][e] = acc[j][e];
  }
  // statistics of rows a / b (the 4 lanes of a row hold a quarter each)
#pragma unroll
  for (int o = 1; o <= 2; o <<= 1) {
    s1a += __shfl_xor_sync(0xffffffffu, s1a, o);
    s2a += __shfl_xor_sync(0xffffffffu, s2a, o);
    s1b += __shfl_xor_sync(0xffffffffu, s1b, o);
    s2b += __shfl_xor_sync(0xffffffffu, s2b, o);
  }
  float const moa = s1a / float(C), mob = s1b / float(C);
  float const rsa = 1.f / sqrtf(fmaxf(s2a / float(C) - moa * moa, 0.f) + p.eps);
  float const rsb = 1.f / sqrtf(fmaxf(s2b / float(C) - mob * mob, 0.f) + p.eps);
  // fp32: A = W (x - K) -> subtract (mean - K) S; fp16 / bf16: A = W x -> subtract mean S
  float const ma = kF32 ? moa : Ka + moa, mb = kF32 ? mob : Kb + mob;
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    float const S0 = __ldg(S + n0 + 8 * j), S1 = __ldg(S + n0 + 8 * j + 1);
    res[j][0] = make_float2(rsa * (tot[j][0] - ma * S0), rsa * (tot[j][1] - ma * S1));
    res[j][1] = make_float2(rsb * (tot[j][2] - mb * S0), rsb * (tot[j][3] - mb * S1));
  }
}

template <typename T, int NT>
__global__ void __launch_bounds__(kSpWarps * 32, sizeof(T) == 4 ? (NT <= 4 ? 5 : 3) : (NT <= 4 ? 6 : 4)) ti_sp_proj_kernel(KParams const p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  pdl_trigger();
  constexpr int VEC = 16 / int(sizeof(T));
  __shared__ float2 xch[kSpWarps / 2][2 * NT][32];  // the frame-1 warps' parts
  int const tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  int const g = lane >> 2, t = lane & 3, f = warp & 1, mt = warp >> 1;
  int const D = p.D, HW = p.HW, N = p.N, rows = p.P * HW, nch = p.sp_nch;
  int const r0 = (int(blockIdx.x) * (kSpWarps / 2) + mt) * 16;
  auto rowPtr = [&](int r) -> T const* {
    r = min(r, rows - 1);
    int const pr = r / HW, tk = r - pr * HW;
    return static_cast<T const*>(p.x) + (size_t(pr * 2 + f) * N + 1 + tk) * p.C + VEC * t;
  };
  int const wstep = p.sp_ny * NT * 32;
  uint4 const* const wp = p.wpack + (size_t(f) * nch * p.sp_ny + blockIdx.y) * NT * 32 + lane;
  int const Dp = p.sp_ny * 8 * NT, n0 = int(blockIdx.y) * 8 * NT + 2 * t;
  float2 res[NT][2];
  sp_project_rows<T, NT, SpCfg<T>::kPF>(p, rowPtr(r0 + g), rowPtr(r0 + g + 8), wp, wstep, p.wcolsum + f * Dp, n0,
                                        res);
  if (f == 1) {
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      xch[mt][2 * j][lane] = res[j][0];
      xch[mt][2 * j + 1][lane] = res[j][1];
    }
  }
  __syncthreads();
  if (f == 0) {
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        int const r = r0 + g + 8 * hr;
        float2 const o = xch[mt][2 * j + hr][lane];
        float const v[2] = {res[j][hr].x + o.x, res[j][hr].y + o.y};
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          int const n = n0 + 8 * j + e;
          if (r < rows && n < D) p.ws_u[size_t(r) * D + n] = v[e] + __ldg(p.b_in + n);
        }
      }
  }
#endif
}

// Pair weights of the band's patch tokens (one warp each) -> ws_wt, the band's partial CLS sums -> ws_w.
__global__ void __launch_bounds__(kSpBand * 32, 4) ti_sp_weights_kernel(KParams const p) {
  __shared__ float wb[kSpBand * kMaxG2];
  int const pair = int(blockIdx.y), band = int(blockIdx.x), tid = threadIdx.x, warp = tid >> 5;
  int const G2 = 2 * p.G;
  int const ta = band * kSpBand, nt = min(p.HW - ta, kSpBand);
  pdl_trigger();
  pdl_wait();  // u (kernel A)
  float const* u = p.ws_u + size_t(pair) * p.HW * p.D;
  if (warp < nt) warp_token_weights(p, u, 0, p.D, ta + warp, wb + warp * G2);
  __syncthreads();
  float* wt = p.ws_wt + (size_t(pair) * p.HW + ta) * G2;
  for (int i = tid; i < nt * G2; i += kSpBand * 32) wt[i] = wb[i];
  if (tid < G2) {  // partial CLS sum of the band, fixed order
    float s = 0.f;
    for (int k = 0; k < nt; ++k) s += wb[k * G2 + tid];
    p.ws_w[(size_t(pair) * p.sp_nb + band) * G2 + tid] = s;
  }
}

// Lane weights kernel (the split path's default where its tile fits): CTA = (pair, band of kSpLTok patch
// tokens), 4 threads per token. The D channels are padded to spl_dpad = 4 * (a multiple of 4 channels per
// quarter), quarter q owns channels [q * spl_dpad / 4, (q + 1) * spl_dpad / 4) and runs them 4 at a time
// with 16-byte shared-memory loads. Shared memory: the band's u rows plus the convolutions' reach on each
// side (stride spl_dp: a multiple of 4 chosen by the host so that the 8 threads of a load phase, 2 tokens x
// 4 quarters, hit distinct banks), then one row of zeros that off-grid taps point at, the depthwise taps
// (S, 9, dpad), their biases (S, dpad) and W_out ((1 + S) dpad, 2G), padding channels zero. A thread
// computes its token's 3x3 neighbour offsets once per scale and runs them over its channels: GELU of u and
// of the S dilated convs, times W_out, summed over its channels in order; the 4 quarters are summed by
// shuffles ((q0 + q1) + (q2 + q3)), then softmax / sigmoid. Each channel's convolution is the same fmaf
// chain as the reference order (bias, then taps 0..8). Writes the pair weights (P, HW, 2G) and one partial
// CLS sum per band (fixed order; sp_nb = bands per pair). Dynamic shared memory: splSmem().
constexpr int kSpLTok = 64;
constexpr int kSpLThreads = 4 * kSpLTok;
template <int MG2>
__global__ void __launch_bounds__(kSpLThreads) ti_sp_weights_lane_kernel(KParams const p) {
  extern __shared__ float4 spl_sm4[];
  float* const sm = reinterpret_cast<float*>(spl_sm4);
  int const pair = int(blockIdx.y), band = int(blockIdx.x), tid = threadIdx.x;
  int const D = p.D, W = p.W, H = p.H, HW = p.HW, S = p.S, G2 = 2 * p.G, Dp = p.spl_dp, Dq = p.spl_dpad,
            reach = p.spl_reach;
  int const t0 = band * kSpLTok, nown = min(kSpLTok, HW - t0);
  int const h0 = max(0, t0 - reach), h1 = min(HW, t0 + nown + reach), nhal = h1 - h0;
  int const nhalMax = min(HW, kSpLTok + 2 * reach);
  float* const us = sm;                           // (nhalMax + 1, Dp) u of the band and its reach, zero row
  float* const kw = us + (nhalMax + 1) * Dp;      // (S, 9, Dq) depthwise taps
  float* const kb = kw + S * 9 * Dq;              // (S, Dq) their biases
  float* const wo = kb + S * Dq;                  // ((1 + S) Dq, 2G) W_out
  float* const wt = wo + (1 + S) * Dq * G2;       // (kSpLTok, 2G) the band's weights
  pdl_trigger();
  {  // the context network's parameters first: they do not depend on kernel A
    for (int i = tid; i < Dq; i += kSpLThreads) us[nhalMax * Dp + i] = 0.f;
    for (int i = tid; i < S * 9 * Dq; i += kSpLThreads) {  // (sc, k, d) <- dw_w (sc, d, k)
      int const sk = i / Dq, d = i - sk * Dq, sc = sk / 9, k = sk - sc * 9;
      kw[i] = d < D ? __ldg(p.dw_w + (sc * D + d) * 9 + k) : 0.f;
    }
    for (int i = tid; i < S * Dq; i += kSpLThreads) {
      int const sc = i / Dq, d = i - sc * Dq;
      kb[i] = d < D ? __ldg(p.dw_b + sc * D + d) : 0.f;
    }
    for (int i = tid; i < (1 + S) * Dq * G2; i += kSpLThreads) {
      int const fd = i / G2, e = i - fd * G2, f = fd / Dq, d = fd - f * Dq;
      wo[i] = d < D ? __ldg(p.w_out + (f * D + d) * G2 + e) : 0.f;
    }
    pdl_wait();  // u (kernel A)
    float const* src = p.ws_u + (size_t(pair) * HW + h0) * D;
    if (Dq == D && D <= 4 * kSpLThreads && (reinterpret_cast<uintptr_t>(p.ws_u) & 15) == 0) {  // 16-byte vectors
      int const nv = D >> 2, rpi = kSpLThreads / nv, r = tid / nv, c = tid - r * nv;
      if (r < rpi)
        for (int tk = r; tk < nhal; tk += rpi)
          reinterpret_cast<float4*>(us + tk * Dp)[c] = __ldg(reinterpret_cast<float4 const*>(src + tk * D) + c);
    } else {
      for (int i = tid; i < nhal * Dq; i += kSpLThreads) {
        int const tk = i / Dq, d = i - tk * Dq;
        us[tk * Dp + d] = d < D ? __ldg(src + tk * D + d) : 0.f;
      }
    }
  }
  __syncthreads();
  int const tl = tid >> 2, q = tid & 3, t = t0 + tl;
  int const dq = Dq >> 2, d0 = q * dq, d1 = d0 + dq;
  float lp[MG2];
#pragma unroll
  for (int e = 0; e < MG2; ++e) lp[e] = 0.f;
  // lp += GELU(h) . W_out rows fd .. fd+3
  auto head = [&](float4 const h, int const fd) {
    if constexpr (MG2 == 2) {
      float4 const w01 = *reinterpret_cast<float4 const*>(wo + fd * 2), w23 = *reinterpret_cast<float4 const*>(wo + fd * 2 + 4);
      float const g0 = gelu(h.x), g1 = gelu(h.y), g2 = gelu(h.z), g3 = gelu(h.w);
      lp[0] = fmaf(g0, w01.x, lp[0]);
      lp[1] = fmaf(g0, w01.y, lp[1]);
      lp[0] = fmaf(g1, w01.z, lp[0]);
      lp[1] = fmaf(g1, w01.w, lp[1]);
      lp[0] = fmaf(g2, w23.x, lp[0]);
      lp[1] = fmaf(g2, w23.y, lp[1]);
      lp[0] = fmaf(g3, w23.z, lp[0]);
      lp[1] = fmaf(g3, w23.w, lp[1]);
    } else {
      float const g[4] = {gelu(h.x), gelu(h.y), gelu(h.z), gelu(h.w)};
#pragma unroll
      for (int c = 0; c < 4; ++c)
#pragma unroll
        for (int e = 0; e < MG2; ++e)
          if (e < G2) lp[e] = fmaf(g[c], wo[(fd + c) * G2 + e], lp[e]);
    }
  };
  if (tl < nown) {
    int const i = t / W, j = t - i * W;
    float const* const uc = us + (t - h0) * Dp;
    for (int d = d0; d < d1; d += 4) head(*reinterpret_cast<float4 const*>(uc + d), d);
    for (int sc = 0; sc < S; ++sc) {
      int const dl = sc == 0 ? p.dil[0] : sc == 1 ? p.dil[1] : sc == 2 ? p.dil[2] : p.dil[3];  // no local copy
      int off[9];
#pragma unroll
      for (int a = 0; a < 3; ++a)
#pragma unroll
        for (int b = 0; b < 3; ++b) {
          int const ii = i + (a - 1) * dl, jj = j + (b - 1) * dl;
          bool const v = ii >= 0 && ii < H && jj >= 0 && jj < W;
          off[a * 3 + b] = (v ? ii * W + jj - h0 : nhalMax) * Dp;  // off-grid: the zero row
        }
      float const* const k = kw + sc * 9 * Dq;
      for (int d = d0; d < d1; d += 4) {
        float4 acc = *reinterpret_cast<float4 const*>(kb + sc * Dq + d);
#pragma unroll
        for (int e = 0; e < 9; ++e) {
          float4 const kk = *reinterpret_cast<float4 const*>(k + e * Dq + d);
          float4 const uu = *reinterpret_cast<float4 const*>(us + off[e] + d);
          acc.x = fmaf(kk.x, uu.x, acc.x);
          acc.y = fmaf(kk.y, uu.y, acc.y);
          acc.z = fmaf(kk.z, uu.z, acc.z);
          acc.w = fmaf(kk.w, uu.w, acc.w);
        }
        head(acc, (1 + sc) * Dq + d);
      }
    }
  }
#pragma unroll
  for (int e = 0; e < MG2; ++e) {
    lp[e] += __shfl_xor_sync(0xffffffffu, lp[e], 1);
    lp[e] += __shfl_xor_sync(0xffffffffu, lp[e], 2);
  }
  if (q == 0 && tl < nown) {
#pragma unroll
    for (int g = 0; g < MG2 / 2; ++g) {
      if (2 * g >= G2) break;
      float w0, w1;
      pair_weights(lp[2 * g] + __ldg(p.b_out + 2 * g), lp[2 * g + 1] + __ldg(p.b_out + 2 * g + 1), p.softmax, w0, w1);
      wt[tl * G2 + 2 * g] = w0;
      wt[tl * G2 + 2 * g + 1] = w1;
    }
  }
  __syncthreads();
  float* const dst = p.ws_wt + (size_t(pair) * HW + t0) * G2;
  for (int e = tid; e < nown * G2; e += kSpLThreads) dst[e] = wt[e];
  if (tid < G2) {  // partial CLS sum of the band, fixed order
    float sum = 0.f;
    for (int k = 0; k < nown; ++k) sum += wt[k * G2 + tid];
    p.ws_w[(size_t(pair) * p.sp_nb + band) * G2 + tid] = sum;
  }
}

template <typename T>
__global__ void __launch_bounds__(256, sizeof(T) == 4 ? 4 : 2) ti_sp_blend_kernel(KParams const p) {
  constexpr int VEC = 16 / int(sizeof(T));
  int const tid = threadIdx.x, G2 = 2 * p.G, C = p.C, N = p.N, HW = p.HW, nv = C / VEC;
  T const* const x = static_cast<T const*>(p.x);
  T* const out = static_cast<T*>(p.out);
  // this thread's patch-token vectors of both frames: loaded before the pair weights are ready
  long long const total = (long long)p.P * HW * nv;
  uint4 a[kSpBatch], b[kSpBatch];
  int pt[kSpBatch], vv[kSpBatch];
  long long const i0 = (long long)blockIdx.x * (256 * kSpBatch) + tid;
#pragma unroll
  for (int k = 0; k < kSpBatch; ++k) {
    long long const i = i0 + k * 256;
    pt[k] = -1;
    if (i < total) {
      int const q = int(i / nv);  // (pair, patch token)
      int const v = int(i - (long long)q * nv), pair = q / HW, tok = q - pair * HW;
      T const* xr = x + (size_t(pair) * 2 * N + 1 + tok) * C + v * VEC;
      a[k] = ldg_stream(xr);
      b[k] = ldg_stream(xr + size_t(N) * C);
      pt[k] = q;
      vv[k] = v;
    }
  }
  pdl_wait();  // the pair weights and band sums (kernel B)
#pragma unroll
  for (int k = 0; k < kSpBatch; ++k) {
    if (pt[k] < 0) continue;
    int const q = pt[k], pair = q / HW;
    *reinterpret_cast<uint4*>(out + (size_t(q) + pair + 1) * C + vv[k] * VEC) =
        blend16<T>(a[k], b[k], p.ws_wt + size_t(q) * G2, vv[k] * VEC, p.cpg, p.G);
  }
  if (int(blockIdx.x) < p.P) {  // the CLS token of pair blockIdx.x
    __shared__ float wc[kMaxG2];
    int const pair = int(blockIdx.x);
    if (tid < G2) {
      float v = 0.5f;
      if (p.cls_mean) {
        float s = 0.f;
        for (int b = 0; b < p.sp_nb; ++b) s += p.ws_w[(size_t(pair) * p.sp_nb + b) * G2 + tid];
        v = s / float(HW);
      }
      wc[tid] = v;
    }
    __syncthreads();
    T const* x0 = x + size_t(pair) * 2 * N * C;
    for (int v = tid; v < nv; v += 256) {
      uint4 const a = ldg_stream(x0 + v * VEC), b = ldg_stream(x0 + size_t(N) * C + v * VEC);
      *reinterpret_cast<uint4*>(out + size_t(pair) * N * C + v * VEC) = blend16<T>(a, b, wc, v * VEC, p.cpg, p.G);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Tile path ("tile" variant; sm_80+, 16-byte vectors): one CTA of 8 warps per (pair, tile of RI
// patch tokens); x read from DRAM once, blended from shared memory:
//   1  cp.async the tile's rows of both frames into shared memory (coalesced; rows padded so the
//      fragment loads below are conflict-free)
//   2  W x on tensor cores from shared memory (the split path's packed W_in and fragment order), the
//      channels split over 4 warps per frame, LayerNorm statistics on the way (fp32: shifted by K, the
//      mean of the row's first chunk; 16-bit: on tensor cores, sum x = X 1, sum x^2 = diag(X X^T)),
//      partials summed in fixed order, LayerNorm folded in; u of the tile -> workspace (L2); the
//      tile's flag released
//   3  acquire the flags of the tiles within the dilated convolutions' reach (dmax rows + dmax)
//   4  pair weights of the tile's tokens from the u halo (L2 -> shared memory): GELU, depthwise dilated
//      convs, W_out, softmax / sigmoid; the tile's partial CLS sum -> workspace
//   5  blend the tile from shared memory, store; the pair's last tile to finish (atomic count) blends
//      the CLS token (mean of the tiles' partial sums in fixed order, or 1/2)
// Tiles are handed out in order by a ticket counter, not by blockIdx: a tile only waits for tiles whose
// CTAs are already running, and those never wait in step 2, so the launch cannot deadlock whatever the
// block scheduler does, as long as rm + 1 CTAs fit on the device at once (ti_plan checks rm + 2).
// The counters are zeroed by the pack kernel launched just before.
// ---------------------------------------------------------------------------------------------
constexpr int kTlThreads = 256;
constexpr int kTlWarps = kTlThreads / 32;
constexpr int kTlKQ = kTlWarps / 2;  // warps per frame: each sums a quarter of the channels

__device__ __forceinline__ int ld_acquire_gpu(int const* ptr) {
  int v;
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(ptr) : "memory");
  return v;
}
__device__ __forceinline__ void st_release_gpu(int* ptr, int v) {
  asm volatile("st.release.gpu.global.b32 [%0], %1;\n" ::"l"(ptr), "r"(v) : "memory");
}
__device__ __forceinline__ void st_stream(void* ptr, uint4 v) {  // written once, read by the next layer
  asm volatile("st.global.cs.v4.u32 [%0], {%1,%2,%3,%4};\n" ::"l"(ptr), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
               : "memory");
}

// CTAs per SM the register budget is sized for: 3 (80 registers); a vit-b16 tile's shared memory allows 3 too
constexpr int kTlMinBlocks = 3;
template <typename T, int NT>
__global__ void __launch_bounds__(kTlThreads, kTlMinBlocks) ti_tile_kernel(KParams const p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr bool kF32 = sizeof(T) == 4;
  constexpr int VEC = 16 / int(sizeof(T));
  constexpr int CH = 4 * VEC;        // channels per chunk (4 lanes x 16 bytes per row)
  constexpr int E = NT * 4 + 5;      // floats per lane in the reduction area (odd: no bank conflicts)
  extern __shared__ float4 tl_sm4[];
  unsigned char* const sm = reinterpret_cast<unsigned char*>(tl_sm4);
  __shared__ int s_item, s_last;
  __shared__ float s_wc[kMaxG2];
  int const tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  int const C = p.C, D = p.D, HW = p.HW, N = p.N, RI = p.tl_ri, nM = p.tl_nm, rs = p.tl_rs, nch = p.sp_nch;
  int const G2 = 2 * p.G, nv = C / VEC;
  if (tid == 0) s_item = atomicAdd(p.tl_ticket, 1);
  __syncthreads();
  int const item = s_item, pair = item / nM, m = item - pair * nM;
  int const t0 = m * RI, nown = min(RI, HW - t0);
  T const* const x = static_cast<T const*>(p.x);
  // 1: the tile's rows of both frames -> shared memory (frame f, row k at sm + (f * RI + k) * rs)
  {
    T const* const x0 = x + (size_t(pair) * 2 * N + 1 + t0) * C;
    for (int r = warp; r < 2 * nown; r += kTlWarps) {  // a warp per row: 512 contiguous bytes per step
      int const f = r >= nown, k = r - f * nown;
      unsigned char* const dst = sm + (f * RI + k) * rs;
      T const* const src = x0 + (size_t(f) * N + k) * C;
      for (int v = lane; v < nv; v += 32) cp_async16(dst + v * 16, src + v * VEC);
    }
    cp_async_commit();
    cp_async_wait_all();
  }
  __syncthreads();
  float* const red = reinterpret_cast<float*>(sm + p.tl_ob);  // step 2 partials, then step 4's tiles
  float2* const xch = reinterpret_cast<float2*>(red);          // frame 1's folded part (reuses the partials' slots)
  int const g = lane >> 2, t = lane & 3, n0 = 2 * t;
  float2 res[NT][2];
  // 2: projection; warp = (quarter q of the chunks, frame f)
  {
    int const f = warp & 1, q = warp >> 1;
    int const c0 = (q * nch) / kTlKQ, c1 = ((q + 1) * nch) / kTlKQ;
    bool const hasA = g < nown, hasB = g + 8 < nown;
    unsigned char const* const ra = sm + (f * RI + g) * rs + 16 * t;
    unsigned char const* const rb = sm + (f * RI + g + 8) * rs + 16 * t;
    auto ld = [&](unsigned char const* base, bool has, int s) -> uint4 {
      return (has && s * CH + VEC * t < C) ? *reinterpret_cast<uint4 const*>(base + s * (CH * int(sizeof(T))))
                                           : make_uint4(0, 0, 0, 0);
    };
    uint4 const* const wp = p.wpack + size_t(f) * nch * NT * 32 + lane;
    float Ka = 0.f, Kb = 0.f;  // fp32: shift of rows a / b, the mean of their first chunk (same in every quarter)
    float s1a = 0.f, s2a = 0.f, s1b = 0.f, s2b = 0.f;
    float acc[NT][4], tot[NT][4];
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[j][e] = tot[j][e] = 0.f;
    if constexpr (kF32) {
      {
        uint4 const va = ld(ra, hasA, 0), vb = ld(rb, hasB, 0);
        T const* ea = reinterpret_cast<T const*>(&va);
        T const* eb = reinterpret_cast<T const*>(&vb);
#pragma unroll
        for (int e = 0; e < VEC; ++e) {
          Ka += to_f(ea[e]);
          Kb += to_f(eb[e]);
        }
        Ka += __shfl_xor_sync(0xffffffffu, Ka, 1);
        Kb += __shfl_xor_sync(0xffffffffu, Kb, 1);
        Ka += __shfl_xor_sync(0xffffffffu, Ka, 2);
        Kb += __shfl_xor_sync(0xffffffffu, Kb, 2);
        float const inv = 1.f / float(min(C, CH));
        Ka *= inv;
        Kb *= inv;
      }
#pragma unroll 2
      for (int s = c0; s < c1; ++s) {
        uint4 const va = ld(ra, hasA, s), vb = ld(rb, hasB, s);
        uint4 w[NT];
#pragma unroll
        for (int j = 0; j < NT; ++j) w[j] = __ldg(wp + size_t(s) * NT * 32 + j * 32);
        bool const valid = s * CH + VEC * t < C;
        float xfa[VEC], xfb[VEC];  // x - K (0 outside the row)
        {
          T const* ea = reinterpret_cast<T const*>(&va);
          T const* eb = reinterpret_cast<T const*>(&vb);
          float p1a = 0.f, p2a = 0.f, p1b = 0.f, p2b = 0.f;
#pragma unroll
          for (int e = 0; e < VEC; ++e) {
            xfa[e] = (valid && hasA) ? to_f(ea[e]) - Ka : 0.f;
            xfb[e] = (valid && hasB) ? to_f(eb[e]) - Kb : 0.f;
            p1a += xfa[e];
            p2a = fmaf(xfa[e], xfa[e], p2a);
            p1b += xfb[e];
            p2b = fmaf(xfb[e], xfb[e], p2b);
          }
          s1a += p1a;
          s2a += p2a;
          s1b += p1b;
          s2b += p2b;
        }
        mma_chunk_3xtf32<NT>(xfa, xfb, w, acc);
        if ((s - c0) % kSpGroup == kSpGroup - 1 || s == c1 - 1) flush_acc<NT>(acc, tot);
      }
#pragma unroll
      for (int o = 1; o <= 2; o <<= 1) {
        s1a += __shfl_xor_sync(0xffffffffu, s1a, o);
        s2a += __shfl_xor_sync(0xffffffffu, s2a, o);
        s1b += __shfl_xor_sync(0xffffffffu, s1b, o);
        s2b += __shfl_xor_sync(0xffffffffu, s2b, o);
      }
    } else {
      // 16-bit inputs: the statistics on tensor cores too, from the same fragments (exact products,
      // fp32 sums): sum x = X 1, sum x^2 = diag(X X^T) (the B fragments of X^T are X's A fragments)
      float sx[4] = {0.f, 0.f, 0.f, 0.f}, q0[4] = {0.f, 0.f, 0.f, 0.f}, q1[4] = {0.f, 0.f, 0.f, 0.f};
      uint32_t const one = std::is_same<T, __half>::value ? 0x3C003C00u : 0x3F803F80u;  // 1.0 twice
#pragma unroll 2
      for (int s = c0; s < c1; ++s) {
        uint4 const va = ld(ra, hasA, s), vb = ld(rb, hasB, s);
        uint4 w[NT];
#pragma unroll
        for (int j = 0; j < NT; ++j) w[j] = __ldg(wp + size_t(s) * NT * 32 + j * 32);
        mma_chunk16<T, NT, true>(va, vb, w, acc, sx, q0, q1, one);
      }
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) tot[j][e] = acc[j][e];
      // row g: sum in sx[0], square sum at (g, g) of q0 (lane 4g + g/2, element g & 1); row g + 8: sx[2], q1
      int const src = 4 * g + (g >> 1);
      float const d0 = (g & 1) ? q0[1] : q0[0], d1 = (g & 1) ? q1[3] : q1[2];
      s1a = sx[0];
      s1b = sx[2];
      s2a = __shfl_sync(0xffffffffu, d0, src);
      s2b = __shfl_sync(0xffffffffu, d1, src);
    }
    // quarters summed in fixed order ((q0 + q2) + (q1 + q3)) through half the warps' worth of shared memory
    float* const my = red + ((warp & 3) * 32 + lane) * E;
    auto put = [&]() {
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) my[j * 4 + e] = tot[j][e];
      my[NT * 4 + 0] = s1a;
      my[NT * 4 + 1] = s2a;
      my[NT * 4 + 2] = s1b;
      my[NT * 4 + 3] = s2b;
    };
    auto add = [&]() {
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) tot[j][e] += my[j * 4 + e];
      s1a += my[NT * 4 + 0];
      s2a += my[NT * 4 + 1];
      s1b += my[NT * 4 + 2];
      s2b += my[NT * 4 + 3];
    };
    if (warp >= 4) put();  // q = 2, 3 -> slots of q = 0, 1
    __syncthreads();
    if (warp < 4) add();
    __syncthreads();
    if (warp >= 2 && warp < 4) put();  // q = 1 (q0 + q2 and q1 + q3 now in warps 0-3): slots 2, 3
    __syncthreads();
    if (warp < 2) {  // q = 0 of frame f adds slot 2 + f
      float const* o = red + ((2 + warp) * 32 + lane) * E;
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) tot[j][e] += o[j * 4 + e];
      s1a += o[NT * 4 + 0];
      s2a += o[NT * 4 + 1];
      s1b += o[NT * 4 + 2];
      s2b += o[NT * 4 + 3];
      // fold LayerNorm in (warp f = frame f); frame 1 hands its part to frame 0
      float const moa = s1a / float(C), mob = s1b / float(C);
      float const rsa = 1.f / sqrtf(fmaxf(s2a / float(C) - moa * moa, 0.f) + p.eps);
      float const rsb = 1.f / sqrtf(fmaxf(s2b / float(C) - mob * mob, 0.f) + p.eps);
      float const ma = kF32 ? moa : Ka + moa, mb = kF32 ? mob : Kb + mob;
      float const* S = p.wcolsum + f * (8 * NT);
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        float const S0 = __ldg(S + n0 + 8 * j), S1 = __ldg(S + n0 + 8 * j + 1);
        res[j][0] = make_float2(rsa * (tot[j][0] - ma * S0), rsa * (tot[j][1] - ma * S1));
        res[j][1] = make_float2(rsb * (tot[j][2] - mb * S0), rsb * (tot[j][3] - mb * S1));
      }
    }
    __syncthreads();  // slots read; xch may overwrite them
    if (warp == 1) {
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        xch[(2 * j) * 32 + lane] = res[j][0];
        xch[(2 * j + 1) * 32 + lane] = res[j][1];
      }
    }
  }
  __syncthreads();
  if (warp == 0) {
    float* const u = p.ws_u + (size_t(pair) * HW + t0) * D;
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        int const r = g + 8 * hr;
        float2 const o = xch[(2 * j + hr) * 32 + lane];
        float const v[2] = {res[j][hr].x + o.x, res[j][hr].y + o.y};
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          int const n = n0 + 8 * j + e;
          if (r < nown && n < D) u[size_t(r) * D + n] = v[e] + __ldg(p.b_in + n);
        }
      }
    __threadfence();
  }
  __syncthreads();
  int const reach = p.tl_reach, h0 = max(0, t0 - reach), h1 = min(HW, t0 + nown + reach), nhal = h1 - h0;
  // 3: the tiles within reach have written their u
  if (tid == 0) {
    st_release_gpu(p.tl_flags + size_t(pair) * nM + m, 1);
    for (int mm = h0 / RI; mm <= (h1 - 1) / RI; ++mm) {
      if (mm == m) continue;
      int const* fl = p.tl_flags + size_t(pair) * nM + mm;
      unsigned ns = 32;
      while (ld_acquire_gpu(fl) == 0) {
        __nanosleep(ns);
        ns = min(ns * 2u, 1024u);
      }
    }
  }
  __syncthreads();
  // 4: pair weights of the tile's tokens
  int const S = p.S, W = p.W, H = p.H, KSp = p.tl_ksp;
  float* const us = red;                                             // (nhal, D) u of the halo
  float* const hf = us + ((size_t(nhal) * D + 3) & ~size_t(3));      // (nown, KSp) GELU features
  float* const lg = hf + RI * KSp;                                   // (nown, 2G) logits, then weights
  {
    float const* src = p.ws_u + (size_t(pair) * HW + h0) * D;
    int const n = nhal * D;
    int n4 = 0;
    if ((reinterpret_cast<uintptr_t>(src) & 15) == 0) {
      n4 = n >> 2;
      for (int i = tid; i < n4; i += kTlThreads) reinterpret_cast<float4*>(us)[i] = __ldcg(reinterpret_cast<float4 const*>(src) + i);
      n4 <<= 2;
    }
    for (int i = n4 + tid; i < n; i += kTlThreads) us[i] = __ldcg(src + i);
  }
  __syncthreads();
  if (kTlThreads % D == 0) {
    // a thread keeps one channel d (its depthwise kernels in registers) for every token it computes
    int const d = tid % D, tstep = kTlThreads / D;
    float kr[kTIMaxScales][9], kbr[kTIMaxScales];
#pragma unroll
    for (int sc = 0; sc < kTIMaxScales; ++sc) {
      kbr[sc] = sc < S ? __ldg(p.dw_b + sc * D + d) : 0.f;
#pragma unroll
      for (int k = 0; k < 9; ++k) kr[sc][k] = sc < S ? __ldg(p.dw_w + (sc * D + d) * 9 + k) : 0.f;
    }
    for (int tl = tid / D; tl < nown; tl += tstep) {
      int const tk = t0 + tl, i = tk / W, j = tk - i * W;
      float const* const uc = us + (tk - h0) * D + d;
      float* const h = hf + tl * KSp + d;
      h[0] = gelu(uc[0]);
#pragma unroll
      for (int sc = 0; sc < kTIMaxScales; ++sc) {
        if (sc >= S) break;
        int const dl = p.dil[sc];
        float a = kbr[sc];
#pragma unroll
        for (int aa = 0; aa < 3; ++aa) {
          int const ii = i + (aa - 1) * dl;
          if (ii < 0 || ii >= H) continue;
#pragma unroll
          for (int bb = 0; bb < 3; ++bb) {
            int const jj = j + (bb - 1) * dl;
            if (jj < 0 || jj >= W) continue;
            a = fmaf(kr[sc][aa * 3 + bb], uc[((aa - 1) * dl * W + (bb - 1) * dl) * D], a);
          }
        }
        h[(1 + sc) * D] = gelu(a);
      }
    }
  } else {
    for (int e = tid; e < nown * D; e += kTlThreads) {
      int const tl = e / D, d = e - tl * D, tk = t0 + tl, i = tk / W, j = tk - i * W;
      float* const h = hf + tl * KSp;
      h[d] = gelu(us[(tk - h0) * D + d]);
      for (int sc = 0; sc < S; ++sc) {
        int const dl = sc == 0 ? p.dil[0] : sc == 1 ? p.dil[1] : sc == 2 ? p.dil[2] : p.dil[3];
        float a = __ldg(p.dw_b + sc * D + d);
        float const* k = p.dw_w + (sc * D + d) * 9;  // read-only weights: L1
        for (int aa = 0; aa < 3; ++aa) {
          int const ii = i + (aa - 1) * dl;
          if (ii < 0 || ii >= H) continue;
          for (int bb = 0; bb < 3; ++bb) {
            int const jj = j + (bb - 1) * dl;
            if (jj < 0 || jj >= W) continue;
            a = fmaf(__ldg(k + aa * 3 + bb), us[(ii * W + jj - h0) * D + d], a);
          }
        }
        h[(1 + sc) * D + d] = gelu(a);
      }
    }
  }
  __syncthreads();
  // logits: 8 threads per (token, logit), each a strided eighth of the features, summed by shuffles
  int const KS = (S + 1) * D;
  for (int e0 = 0; e0 < nown * G2; e0 += kTlThreads / 8) {
    int const e = e0 + tid / 8, part = tid % 8;
    int const tl = e / G2, qq = e - tl * G2;
    float a = 0.f;
    if (e < nown * G2) {
      float const* h = hf + tl * KSp;
      for (int k = part; k < KS; k += 8) a = fmaf(h[k], __ldg(p.w_out + k * G2 + qq), a);
    }
    a += __shfl_xor_sync(0xffffffffu, a, 1);
    a += __shfl_xor_sync(0xffffffffu, a, 2);
    a += __shfl_xor_sync(0xffffffffu, a, 4);
    if (part == 0 && e < nown * G2) lg[e] = a + __ldg(p.b_out + qq);
  }
  __syncthreads();
  for (int e = tid; e < nown * p.G; e += kTlThreads) {
    int const tl = e / p.G, gg = e - tl * p.G;
    float* const l = lg + tl * G2 + 2 * gg;
    float w0, w1;
    pair_weights(l[0], l[1], p.softmax, w0, w1);
    l[0] = w0;
    l[1] = w1;
  }
  __syncthreads();
  if (tid < G2 && p.cls_mean) {  // the tile's partial CLS sum, fixed order
    float sum = 0.f;
    for (int k = 0; k < nown; ++k) sum += lg[k * G2 + tid];
    p.tl_part[(size_t(pair) * nM + m) * G2 + tid] = sum;
    __threadfence();
  }
  // 5: blend the tile from shared memory
  {
    T* const out = static_cast<T*>(p.out) + (size_t(pair) * N + 1 + t0) * C;
    for (int k = warp; k < nown; k += kTlWarps)
      for (int v = lane; v < nv; v += 32) {
        uint4 const a = *reinterpret_cast<uint4 const*>(sm + k * rs + v * 16);
        uint4 const b = *reinterpret_cast<uint4 const*>(sm + (RI + k) * rs + v * 16);
        st_stream(out + size_t(k) * C + v * VEC, blend16<T>(a, b, lg + k * G2, v * VEC, p.cpg, p.G));
      }
  }
  __syncthreads();
  if (tid == 0) s_last = atomicAdd(p.tl_done + pair, 1) == nM - 1;
  __syncthreads();
  if (s_last) {  // every tile of the pair has written its partial sum: the CLS token
    __threadfence();
    if (tid < G2) {
      float v = 0.5f;
      if (p.cls_mean) {
        float sum = 0.f;
        for (int mm = 0; mm < nM; ++mm) sum += __ldcg(p.tl_part + (size_t(pair) * nM + mm) * G2 + tid);
        v = sum / float(HW);
      }
      s_wc[tid] = v;
    }
    __syncthreads();
    T const* x0 = x + size_t(pair) * 2 * N * C;
    for (int v = tid; v < nv; v += kTlThreads) {
      uint4 const a = ldg_stream(x0 + v * VEC), b = ldg_stream(x0 + size_t(N) * C + v * VEC);
      st_stream(static_cast<T*>(p.out) + size_t(pair) * N * C + v * VEC, blend16<T>(a, b, s_wc, v * VEC, p.cpg, p.G));
    }
  }
#endif
}

// ---------------------------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------------------------

void setErr(char* err, int errLen, char const* msg) {
  if (err && errLen > 0) std::snprintf(err, size_t(errLen), "%s", msg);
}

size_t elemSize(DType t) { return t == DType::kF32 ? 4 : 2; }
size_t align16(size_t v) { return (v + 15) & ~size_t(15); }
int ceilDiv(int a, int b) { return (a + b - 1) / b; }
int roundUp(int a, int b) { return ceilDiv(a, b) * b; }
int ntFor(int D) { return D <= 16 ? 2 : D <= 32 ? 4 : 8; }

struct Geom {
  int R, slice, kpad, stride, tpo, halo, D4, NT;
  int o_A, o_pst, o_sall, o_wfrag, o_fst, o_uown, o_wown, o_wsum, o_wall;
  size_t smem;
};

Geom fusedGeom(TIShape const& s, DType t, int Rt) {
  Geom g{};
  int const es = int(elemSize(t)), vec = 16 / es, KK = t == DType::kF32 ? 8 : 16;
  int const HW = s.H * s.W, N = HW + 1, G2 = 2 * s.G;
  int dmax = 1;
  for (int i = 0; i < s.S; ++i) dmax = std::max(dmax, s.dil[i]);
  g.slice = roundUp(ceilDiv(s.C, Rt), vec);
  g.R = ceilDiv(s.C, g.slice);
  g.kpad = roundUp(g.slice, KK);
  g.stride = roundUp(g.kpad * es, 16);
  if ((g.stride / 16) % 2 == 0) g.stride += 16;  // rows 16*odd bytes apart: conflict-free ldmatrix / lds
  g.tpo = ceilDiv(HW, g.R);
  g.halo = std::min(HW, g.tpo + 2 * (dmax * s.W + dmax));
  g.D4 = roundUp(s.D, 4);
  g.NT = ntFor(s.D);
  size_t const xs = size_t(2) * N * g.stride;
  size_t const pst = size_t(2) * HW * 8, sall = pst;
  size_t const wfrag = size_t(2) * (g.kpad / KK) * (g.NT / 2) * 32 * 16;
  size_t const A = std::max({align16(pst + sall) + wfrag, size_t(HW) * g.D4 * 4, size_t(g.halo) * g.D4 * 4});
  size_t o = align16(xs);
  g.o_A = int(o);
  g.o_pst = int(o);
  g.o_sall = int(o + pst);
  g.o_wfrag = int(align16(o + pst + sall));
  o = align16(o + A);
  g.o_fst = int(o);
  o = align16(o + size_t(2) * g.tpo * 8);
  g.o_uown = int(o);
  o = align16(o + size_t(g.tpo) * g.D4 * 4);
  g.o_wown = int(o);
  o = align16(o + size_t(g.tpo) * G2 * 4);
  g.o_wsum = int(o);
  o = align16(o + size_t(G2) * 4);
  g.o_wall = int(o);
  g.smem = align16(o + size_t(N) * G2 * 4);
  return g;
}

struct DevInfo {
  int major = 0, minor = 0, maxOptin = 0, sms = 0, smemPerSM = 0;
};

bool devInfo(DevInfo* out) {
  static std::mutex mu;
  static std::map<int, DevInfo> cache;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(dev);
  if (it == cache.end()) {
    DevInfo d;
    if (cudaDeviceGetAttribute(&d.major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&d.minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&d.maxOptin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&d.smemPerSM, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev) != cudaSuccess)
      return false;
    it = cache.emplace(dev, d).first;
  }
  *out = it->second;
  return true;
}

using FusedFn = void (*)(KParams);

FusedFn fusedKernel(DType t, int NT) {
  switch (t) {
    case DType::kF32: return NT == 2 ? ti_fused_kernel<float, 2> : NT == 4 ? ti_fused_kernel<float, 4> : ti_fused_kernel<float, 8>;
    case DType::kF16: return NT == 2 ? ti_fused_kernel<__half, 2> : NT == 4 ? ti_fused_kernel<__half, 4> : ti_fused_kernel<__half, 8>;
    default:
      return NT == 2 ? ti_fused_kernel<__nv_bfloat16, 2> : NT == 4 ? ti_fused_kernel<__nv_bfloat16, 4> : ti_fused_kernel<__nv_bfloat16, 8>;
  }
}

cudaLaunchConfig_t fusedConfig(int R, size_t smem, int P, cudaStream_t stream, cudaLaunchAttribute* attr) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned(R * P), 1, 1);
  cfg.blockDim = dim3(kThreads, 1, 1);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = unsigned(R);
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  return cfg;
}

// Sets the kernel attributes for this geometry and returns how many clusters fit on the device
// at once (0: none; -1: error). Cached per (device, kernel, R, smem).
int clustersFit(FusedFn fn, int R, size_t smem, int maxOptin) {
  static std::mutex mu;
  static std::map<std::tuple<int, void*, int, size_t>, int> cache;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return -1;
  auto key = std::make_tuple(dev, reinterpret_cast<void*>(fn), R, smem);
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  int fit = 0;
  cudaFuncAttributes fa{};
  if (cudaFuncGetAttributes(&fa, fn) != cudaSuccess || fa.binaryVersion < 90) {
    cudaGetLastError();
    fit = 0;  // not compiled for sm_90+: the fused kernel body is empty there
  } else if (cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, maxOptin) != cudaSuccess ||
             cudaFuncSetAttribute(fn, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess) {
    cudaGetLastError();
    fit = 0;
  } else {
    cudaLaunchAttribute attr[1];
    cudaLaunchConfig_t cfg = fusedConfig(R, smem, 1, nullptr, attr);
    int n = 0;
    if (cudaOccupancyMaxActiveClusters(&n, fn, &cfg) != cudaSuccess) {
      cudaGetLastError();
      n = 0;
    }
    fit = n;
  }
  cache.emplace(key, fit);
  return fit;
}

bool checkShape(TIShape const& s, char* err, int errLen) {
  char msg[160];
  if (s.P < 0 || s.H < 1 || s.W < 1 || s.C < 1 || s.D < 1 || s.G < 1 || s.G > kMaxG2 / 2 || s.S < 1 ||
      s.S > kTIMaxScales || s.C % s.G != 0) {
    std::snprintf(msg, sizeof(msg), "TokenInterpolation: bad shape P=%d H=%d W=%d C=%d D=%d G=%d S=%d", s.P, s.H, s.W,
                  s.C, s.D, s.G, s.S);
    setErr(err, errLen, msg);
    return false;
  }
  for (int i = 0; i < s.S; ++i)
    if (s.dil[i] < 1) {
      setErr(err, errLen, "TokenInterpolation: dilations must be >= 1");
      return false;
    }
  return true;
}

// Chooses the fused configuration (cluster size) for these arguments; false (with a reason) if the
// fused path cannot run them on the current device.
bool chooseFused(TIShape const& s, DType t, void const* x, void const* out, TIOptions const& opt, Geom* best,
                 int* bestFit, char* reason, int reasonLen) {
  auto no = [&](char const* why) {
    setErr(reason, reasonLen, why);
    return false;
  };
  DevInfo di;
  if (!devInfo(&di)) return no("no CUDA device");
  if (di.major < 9) return no("fused path needs sm_90+ (thread-block clusters)");
  int const HW = s.H * s.W;
  if (s.D > 64) return no("fused path needs D <= 64");
  if (HW > kMaxHWFused) return no("fused path needs H*W <= 256");
  if ((size_t(s.C) * elemSize(t)) % 16 != 0) return no("fused path needs C*sizeof(dtype) % 16 == 0");
  if ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(out)) % 16 != 0)
    return no("fused path needs 16-byte aligned x and out");
  // Cluster size: the smallest R (more bytes per CTA, fewer cross-CTA partials) that keeps >= 1.5
  // CTAs per SM resident (one CTA's DRAM phase overlaps another's barriers); else the configuration
  // with the most resident CTAs. Measured on H100, vit-b16 P=128: fp16 R=8 210 us vs R=16 221 us,
  // R=4 (1 CTA/SM) 279 us, R=12 279 us; fp32 R=16 384 us vs R=8 (1 CTA/SM) 460 us.
  int cands[2] = {8, 16}, ncand = 2;
  if (opt.cluster > 0) {
    if (opt.cluster > kMaxR) return no("cluster must be <= 16");
    cands[0] = opt.cluster;
    ncand = 1;
  }
  bool found = false, good = false;
  for (int k = 0; k < ncand && !good; ++k) {
    Geom g = fusedGeom(s, t, cands[k]);
    if (g.smem > size_t(di.maxOptin) || g.R > kMaxR) continue;
    int const fit = clustersFit(fusedKernel(t, g.NT), g.R, g.smem, di.maxOptin);
    if (fit <= 0) continue;
    good = 2 * fit * g.R >= 3 * di.sms;
    if (good || !found || fit * g.R > *bestFit * best->R) {
      *best = g;
      *bestFit = fit;
      found = true;
    }
  }
  if (!found) return no("no cluster configuration fits this device (shared memory / cluster size)");
  return true;
}


// Token-split geometry for a target cluster size Rt (16-bit inputs).
struct TokGeom {
  int R = 0, T = 0, tstride = 0, kpadT = 0, NT = 0, mt = 0, KP = 0, units = 0, reach = 0, D4 = 0;
  int o_st = 0, o_red = 0, o_u = 0, o_w = 0, o_wsum = 0;
  size_t smem = 0;
};

constexpr int kTokMaxT = 64;  // tokens per CTA: at most 4 m-tiles

int dilMax(TIShape const& s) {
  int dmax = 1;
  for (int i = 0; i < s.S; ++i) dmax = std::max(dmax, s.dil[i]);
  return dmax;
}

TokGeom tokGeom(TIShape const& s, int Rt) {
  TokGeom g;
  int const HW = s.H * s.W, N = HW + 1, G2 = 2 * s.G, es = 2;
  g.T = ceilDiv(N, std::max(1, Rt));
  g.R = ceilDiv(N, g.T);
  g.kpadT = roundUp(s.C, 16);
  g.tstride = roundUp(g.kpadT * es, 16);
  if ((g.tstride / 16) % 2 == 0) g.tstride += 16;  // rows 16*odd bytes apart: conflict-free ldmatrix
  g.NT = ntFor(s.D);
  g.mt = ceilDiv(g.T, 16);
  g.KP = std::max(1, kWarps / (2 * g.mt));
  g.units = g.mt * 2 * g.KP;
  int const dmax = dilMax(s);
  g.reach = dmax * s.W + dmax;
  g.D4 = roundUp(s.D, 4);
  size_t o = align16(size_t(2) * g.T * g.tstride);
  g.o_st = int(o);
  o = align16(o + size_t(2) * g.T * 8);
  g.o_red = int(o);
  size_t const red = size_t(g.units) * 16 * 8 * g.NT * 4;
  size_t const halo = size_t(std::min(HW, g.T + 2 * g.reach)) * g.D4 * 4;
  o = align16(o + std::max(red, halo));
  g.o_u = int(o);
  o = align16(o + size_t(g.T) * g.D4 * 4);
  g.o_w = int(o);
  o = align16(o + size_t(g.T) * G2 * 4);
  g.o_wsum = int(o);
  g.smem = align16(o + size_t(g.R + 1) * G2 * 4);
  return g;
}

// Packed W_in fragments + column sums (token-split path), from the workspace base.
size_t tokPackBytes(TIShape const& s) {
  int const NQ = ntFor(s.D) / 2, nks = roundUp(s.C, 16) / 16;
  return align16(size_t(2) * nks * NQ * 32 * 16) + align16(size_t(2) * s.D * 4);
}

FusedFn tokKernel(DType t, int NT) {
  if (t == DType::kF16) return NT == 2 ? ti_tok_kernel<__half, 2> : NT == 4 ? ti_tok_kernel<__half, 4> : ti_tok_kernel<__half, 8>;
  return NT == 2 ? ti_tok_kernel<__nv_bfloat16, 2> : NT == 4 ? ti_tok_kernel<__nv_bfloat16, 4> : ti_tok_kernel<__nv_bfloat16, 8>;
}

// Chooses the token-split configuration: the smallest cluster (most tokens per CTA: fewest W_in
// fragment reads per token) that keeps two CTAs per SM resident; else the smallest that fits.
bool chooseTok(TIShape const& s, DType t, void const* x, void const* out, TIOptions const& opt, TokGeom* best,
               int* bestFit, char* reason, int reasonLen) {
  auto no = [&](char const* why) {
    setErr(reason, reasonLen, why);
    return false;
  };
  if (t == DType::kF32) return no("token-split variant runs fp16 / bf16 only");
  DevInfo di;
  if (!devInfo(&di)) return no("no CUDA device");
  if (di.major < 9) return no("fused path needs sm_90+ (thread-block clusters)");
  if (s.D > 64) return no("fused path needs D <= 64");
  if ((size_t(s.C) * elemSize(t)) % 16 != 0) return no("fused path needs C*sizeof(dtype) % 16 == 0");
  if ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(out)) % 16 != 0)
    return no("fused path needs 16-byte aligned x and out");
  int const N = s.H * s.W + 1;
  int lo = 2, hi = kMaxR;
  if (opt.cluster > 0) {
    if (opt.cluster > kMaxR) return no("cluster must be <= 16");
    lo = hi = opt.cluster;
  }
  bool found = false;
  for (int pass = 0; pass < 2 && !found; ++pass) {  // pass 0: two CTAs per SM; pass 1: any that fits
    for (int Rt = lo; Rt <= hi && !found; ++Rt) {
      TokGeom const g = tokGeom(s, Rt);
      if (g.T > kTokMaxT || g.R > kMaxR || g.R < 1 || g.smem > size_t(di.maxOptin)) continue;
      if (pass == 0 && opt.cluster == 0 && 2 * (g.smem + 1024) > size_t(di.smemPerSM)) continue;
      if (opt.cluster == 0 && Rt > lo && tokGeom(s, Rt - 1).T == g.T) continue;  // same split as Rt - 1
      int const fit = clustersFit(tokKernel(t, g.NT), g.R, g.smem, di.maxOptin);
      if (fit <= 0) continue;
      *best = g;
      *bestFit = fit;
      found = true;
    }
  }
  if (!found) return no(N > kMaxR * kTokMaxT ? "token-split variant needs N <= 1024"
                                             : "no token-split configuration fits this device");
  return true;
}

// The split path: sm_80+ (mma.sync); 16-byte vectors of x / out.
bool chooseSplit(TIShape const& s, DType t, void const* x, void const* out, char* reason, int reasonLen) {
  DevInfo di;
  if (!devInfo(&di) || di.major < 8) {
    setErr(reason, reasonLen, "split path needs sm_80+ (mma.sync)");
    return false;
  }
  if ((size_t(s.C) * elemSize(t)) % 16 != 0) {
    setErr(reason, reasonLen, "split path needs C*sizeof(dtype) % 16 == 0");
    return false;
  }
  if ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(out)) % 16 != 0) {
    setErr(reason, reasonLen, "split path needs 16-byte aligned x and out");
    return false;
  }
  if (size_t(s.P) * s.H * s.W >= (size_t(1) << 30)) {
    setErr(reason, reasonLen, "split path needs P*H*W < 2^30");
    return false;
  }
  return true;
}

// Split-path geometry: weight bands per pair, W_in chunks per frame (16 bytes of a row per lane of a
// quad), column blocks of 8*NT columns.
struct SpGeom {
  int nb = 0, nch = 0, nt = 0, ny = 0;
};
SpGeom spGeom(TIShape const& s, int es) {
  SpGeom g;
  g.nb = ceilDiv(s.H * s.W, kSpBand);
  g.nch = ceilDiv(s.C, 4 * (16 / es));
  g.nt = ntFor(std::min(s.D, 64));
  g.ny = ceilDiv(s.D, 8 * g.nt);
  return g;
}
// Lane weights kernel: D padded so that each of the 4 quarters holds a multiple of 4 channels (dpad), and
// the u row stride (a multiple of 4 floats >= dpad) under which the 8 threads of a 16-byte load phase
// (2 neighbouring tokens x 4 quarters) share the fewest 16-byte bank groups.
int splDpad(int D) { return 4 * ((ceilDiv(D, 4) + 3) & ~3); }
int splStride(int D) {
  int const dpad = splDpad(D), m = dpad / 16;  // 16-byte groups between quarters
  int best = dpad, bestWorst = 99;
  for (int s = dpad / 4; s < dpad / 4 + 8; ++s) {
    int cnt[8] = {0}, worst = 0;
    for (int r = 0; r < 2; ++r)
      for (int q = 0; q < 4; ++q) worst = std::max(worst, ++cnt[(r * s + q * m) & 7]);
    if (worst < bestWorst) bestWorst = worst, best = 4 * s;
  }
  return best;
}
// Shared memory of the lane weights kernel for this shape (u of a band and its reach, a zero row, taps,
// biases, W_out, the band's weights); 0 where it does not fit maxSmem or the workspace's partial sums.
size_t splSmem(TIShape const& s, size_t maxSmem) {
  int const HW = s.H * s.W, reach = std::min(HW, dilMax(s) * s.W + dilMax(s)), G2 = 2 * s.G;
  size_t const Dp = size_t(splStride(s.D)), Dq = size_t(splDpad(s.D));
  size_t const nhal = size_t(std::min(HW, kSpLTok + 2 * reach));
  size_t const fl = (nhal + 1) * Dp + size_t(s.S) * 10 * Dq + size_t(1 + s.S) * Dq * G2 + size_t(kSpLTok) * G2;
  size_t const bytes = fl * 4;
  return (bytes <= maxSmem && ceilDiv(HW, kSpLTok) <= ceilDiv(HW, kSpBand)) ? bytes : 0;
}
size_t spFragEntries(SpGeom const& g) { return size_t(2) * g.nch * g.ny * g.nt * 32; }
// workspace layout of the split path: u | pair weights | band partial sums | W_in fragments | column sums
struct SpLayout {
  size_t wt = 0, part = 0, frag = 0, colsum = 0, total = 0;
};
SpLayout spLayout(TIShape const& s, int es) {
  SpGeom const g = spGeom(s, es);
  size_t const HW = size_t(s.H) * s.W, G2 = size_t(2) * s.G;
  SpLayout l;
  l.wt = align16(size_t(s.P) * HW * s.D * 4);
  l.part = l.wt + align16(size_t(s.P) * HW * G2 * 4);
  l.frag = align16(l.part + size_t(s.P) * g.nb * G2 * 4);
  l.colsum = l.frag + spFragEntries(g) * 16;
  l.total = l.colsum + align16(size_t(2) * g.ny * 8 * g.nt * 4);
  return l;
}

// Tile path geometry: RI patch tokens per tile (16, or 8 where 16 leaves fewer rows resident per SM),
// nM tiles per pair, rm tiles within the convolutions' reach on each side, padded row bytes rs (a
// multiple of 128 plus 64: the 8 rows x 4 lanes of a fragment load hit distinct banks), offset of the
// area that holds the projection partials and then the weights tiles.
struct TlGeom {
  int RI = 0, nM = 0, rm = 0, rs = 0, reach = 0, ksp = 0, ob = 0, NT = 0, occ = 0;
  size_t smem = 0;
};
TlGeom tlGeom(TIShape const& s, int es, int RI) {
  TlGeom g;
  int const HW = s.H * s.W, dmax = dilMax(s);
  g.RI = RI;
  g.nM = ceilDiv(HW, RI);
  g.reach = std::min(HW, dmax * s.W + dmax);
  g.rm = ceilDiv(g.reach, RI);
  g.rs = roundUp(s.C * es, 128) + 64;
  g.ksp = ((s.S + 1) * s.D) | 1;
  g.NT = ntFor(std::min(s.D, 64));
  size_t const xb = align16(size_t(2) * RI * g.rs);
  size_t const E = size_t(g.NT) * 4 + 5;
  size_t const redf = size_t(4) * 32 * E;  // 4 warps' partials; frame 1's part (NT * 128 floats) reuses them
  size_t const nhal = size_t(std::min(HW, RI + 2 * g.reach));
  size_t const wf = ((nhal * s.D + 3) & ~size_t(3)) + size_t(RI) * g.ksp + size_t(RI) * 2 * s.G;
  g.ob = int(xb);
  g.smem = xb + align16(std::max(redf, wf) * 4);
  return g;
}
// workspace of the tile path: u | partial CLS sums | flags, done counts, ticket (zeroed) | W_in fragments | column sums
struct TlLayout {
  size_t part = 0, flags = 0, frag = 0, colsum = 0, total = 0;
  int nzero = 0;
};
TlLayout tlLayout(TIShape const& s, int es, int RI) {
  SpGeom const sg = spGeom(s, es);
  size_t const HW = size_t(s.H) * s.W, nM = size_t(ceilDiv(int(HW), RI));
  TlLayout l;
  l.part = align16(size_t(s.P) * HW * s.D * 4);
  l.flags = l.part + align16(size_t(s.P) * nM * 2 * s.G * 4);
  l.nzero = int(size_t(s.P) * nM + s.P + 1);
  l.frag = align16(l.flags + size_t(l.nzero) * 4);
  l.colsum = l.frag + spFragEntries(sg) * 16;
  l.total = l.colsum + align16(size_t(2) * sg.ny * 8 * sg.nt * 4);
  return l;
}
using TileFn = void (*)(KParams);
TileFn tileKernel(DType t, int NT) {
  switch (t) {
    case DType::kF32: return NT == 2 ? ti_tile_kernel<float, 2> : NT == 4 ? ti_tile_kernel<float, 4> : ti_tile_kernel<float, 8>;
    case DType::kF16: return NT == 2 ? ti_tile_kernel<__half, 2> : NT == 4 ? ti_tile_kernel<__half, 4> : ti_tile_kernel<__half, 8>;
    default:
      return NT == 2 ? ti_tile_kernel<__nv_bfloat16, 2> : NT == 4 ? ti_tile_kernel<__nv_bfloat16, 4>
                                                                  : ti_tile_kernel<__nv_bfloat16, 8>;
  }
}
// CTAs of this tile geometry resident per SM (0: does not fit / not built for this GPU); raises the
// kernel's dynamic shared memory limit to the device's opt-in maximum. Cached per (device, kernel, smem).
int tileOcc(TileFn fn, size_t smem, int maxOptin) {
  static std::mutex mu;
  static std::map<std::tuple<int, void*, size_t>, int> cache;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  auto key = std::make_tuple(dev, reinterpret_cast<void*>(fn), smem);
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  int n = 0;
  cudaFuncAttributes fa{};
  if (smem > size_t(maxOptin) || cudaFuncGetAttributes(&fa, fn) != cudaSuccess || fa.binaryVersion < 80 ||
      smem + fa.sharedSizeBytes > size_t(maxOptin) ||
      cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, maxOptin - int(fa.sharedSizeBytes)) != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, fn, kTlThreads, smem) != cudaSuccess)
    n = 0;
  cudaGetLastError();
  cache.emplace(key, n);
  return n;
}
// The tile path: sm_80+, 16-byte vectors, D <= 64, enough CTAs resident for the reach. Tile rows: the
// choice (16 or 8) that keeps the most patch rows resident per SM (16 on a tie); INTI_TI_TILE_ROWS
// forces one (benchmarks).
bool chooseTile(TIShape const& s, DType t, void const* x, void const* out, TlGeom* best, char* reason, int reasonLen) {
  if (!chooseSplit(s, t, x, out, reason, reasonLen)) return false;  // same vector / alignment / arch needs
  auto no = [&](char const* why) {
    setErr(reason, reasonLen, why);
    return false;
  };
  if (s.D > 64) return no("tile path needs D <= 64");
  DevInfo di;
  if (!devInfo(&di)) return no("no CUDA device");
  int const es = int(elemSize(t));
  int forced = 0;
  if (char const* v = std::getenv("INTI_TI_TILE_ROWS")) forced = std::atoi(v);
  bool found = false;
  for (int RI : {16, 8}) {
    if (forced && RI != forced) continue;
    TlGeom g = tlGeom(s, es, RI);
    g.occ = tileOcc(tileKernel(t, g.NT), g.smem, di.maxOptin);
    if (g.occ <= 0 || g.occ * di.sms < g.rm + 2) continue;
    if (!found || g.occ * g.RI > best->occ * best->RI) {
      *best = g;
      found = true;
    }
  }
  if (!found) return no("no tile configuration fits this device (shared memory / resident CTAs)");
  return true;
}

struct Choice {
  int variant = 0;  // kVariantToken / kVariantChannel / kVariantSplit / kVariantTile; 0: fallback
  TlGeom lg{};
  Geom cg{};
  TokGeom tg{};
  int fit = 0;
};

// The fused variant and configuration for these arguments; false (with a reason) -> fallback.
bool chooseAny(TIShape const& s, DType t, void const* x, void const* out, TIOptions const& opt, Choice* c, char* reason,
               int reasonLen) {
  if (opt.path == kPathFallback) {
    setErr(reason, reasonLen, "fallback requested");
    return false;
  }
  int v = opt.variant;
  if (v == kVariantTile) {
    if (!chooseTile(s, t, x, out, &c->lg, reason, reasonLen)) return false;
    c->variant = kVariantTile;
    return true;
  }
  if (v == kVariantSplit) {
    if (!chooseSplit(s, t, x, out, reason, reasonLen)) return false;
    c->variant = kVariantSplit;
    return true;
  }
  // Defaults (H100, vit-b16 P=128, see plugins/README.md): fp32 -> split (channel if split cannot run),
  // fp16 / bf16 -> split (token if split cannot run). One-line switch: kDefaultF32 / kDefaultF16 below.
  constexpr int kDefaultF32 = kVariantSplit, kDefaultF16 = kVariantSplit;
  if (v == kVariantAuto) {
    v = t == DType::kF32 ? kDefaultF32 : kDefaultF16;
    if (v == kVariantSplit && opt.path == kPathFused)  // fused requested: a fused variant
      v = t == DType::kF32 ? kVariantChannel : kVariantToken;
    if (v == kVariantSplit) {
      if (chooseSplit(s, t, x, out, reason, reasonLen)) {
        c->variant = kVariantSplit;
        return true;
      }
      v = t == DType::kF32 ? kVariantChannel : kVariantToken;
    }
  }
  if (v == kVariantToken) {
    if (chooseTok(s, t, x, out, opt, &c->tg, &c->fit, reason, reasonLen)) {
      c->variant = kVariantToken;
      return true;
    }
    if (opt.variant == kVariantToken) return false;
  }
  if (chooseFused(s, t, x, out, opt, &c->cg, &c->fit, reason, reasonLen)) {
    c->variant = kVariantChannel;
    return true;
  }
  return false;
}

}  // namespace

size_t ti_workspace_size(TIShape const& s) {
  size_t const HW = size_t(s.H) * s.W;
  size_t const fb = align16(size_t(s.P) * HW * s.D * 4) + align16(size_t(s.P) * (HW + 1) * 2 * s.G * 4);
  return std::max({fb, tokPackBytes(s), spLayout(s, 4).total, tlLayout(s, 2, 8).total, tlLayout(s, 4, 8).total}) + 256;
}

int ti_plan(TIShape const& s, DType t, void const* x, void const* out, TIOptions const& opt, TIPlan* plan) {
  *plan = TIPlan{};
  if (!checkShape(s, plan->reason, int(sizeof(plan->reason)))) return 1;
  Choice c;
  if (chooseAny(s, t, x, out, opt, &c, plan->reason, int(sizeof(plan->reason))) && c.variant == kVariantSplit) {
    plan->path = kPathSplit;
    plan->variant = kVariantSplit;
    plan->threads = kSpWarps * 32;
    plan->slice = kSpBand;
    plan->reason[0] = 0;
  } else if (c.variant == kVariantTile) {
    plan->path = kPathTile;
    plan->variant = kVariantTile;
    plan->threads = kTlThreads;
    plan->slice = c.lg.RI;
    plan->smem = c.lg.smem;
    plan->clusters_per_gpu = c.lg.occ;  // CTAs per SM
    plan->reason[0] = 0;
  } else if (c.variant != 0) {
    plan->path = kPathFused;
    plan->variant = c.variant;
    plan->threads = kThreads;
    plan->clusters_per_gpu = c.fit;
    plan->reason[0] = 0;
    if (c.variant == kVariantToken) {
      plan->cluster = c.tg.R;
      plan->slice = c.tg.T;
      plan->smem = c.tg.smem;
    } else {
      plan->cluster = c.cg.R;
      plan->slice = c.cg.slice;
      plan->smem = c.cg.smem;
    }
  } else {
    plan->path = kPathFallback;
    plan->threads = kFbTokens * 32;
  }
  return 0;
}

int ti_launch(TIShape const& s, DType t, void const* x, void* out, TIWeights const& w, void* workspace,
              size_t workspaceBytes, cudaStream_t stream, TIOptions const& opt, char* err, int errLen) {
  if (!checkShape(s, err, errLen)) return 1;
  if (s.P == 0) return 0;
  KParams p{};
  p.x = x;
  p.out = out;
  p.w_in = w.w_in;
  p.b_in = w.b_in;
  p.dw_w = w.dw_weight;
  p.dw_b = w.dw_bias;
  p.w_out = w.w_out;
  p.b_out = w.b_out;
  p.P = s.P;
  p.H = s.H;
  p.W = s.W;
  p.HW = s.H * s.W;
  p.N = p.HW + 1;
  p.C = s.C;
  p.D = s.D;
  p.G = s.G;
  p.S = s.S;
  p.softmax = s.softmax;
  p.cls_mean = s.cls_mean;
  p.cpg = s.C / s.G;
  p.eps = s.eps;
  p.dmax = dilMax(s);
  for (int i = 0; i < s.S; ++i) p.dil[i] = s.dil[i];
  size_t const need = ti_workspace_size(s);
  auto launchErr = [&](char const* what, cudaError_t e) {
    char msg[200];
    std::snprintf(msg, sizeof(msg), "TokenInterpolation %s launch failed: %s", what, cudaGetErrorString(e));
    setErr(err, errLen, msg);
    return 2;
  };
  auto wsErr = [&](char const* what) {
    char msg[160];
    std::snprintf(msg, sizeof(msg), "TokenInterpolation: %s path needs %zu workspace bytes, got %zu", what, need,
                  workspaceBytes);
    setErr(err, errLen, msg);
    return 4;
  };
  uintptr_t const base = (reinterpret_cast<uintptr_t>(workspace) + 255) & ~uintptr_t(255);
  Choice c;
  char reason[160] = {};
  if (chooseAny(s, t, x, out, opt, &c, reason, int(sizeof(reason)))) {
    if (c.variant == kVariantTile) {
      if (workspace == nullptr || workspaceBytes < need) return wsErr("tile");
      int const es = int(elemSize(t));
      TlGeom const& g = c.lg;
      SpGeom const sg = spGeom(s, es);
      TlLayout const l = tlLayout(s, es, g.RI);
      p.sp_nch = sg.nch;
      p.sp_nt = sg.nt;
      p.sp_ny = sg.ny;
      p.tl_ri = g.RI;
      p.tl_nm = g.nM;
      p.tl_rs = g.rs;
      p.tl_reach = g.reach;
      p.tl_ksp = g.ksp;
      p.tl_ob = g.ob;
      p.ws_u = reinterpret_cast<float*>(base);
      p.tl_part = reinterpret_cast<float*>(base + l.part);
      p.tl_flags = reinterpret_cast<int*>(base + l.flags);
      p.tl_done = p.tl_flags + size_t(s.P) * g.nM;
      p.tl_ticket = p.tl_done + s.P;
      p.zero = p.tl_flags;
      p.nzero = l.nzero;
      p.wpack = reinterpret_cast<uint4 const*>(base + l.frag);
      p.wcolsum = reinterpret_cast<float const*>(base + l.colsum);
      int const fragBlocks = std::max(int((spFragEntries(sg) + 255) / 256), ceilDiv(l.nzero, 256));
      dim3 const g0(unsigned(fragBlocks + 2 * sg.ny * 8 * sg.nt));
      unsigned const tiles = unsigned(size_t(s.P) * g.nM);
      switch (t) {
        case DType::kF32: ti_sp_pack_kernel<float><<<g0, 256, 0, stream>>>(p, fragBlocks); break;
        case DType::kF16: ti_sp_pack_kernel<__half><<<g0, 256, 0, stream>>>(p, fragBlocks); break;
        default: ti_sp_pack_kernel<__nv_bfloat16><<<g0, 256, 0, stream>>>(p, fragBlocks); break;
      }
      cudaError_t e = cudaGetLastError();
      if (e != cudaSuccess) return launchErr("pack", e);
      tileKernel(t, g.NT)<<<tiles, kTlThreads, g.smem, stream>>>(p);
      e = cudaGetLastError();
      if (e != cudaSuccess) return launchErr("tile", e);
      return 0;
    }
    if (c.variant == kVariantSplit) {
      if (workspace == nullptr || workspaceBytes < need) return wsErr("split");
      int const es = int(elemSize(t));
      SpGeom const sg = spGeom(s, es);
      SpLayout const sl = spLayout(s, es);
      p.sp_nb = sg.nb;
      p.sp_nch = sg.nch;
      p.sp_nt = sg.nt;
      p.sp_ny = sg.ny;
      p.ws_u = reinterpret_cast<float*>(base);
      p.ws_wt = reinterpret_cast<float*>(base + sl.wt);
      p.ws_w = reinterpret_cast<float*>(base + sl.part);
      p.wpack = reinterpret_cast<uint4 const*>(base + sl.frag);
      p.wcolsum = reinterpret_cast<float const*>(base + sl.colsum);
      int const fragBlocks = int((spFragEntries(sg) + 255) / 256);
      dim3 const g0(unsigned(fragBlocks + 2 * sg.ny * 8 * sg.nt));
      dim3 const ga(unsigned(ceilDiv(s.P * p.HW, 16 * kSpWarps / 2)), unsigned(sg.ny));
      dim3 gw(unsigned(sg.nb), unsigned(s.P));
      size_t lane = 0;  // lane weights kernel: its shared memory (0: the warp-per-token kernel instead)
      bool pdl = false;  // kernels A, B, C launched as programmatic dependents of the one before (sm_90+)
      {
        int dev = 0, optin = 48 * 1024, major = 0;
        if (cudaGetDevice(&dev) == cudaSuccess) {
          cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
          cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
        }
        char const* noPdl = std::getenv("INTI_TI_PDL");  // "0": plain launches (benchmarks)
        pdl = major >= 9 && !(noPdl && std::strcmp(noPdl, "0") == 0);
#if CUDART_VERSION < 12030  // programmatic edges in captured graphs need CUDA 12.3: plain launches there
        cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
        if (pdl && (cudaStreamIsCapturing(stream, &cap) != cudaSuccess || cap != cudaStreamCaptureStatusNone)) pdl = false;
#endif
        char const* force = std::getenv("INTI_TI_SP_WEIGHTS");  // "warp": the fallback kernel (tests, benchmarks)
        if (!force || std::strcmp(force, "warp") != 0) lane = splSmem(s, size_t(optin));
        if (lane > 48 * 1024) {
          auto fn = s.G == 1 ? ti_sp_weights_lane_kernel<2> : ti_sp_weights_lane_kernel<kMaxG2>;
          if (cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, int(lane)) != cudaSuccess) {
            cudaGetLastError();
            lane = 0;
          }
        }
        if (lane) {
          p.sp_nb = ceilDiv(p.HW, kSpLTok);  // one partial CLS sum per band
          p.spl_reach = std::min(p.HW, p.dmax * s.W + p.dmax);
          p.spl_dp = splStride(s.D);
          p.spl_dpad = splDpad(s.D);
          gw = dim3(unsigned(p.sp_nb), unsigned(s.P));
        }
      }
      cudaError_t le = cudaSuccess;  // the first launch error
      auto launch = [&](auto kern, dim3 grid, int threads, size_t smem) {
        cudaLaunchAttribute at[1];
        at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[0].val.programmaticStreamSerializationAllowed = 1;
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = grid;
        cfg.blockDim = dim3(unsigned(threads));
        cfg.dynamicSmemBytes = smem;
        cfg.stream = stream;
        cfg.attrs = at;
        cfg.numAttrs = pdl ? 1 : 0;
        cudaError_t const e = cudaLaunchKernelEx(&cfg, kern, p);
        if (le == cudaSuccess) le = e;
      };
      auto weights = [&]() {
        if (lane && s.G == 1)
          launch(ti_sp_weights_lane_kernel<2>, gw, kSpLThreads, lane);
        else if (lane)
          launch(ti_sp_weights_lane_kernel<kMaxG2>, gw, kSpLThreads, lane);
        else
          launch(ti_sp_weights_kernel, gw, kSpBand * 32, 0);
      };
      long long const items = (long long)s.P * p.HW * (s.C / (16 / es));
      unsigned const gb = unsigned(std::max<long long>(s.P, (items + 256 * kSpBatch - 1) / (256 * kSpBatch)));
      auto proj = [&](auto tag) {
        using TT = decltype(tag);
        if (sg.nt == 2)
          launch(ti_sp_proj_kernel<TT, 2>, ga, kSpWarps * 32, 0);
        else if (sg.nt == 4)
          launch(ti_sp_proj_kernel<TT, 4>, ga, kSpWarps * 32, 0);
        else
          launch(ti_sp_proj_kernel<TT, 8>, ga, kSpWarps * 32, 0);
      };
      switch (t) {
        case DType::kF32:
          ti_sp_pack_kernel<float><<<g0, 256, 0, stream>>>(p, fragBlocks);
          proj(float{});
          weights();
          launch(ti_sp_blend_kernel<float>, dim3(gb), 256, 0);
          break;
        case DType::kF16:
          ti_sp_pack_kernel<__half><<<g0, 256, 0, stream>>>(p, fragBlocks);
          proj(__half{});
          weights();
          launch(ti_sp_blend_kernel<__half>, dim3(gb), 256, 0);
          break;
        default:
          ti_sp_pack_kernel<__nv_bfloat16><<<g0, 256, 0, stream>>>(p, fragBlocks);
          proj(__nv_bfloat16{});
          weights();
          launch(ti_sp_blend_kernel<__nv_bfloat16>, dim3(gb), 256, 0);
          break;
      }
      cudaError_t e = cudaGetLastError();
      if (e == cudaSuccess) e = le;
      if (e != cudaSuccess) return launchErr("split", e);
      return 0;
    }
    if (c.variant == kVariantToken) {
      TokGeom const& g = c.tg;
      if (workspace == nullptr || workspaceBytes < need) return wsErr("fused (token-split)");
      p.R = g.R;
      p.T = g.T;
      p.tstride = g.tstride;
      p.kpadT = g.kpadT;
      p.NQT = g.NT / 2;
      p.mt = g.mt;
      p.KP = g.KP;
      p.units = g.units;
      p.reach = g.reach;
      p.D4 = g.D4;
      p.o_st = g.o_st;
      p.o_red = g.o_red;
      p.o_u = g.o_u;
      p.o_w = g.o_w;
      p.o_twsum = g.o_wsum;
      size_t const frag = size_t(2) * (g.kpadT / 16) * p.NQT * 32;
      p.wpack = reinterpret_cast<uint4 const*>(base);
      p.wcolsum = reinterpret_cast<float const*>(base + align16(frag * 16));
      int const fragBlocks = int((frag + 255) / 256);
      dim3 const pg(unsigned(fragBlocks + 2 * s.D));
      if (t == DType::kF16)
        ti_pack_kernel<__half><<<pg, 256, 0, stream>>>(p, fragBlocks);
      else
        ti_pack_kernel<__nv_bfloat16><<<pg, 256, 0, stream>>>(p, fragBlocks);
      cudaError_t e = cudaGetLastError();
      if (e != cudaSuccess) return launchErr("pack", e);
      cudaLaunchAttribute attr[1];
      cudaLaunchConfig_t cfg = fusedConfig(g.R, g.smem, s.P, stream, attr);
      e = cudaLaunchKernelEx(&cfg, tokKernel(t, g.NT), p);
      if (e != cudaSuccess) return launchErr("fused (token-split)", e);
      return 0;
    }
    Geom const& g = c.cg;
    p.R = g.R;
    p.slice = g.slice;
    p.kpad = g.kpad;
    p.stride = g.stride;
    p.tpo = g.tpo;
    p.halo = g.halo;
    p.D4 = g.D4;
    p.o_A = g.o_A;
    p.o_pst = g.o_pst;
    p.o_sall = g.o_sall;
    p.o_wfrag = g.o_wfrag;
    p.o_fst = g.o_fst;
    p.o_uown = g.o_uown;
    p.o_wown = g.o_wown;
    p.o_wsum = g.o_wsum;
    p.o_wall = g.o_wall;
    cudaLaunchAttribute attr[1];
    cudaLaunchConfig_t cfg = fusedConfig(g.R, g.smem, s.P, stream, attr);
    cudaError_t e = cudaLaunchKernelEx(&cfg, fusedKernel(t, g.NT), p);
    if (e != cudaSuccess) return launchErr("fused", e);
    return 0;
  }
  if (opt.path == kPathFused) {
    char msg[220];
    std::snprintf(msg, sizeof(msg), "TokenInterpolation: fused path unavailable: %s", reason);
    setErr(err, errLen, msg);
    return 3;
  }
  if (workspace == nullptr || workspaceBytes < need) return wsErr("fallback");
  p.ws_u = reinterpret_cast<float*>(base);
  p.ws_w = reinterpret_cast<float*>(base + align16(size_t(s.P) * p.HW * s.D * 4));
  dim3 const g1(unsigned(ceilDiv(p.HW, kFbTokens)), unsigned(s.P));
  size_t const total = size_t(s.P) * p.N * s.C;
  unsigned const g3 = unsigned(std::min<size_t>((total + 255) / 256, 65535u * 8));
  switch (t) {
    case DType::kF32:
      ti_fb_proj_kernel<float><<<g1, kFbTokens * 32, 0, stream>>>(p);
      ti_fb_weights_kernel<<<unsigned(s.P), 256, 0, stream>>>(p);
      ti_fb_blend_kernel<float><<<g3, 256, 0, stream>>>(p);
      break;
    case DType::kF16:
      ti_fb_proj_kernel<__half><<<g1, kFbTokens * 32, 0, stream>>>(p);
      ti_fb_weights_kernel<<<unsigned(s.P), 256, 0, stream>>>(p);
      ti_fb_blend_kernel<__half><<<g3, 256, 0, stream>>>(p);
      break;
    default:
      ti_fb_proj_kernel<__nv_bfloat16><<<g1, kFbTokens * 32, 0, stream>>>(p);
      ti_fb_weights_kernel<<<unsigned(s.P), 256, 0, stream>>>(p);
      ti_fb_blend_kernel<__nv_bfloat16><<<g3, 256, 0, stream>>>(p);
      break;
  }
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return launchErr("fallback", e);
  return 0;
}

}  // namespace inti
