// Split path of the TokenInterpolation kernels ("split" variant; sm_80+, 16-byte vectors; the default of
// every dtype): streaming kernels, no clusters, through the workspace (packed W_in, u, pair weights,
// partial CLS sums):
//   0  ti_sp_pack_kernel     W_in in mma B-fragment order (per 16-byte chunk of channels: the k order
//                            matches the order of a row's 16-byte loads) + column sums of W_in
//   A  ti_sp_proj_kernel     warp = (m-tile of 16 rows (pair, patch token), frame): the rows' 16-byte
//                            chunks straight from global memory into mma A fragments (kPF chunks in
//                            flight), LayerNorm statistics gathered on the way (shift K = mean of the
//                            row's first chunk), W x on tensor cores (fp16 / bf16: m16n8k16, fp32:
//                            3xTF32 m16n8k8 on x - K, two-level sums), LayerNorm folded in after the loop:
//                            proj(LN(x)) = rstd * (W (x-K) - (mean-K) W 1); the frame-1 warp hands its
//                            part to the frame-0 warp through shared memory; u (P, HW, D) fp32.
//   B  ti_sp_weights_lane_kernel  per (pair, band of kSpLTok patch tokens), 4 threads per token, u of the
//                            band and its reach in shared memory: pair weights -> (P, HW, 2G), partial CLS
//                            sums per band; where its tile does not fit, ti_sp_weights_kernel (one warp
//                            per token, u from L2, bands of kSpBand tokens)
//   C  ti_sp_blend_kernel    every patch token's 16-byte vectors blended straight from global memory
//                            (kSpBatch vectors of both frames in flight per thread); CTA b < P also
//                            blends the CLS token of pair b (mean of the band partials, or 1/2)
// x is read twice (A, C) and out written once: 5/3 of the bytes of a design that reads x once (at most
// 60% of copy bandwidth), at streaming efficiency. On sm_90+ A, B and C are launched as programmatic
// dependents of the kernel before (pdl_trigger / pdl_wait): A loads its first x chunks, B its context-network
// parameters and C its x vectors before they wait for the previous kernel's output. INTI_TI_PDL=0: plain
// launches.
// ti_launch.cpp chooses the path and sets up the launch (ti_split_enqueue); kSp* geometry: ti_params.h.
#include "ti_common.cuh"

namespace inti {
namespace {

// Programmatic dependent launch (sm_90+; the split path's kernels A, B, C, each after the one before):
// pdl_trigger lets the next kernel of the stream, if launched with programmatic stream serialization, start
// its CTAs where room frees up; pdl_wait blocks until the previous kernel has completed and its writes are
// visible (a no-op in a kernel launched without the attribute, and below sm_90). Reads of a previous
// kernel's output come after it.
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Tensor cores (mma.sync, sm_80+), fragment packing and 16-byte blends of the split path's kernels.
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
// v = big + small: big = v rounded to tf32 (half an ulp added to the bit pattern, then truncated: round half
// away from zero, as cvt.rna.tf32.f32), small = v - big, exact in fp32, which the mma reads as tf32 (it
// ignores the low 13 bits: rounded toward zero). big*big + big*small + small*big carry ~fp32 accuracy (the
// split CUTLASS's 3xTF32 uses). Three integer / fp32 instructions per value, where two cvt.rna.tf32.f32 took
// nine (sm_80 / sm_90 emulate them with an inf / NaN check each). A NaN or inf in v gives a NaN small.
__device__ __forceinline__ void split_tf32(float v, uint32_t& big, uint32_t& small) {
  big = (__float_as_uint(v) + 0x1000u) & 0xffffe000u;
  small = __float_as_uint(v - __uint_as_float(big));
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

constexpr int kSpGroup = 4;   // fp32 projection: chunks per inner sum (two-level accumulation)

template <typename T>
struct SpCfg {
  static constexpr int kPF = 3;  // chunks in flight per row (fp16 / bf16 chunk: 32 channels)
};
template <>
struct SpCfg<float> {
  static constexpr int kPF = 2;  // fp32 chunk: 16 channels
};

__device__ __forceinline__ uint4 ldg_stream(void const* ptr) {  // read-once data: keep L1 for W_in
  uint4 r;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(ptr));
  return r;
}

// fp32 chunk of the projection: acc += W (x - K) as 3xTF32 (big*big + big*small +
// small*big), from this lane's x - K of rows a / b and the packed W fragments of the chunk
template <int NT>
__device__ __forceinline__ void mma_chunk_3xtf32(float const (&xfa)[4], float const (&xfb)[4], uint4 const (&w)[NT],
                                                 float (&acc)[NT][4]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    uint32_t ahi[4], alo[4];
    split_tf32(xfa[2 * h], ahi[0], alo[0]);
    split_tf32(xfb[2 * h], ahi[1], alo[1]);
    split_tf32(xfa[2 * h + 1], ahi[2], alo[2]);
    split_tf32(xfb[2 * h + 1], ahi[3], alo[3]);
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      uint32_t const wb0 = h ? w[j].z : w[j].x, wb1 = h ? w[j].w : w[j].y;
      uint32_t bh0, bl0, bh1, bl1;
      split_tf32(__uint_as_float(wb0), bh0, bl0);
      split_tf32(__uint_as_float(wb1), bh1, bl1);
      mma_tf32(acc[j], alo, bh0, bh1);
      mma_tf32(acc[j], ahi, bl0, bl1);
      mma_tf32(acc[j], ahi, bh0, bh1);
    }
  }
}

