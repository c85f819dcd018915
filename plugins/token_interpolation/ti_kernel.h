// TokenInterpolation CUDA kernels: host launch API shared by the TensorRT plugin and the PyTorch extension.
//
//   x   (P, 2, N, C)  fp32 / fp16 / bf16, contiguous; N = 1 + H*W tokens, CLS first, patches row-major
//   out (P, N, C)     same type
//   weights           fp32 device arrays, the plugin fields' layout (ti_fields.h)
//
// Two paths compute the same function:
//   fused    (sm_90+): one kernel, a thread-block cluster per frame pair, each CTA owning a slice of the
//            channels; x is read from DRAM once into shared memory and blended from there. Projection
//            2C->D on tensor cores (fp16/bf16 MMA; fp32 as 3xTF32, about fp32 accuracy), LayerNorm
//            statistics, the context network and the CLS mean are reduced across the cluster via DSMEM.
//   fallback (any GPU, any shape): three plain kernels through a small workspace.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace inti {

enum class DType : int32_t { kF32 = 0, kF16 = 1, kBF16 = 2 };

constexpr int kTIMaxScales = 4;

struct TIShape {
  int32_t P = 0, H = 0, W = 0, C = 0, D = 0, G = 1, S = 0;
  int32_t dil[kTIMaxScales] = {};
  int32_t softmax = 1, cls_mean = 1;
  float eps = 1e-5f;
};

struct TIWeights {  // device pointers, fp32
  float const* w_in = nullptr;       // (2C, D)
  float const* b_in = nullptr;       // (D)
  float const* dw_weight = nullptr;  // (S, D, 3, 3)
  float const* dw_bias = nullptr;    // (S, D)
  float const* w_out = nullptr;      // (D*(1+S), 2G)
  float const* b_out = nullptr;      // (2G)
};

enum TIPath : int32_t { kPathAuto = 0, kPathFused = 1, kPathFallback = 2 };

struct TIOptions {
  int32_t path = kPathAuto;  // kPathFused fails instead of falling back
  int32_t cluster = 0;       // fused path: target CTAs per pair (0 = heuristic; else 2..16)
};

struct TIPlan {
  int32_t path = kPathFallback;  // the path ti_launch would take
  int32_t cluster = 0;           // CTAs per pair (fused)
  int32_t slice = 0;             // channels per CTA (fused)
  int32_t threads = 0;
  size_t smem = 0;               // dynamic shared memory per CTA (fused)
  int32_t clusters_per_gpu = 0;  // co-resident clusters (cudaOccupancyMaxActiveClusters)
  char reason[160] = {};         // why the fused path is not taken (when it is not)
};

// Workspace bytes the fallback path needs for P pairs (the fused path needs none).
size_t ti_workspace_size(TIShape const& s);

// Which path / configuration ti_launch takes for these arguments on the current device.
int ti_plan(TIShape const& s, DType t, void const* x, void const* out, TIOptions const& opt, TIPlan* plan);

// Enqueues the op on `stream`. Returns 0 on success; else writes a message to err (if given).
int ti_launch(TIShape const& s, DType t, void const* x, void* out, TIWeights const& w, void* workspace,
              size_t workspaceBytes, cudaStream_t stream, TIOptions const& opt, char* err = nullptr, int errLen = 0);

}  // namespace inti
