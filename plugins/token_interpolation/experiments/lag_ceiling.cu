// Ceiling of a "many CTAs, ticketed tiles, x re-read from L2 after a lag" design: the data movement alone,
// with no context network. A persistent grid (CTAs/SM x SMs CTAs of 256 threads) takes tickets from a
// counter. Ticket t: phase A reads tile t (R patch tokens of both frames of one pair, kV 16-byte vectors per
// thread in flight) and consumes it (what a projection would read; L2 evict_last), then releases flag[t];
// phase B waits for flag[t - L], re-reads tile t - L (meant to hit L2; evict_first), blends it with fixed
// weights 1/2 and stores out (streaming stores; the CLS token with the pair's first tile). L is given in
// multiples of the grid: L = 0 re-reads the tile just read, L >= 1 x grid is the lag that a real op needs so
// that the neighbours' projections are done before its weights. "spin" adds clock cycles between A and B.
// Bytes counted as the op's: x read once + out written.
//
//   nvcc -std=c++17 -O3 -arch=sm_90 -o /tmp/lag_ceiling plugins/token_interpolation/experiments/lag_ceiling.cu
//   /tmp/lag_ceiling
//
// Results (NVIDIA H200, 2026-12-02) are in plugins/README.md. Not built by CMake; not part of the plugin.
#include <cuda_fp16.h>

#include <cstdint>
#include <cstdio>
#include <vector>

#include "probe_util.h"

__device__ __forceinline__ uint64_t pol_last() { uint64_t p; asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(p)); return p; }
__device__ __forceinline__ uint64_t pol_first() { uint64_t p; asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(p)); return p; }
__device__ __forceinline__ uint64_t pol_normal() { uint64_t p; asm volatile("createpolicy.fractional.L2::evict_normal.b64 %0, 1.0;" : "=l"(p)); return p; }
__device__ __forceinline__ uint4 ldh(void const* p, uint64_t pol) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], %5;" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p), "l"(pol));
  return r;
}
template <typename T>
__device__ __forceinline__ uint4 blend(uint4 a, uint4 b) {
  uint4 o;
  if constexpr (sizeof(T) == 2) {
    __half2 const* ha = reinterpret_cast<__half2 const*>(&a); __half2 const* hb = reinterpret_cast<__half2 const*>(&b); __half2* ho = reinterpret_cast<__half2*>(&o);
    __half2 const w = __float2half2_rn(0.5f);
    for (int i = 0; i < 4; ++i) ho[i] = __hfma2(ha[i], w, __hmul2(hb[i], w));
  } else {
    float const* fa = reinterpret_cast<float const*>(&a); float const* fb = reinterpret_cast<float const*>(&b); float* fo = reinterpret_cast<float*>(&o);
    for (int i = 0; i < 4; ++i) fo[i] = 0.5f * fa[i] + 0.5f * fb[i];
  }
  return o;
}
struct Cfg { int P, N, C, HW, R, L, hA, hB, spin, nt, epoch; };
constexpr int kT = 256;  // threads; kV: vectors in flight per thread per batch

template <typename T, int kV, int kMinB>
__global__ void __launch_bounds__(kT, kMinB) probe(Cfg c, void const* xv, void* ov, unsigned* ctr, unsigned* flags, unsigned* sink) {
  T const* __restrict__ x = static_cast<T const*>(xv);
  T* __restrict__ out = static_cast<T*>(ov);
  __shared__ unsigned s_t;
  int const tid = threadIdx.x;
  int const nv = c.C * sizeof(T) / 16;  // vectors per row
  int const nb = (c.HW + c.R - 1) / c.R;
  uint64_t const pa = c.hA == 0 ? pol_normal() : c.hA == 1 ? pol_last() : pol_first();
  uint64_t const pb = c.hB == 0 ? pol_normal() : c.hB == 1 ? pol_last() : pol_first();
  unsigned acc = 0;
  for (;;) {
    if (tid == 0) s_t = atomicAdd(ctr, 1u);
    __syncthreads();
    int const t = int(s_t);
    __syncthreads();
    if (t >= c.nt + c.L) break;
    if (t < c.nt) {  // phase A
      int const p = t / nb, r0 = (t % nb) * c.R, nr = min(c.R, c.HW - r0);
      int const tot = 2 * nr * nv;
      for (int i0 = 0; i0 < tot; i0 += kT * kV) {
        uint4 v[kV];
#pragma unroll
        for (int k = 0; k < kV; ++k) {
          int const i = i0 + k * kT + tid;
          if (i < tot) {
            int const f = i / (nr * nv), rem = i % (nr * nv);
            v[k] = ldh(reinterpret_cast<uint4 const*>(x + ((size_t(p) * 2 + f) * c.N + 1 + r0) * c.C) + rem, pa);
          } else v[k] = make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int k = 0; k < kV; ++k) acc ^= v[k].x ^ v[k].y ^ v[k].z ^ v[k].w;
      }
      __syncthreads();
      if (tid == 0) { __threadfence(); atomicExch(flags + t, unsigned(c.epoch)); }
    }
    if (c.spin) { long long const t1 = clock64() + c.spin; while (clock64() < t1) {} }
    int const j = t - c.L;
    if (j >= 0 && j < c.nt) {  // phase B
      if (tid == 0) { while (*((volatile unsigned*)flags + j) != unsigned(c.epoch)) {} __threadfence(); }
      __syncthreads();
      int const p = j / nb, r0 = (j % nb) * c.R, nr = min(c.R, c.HW - r0);
      T const* xa = x + (size_t(p) * 2 * c.N + 1 + r0) * c.C;
      T const* xb = xa + size_t(c.N) * c.C;
      T* o = out + (size_t(p) * c.N + 1 + r0) * c.C;
      int const tot = nr * nv;
      for (int i0 = 0; i0 < tot; i0 += kT * (kV / 2)) {
        uint4 a[kV / 2], b[kV / 2];
#pragma unroll
        for (int k = 0; k < kV / 2; ++k) {
          int const i = i0 + k * kT + tid;
          if (i < tot) { a[k] = ldh(reinterpret_cast<uint4 const*>(xa) + i, pb); b[k] = ldh(reinterpret_cast<uint4 const*>(xb) + i, pb); }
        }
#pragma unroll
        for (int k = 0; k < kV / 2; ++k) {
          int const i = i0 + k * kT + tid;
          if (i < tot) __stcs(reinterpret_cast<uint4*>(o) + i, blend<T>(a[k], b[k]));
        }
      }
      if (r0 == 0) {  // CLS
        T const* x0 = x + size_t(p) * 2 * c.N * c.C;
        for (int i = tid; i < nv; i += kT)
          __stcs(reinterpret_cast<uint4*>(out + size_t(p) * c.N * c.C) + i,
                 blend<T>(reinterpret_cast<uint4 const*>(x0)[i], reinterpret_cast<uint4 const*>(x0 + size_t(c.N) * c.C)[i]));
      }
    }
  }
  if (acc == 0x12345678u) sink[0] = acc;
  if (tid == 0) {  // last CTA out resets the counters
    unsigned const d = atomicAdd(ctr + 1, 1u);
    if (d == gridDim.x - 1) { ctr[0] = 0; ctr[1] = 0; }
  }
}