// tot += acc; acc = 0 (the fp32 projection's two-level sums)
template <int NT>
__device__ __forceinline__ void flush_acc(float (&acc)[NT][4], float (&tot)[NT][4]) {
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      tot[j][e] += acc[j][e];
      acc[j][e] = 0.f;
    }
}

// 16-bit chunk of the projection: acc += W x on the raw rows a / b
template <typename T, int NT>
__device__ __forceinline__ void mma_chunk16(uint4 const& va, uint4 const& vb, uint4 const (&w)[NT], float (&acc)[NT][4]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    uint32_t const* ra = reinterpret_cast<uint32_t const*>(&va);
    uint32_t const* rb = reinterpret_cast<uint32_t const*>(&vb);
    uint32_t const a[4] = {ra[2 * h], rb[2 * h], ra[2 * h + 1], rb[2 * h + 1]};
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      uint32_t const wb0 = h ? w[j].z : w[j].x, wb1 = h ? w[j].w : w[j].y;
      mma16<T>(acc[j], a, wb0, wb1);
    }
  }
}

// Entry (((f * nch + s) * ny + y) * NT + j) * 32 + lane (lane = 4 g + t) holds W_in rows
// f*C + s*CH + VEC*t + e (e < VEC), column y*8*NT + 8 j + g, as T (fp32: raw floats); zero outside.
// Blocks >= fragBlocks: column sums S[f][n] of the T-rounded W_in (n < ny*8*NT), fixed order.
template <typename T>
__global__ void __launch_bounds__(256) ti_sp_pack_kernel(KParams const p, int fragBlocks) {
  constexpr int VEC = 16 / int(sizeof(T));
  constexpr int CH = 4 * VEC;
  int const NT = p.sp_nt, ny = p.sp_ny, nch = p.sp_nch, Dp = ny * 8 * NT, C = p.C, D = p.D;
  pdl_trigger();
  if (int(blockIdx.x) < fragBlocks) {
    int const i = int(blockIdx.x) * 256 + int(threadIdx.x);
    if (i >= 2 * nch * ny * NT * 32) return;
    int const ln = i & 31;
    int r = i >> 5;
    int const j = r % NT;
    r /= NT;
    int const y = r % ny;
    r /= ny;
    int const s = r % nch, f = r / nch;
    int const n = y * 8 * NT + 8 * j + (ln >> 2), c0 = s * CH + VEC * (ln & 3);
    float v[VEC];
#pragma unroll
    for (int e = 0; e < VEC; ++e)
      v[e] = (c0 + e < C && n < D) ? __ldg(p.w_in + size_t(f * C + c0 + e) * D + n) : 0.f;
    uint4 o;
    if constexpr (sizeof(T) == 4) {
      o = make_uint4(__float_as_uint(v[0]), __float_as_uint(v[1]), __float_as_uint(v[2]), __float_as_uint(v[3]));
    } else {
      o = make_uint4(pack2<T>(v[0], v[1]), pack2<T>(v[2], v[3]), pack2<T>(v[4], v[5]), pack2<T>(v[6], v[7]));
    }
    const_cast<uint4*>(p.wpack)[i] = o;
  } else {
    int const fn = int(blockIdx.x) - fragBlocks, f = fn / Dp, n = fn - f * Dp;
    __shared__ float part[256];
    float s = 0.f;
    if (n < D)
      for (int c = threadIdx.x; c < C; c += 256) s += to_f(from_f<T>(__ldg(p.w_in + size_t(f * C + c) * D + n)));
    part[threadIdx.x] = s;
    __syncthreads();
    for (int o = 128; o > 0; o >>= 1) {
      if (int(threadIdx.x) < o) part[threadIdx.x] += part[threadIdx.x + o];
      __syncthreads();
    }
    if (threadIdx.x == 0) const_cast<float*>(p.wcolsum)[f * Dp + n] = part[0];
  }
}

