// Shared by the standalone ceiling probes in this folder: an error check, a filler for x, and a timer that
// flushes L2 (by reading 256 MiB) before each timed run and returns the median, plus the device-to-device
// copy bandwidth (1 GiB, read + write) that the probes' figures are a fraction of.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CK(x)                                                                            \
  do {                                                                                   \
    cudaError_t e = (x);                                                                 \
    if (e != cudaSuccess) {                                                              \
      printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e));                  \
      exit(1);                                                                           \
    }                                                                                    \
  } while (0)

// fp16 / fp32-safe random bits (no inf / NaN in either reading)
__global__ void fillk(unsigned* b, size_t n) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    b[i] = unsigned(i * 2654435761u) & 0x3bff3bffu;
}
__global__ void flushk(uint4 const* b, size_t n, unsigned* sink) {
  unsigned a = 0;
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint4 q = b[i];
    a ^= q.x;
  }
  if (a == 0x9u) sink[1] = a;
}

struct ProbeTimer {
  static constexpr size_t kFlushBytes = size_t(256) << 20;
  int nsm = 0;
  uint4* fl = nullptr;
  unsigned* sink = nullptr;  // 16 words: [0] for the probes, [1] for the flush
  cudaEvent_t e0{}, e1{};
  explicit ProbeTimer(int nsm_) : nsm(nsm_) {
    CK(cudaMalloc(&fl, kFlushBytes));
    CK(cudaMemset(fl, 1, kFlushBytes));
    CK(cudaMalloc(&sink, 64));
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
  }
  // median of reps runs of fn (microseconds), L2 flushed before each
  template <typename F>
  float time(F fn, int reps) {
    std::vector<float> ts;
    for (int r = 0; r < reps; ++r) {
      flushk<<<4 * nsm, 512>>>(fl, kFlushBytes / 16, sink);
      CK(cudaEventRecord(e0));
      fn();
      CK(cudaEventRecord(e1));
      CK(cudaEventSynchronize(e1));
      float ms;
      CK(cudaEventElapsedTime(&ms, e0, e1));
      ts.push_back(ms * 1e3f);
    }
    std::sort(ts.begin(), ts.end());
    return ts[ts.size() / 2];
  }
  // device-to-device copy bandwidth in GB/s (read + write), printed
  double copyGBps() {
    size_t const cb = size_t(1) << 30;
    void *ca, *cbuf;
    CK(cudaMalloc(&ca, cb));
    CK(cudaMalloc(&cbuf, cb));
    CK(cudaMemset(ca, 0, cb));
    float const tc = time([&] { CK(cudaMemcpyAsync(cbuf, ca, cb, cudaMemcpyDeviceToDevice)); }, 15);
    double const copy = 2.0 * cb / (tc * 1e-6) / 1e9;
    printf("copy 1 GiB %.1f us = %.0f GB/s\n", tc, copy);
    CK(cudaFree(ca));
    CK(cudaFree(cbuf));
    return copy;
  }
};
