// What the host launcher (ti_launch.cpp) and the files of the two paths (ti_split.cu, ti_fallback.cu) share:
// the kernels' parameter block, the geometry constants both sides size grids and workspaces with, and each
// path's enqueue function. The launches themselves stay in the path files: CUDA 13 compiles without -rdc
// with a static launch stub per kernel template instance, so a kernel template can only be launched from
// the translation unit that defines it.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "ti_kernel.h"

namespace inti {

constexpr int kMaxG2 = 32;  // 2 * groups
constexpr int kFbTokens = 8;  // fallback projection: tokens per block (one per warp)

constexpr int kSpWarps = 4;   // split projection CTA: 2 m-tiles (32 rows) x 2 frames
constexpr int kSpBand = 8;    // split warp-per-token weights kernel: patch tokens per CTA (one warp each)
constexpr int kSpBatch = 4;   // split blend: 16-byte vectors (of each frame) in flight per thread
constexpr int kSpLTok = 64;   // split lane weights kernel: patch tokens per CTA (a band)
constexpr int kSpLThreads = 4 * kSpLTok;

struct KParams {
  void const* x;
  void* out;
  float const *w_in, *b_in, *dw_w, *dw_b, *w_out, *b_out;
  int P, H, W, HW, N, C, D, G, S, softmax, cls_mean, cpg, dmax;
  int dil[kTIMaxScales];
  float eps;
  // Keeps the fields below at the offsets modulo 8 they had beside the fused and tile paths' fields: ptxas
  // loads two 4-byte parameters that share an aligned 8-byte word with one 64-bit constant load, so another
  // pairing changes the split kernels' SASS (cuobjdump: 8 more instructions in the projection, another
  // register allocation in the lane weights kernel). With it their SASS is the measured one.
  int pad0;
  // split path (ti_sp_*): weight bands per pair, W_in chunks per frame, column blocks, n-tiles per block
  int sp_nb, sp_nch, sp_ny, sp_nt;
  int spl_reach, spl_dp, spl_dpad;  // lane weights kernel: tokens the convolutions reach, u stride, padded D
  uint4 const* wpack;     // packed W_in fragments (workspace)
  float const* wcolsum;   // (2, D) column sums of the packed W_in (workspace)
  // workspace: u and the pair weights (fallback: per token, CLS first); split: partial CLS sums in ws_w
  float* ws_u;
  float* ws_w;
  float* ws_wt;  // split path: pair weights (P, HW, 2G)
};

// The split path's launch configuration (ti_launch.cpp sets it up, ti_split_enqueue launches it).
struct SpLaunch {
  int fragBlocks = 0;           // kernel 0: blocks that pack W_in fragments; the blocks after them sum its columns
  dim3 pack, proj, weights;     // grids of kernels 0, A, B
  unsigned blend = 0;           // grid of kernel C
  size_t lane = 0;              // the lane weights kernel's shared memory; 0: the warp-per-token kernel
  bool pdl = false;             // A, B, C launched as programmatic dependents of the kernel before (sm_90+)
};

// The fallback path's launch configuration: grids of its projection and blend (weights: one CTA per pair).
struct FbLaunch {
  dim3 proj;
  unsigned blend = 0;
};

// ti_split.cu: allows the lane weights kernel instance for G groups `bytes` of dynamic shared memory; false
// where the device refuses (the launch then takes the warp-per-token kernel).
bool ti_split_lane_allow(int G, size_t bytes);
// ti_split.cu: kernels 0, A, B, C on `stream`; the first launch error, else cudaSuccess.
cudaError_t ti_split_enqueue(KParams const& p, DType t, SpLaunch const& l, cudaStream_t stream);
// ti_fallback.cu: projection, weights, blend on `stream`; the launch error, else cudaSuccess.
cudaError_t ti_fallback_enqueue(KParams const& p, DType t, FbLaunch const& l, cudaStream_t stream);

}  // namespace inti