// The projection of two rows a / b (g, g + 8 of an m-tile) of one frame, for the lanes' fragment columns
// (split path): 16-byte chunks straight from global memory into mma A fragments (PF chunks in
// flight), LayerNorm statistics on the way (shift K = mean of the row's first chunk), W x on tensor cores
// (fp16 / bf16: m16n8k16, fp32: 3xTF32 m16n8k8 on x - K, two-level sums), LayerNorm folded in after the
// loop: res = rstd * (W (x-K) - (mean-K) W 1) for columns n0 + 8 j (+1), without b_in. xa / xb: the rows'
// first element of this lane (+ VEC * t); wp: packed W_in of this frame and column block (+ lane), chunk s
// at wp + s * wstep; S: the block's column sums.
template <typename T, int NT, int PF>
__device__ __forceinline__ void sp_project_rows(KParams const& p, T const* xa, T const* xb, uint4 const* wp, int wstep,
                                                float const* S, int n0, float2 (&res)[NT][2]) {
  constexpr bool kF32 = sizeof(T) == 4;
  constexpr int VEC = 16 / int(sizeof(T));
  constexpr int CH = 4 * VEC;  // channels per chunk (4 lanes x 16 bytes per row)
  int const t = threadIdx.x & 3, C = p.C, nch = p.sp_nch;
  auto ld = [&](T const* base, int s) -> uint4 {
    if (!(s < nch && s * CH + VEC * t < C)) return make_uint4(0, 0, 0, 0);  // this form: 1-4% shorter SASS than ?:
    return ldg_stream(base + s * CH);
  };
  uint4 ba[PF], bb[PF];
#pragma unroll
  for (int i = 0; i < PF; ++i) {
    ba[i] = ld(xa, i);
    bb[i] = ld(xb, i);
  }
  pdl_wait();  // the packed W_in and column sums (kernel 0); x is the op's input
  // shift K of rows a / b: the mean of their first chunk
  float Ka = 0.f, Kb = 0.f;
  {
    T const* ea = reinterpret_cast<T const*>(&ba[0]);
    T const* eb = reinterpret_cast<T const*>(&bb[0]);
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      Ka += to_f(ea[e]);
      Kb += to_f(eb[e]);
    }
    Ka += __shfl_xor_sync(0xffffffffu, Ka, 1);
    Kb += __shfl_xor_sync(0xffffffffu, Kb, 1);
    Ka += __shfl_xor_sync(0xffffffffu, Ka, 2);
    Kb += __shfl_xor_sync(0xffffffffu, Kb, 2);
    float const inv = 1.f / float(min(C, CH));
    Ka *= inv;
    Kb *= inv;
  }
  float s1a = 0.f, s2a = 0.f, s1b = 0.f, s2b = 0.f;
  float acc[NT][4], tot[NT][4];
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[j][e] = tot[j][e] = 0.f;

