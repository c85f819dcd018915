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
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

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
  // fallback workspace
  float* ws_u;
  float* ws_w;
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
      if (p.softmax) {
        float const m = fmaxf(l0, l1), e0 = expf(l0 - m), e1 = expf(l1 - m), inv = 1.f / (e0 + e1);
        w0 = e0 * inv;
        w1 = e1 * inv;
      } else {
        w0 = 1.f / (1.f + expf(-l0));
        w1 = 1.f / (1.f + expf(-l1));
      }
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
__device__ __forceinline__ uint32_t tf32(float v) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(v));
  return r;
}
// v = big + small, both tf32: products big*big + big*small + small*big carry ~fp32 accuracy.
__device__ __forceinline__ void split_tf32(float v, uint32_t& big, uint32_t& small) {
  big = tf32(v);
  small = tf32(v - __uint_as_float(big));
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
    float acc = 0.f;
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
#pragma unroll
      for (int f = 0; f < 2; ++f)
#pragma unroll 8
        for (int k = 0; k < 32; ++k) acc = fmaf(zs[warp][f][k], ws[f][k][lane], acc);
    }
    if (valid && d0 + lane < D) p.ws_u[(size_t(pair) * p.HW + t) * D + d0 + lane] = acc + __ldg(p.b_in + d0 + lane);
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
  int major = 0, minor = 0, maxOptin = 0, sms = 0;
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
        cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
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

cudaLaunchConfig_t fusedConfig(Geom const& g, int P, cudaStream_t stream, cudaLaunchAttribute* attr) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned(g.R * P), 1, 1);
  cfg.blockDim = dim3(kThreads, 1, 1);
  cfg.dynamicSmemBytes = g.smem;
  cfg.stream = stream;
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = unsigned(g.R);
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  return cfg;
}

// Sets the kernel attributes for this geometry and returns how many clusters fit on the device
// at once (0: none; -1: error). Cached per (device, kernel, R, smem).
int clustersFit(FusedFn fn, Geom const& g, int maxOptin) {
  static std::mutex mu;
  static std::map<std::tuple<int, void*, int, size_t>, int> cache;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return -1;
  auto key = std::make_tuple(dev, reinterpret_cast<void*>(fn), g.R, g.smem);
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
    cudaLaunchConfig_t cfg = fusedConfig(g, 1, nullptr, attr);
    cfg.gridDim = dim3(unsigned(g.R), 1, 1);
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
  if (opt.path == kPathFallback) return no("fallback requested");
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
    int const fit = clustersFit(fusedKernel(t, g.NT), g, di.maxOptin);
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

}  // namespace

size_t ti_workspace_size(TIShape const& s) {
  size_t const HW = size_t(s.H) * s.W;
  return align16(size_t(s.P) * HW * s.D * 4) + align16(size_t(s.P) * (HW + 1) * 2 * s.G * 4) + 256;
}

int ti_plan(TIShape const& s, DType t, void const* x, void const* out, TIOptions const& opt, TIPlan* plan) {
  *plan = TIPlan{};
  Geom g{};
  int fit = 0;
  if (!checkShape(s, plan->reason, int(sizeof(plan->reason)))) return 1;
  if (chooseFused(s, t, x, out, opt, &g, &fit, plan->reason, int(sizeof(plan->reason)))) {
    plan->path = kPathFused;
    plan->cluster = g.R;
    plan->slice = g.slice;
    plan->threads = kThreads;
    plan->smem = g.smem;
    plan->clusters_per_gpu = fit;
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
  p.dmax = 1;
  for (int i = 0; i < s.S; ++i) {
    p.dil[i] = s.dil[i];
    p.dmax = std::max(p.dmax, s.dil[i]);
  }
  Geom g{};
  int fit = 0;
  char reason[160] = {};
  if (chooseFused(s, t, x, out, opt, &g, &fit, reason, int(sizeof(reason)))) {
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
    cudaLaunchConfig_t cfg = fusedConfig(g, s.P, stream, attr);
    cudaError_t e = cudaLaunchKernelEx(&cfg, fusedKernel(t, g.NT), p);
    if (e != cudaSuccess) {
      char msg[200];
      std::snprintf(msg, sizeof(msg), "TokenInterpolation fused launch failed: %s", cudaGetErrorString(e));
      setErr(err, errLen, msg);
      return 2;
    }
    return 0;
  }
  if (opt.path == kPathFused) {
    char msg[220];
    std::snprintf(msg, sizeof(msg), "TokenInterpolation: fused path unavailable: %s", reason);
    setErr(err, errLen, msg);
    return 3;
  }
  size_t const need = ti_workspace_size(s);
  if (workspace == nullptr || workspaceBytes < need) {
    char msg[160];
    std::snprintf(msg, sizeof(msg), "TokenInterpolation: fallback path needs %zu workspace bytes, got %zu", need,
                  workspaceBytes);
    setErr(err, errLen, msg);
    return 4;
  }
  uintptr_t base = (reinterpret_cast<uintptr_t>(workspace) + 255) & ~uintptr_t(255);
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
  if (e != cudaSuccess) {
    char msg[200];
    std::snprintf(msg, sizeof(msg), "TokenInterpolation fallback launch failed: %s", cudaGetErrorString(e));
    setErr(err, errLen, msg);
    return 2;
  }
  return 0;
}

}  // namespace inti
