// Ceiling of the "one persistent CTA per frame pair, streamed in token blocks" design: the data movement
// alone, with no context network. Per pair (grid min(P, SMs), one CTA per SM), a producer thread streams
// blocks of TB patch tokens of both frames with bulk copies (cp.async.bulk + mbarrier complete_tx) into
// ring A (NA slots: what the projection would read), and re-reads block j into ring B (NB slots: what the
// blend would read; issued L blocks later, so it should hit L2); 8 consumer warps read every byte of ring A,
// blend ring B with fixed weights 1/2, and store out (the CLS token too). "spin" adds that many clock cycles
// of consumer work per block, in lockstep with the data (what a context network computed by the same warps
// would cost). Bytes counted as the op's: x read once + out written.
//
//   nvcc -std=c++17 -O3 -arch=sm_90 -o /tmp/stream_ceiling plugins/token_interpolation/experiments/stream_ceiling.cu
//   /tmp/stream_ceiling
//
// Results (NVIDIA H200, 2026-12-02) are in plugins/README.md. Not built by CMake; not part of the plugin.
#include <cuda_fp16.h>

#include <cstdint>
#include <cstdio>
#include <vector>

#include "probe_util.h"

__device__ __forceinline__ uint32_t sa(void const* p) { return uint32_t(__cvta_generic_to_shared(p)); }
__device__ __forceinline__ void mb_init(uint64_t* b, int c) { asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(sa(b)), "r"(c)); }
__device__ __forceinline__ void mb_expect(uint64_t* b, uint32_t tx) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(sa(b)), "r"(tx) : "memory");
}
__device__ __forceinline__ void mb_arrive(uint64_t* b) { asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(sa(b)) : "memory"); }
__device__ __forceinline__ void mb_wait(uint64_t* b, uint32_t par) {
  asm volatile(
      "{\n.reg .pred P1;\nLAB_WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], %1;\n"
      "@P1 bra DONE;\nbra LAB_WAIT;\nDONE:\n}\n" ::"r"(sa(b)),
      "r"(par)
      : "memory");
}
__device__ __forceinline__ void bulk_g2s(void* dst, void const* src, uint32_t bytes, uint64_t* bar, uint64_t pol) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;\n" ::"r"(sa(dst)),
      "l"(src), "r"(bytes), "r"(sa(bar)), "l"(pol)
      : "memory");
}
__device__ __forceinline__ uint64_t pol_last() { uint64_t p; asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(p)); return p; }
__device__ __forceinline__ uint64_t pol_first() { uint64_t p; asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(p)); return p; }
__device__ __forceinline__ uint64_t pol_normal() { uint64_t p; asm volatile("createpolicy.fractional.L2::evict_normal.b64 %0, 1.0;" : "=l"(p)); return p; }

struct Cfg {
  int P, N, C, HW, TB, NA, NB, L, hintA, hintB, store_cs, spin;
};

template <typename T>
__device__ __forceinline__ uint4 blend(uint4 a, uint4 b) {
  uint4 o;
  if constexpr (sizeof(T) == 2) {
    __half2 const* ha = reinterpret_cast<__half2 const*>(&a);
    __half2 const* hb = reinterpret_cast<__half2 const*>(&b);
    __half2* ho = reinterpret_cast<__half2*>(&o);
    __half2 const w = __float2half2_rn(0.5f);
    for (int i = 0; i < 4; ++i) ho[i] = __hfma2(ha[i], w, __hmul2(hb[i], w));
  } else {
    float const* fa = reinterpret_cast<float const*>(&a);
    float const* fb = reinterpret_cast<float const*>(&b);
    float* fo = reinterpret_cast<float*>(&o);
    for (int i = 0; i < 4; ++i) fo[i] = 0.5f * fa[i] + 0.5f * fb[i];
  }
  return o;
}

constexpr int kCW = 8;  // consumer warps