#pragma unroll 1
  for (int s0 = 0; s0 < nch; s0 += PF) {
#pragma unroll
    for (int i = 0; i < PF; ++i) {
      int const s = s0 + i;
      if (s < nch) {
        uint4 const va = ba[i], vb = bb[i];
        ba[i] = ld(xa, s + PF);
        bb[i] = ld(xb, s + PF);
        uint4 w[NT];
#pragma unroll
        for (int j = 0; j < NT; ++j) w[j] = __ldg(wp + size_t(s) * wstep + j * 32);
        bool const valid = s * CH + VEC * t < C;
        float xfa[VEC], xfb[VEC];  // x - K (0 outside the row)
        {
          T const* ea = reinterpret_cast<T const*>(&va);
          T const* eb = reinterpret_cast<T const*>(&vb);
          float p1a = 0.f, p2a = 0.f, p1b = 0.f, p2b = 0.f;
#pragma unroll
          for (int e = 0; e < VEC; ++e) {
            xfa[e] = valid ? to_f(ea[e]) - Ka : 0.f;
            xfb[e] = valid ? to_f(eb[e]) - Kb : 0.f;
            p1a += xfa[e];
            p2a = fmaf(xfa[e], xfa[e], p2a);
            p1b += xfb[e];
            p2b = fmaf(xfb[e], xfb[e], p2b);
          }
          s1a += p1a;
          s2a += p2a;
          s1b += p1b;
          s2b += p2b;
        }
        if constexpr (kF32) {
          mma_chunk_3xtf32<NT>(xfa, xfb, w, acc);
          if (s % kSpGroup == kSpGroup - 1 || s == nch - 1) flush_acc<NT>(acc, tot);
        } else {
          mma_chunk16<T, NT>(va, vb, w, acc);
        }
      }
    }
  }
  if constexpr (!kF32) {
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) tot[j][e] = acc[j][e];
  }
  // statistics of rows a / b (the 4 lanes of a row hold a quarter each)
#pragma unroll
  for (int o = 1; o <= 2; o <<= 1) {
    s1a += __shfl_xor_sync(0xffffffffu, s1a, o);
    s2a += __shfl_xor_sync(0xffffffffu, s2a, o);
    s1b += __shfl_xor_sync(0xffffffffu, s1b, o);
    s2b += __shfl_xor_sync(0xffffffffu, s2b, o);
  }
  float const moa = s1a / float(C), mob = s1b / float(C);
  float const rsa = 1.f / sqrtf(fmaxf(s2a / float(C) - moa * moa, 0.f) + p.eps);
  float const rsb = 1.f / sqrtf(fmaxf(s2b / float(C) - mob * mob, 0.f) + p.eps);
  // fp32: A = W (x - K) -> subtract (mean - K) S; fp16 / bf16: A = W x -> subtract mean S
  float const ma = kF32 ? moa : Ka + moa, mb = kF32 ? mob : Kb + mob;
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    float const S0 = __ldg(S + n0 + 8 * j), S1 = __ldg(S + n0 + 8 * j + 1);
    res[j][0] = make_float2(rsa * (tot[j][0] - ma * S0), rsa * (tot[j][1] - ma * S1));
    res[j][1] = make_float2(rsb * (tot[j][2] - mb * S0), rsb * (tot[j][3] - mb * S1));
  }
}

template <typename T, int NT>
__global__ void __launch_bounds__(kSpWarps * 32, sizeof(T) == 4 ? (NT <= 4 ? 5 : 3) : (NT <= 4 ? 6 : 4)) ti_sp_proj_kernel(KParams const p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  pdl_trigger();
  constexpr int VEC = 16 / int(sizeof(T));
  __shared__ float2 xch[kSpWarps / 2][2 * NT][32];  // the frame-1 warps' parts
  int const tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  int const g = lane >> 2, t = lane & 3, f = warp & 1, mt = warp >> 1;
  int const D = p.D, HW = p.HW, N = p.N, rows = p.P * HW, nch = p.sp_nch;
  int const r0 = (int(blockIdx.x) * (kSpWarps / 2) + mt) * 16;
  auto rowPtr = [&](int r) -> T const* {
    r = min(r, rows - 1);
    int const pr = r / HW, tk = r - pr * HW;
    return static_cast<T const*>(p.x) + (size_t(pr * 2 + f) * N + 1 + tk) * p.C + VEC * t;
  };
  int const wstep = p.sp_ny * NT * 32;
  uint4 const* const wp = p.wpack + (size_t(f) * nch * p.sp_ny + blockIdx.y) * NT * 32 + lane;
  int const Dp = p.sp_ny * 8 * NT, n0 = int(blockIdx.y) * 8 * NT + 2 * t;
  float2 res[NT][2];
  sp_project_rows<T, NT, SpCfg<T>::kPF>(p, rowPtr(r0 + g), rowPtr(r0 + g + 8), wp, wstep, p.wcolsum + f * Dp, n0,
                                        res);
  if (f == 1) {
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      xch[mt][2 * j][lane] = res[j][0];
      xch[mt][2 * j + 1][lane] = res[j][1];
    }
  }
  __syncthreads();
  if (f == 0) {
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        int const r = r0 + g + 8 * hr;
        float2 const o = xch[mt][2 * j + hr][lane];
        float const v[2] = {res[j][hr].x + o.x, res[j][hr].y + o.y};
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          int const n = n0 + 8 * j + e;
          if (r < rows && n < D) p.ws_u[size_t(r) * D + n] = v[e] + __ldg(p.b_in + n);
        }
      }
  }
