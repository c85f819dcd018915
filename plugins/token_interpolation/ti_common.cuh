// Device helpers both paths' kernels use (ti_split.cu, ti_fallback.cu): conversions, GELU, the pair weights
// from their logits, warp sums, and the warp-per-token pair weights (the fallback's weights kernel and the
// split path's where its lane kernel's tile does not fit). Internal linkage: each path file compiles its own
// copy (whole-program compilation, no -rdc).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "ti_params.h"

namespace inti {
namespace {

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

}  // namespace
}  // namespace inti
