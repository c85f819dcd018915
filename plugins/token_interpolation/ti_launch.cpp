// Host launcher of the TokenInterpolation kernels (the API of ti_kernel.h): shape and option checks, the
// choice of path (the split path for every dtype where it can run, else the fallback), the workspace
// layouts, the kernels' parameters and each path's launch configuration. The launches are in the path files
// (ti_split.cu, ti_fallback.cu; ti_params.h says why).
#include "ti_kernel.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "ti_params.h"

namespace inti {
namespace {

void setErr(char* err, int errLen, char const* msg) {
  if (err && errLen > 0) std::snprintf(err, size_t(errLen), "%s", msg);
}

size_t elemSize(DType t) { return t == DType::kF32 ? 4 : 2; }
size_t align16(size_t v) { return (v + 15) & ~size_t(15); }
int ceilDiv(int a, int b) { return (a + b - 1) / b; }
int ntFor(int D) { return D <= 16 ? 2 : D <= 32 ? 4 : 8; }

// Compute capability of the current device, cached per device (asked for on every plan and launch).
struct DevInfo {
  int major = 0;
};

bool devInfo(DevInfo* out) {
  static std::mutex mu;
  static std::map<int, DevInfo> cache;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(dev);
  if (it == cache.end()) {
    DevInfo d;
    if (cudaDeviceGetAttribute(&d.major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
    it = cache.emplace(dev, d).first;
  }
  *out = it->second;
  return true;
}

bool checkShape(TIShape const& s, char* err, int errLen) {
  char msg[160];
  if (s.P < 0 || s.H < 1 || s.W < 1 || s.C < 1 || s.D < 1 || s.G < 1 || s.G > kMaxG2 / 2 || s.S < 1 ||
      s.S > kTIMaxScales || s.C % s.G != 0) {
    std::snprintf(msg, sizeof(msg), "TokenInterpolation: bad shape P=%d H=%d W=%d C=%d D=%d G=%d S=%d", s.P, s.H, s.W,
                  s.C, s.D, s.G, s.S);
    setErr(err, errLen, msg);
    return false;
  }
  for (int i = 0; i < s.S; ++i)
    if (s.dil[i] < 1) {
      setErr(err, errLen, "TokenInterpolation: dilations must be >= 1");
      return false;
    }
  return true;
}

// Path and variant values other than these selected the fused (path 1; variants token 1, channel 2) and
// tile (4) paths, which are no longer built: refused rather than run as another path.
bool checkOptions(TIOptions const& opt, char* err, int errLen) {
  bool const pathOk = opt.path == kPathAuto || opt.path == kPathFallback || opt.path == kPathSplit;
  if (pathOk && (opt.variant == kVariantAuto || opt.variant == kVariantSplit)) return true;
  char msg[160];
  std::snprintf(msg, sizeof(msg), "TokenInterpolation: path %d / variant %d not built (auto, fallback, split are)",
                opt.path, opt.variant);
  setErr(err, errLen, msg);
  return false;
}

int dilMax(TIShape const& s) {
  int dmax = 1;
  for (int i = 0; i < s.S; ++i) dmax = std::max(dmax, s.dil[i]);
  return dmax;
}

// The split path: sm_80+ (mma.sync); 16-byte vectors of x / out.
bool chooseSplit(TIShape const& s, DType t, void const* x, void const* out, char* reason, int reasonLen) {
  DevInfo di;
  if (!devInfo(&di) || di.major < 8) {
    setErr(reason, reasonLen, "split path needs sm_80+ (mma.sync)");
    return false;
  }
  if ((size_t(s.C) * elemSize(t)) % 16 != 0) {
    setErr(reason, reasonLen, "split path needs C*sizeof(dtype) % 16 == 0");
    return false;
  }
  if ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(out)) % 16 != 0) {
    setErr(reason, reasonLen, "split path needs 16-byte aligned x and out");
    return false;
  }
  if (size_t(s.P) * s.H * s.W >= (size_t(1) << 30)) {
    setErr(reason, reasonLen, "split path needs P*H*W < 2^30");
    return false;
  }
  return true;
}

// Split-path geometry: weight bands per pair, W_in chunks per frame (16 bytes of a row per lane of a
// quad), column blocks of 8*NT columns.
struct SpGeom {
  int nb = 0, nch = 0, nt = 0, ny = 0;
};
SpGeom spGeom(TIShape const& s, int es) {
  SpGeom g;
  g.nb = ceilDiv(s.H * s.W, kSpBand);
  g.nch = ceilDiv(s.C, 4 * (16 / es));
  g.nt = ntFor(std::min(s.D, 64));
  g.ny = ceilDiv(s.D, 8 * g.nt);
  return g;
}
// Lane weights kernel: D padded so that each of the 4 quarters holds a multiple of 4 channels (dpad), and
// the u row stride (a multiple of 4 floats >= dpad) under which the 8 threads of a 16-byte load phase
// (2 neighbouring tokens x 4 quarters) share the fewest 16-byte bank groups.
int splDpad(int D) { return 4 * ((ceilDiv(D, 4) + 3) & ~3); }
int splStride(int D) {
  int const dpad = splDpad(D), m = dpad / 16;  // 16-byte groups between quarters
  int best = dpad, bestWorst = 99;
  for (int s = dpad / 4; s < dpad / 4 + 8; ++s) {
    int cnt[8] = {0}, worst = 0;
    for (int r = 0; r < 2; ++r)
      for (int q = 0; q < 4; ++q) worst = std::max(worst, ++cnt[(r * s + q * m) & 7]);
    if (worst < bestWorst) bestWorst = worst, best = 4 * s;
  }
  return best;
}
// Shared memory of the lane weights kernel for this shape (u of a band and its reach, a zero row, taps,
// biases, W_out, the band's weights); 0 where it does not fit maxSmem or the workspace's partial sums.
size_t splSmem(TIShape const& s, size_t maxSmem) {
  int const HW = s.H * s.W, reach = std::min(HW, dilMax(s) * s.W + dilMax(s)), G2 = 2 * s.G;
  size_t const Dp = size_t(splStride(s.D)), Dq = size_t(splDpad(s.D));
  size_t const nhal = size_t(std::min(HW, kSpLTok + 2 * reach));
  size_t const fl = (nhal + 1) * Dp + size_t(s.S) * 10 * Dq + size_t(1 + s.S) * Dq * G2 + size_t(kSpLTok) * G2;
  size_t const bytes = fl * 4;
  return (bytes <= maxSmem && ceilDiv(HW, kSpLTok) <= ceilDiv(HW, kSpBand)) ? bytes : 0;
}
size_t spFragEntries(SpGeom const& g) { return size_t(2) * g.nch * g.ny * g.nt * 32; }
// workspace layout of the split path: u | pair weights | band partial sums | W_in fragments | column sums
struct SpLayout {
  size_t wt = 0, part = 0, frag = 0, colsum = 0, total = 0;
};
SpLayout spLayout(TIShape const& s, int es) {
  SpGeom const g = spGeom(s, es);
  size_t const HW = size_t(s.H) * s.W, G2 = size_t(2) * s.G;
  SpLayout l;
  l.wt = align16(size_t(s.P) * HW * s.D * 4);
  l.part = l.wt + align16(size_t(s.P) * HW * G2 * 4);
  l.frag = align16(l.part + size_t(s.P) * g.nb * G2 * 4);
  l.colsum = l.frag + spFragEntries(g) * 16;
  l.total = l.colsum + align16(size_t(2) * g.ny * 8 * g.nt * 4);
  return l;
}

// Every dtype takes the split path where it can run, else the fallback; false (with a reason): fallback.
bool useSplit(TIShape const& s, DType t, void const* x, void const* out, TIOptions const& opt, char* reason,
              int reasonLen) {
  if (opt.path == kPathFallback) {
    setErr(reason, reasonLen, "fallback requested");
    return false;
  }
  return chooseSplit(s, t, x, out, reason, reasonLen);
}

// The shape, weights and input / output of the op as the kernels' parameters (path fields: set up below).
KParams baseParams(TIShape const& s, void const* x, void* out, TIWeights const& w) {
  KParams p{};
  p.x = x;
  p.out = out;
  p.w_in = w.w_in;
  p.b_in = w.b_in;
  p.dw_w = w.dw_weight;
  p.dw_b = w.dw_bias;
  p.w_out = w.w_out;
  p.b_out = w.b_out;
  p.P = s.P;
  p.H = s.H;
  p.W = s.W;
  p.HW = s.H * s.W;
  p.N = p.HW + 1;
  p.C = s.C;
  p.D = s.D;
  p.G = s.G;
  p.S = s.S;
  p.softmax = s.softmax;
  p.cls_mean = s.cls_mean;
  p.cpg = s.C / s.G;
  p.eps = s.eps;
  p.dmax = dilMax(s);
  for (int i = 0; i < s.S; ++i) p.dil[i] = s.dil[i];
  return p;
}

// The split path's geometry and workspace pointers into p (base: the 256-byte aligned workspace), and its
// launch: the lane weights kernel where its tile fits (INTI_TI_SP_WEIGHTS=warp: the warp-per-token kernel),
// programmatic dependent launches on sm_90+ (INTI_TI_PDL=0: plain launches).
SpLaunch splitSetup(TIShape const& s, DType t, uintptr_t base, cudaStream_t stream, KParams* pp) {
  KParams& p = *pp;
  int const es = int(elemSize(t));
  SpGeom const sg = spGeom(s, es);
  SpLayout const sl = spLayout(s, es);
  p.sp_nb = sg.nb;
  p.sp_nch = sg.nch;
  p.sp_nt = sg.nt;
  p.sp_ny = sg.ny;
  p.ws_u = reinterpret_cast<float*>(base);
  p.ws_wt = reinterpret_cast<float*>(base + sl.wt);
  p.ws_w = reinterpret_cast<float*>(base + sl.part);
  p.wpack = reinterpret_cast<uint4 const*>(base + sl.frag);
  p.wcolsum = reinterpret_cast<float const*>(base + sl.colsum);
  SpLaunch l;
  l.fragBlocks = int((spFragEntries(sg) + 255) / 256);
  l.pack = dim3(unsigned(l.fragBlocks + 2 * sg.ny * 8 * sg.nt));
  l.proj = dim3(unsigned(ceilDiv(s.P * p.HW, 16 * kSpWarps / 2)), unsigned(sg.ny));
  l.weights = dim3(unsigned(sg.nb), unsigned(s.P));
  int dev = 0, optin = 48 * 1024, major = 0;
  if (cudaGetDevice(&dev) == cudaSuccess) {
    cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  }
  char const* noPdl = std::getenv("INTI_TI_PDL");  // "0": plain launches (benchmarks)
  l.pdl = major >= 9 && !(noPdl && std::strcmp(noPdl, "0") == 0);
#if CUDART_VERSION < 12030  // programmatic edges in captured graphs need CUDA 12.3: plain launches there
  cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
  if (l.pdl && (cudaStreamIsCapturing(stream, &cap) != cudaSuccess || cap != cudaStreamCaptureStatusNone)) l.pdl = false;
#else
  (void)stream;
#endif
  char const* force = std::getenv("INTI_TI_SP_WEIGHTS");  // "warp": the fallback kernel (tests, benchmarks)
  if (!force || std::strcmp(force, "warp") != 0) l.lane = splSmem(s, size_t(optin));
  if (l.lane > 48 * 1024 && !ti_split_lane_allow(s.G, l.lane)) l.lane = 0;
  if (l.lane) {
    p.sp_nb = ceilDiv(p.HW, kSpLTok);  // one partial CLS sum per band
    p.spl_reach = std::min(p.HW, p.dmax * s.W + p.dmax);
    p.spl_dp = splStride(s.D);
    p.spl_dpad = splDpad(s.D);
    l.weights = dim3(unsigned(p.sp_nb), unsigned(s.P));
  }
  long long const items = (long long)s.P * p.HW * (s.C / (16 / es));
  l.blend = unsigned(std::max<long long>(s.P, (items + 256 * kSpBatch - 1) / (256 * kSpBatch)));
  return l;
}

// The fallback's workspace pointers into p and its launch.
FbLaunch fallbackSetup(TIShape const& s, uintptr_t base, KParams* p) {
  p->ws_u = reinterpret_cast<float*>(base);
  p->ws_w = reinterpret_cast<float*>(base + align16(size_t(s.P) * p->HW * s.D * 4));
  FbLaunch l;
  l.proj = dim3(unsigned(ceilDiv(p->HW, kFbTokens)), unsigned(s.P));
  size_t const total = size_t(s.P) * p->N * s.C;
  l.blend = unsigned(std::min<size_t>((total + 255) / 256, 65535u * 8));
  return l;
}

int launchErr(char const* what, cudaError_t e, char* err, int errLen) {
  char msg[200];
  std::snprintf(msg, sizeof(msg), "TokenInterpolation %s launch failed: %s", what, cudaGetErrorString(e));
  setErr(err, errLen, msg);
  return 2;
}

int workspaceErr(char const* what, size_t need, size_t got, char* err, int errLen) {
  char msg[160];
  std::snprintf(msg, sizeof(msg), "TokenInterpolation: %s path needs %zu workspace bytes, got %zu", what, need, got);
  setErr(err, errLen, msg);
  return 4;
}

}  // namespace

size_t ti_workspace_size(TIShape const& s) {
  size_t const HW = size_t(s.H) * s.W;
  size_t const fb = align16(size_t(s.P) * HW * s.D * 4) + align16(size_t(s.P) * (HW + 1) * 2 * s.G * 4);
  return std::max(fb, spLayout(s, 4).total) + 256;
}

int ti_plan(TIShape const& s, DType t, void const* x, void const* out, TIOptions const& opt, TIPlan* plan) {
  *plan = TIPlan{};
  if (!checkShape(s, plan->reason, int(sizeof(plan->reason))) || !checkOptions(opt, plan->reason, int(sizeof(plan->reason))))
    return 1;
  if (useSplit(s, t, x, out, opt, plan->reason, int(sizeof(plan->reason)))) {
    plan->path = kPathSplit;
    plan->variant = kVariantSplit;
    plan->threads = kSpWarps * 32;
    plan->slice = kSpBand;
    plan->reason[0] = 0;
  } else {
    plan->path = kPathFallback;
    plan->threads = kFbTokens * 32;
  }
  return 0;
}

int ti_launch(TIShape const& s, DType t, void const* x, void* out, TIWeights const& w, void* workspace,
              size_t workspaceBytes, cudaStream_t stream, TIOptions const& opt, char* err, int errLen) {
  if (!checkShape(s, err, errLen) || !checkOptions(opt, err, errLen)) return 1;
  if (s.P == 0) return 0;
  KParams p = baseParams(s, x, out, w);
  size_t const need = ti_workspace_size(s);
  uintptr_t const base = (reinterpret_cast<uintptr_t>(workspace) + 255) & ~uintptr_t(255);
  char reason[160] = {};
  bool const split = useSplit(s, t, x, out, opt, reason, int(sizeof(reason)));
  char const* const what = split ? "split" : "fallback";
  if (workspace == nullptr || workspaceBytes < need) return workspaceErr(what, need, workspaceBytes, err, errLen);
  cudaError_t e;
  if (split) {
    SpLaunch const l = splitSetup(s, t, base, stream, &p);
    e = ti_split_enqueue(p, t, l, stream);
  } else {
    FbLaunch const l = fallbackSetup(s, base, &p);
    e = ti_fallback_enqueue(p, t, l, stream);
  }
  return e == cudaSuccess ? 0 : launchErr(what, e, err, errLen);
}

}  // namespace inti