#endif
}

// Pair weights of the band's patch tokens (one warp each) -> ws_wt, the band's partial CLS sums -> ws_w.
__global__ void __launch_bounds__(kSpBand * 32, 4) ti_sp_weights_kernel(KParams const p) {
  __shared__ float wb[kSpBand * kMaxG2];
  int const pair = int(blockIdx.y), band = int(blockIdx.x), tid = threadIdx.x, warp = tid >> 5;
  int const G2 = 2 * p.G;
  int const ta = band * kSpBand, nt = min(p.HW - ta, kSpBand);
  pdl_trigger();
  pdl_wait();  // u (kernel A)
  float const* u = p.ws_u + size_t(pair) * p.HW * p.D;
  if (warp < nt) warp_token_weights(p, u, 0, p.D, ta + warp, wb + warp * G2);
  __syncthreads();
  float* wt = p.ws_wt + (size_t(pair) * p.HW + ta) * G2;
  for (int i = tid; i < nt * G2; i += kSpBand * 32) wt[i] = wb[i];
  if (tid < G2) {  // partial CLS sum of the band, fixed order
    float s = 0.f;
    for (int k = 0; k < nt; ++k) s += wb[k * G2 + tid];
    p.ws_w[(size_t(pair) * p.sp_nb + band) * G2 + tid] = s;
  }
}

