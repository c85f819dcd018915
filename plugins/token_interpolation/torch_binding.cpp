// PyTorch extension around the kernels' launcher (ti_kernel.h; JIT-built by inti_edge/plugin/kernels.py with
// torch.utils.cpp_extension.load from its SOURCES): the same kernels the TensorRT plugin runs.
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

#include <vector>

#include "ti_kernel.h"

namespace {

inti::DType dtypeOf(torch::Tensor const& x) {
  if (x.scalar_type() == torch::kFloat32) return inti::DType::kF32;
  if (x.scalar_type() == torch::kFloat16) return inti::DType::kF16;
  TORCH_CHECK(x.scalar_type() == torch::kBFloat16, "token_interpolation: x must be float32, float16 or bfloat16");
  return inti::DType::kBF16;
}

inti::TIShape shapeOf(torch::Tensor const& x, torch::Tensor const& b_in, torch::Tensor const& b_out, int64_t H,
                      int64_t W, std::vector<int64_t> const& dilations, bool softmax, bool cls_mean, double eps) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 2, "token_interpolation: x must be (P, 2, N, C)");
  TORCH_CHECK(x.size(2) == 1 + H * W, "token_interpolation: N = ", x.size(2), " != 1 + H*W = ", 1 + H * W);
  TORCH_CHECK(!dilations.empty() && dilations.size() <= size_t(inti::kTIMaxScales), "token_interpolation: 1 to ",
              inti::kTIMaxScales, " dilations");
  inti::TIShape s;
  s.P = int32_t(x.size(0));
  s.H = int32_t(H);
  s.W = int32_t(W);
  s.C = int32_t(x.size(3));
  s.D = int32_t(b_in.numel());
  s.G = int32_t(b_out.numel() / 2);
  s.S = int32_t(dilations.size());
  for (size_t i = 0; i < dilations.size(); ++i) s.dil[i] = int32_t(dilations[i]);
  s.softmax = softmax ? 1 : 0;
  s.cls_mean = cls_mean ? 1 : 0;
  s.eps = float(eps);
  return s;
}

void checkWeight(torch::Tensor const& w, torch::Tensor const& x, char const* name, int64_t numel) {
  TORCH_CHECK(w.is_cuda() && w.device() == x.device(), "token_interpolation: ", name, " must be on x's device");
  TORCH_CHECK(w.scalar_type() == torch::kFloat32 && w.is_contiguous(), "token_interpolation: ", name,
              " must be contiguous float32");
  TORCH_CHECK(w.numel() == numel, "token_interpolation: ", name, " has ", w.numel(), " values, expected ", numel);
}

// x (P, 2, N, C) -> (P, N, C). Weights as the plugin fields: w_in (2C, D), b_in (D), dw_weight (S, D, 3, 3),
// dw_bias (S, D), w_out (D*(1+S), 2G), b_out (2G), all float32 on x's device. `cluster` was the fused path's
// cluster size: inti_edge.plugin.kernels still passes it, and no kept path reads it (the split and fallback paths
// ignored it before too).
torch::Tensor token_interpolation(torch::Tensor x, torch::Tensor w_in, torch::Tensor b_in, torch::Tensor dw_weight,
                                  torch::Tensor dw_bias, torch::Tensor w_out, torch::Tensor b_out, int64_t H, int64_t W,
                                  std::vector<int64_t> dilations, bool softmax, bool cls_mean, double eps, int64_t path,
                                  int64_t /*cluster*/, int64_t variant) {
  TORCH_CHECK(x.is_cuda(), "token_interpolation: x must be a CUDA tensor");
  x = x.contiguous();
  inti::DType const t = dtypeOf(x);
  inti::TIShape const s = shapeOf(x, b_in, b_out, H, W, dilations, softmax, cls_mean, eps);
  TORCH_CHECK(s.G >= 1 && s.C % s.G == 0, "token_interpolation: C must be divisible by groups");
  checkWeight(w_in, x, "w_in", int64_t(2) * s.C * s.D);
  checkWeight(b_in, x, "b_in", s.D);
  checkWeight(dw_weight, x, "dw_weight", int64_t(s.S) * s.D * 9);
  checkWeight(dw_bias, x, "dw_bias", int64_t(s.S) * s.D);
  checkWeight(w_out, x, "w_out", int64_t(s.D) * (1 + s.S) * 2 * s.G);
  checkWeight(b_out, x, "b_out", 2 * s.G);
  c10::cuda::CUDAGuard guard(x.device());
  auto out = torch::empty({x.size(0), x.size(2), x.size(3)}, x.options());
  inti::TIOptions opt;
  opt.path = int32_t(path);
  opt.variant = int32_t(variant);
  size_t const wsBytes = inti::ti_workspace_size(s);
  torch::Tensor ws = torch::empty({int64_t(wsBytes)}, x.options().dtype(torch::kUInt8));
  inti::TIWeights w;
  w.w_in = w_in.data_ptr<float>();
  w.b_in = b_in.data_ptr<float>();
  w.dw_weight = dw_weight.data_ptr<float>();
  w.dw_bias = dw_bias.data_ptr<float>();
  w.w_out = w_out.data_ptr<float>();
  w.b_out = b_out.data_ptr<float>();
  char err[256] = {};
  int rc = inti::ti_launch(s, t, x.data_ptr(), out.data_ptr(), w, ws.data_ptr(), wsBytes,
                           c10::cuda::getCurrentCUDAStream().stream(), opt, err, int(sizeof(err)));
  TORCH_CHECK(rc == 0, err);
  return out;
}

// The configuration ti_launch picks for these arguments: {path, variant, slice, threads, reason}.
py::dict plan(torch::Tensor x, torch::Tensor b_in, torch::Tensor b_out, int64_t H, int64_t W, std::vector<int64_t> dilations,
              int64_t path, int64_t /*cluster*/, int64_t variant) {
  TORCH_CHECK(x.is_cuda(), "plan: x must be a CUDA tensor");
  inti::TIShape const s = shapeOf(x, b_in, b_out, H, W, dilations, true, true, 1e-5);
  c10::cuda::CUDAGuard guard(x.device());
  inti::TIOptions opt;
  opt.path = int32_t(path);
  opt.variant = int32_t(variant);
  inti::TIPlan p;
  inti::ti_plan(s, dtypeOf(x), x.data_ptr(), x.data_ptr(), opt, &p);
  py::dict d;
  d["path"] = p.path == inti::kPathSplit ? "split" : "fallback";
  d["variant"] = p.path == inti::kPathSplit ? "split" : "";
  d["slice"] = p.slice;
  d["threads"] = p.threads;
  d["reason"] = std::string(p.reason);
  return d;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("token_interpolation", &token_interpolation, "TokenInterpolation forward (CUDA)");
  m.def("plan", &plan, "the kernel configuration for these arguments");
}