int main() {
  cudaDeviceProp prop; CK(cudaGetDeviceProperties(&prop, 0));
  int const nsm = prop.multiProcessorCount;
  printf("%s SMs %d L2 %d MB\n", prop.name, nsm, prop.l2CacheSize >> 20);
  ProbeTimer timer(nsm);
  unsigned* const sink = timer.sink;
  unsigned *ctr, *flags;
  CK(cudaMalloc(&ctr, 64)); CK(cudaMemset(ctr, 0, 64));
  CK(cudaMalloc(&flags, 1 << 20)); CK(cudaMemset(flags, 0, 1 << 20));
  auto timeit = [&](auto fn, int reps) { return timer.time(fn, reps); };
  double const copy = timer.copyGBps();
  int const P = 128, N = 197, C = 768, HW = 196;
  int epoch = 0;
  for (int es : {2, 4}) {
    size_t const xn = size_t(P) * 2 * N * C, on = size_t(P) * N * C;
    void *x, *o; CK(cudaMalloc(&x, xn * es)); CK(cudaMalloc(&o, on * es)); fillk<<<1024, 256>>>((unsigned*)x, xn * es / 4);
    double const bytes = double(xn + on) * es;
    printf("-- %s: %.1f MB, ideal %.1f us at copy\n", es == 2 ? "fp16" : "fp32", bytes / 1e6, bytes / copy / 1e3);
    struct V { int R, cps, L, hA, hB, spin, kv; };
    std::vector<V> vs;
    for (int kv : {12, 8, 4}) {
      int const cps = kv == 12 ? 2 : kv == 8 ? 3 : 5;
      for (int R : {8, 16, 32}) for (int Lm : {0, 1, 2}) vs.push_back({R, cps, Lm, 1, 2, 0, kv});
    }
    for (int R : {16, 32}) for (int spin : {1000, 2000}) vs.push_back({R, 3, 1, 1, 2, spin, 8});
    for (auto v : vs) {
      int const grid = v.cps * nsm;
      int const nt = P * ((HW + v.R - 1) / v.R);
      int const L = v.L * grid;  // lag in tickets: multiples of the CTAs running at once
      auto run = [&] {
        Cfg c{P, N, C, HW, v.R, L, v.hA, v.hB, v.spin, nt, ++epoch};
        auto go = [&](auto kern) { kern<<<grid, kT>>>(c, x, o, ctr, flags, sink); };
        if (es == 2) {
          if (v.kv == 12) go(probe<__half, 12, 2>); else if (v.kv == 8) go(probe<__half, 8, 3>); else go(probe<__half, 4, 5>);
        } else {
          if (v.kv == 12) go(probe<float, 12, 2>); else if (v.kv == 8) go(probe<float, 8, 3>); else go(probe<float, 4, 5>);
        }
      };
      run(); CK(cudaGetLastError()); CK(cudaDeviceSynchronize());
      float const t = timeit(run, 20);
      printf("kV %2d R %2d CTAs/SM %d L %2dxgrid (%5.1f MB) hintA %d hintB %d spin %4d: %7.1f us = %5.1f%% of copy\n", v.kv, v.R, v.cps, v.L,
             double(L) * 2 * v.R * C * es / 1e6, v.hA, v.hB, v.spin, t, 100.0 * bytes / (t * 1e-6) / 1e9 / copy);
    }
    CK(cudaFree(x)); CK(cudaFree(o));
  }
  return 0;
}