// Lane weights kernel (the split path's default where its tile fits): CTA = (pair, band of kSpLTok patch
// tokens), 4 threads per token. The D channels are padded to spl_dpad = 4 * (a multiple of 4 channels per
// quarter), quarter q owns channels [q * spl_dpad / 4, (q + 1) * spl_dpad / 4) and runs them 4 at a time
// with 16-byte shared-memory loads. Shared memory: the band's u rows plus the convolutions' reach on each
// side (stride spl_dp: a multiple of 4 chosen by the host so that the 8 threads of a load phase, 2 tokens x
// 4 quarters, hit distinct banks), then one row of zeros that off-grid taps point at, the depthwise taps
// (S, 9, dpad), their biases (S, dpad) and W_out ((1 + S) dpad, 2G), padding channels zero. A thread
// computes its token's 3x3 neighbour offsets once per scale and runs them over its channels: GELU of u and
// of the S dilated convs, times W_out, summed over its channels in order; the 4 quarters are summed by
// shuffles ((q0 + q1) + (q2 + q3)), then softmax / sigmoid. Each channel's convolution is the same fmaf
// chain as the reference order (bias, then taps 0..8). Writes the pair weights (P, HW, 2G) and one partial
// CLS sum per band (fixed order; sp_nb = bands per pair). Dynamic shared memory: splSmem() (ti_launch.cpp).
template <int MG2>
__global__ void __launch_bounds__(kSpLThreads) ti_sp_weights_lane_kernel(KParams const p) {
  extern __shared__ float4 spl_sm4[];
  float* const sm = reinterpret_cast<float*>(spl_sm4);
  int const pair = int(blockIdx.y), band = int(blockIdx.x), tid = threadIdx.x;
  int const D = p.D, W = p.W, H = p.H, HW = p.HW, S = p.S, G2 = 2 * p.G, Dp = p.spl_dp, Dq = p.spl_dpad,
            reach = p.spl_reach;
  int const t0 = band * kSpLTok, nown = min(kSpLTok, HW - t0);
  int const h0 = max(0, t0 - reach), h1 = min(HW, t0 + nown + reach), nhal = h1 - h0;
  int const nhalMax = min(HW, kSpLTok + 2 * reach);
  float* const us = sm;                           // (nhalMax + 1, Dp) u of the band and its reach, zero row
  float* const kw = us + (nhalMax + 1) * Dp;      // (S, 9, Dq) depthwise taps
  float* const kb = kw + S * 9 * Dq;              // (S, Dq) their biases
  float* const wo = kb + S * Dq;                  // ((1 + S) Dq, 2G) W_out
  float* const wt = wo + (1 + S) * Dq * G2;       // (kSpLTok, 2G) the band's weights
  pdl_trigger();
  {  // the context network's parameters first: they do not depend on kernel A
    for (int i = tid; i < Dq; i += kSpLThreads) us[nhalMax * Dp + i] = 0.f;
    for (int i = tid; i < S * 9 * Dq; i += kSpLThreads) {  // (sc, k, d) <- dw_w (sc, d, k)
      int const sk = i / Dq, d = i - sk * Dq, sc = sk / 9, k = sk - sc * 9;
      kw[i] = d < D ? __ldg(p.dw_w + (sc * D + d) * 9 + k) : 0.f;
    }
    for (int i = tid; i < S * Dq; i += kSpLThreads) {
      int const sc = i / Dq, d = i - sc * Dq;
      kb[i] = d < D ? __ldg(p.dw_b + sc * D + d) : 0.f;
    }
    for (int i = tid; i < (1 + S) * Dq * G2; i += kSpLThreads) {
      int const fd = i / G2, e = i - fd * G2, f = fd / Dq, d = fd - f * Dq;
      wo[i] = d < D ? __ldg(p.w_out + (f * D + d) * G2 + e) : 0.f;
    }
    pdl_wait();  // u (kernel A)
    float const* src = p.ws_u + (size_t(pair) * HW + h0) * D;
    if (Dq == D && D <= 4 * kSpLThreads && (reinterpret_cast<uintptr_t>(p.ws_u) & 15) == 0) {  // 16-byte vectors
      int const nv = D >> 2, rpi = kSpLThreads / nv, r = tid / nv, c = tid - r * nv;
      if (r < rpi)
        for (int tk = r; tk < nhal; tk += rpi)
          reinterpret_cast<float4*>(us + tk * Dp)[c] = __ldg(reinterpret_cast<float4 const*>(src + tk * D) + c);
    } else {
      for (int i = tid; i < nhal * Dq; i += kSpLThreads) {
        int const tk = i / Dq, d = i - tk * Dq;
        us[tk * Dp + d] = d < D ? __ldg(src + tk * D + d) : 0.f;
      }
    }
  }
  __syncthreads();
  int const tl = tid >> 2, q = tid & 3, t = t0 + tl;
  int const dq = Dq >> 2, d0 = q * dq, d1 = d0 + dq;
  float lp[MG2];
#pragma unroll
  for (int e = 0; e < MG2; ++e) lp[e] = 0.f;
  // lp += GELU(h) . W_out rows fd .. fd+3
  auto head = [&](float4 const h, int const fd) {
    if constexpr (MG2 == 2) {
      float4 const w01 = *reinterpret_cast<float4 const*>(wo + fd * 2), w23 = *reinterpret_cast<float4 const*>(wo + fd * 2 + 4);
      float const g0 = gelu(h.x), g1 = gelu(h.y), g2 = gelu(h.z), g3 = gelu(h.w);
      lp[0] = fmaf(g0, w01.x, lp[0]);
      lp[1] = fmaf(g0, w01.y, lp[1]);
      lp[0] = fmaf(g1, w01.z, lp[0]);
      lp[1] = fmaf(g1, w01.w, lp[1]);
      lp[0] = fmaf(g2, w23.x, lp[0]);
      lp[1] = fmaf(g2, w23.y, lp[1]);
      lp[0] = fmaf(g3, w23.z, lp[0]);
      lp[1] = fmaf(g3, w23.w, lp[1]);
    } else {
      float const g[4] = {gelu(h.x), gelu(h.y), gelu(h.z), gelu(h.w)};
#pragma unroll
      for (int c = 0; c < 4; ++c)
#pragma unroll
        for (int e = 0; e < MG2; ++e)
          if (e < G2) lp[e] = fmaf(g[c], wo[(fd + c) * G2 + e], lp[e]);
    }
  };
  if (tl < nown) {
    int const i = t / W, j = t - i * W;
    float const* const uc = us + (t - h0) * Dp;
    for (int d = d0; d < d1; d += 4) head(*reinterpret_cast<float4 const*>(uc + d), d);
    for (int sc = 0; sc < S; ++sc) {
      int const dl = sc == 0 ? p.dil[0] : sc == 1 ? p.dil[1] : sc == 2 ? p.dil[2] : p.dil[3];  // no local copy
      int off[9];
#pragma unroll
      for (int a = 0; a < 3; ++a)
#pragma unroll
        for (int b = 0; b < 3; ++b) {
          int const ii = i + (a - 1) * dl, jj = j + (b - 1) * dl;
          bool const v = ii >= 0 && ii < H && jj >= 0 && jj < W;
          off[a * 3 + b] = (v ? ii * W + jj - h0 : nhalMax) * Dp;  // off-grid: the zero row
        }
      float const* const k = kw + sc * 9 * Dq;
      for (int d = d0; d < d1; d += 4) {
        float4 acc = *reinterpret_cast<float4 const*>(kb + sc * Dq + d);
#pragma unroll
        for (int e = 0; e < 9; ++e) {
          float4 const kk = *reinterpret_cast<float4 const*>(k + e * Dq + d);
          float4 const uu = *reinterpret_cast<float4 const*>(us + off[e] + d);
          acc.x = fmaf(kk.x, uu.x, acc.x);
          acc.y = fmaf(kk.y, uu.y, acc.y);
          acc.z = fmaf(kk.z, uu.z, acc.z);
          acc.w = fmaf(kk.w, uu.w, acc.w);
        }
        head(acc, (1 + sc) * Dq + d);
      }
    }
  }
#pragma unroll
  for (int e = 0; e < MG2; ++e) {
    lp[e] += __shfl_xor_sync(0xffffffffu, lp[e], 1);
    lp[e] += __shfl_xor_sync(0xffffffffu, lp[e], 2);
  }
  if (q == 0 && tl < nown) {
#pragma unroll
    for (int g = 0; g < MG2 / 2; ++g) {
      if (2 * g >= G2) break;
      float w0, w1;
      pair_weights(lp[2 * g] + __ldg(p.b_out + 2 * g), lp[2 * g + 1] + __ldg(p.b_out + 2 * g + 1), p.softmax, w0, w1);
      wt[tl * G2 + 2 * g] = w0;
      wt[tl * G2 + 2 * g + 1] = w1;
    }
  }
  __syncthreads();
  float* const dst = p.ws_wt + (size_t(pair) * HW + t0) * G2;
  for (int e = tid; e < nown * G2; e += kSpLThreads) dst[e] = wt[e];
  if (tid < G2) {  // partial CLS sum of the band, fixed order
    float sum = 0.f;
    for (int k = 0; k < nown; ++k) sum += wt[k * G2 + tid];
    p.ws_w[(size_t(pair) * p.sp_nb + band) * G2 + tid] = sum;
  }
}