template <typename T>
__global__ void __launch_bounds__((kCW + 1) * 32, 1) probe(Cfg c, T const* __restrict__ x, T* __restrict__ out, unsigned* sink) {
  extern __shared__ __align__(128) unsigned char sm[];
  int const rowB = c.C * sizeof(T), slot = 2 * c.TB * rowB;  // both frames
  unsigned char* ringA = sm;
  unsigned char* ringB = sm + c.NA * slot;
  uint64_t* bars = reinterpret_cast<uint64_t*>(ringB + c.NB * slot);
  uint64_t *fullA = bars, *emptyA = bars + c.NA, *fullB = bars + 2 * c.NA, *emptyB = bars + 2 * c.NA + c.NB;
  int const tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  if (tid == 0) {
    for (int i = 0; i < c.NA; ++i) { mb_init(fullA + i, 1); mb_init(emptyA + i, kCW); }
    for (int i = 0; i < c.NB; ++i) { mb_init(fullB + i, 1); mb_init(emptyB + i, kCW); }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  int const nb = (c.HW + c.TB - 1) / c.TB;
  int const PB = c.NB - 1;  // B loads issued this many blocks before their blend
  int const steps = nb + c.L;
  if (warp == kCW) {  // producer
    if (lane == 0) {
      uint64_t const pa = c.hintA == 0 ? pol_normal() : c.hintA == 1 ? pol_last() : pol_first();
      uint64_t const pb = c.hintB == 0 ? pol_normal() : c.hintB == 1 ? pol_last() : pol_first();
      unsigned ga = 0, gb = 0;
      for (int pr = blockIdx.x; pr < c.P; pr += gridDim.x) {
        // block j of pair pr (both frames) into the next slot of a ring of n slots (g: loads into that ring so far)
        auto load = [&](unsigned char* ring, uint64_t* full, uint64_t* empty, int n, unsigned& g, int j, uint64_t pol) {
          int const s = g % n, u = g / n;
          mb_wait(empty + s, (u & 1) ^ 1);
          int const t0 = j * c.TB, nt = min(c.TB, c.HW - t0);
          mb_expect(full + s, 2 * nt * rowB);
          for (int f = 0; f < 2; ++f)
            bulk_g2s(ring + s * slot + f * c.TB * rowB, x + ((size_t(pr) * 2 + f) * c.N + 1 + t0) * c.C, nt * rowB, full + s, pol);
          ++g;
        };
        for (int k = 0; k < steps; ++k) {
          if (k < nb) load(ringA, fullA, emptyA, c.NA, ga, k, pa);
          int const jhi = min(k - c.L + PB, nb - 1), jlo = max(k == 0 ? 0 : k - c.L + PB, 0);
          for (int j = jlo; j <= jhi; ++j) load(ringB, fullB, emptyB, c.NB, gb, j, pb);
        }
      }
    }
    return;
  }
  // consumers
  unsigned ga = 0, gb = 0, acc = 0;
  int const nv = c.C * sizeof(T) / 16;
  for (int pr = blockIdx.x; pr < c.P; pr += gridDim.x) {
    for (int k = 0; k < steps; ++k) {
      if (k < nb) {
        int const s = ga % c.NA, u = ga / c.NA;
        mb_wait(fullA + s, u & 1);
        int const nt = min(c.TB, c.HW - k * c.TB);
        // read the whole slot (both frames), warp w: a slice of the vectors
        uint4 const* v = reinterpret_cast<uint4 const*>(ringA + s * slot);
        int const tot = 2 * c.TB * nv;
        for (int i = tid; i < tot; i += kCW * 32) {
          int const row = i / nv;
          if ((row % c.TB) < nt) { uint4 const q = v[i]; acc ^= q.x ^ q.y ^ q.z ^ q.w; }
        }
        __syncwarp();
        if (lane == 0) mb_arrive(emptyA + s);
        ++ga;
      }
      if (c.spin) { long long const t1 = clock64() + c.spin; while (clock64() < t1) {} }
      int const j = k - c.L;
      if (j >= 0) {
        int const s = gb % c.NB, u = gb / c.NB;
        mb_wait(fullB + s, u & 1);
        int const t0 = j * c.TB, nt = min(c.TB, c.HW - t0);
        uint4 const* va = reinterpret_cast<uint4 const*>(ringB + s * slot);
        uint4 const* vb = va + c.TB * nv;
        T* o = out + (size_t(pr) * c.N + 1 + t0) * c.C;
        for (int i = tid; i < nt * nv; i += kCW * 32) {
          uint4 const r = blend<T>(va[i], vb[i]);
          if (c.store_cs) __stcs(reinterpret_cast<uint4*>(o) + i, r);
          else reinterpret_cast<uint4*>(o)[i] = r;
        }
        __syncwarp();
        if (lane == 0) mb_arrive(emptyB + s);
        ++gb;
      }
    }
    // CLS
    T const* x0 = x + size_t(pr) * 2 * c.N * c.C;
    for (int i = tid; i < nv; i += kCW * 32) {
      uint4 const a = reinterpret_cast<uint4 const*>(x0)[i], b = reinterpret_cast<uint4 const*>(x0 + size_t(c.N) * c.C)[i];
      reinterpret_cast<uint4*>(out + size_t(pr) * c.N * c.C)[i] = blend<T>(a, b);
    }
  }
  if (acc == 0x12345678u) sink[0] = acc;
}

int main() {
  int dev = 0;
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, dev));
  int const nsm = prop.multiProcessorCount;
  printf("%s SMs %d L2 %d MB smem/block optin %zu\n", prop.name, nsm, prop.l2CacheSize >> 20, prop.sharedMemPerBlockOptin);
  ProbeTimer timer(nsm);
  unsigned* const sink = timer.sink;
  auto timeit = [&](auto fn, int reps) { return timer.time(fn, reps); };
  double const copy = timer.copyGBps();
  int const P = 128, N = 197, C = 768, HW = 196;
  for (int es : {2, 4}) {
    size_t const xn = size_t(P) * 2 * N * C, on = size_t(P) * N * C;
    void *x, *o; CK(cudaMalloc(&x, xn * es)); CK(cudaMalloc(&o, on * es)); fillk<<<1024, 256>>>((unsigned*)x, xn * es / 4);
    double const bytes = double(xn + on) * es;
    printf("-- %s: %.1f MB, ideal %.1f us at copy\n", es == 2 ? "fp16" : "fp32", bytes / 1e6, bytes / copy / 1e3);
    struct V { int TB, NA, NB, L, hA, hB, cs, spin = 0; };
    std::vector<V> vs = es == 2 ? std::vector<V>{{8, 4, 3, 6, 1, 2, 1}, {8, 4, 3, 6, 0, 0, 0}, {8, 4, 3, 6, 0, 2, 1}, {8, 3, 3, 6, 1, 2, 1},
                                                 {8, 5, 3, 6, 1, 2, 1}, {8, 4, 2, 6, 1, 2, 1}, {16, 2, 2, 3, 1, 2, 1}, {4, 8, 6, 12, 1, 2, 1},
                                                 {8, 4, 3, 0, 1, 2, 1}, {8, 4, 3, 12, 1, 2, 1}, {8, 4, 3, 6, 1, 2, 1, 1000}, {8, 4, 3, 6, 1, 2, 1, 2000}, {8, 4, 3, 6, 1, 2, 1, 3000}, {16, 2, 2, 3, 1, 2, 1, 2000}, {16, 2, 2, 3, 1, 2, 1, 4000}}
                                : std::vector<V>{{4, 4, 3, 12, 1, 2, 1}, {4, 4, 3, 12, 0, 0, 0}, {4, 3, 3, 12, 1, 2, 1}, {4, 5, 3, 12, 1, 2, 1},
                                                 {8, 2, 2, 6, 1, 2, 1}, {4, 4, 3, 0, 1, 2, 1}, {2, 8, 6, 24, 1, 2, 1}, {4, 4, 3, 12, 1, 2, 1, 1000}, {4, 4, 3, 12, 1, 2, 1, 2000}};
    for (auto v : vs) {
      Cfg c{P, N, C, HW, v.TB, v.NA, v.NB, v.L, v.hA, v.hB, v.cs, v.spin};
      size_t const smem = size_t(v.NA + v.NB) * 2 * v.TB * C * es + 2 * (v.NA + v.NB) * 8;
      if (smem > prop.sharedMemPerBlockOptin) { printf("TB %d NA %d NB %d: smem %zu too big\n", v.TB, v.NA, v.NB, smem); continue; }
      auto run = [&] {
        if (es == 2) {
          CK(cudaFuncSetAttribute(probe<__half>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
          probe<__half><<<std::min(P, nsm), (kCW + 1) * 32, smem>>>(c, (__half const*)x, (__half*)o, sink);
        } else {
          CK(cudaFuncSetAttribute(probe<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
          probe<float><<<std::min(P, nsm), (kCW + 1) * 32, smem>>>(c, (float const*)x, (float*)o, sink);
        }
      };
      run(); CK(cudaGetLastError()); CK(cudaDeviceSynchronize());
      float const t = timeit(run, 20);
      printf("TB %2d NA %d NB %d L %2d hintA %d hintB %d cs %d spin %4d smem %6zu: %7.1f us = %5.1f%% of copy\n", v.TB, v.NA, v.NB, v.L, v.hA, v.hB, v.cs, v.spin, smem, t,
             100.0 * bytes / (t * 1e-6) / 1e9 / copy);
    }
    CK(cudaFree(x)); CK(cudaFree(o));
  }
  return 0;
}
