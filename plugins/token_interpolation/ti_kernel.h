// TokenInterpolation CUDA kernels: host launch API shared by the TensorRT plugin and the PyTorch extension.
//
//   x   (P, 2, N, C)  fp32 / fp16 / bf16, contiguous; N = 1 + H*W tokens, CLS first, patches row-major
//   out (P, N, C)     same type
//   weights           fp32 device arrays, the plugin fields' layout (ti_fields.h)
//
// Two paths compute the same function:
//   fused    (sm_90+): a thread-block cluster per frame pair; x is read from DRAM once into shared
//            memory and blended from there. Two variants:
//            token   (fp16 / bf16 where split cannot run, or path kPathFused): CTA r owns whole tokens of both frames; LayerNorm
//                    is folded into the projection (rstd * (W x - mean * W 1)), W x on tensor cores
//                    from fragments packed into the workspace by a small kernel before it; the cluster
//                    shares only the u halo of the dilated convolutions and the CLS sums (DSMEM).
//            channel (fp32 with path kPathFused): CTA r owns a slice of the channels of all tokens;
//                    projection as 3xTF32 (about fp32 accuracy); statistics, partial projections and
//                    weights are reduced across the cluster in six barrier phases.
//   split    (sm_80+, C*sizeof(dtype) % 16 == 0; variant kVariantSplit, the default of every dtype): streaming
//            kernels: W_in packed for mma, projection on tensor cores with LayerNorm folded in (x read
//            once), pair weights, blend + CLS (x read again); no clusters; 5/3 of the fused bytes.
//   tile     (sm_80+, C*sizeof(dtype) % 16 == 0, D <= 64; variant kVariantTile, not a default): one CTA per
//            tile of 16 (or 8) patch tokens of a pair; x read from DRAM once into shared memory,
//            projection on tensor cores (16-bit: LayerNorm statistics on tensor cores too), u through L2,
//            neighbouring tiles synchronised by flags (tiles handed out by a ticket counter: no deadlock),
//            pair weights, blend from shared memory; the pair's last tile blends the CLS token.
//   fallback (any GPU, any shape): three plain kernels through a small workspace.
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

enum TIPath : int32_t { kPathAuto = 0, kPathFused = 1, kPathFallback = 2, kPathSplit = 3, kPathTile = 4 };  // kPathTile: plan only
// kVariantSplit: the split path (streaming kernels, sm_80+) instead of a fused variant; kVariantAuto:
// fp32 split (path kPathFused: channel), fp16 / bf16 token
enum TIVariant : int32_t { kVariantAuto = 0, kVariantToken = 1, kVariantChannel = 2, kVariantSplit = 3, kVariantTile = 4 };

struct TIOptions {
  int32_t path = kPathAuto;        // kPathFused fails instead of falling back
  int32_t cluster = 0;             // fused path: target CTAs per pair (0 = heuristic; else 2..16)
  int32_t variant = kVariantAuto;  // fused path: token-split (fp16/bf16 only) or channel-split;
                                   // kVariantSplit: the split path (plan.path = kPathSplit)
};

struct TIPlan {
  int32_t path = kPathFallback;  // the path ti_launch would take (kPathFused / kPathSplit / kPathFallback)
  int32_t variant = 0;           // kVariantToken / kVariantChannel (fused)
  int32_t cluster = 0;           // CTAs per pair (fused)
  int32_t slice = 0;             // fused: tokens per CTA (token variant) / channels per CTA (channel variant); tile: tokens per tile;
                                 // split: patch tokens per weights CTA
  int32_t threads = 0;
  size_t smem = 0;               // dynamic shared memory per CTA (fused)
  int32_t clusters_per_gpu = 0;  // co-resident clusters (cudaOccupancyMaxActiveClusters); tile: CTAs per SM
  char reason[160] = {};         // why the fused path is not taken (when it is not)
};

// Workspace bytes ti_launch needs for P pairs (fallback: projections and weights; split: u, weights,
// band sums, packed W_in; tile: u, partial sums, counters, packed W_in; fused token variant: the packed
// W_in; fused channel variant: none).
size_t ti_workspace_size(TIShape const& s);

// Which path / configuration ti_launch takes for these arguments on the current device.
int ti_plan(TIShape const& s, DType t, void const* x, void const* out, TIOptions const& opt, TIPlan* plan);

// Enqueues the op on `stream`. Returns 0 on success; else writes a message to err (if given).
int ti_launch(TIShape const& s, DType t, void const* x, void* out, TIWeights const& w, void* workspace,
              size_t workspaceBytes, cudaStream_t stream, TIOptions const& opt, char* err = nullptr, int errLen = 0);

}  // namespace inti