template <typename T>
__global__ void __launch_bounds__(256, sizeof(T) == 4 ? 4 : 2) ti_sp_blend_kernel(KParams const p) {
  constexpr int VEC = 16 / int(sizeof(T));
  int const tid = threadIdx.x, G2 = 2 * p.G, C = p.C, N = p.N, HW = p.HW, nv = C / VEC;
  T const* const x = static_cast<T const*>(p.x);
  T* const out = static_cast<T*>(p.out);
  // this thread's patch-token vectors of both frames: loaded before the pair weights are ready
  long long const total = (long long)p.P * HW * nv;
  uint4 a[kSpBatch], b[kSpBatch];
  int pt[kSpBatch], vv[kSpBatch];
  long long const i0 = (long long)blockIdx.x * (256 * kSpBatch) + tid;
#pragma unroll
  for (int k = 0; k < kSpBatch; ++k) {
    long long const i = i0 + k * 256;
    pt[k] = -1;
    if (i < total) {
      int const q = int(i / nv);  // (pair, patch token)
      int const v = int(i - (long long)q * nv), pair = q / HW, tok = q - pair * HW;
      T const* xr = x + (size_t(pair) * 2 * N + 1 + tok) * C + v * VEC;
      a[k] = ldg_stream(xr);
      b[k] = ldg_stream(xr + size_t(N) * C);
      pt[k] = q;
      vv[k] = v;
    }
  }
  pdl_wait();  // the pair weights and band sums (kernel B)
#pragma unroll
  for (int k = 0; k < kSpBatch; ++k) {
    if (pt[k] < 0) continue;
    int const q = pt[k], pair = q / HW;
    *reinterpret_cast<uint4*>(out + (size_t(q) + pair + 1) * C + vv[k] * VEC) =
        blend16<T>(a[k], b[k], p.ws_wt + size_t(q) * G2, vv[k] * VEC, p.cpg, p.G);
  }
  if (int(blockIdx.x) < p.P) {  // the CLS token of pair blockIdx.x
    __shared__ float wc[kMaxG2];
    int const pair = int(blockIdx.x);
    if (tid < G2) {
      float v = 0.5f;
      if (p.cls_mean) {
        float s = 0.f;
        for (int b = 0; b < p.sp_nb; ++b) s += p.ws_w[(size_t(pair) * p.sp_nb + b) * G2 + tid];
        v = s / float(HW);
      }
      wc[tid] = v;
    }
    __syncthreads();
    T const* x0 = x + size_t(pair) * 2 * N * C;
    for (int v = tid; v < nv; v += 256) {
      uint4 const a = ldg_stream(x0 + v * VEC), b = ldg_stream(x0 + size_t(N) * C + v * VEC);
      *reinterpret_cast<uint4*>(out + size_t(pair) * N * C + v * VEC) = blend16<T>(a, b, wc, v * VEC, p.cpg, p.G);
    }
  }
}

}  // namespace

