// TokenInterpolation CUDA kernels: host launch API shared by the TensorRT plugin and the PyTorch extension.
//
//   x   (P, 2, N, C)  fp32 / fp16 / bf16, contiguous; N = 1 + H*W tokens, CLS first, patches row-major
//   out (P, N, C)     same type
//   weights           fp32 device arrays, the plugin fields' layout (ti_fields.h)
//
// Two paths compute the same function:
//   split    (sm_80+, C*sizeof(dtype) % 16 == 0; the default of every dtype): streaming kernels: W_in
//            packed for mma, projection on tensor cores with LayerNorm folded in (x read once), pair
//            weights, blend + CLS (x read again); no clusters; 5/3 of the bytes of a design that reads x
//            once.
//   fallback (any GPU, any shape; where split cannot run): three plain kernels through a small workspace.
// The fused (thread-block cluster) and tile paths were not defaults and are no longer built: see
// plugins/README.md for where they are kept and what they measured.
// Every path may use the workspace (ti_workspace_size): pass it always.
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

// The values left out (path 1: fused, 4: tile; variants 1: token, 2: channel, 4: tile) named the paths
// that are no longer built; ti_plan / ti_launch refuse them. kPathSplit: a plan's path (as an option: auto).
enum TIPath : int32_t { kPathAuto = 0, kPathFallback = 2, kPathSplit = 3 };
// kVariantSplit: the split path or, where it cannot run, the fallback (which kVariantAuto takes too)
enum TIVariant : int32_t { kVariantAuto = 0, kVariantSplit = 3 };

struct TIOptions {
  int32_t path = kPathAuto;        // kPathFallback: the fallback path
  int32_t variant = kVariantAuto;
};

struct TIPlan {
  int32_t path = kPathFallback;  // the path ti_launch would take (kPathSplit / kPathFallback)
  int32_t variant = 0;           // kVariantSplit on the split path
  int32_t slice = 0;             // split: patch tokens per band of the warp-per-token weights kernel
  int32_t threads = 0;           // threads per CTA of the projection kernel
  char reason[160] = {};         // why the split path is not taken (when it is not)
};

// Workspace bytes ti_launch needs for P pairs (fallback: projections and weights; split: u, weights,
// band sums, packed W_in).
size_t ti_workspace_size(TIShape const& s);

// Which path / configuration ti_launch takes for these arguments on the current device.
int ti_plan(TIShape const& s, DType t, void const* x, void const* out, TIOptions const& opt, TIPlan* plan);

// Enqueues the op on `stream`. Returns 0 on success; else writes a message to err (if given).
int ti_launch(TIShape const& s, DType t, void const* x, void* out, TIWeights const& w, void* workspace,
              size_t workspaceBytes, cudaStream_t stream, TIOptions const& opt, char* err = nullptr, int errLen = 0);

}  // namespace inti
