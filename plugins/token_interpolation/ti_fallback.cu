// Fallback path of the TokenInterpolation kernels (any GPU, any shape: e.g. Jetson Orin sm_87, or rows that
// are not 16-byte vectors): stats + projection, pair weights and blend as three plain kernels through the
// workspace (u (P, HW, D), then the pair weights of every token, CLS first). The projection sums fp32 per
// 32-channel chunk and double across chunks. ti_launch.cpp takes this path where the split path cannot run
// and sets up its launch.
#include "ti_common.cuh"

namespace inti {
namespace {


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

}  // namespace

cudaError_t ti_fallback_enqueue(KParams const& p, DType t, FbLaunch const& l, cudaStream_t stream) {
  switch (t) {
    case DType::kF32:
      ti_fb_proj_kernel<float><<<l.proj, kFbTokens * 32, 0, stream>>>(p);
      ti_fb_weights_kernel<<<unsigned(p.P), 256, 0, stream>>>(p);
      ti_fb_blend_kernel<float><<<l.blend, 256, 0, stream>>>(p);
      break;
    case DType::kF16:
      ti_fb_proj_kernel<__half><<<l.proj, kFbTokens * 32, 0, stream>>>(p);
      ti_fb_weights_kernel<<<unsigned(p.P), 256, 0, stream>>>(p);
      ti_fb_blend_kernel<__half><<<l.blend, 256, 0, stream>>>(p);
      break;
    default:
      ti_fb_proj_kernel<__nv_bfloat16><<<l.proj, kFbTokens * 32, 0, stream>>>(p);
      ti_fb_weights_kernel<<<unsigned(p.P), 256, 0, stream>>>(p);
      ti_fb_blend_kernel<__nv_bfloat16><<<l.blend, 256, 0, stream>>>(p);
      break;
  }
  return cudaGetLastError();
}

}  // namespace inti