bool ti_split_lane_allow(int G, size_t bytes) {
  auto fn = G == 1 ? ti_sp_weights_lane_kernel<2> : ti_sp_weights_lane_kernel<kMaxG2>;
  if (cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return true;
}

cudaError_t ti_split_enqueue(KParams const& p, DType t, SpLaunch const& l, cudaStream_t stream) {
  cudaError_t le = cudaSuccess;  // the first launch error
  auto launch = [&](auto kern, dim3 grid, int threads, size_t smem) {
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = dim3(unsigned(threads));
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cfg.attrs = at;
    cfg.numAttrs = l.pdl ? 1 : 0;
    cudaError_t const e = cudaLaunchKernelEx(&cfg, kern, p);
    if (le == cudaSuccess) le = e;
  };
  auto weights = [&]() {
    if (l.lane && p.G == 1)
      launch(ti_sp_weights_lane_kernel<2>, l.weights, kSpLThreads, l.lane);
    else if (l.lane)
      launch(ti_sp_weights_lane_kernel<kMaxG2>, l.weights, kSpLThreads, l.lane);
    else
      launch(ti_sp_weights_kernel, l.weights, kSpBand * 32, 0);
  };
  auto proj = [&](auto tag) {
    using TT = decltype(tag);
    if (p.sp_nt == 2)
      launch(ti_sp_proj_kernel<TT, 2>, l.proj, kSpWarps * 32, 0);
    else if (p.sp_nt == 4)
      launch(ti_sp_proj_kernel<TT, 4>, l.proj, kSpWarps * 32, 0);
    else
      launch(ti_sp_proj_kernel<TT, 8>, l.proj, kSpWarps * 32, 0);
  };
  switch (t) {
    case DType::kF32:
      ti_sp_pack_kernel<float><<<l.pack, 256, 0, stream>>>(p, l.fragBlocks);
      proj(float{});
      weights();
      launch(ti_sp_blend_kernel<float>, dim3(l.blend), 256, 0);
      break;
    case DType::kF16:
      ti_sp_pack_kernel<__half><<<l.pack, 256, 0, stream>>>(p, l.fragBlocks);
      proj(__half{});
      weights();
      launch(ti_sp_blend_kernel<__half>, dim3(l.blend), 256, 0);
      break;
    default:
      ti_sp_pack_kernel<__nv_bfloat16><<<l.pack, 256, 0, stream>>>(p, l.fragBlocks);
      proj(__nv_bfloat16{});
      weights();
      launch(ti_sp_blend_kernel<__nv_bfloat16>, dim3(l.blend), 256, 0);
      break;
  }
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) e = le;
  return e;
}

}  // namespace inti
