// TokenInterpolation TensorRT plugin: IPluginV3 (OneCore / OneBuild / OneRuntime) + IPluginCreatorV3One,
// and the plugin-library entry points of TensorRT 10+ (getCreators, setLoggerFinder; getPluginCreators
// for older loaders). Name, namespace, version and field names come from plugin_spec.h, generated
// from inti_edge/plugin/spec.py. The plugin needs nothing from libnvinfer: it links only the CUDA runtime.
//
// Input 0: x (P, 2, N, C), N = 1 + grid_h * grid_w, P dynamic; output 0: (P, N, C), same type.
// Types: FP32, FP16, BF16, linear format. The context-network weights are plugin fields (fp32).
#include <cuda_runtime_api.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "NvInferRuntime.h"
#include "plugin_spec.h"
#include "ti_fields.h"
#include "ti_kernel.h"

#define INTI_EXPORT extern "C" __attribute__((visibility("default")))

using namespace nvinfer1;

namespace inti {
namespace {

ILoggerFinder* gLoggerFinder = nullptr;
std::mutex gLogMutex;

void logMsg(ILogger::Severity sev, std::string const& msg) {
  std::lock_guard<std::mutex> lock(gLogMutex);
  ILogger* logger = gLoggerFinder ? gLoggerFinder->findLogger() : nullptr;
  std::string const line = std::string("[inti::TokenInterpolation] ") + msg;
  if (logger) {
    logger->log(sev, line.c_str());
  } else if (sev <= ILogger::Severity::kWARNING) {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

bool typeOk(DataType t) { return t == DataType::kFLOAT || t == DataType::kHALF || t == DataType::kBF16; }

DType toDType(DataType t) {
  return t == DataType::kHALF ? DType::kF16 : t == DataType::kBF16 ? DType::kBF16 : DType::kF32;
}

// Path overrides for tests and benchmarks: INTI_TI_PATH=auto|fallback, INTI_TI_VARIANT=auto|split (the split
// path, else the fallback). Other values leave the default.
TIOptions envOptions() {
  TIOptions o;
  if (char const* v = std::getenv("INTI_TI_PATH")) {
    if (!std::strcmp(v, "fallback")) o.path = kPathFallback;
  }
  if (char const* v = std::getenv("INTI_TI_VARIANT")) {
    if (!std::strcmp(v, "split")) o.variant = kVariantSplit;
  }
  return o;
}

std::vector<PluginField> toPluginFields(std::vector<FieldView> const& views) {
  std::vector<PluginField> out;
  out.reserve(views.size());
  for (FieldView const& v : views)
    out.emplace_back(v.name, v.data, static_cast<PluginFieldType>(v.type), v.length);
  return out;
}

class TokenInterpolationPlugin : public IPluginV3,
                                 public IPluginV3OneCore,
                                 public IPluginV3OneBuild,
                                 public IPluginV3OneRuntime {
 public:
  explicit TokenInterpolationPlugin(TIConfig cfg) : mCfg(std::move(cfg)), mOpt(envOptions()) { refreshFields(); }
  TokenInterpolationPlugin(TokenInterpolationPlugin const& o) : mCfg(o.mCfg), mOpt(o.mOpt) { refreshFields(); }
  TokenInterpolationPlugin& operator=(TokenInterpolationPlugin const&) = delete;
  ~TokenInterpolationPlugin() override { freeDevice(); }

  // IPluginV3
  IPluginCapability* getCapabilityInterface(PluginCapabilityType type) noexcept override {
    switch (type) {
      case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
      case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
      case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    }
    return nullptr;
  }
  IPluginV3* clone() noexcept override {
    try {
      return new TokenInterpolationPlugin(*this);
    } catch (...) {
      return nullptr;
    }
  }

  // IPluginV3OneCore
  AsciiChar const* getPluginName() const noexcept override { return kPluginName; }
  AsciiChar const* getPluginVersion() const noexcept override { return kPluginVersion; }
  AsciiChar const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

  // IPluginV3OneBuild
  int32_t getNbOutputs() const noexcept override { return 1; }

  int32_t getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
                             int32_t nbInputs) const noexcept override {
    if (nbInputs != 1 || nbOutputs != 1 || !typeOk(inputTypes[0])) return 1;
    outputTypes[0] = inputTypes[0];
    return 0;
  }

  int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
                          int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs,
                          IExprBuilder& /*exprBuilder*/) noexcept override {
    if (nbInputs != 1 || nbOutputs != 1 || inputs[0].nbDims != 4) {
      logMsg(ILogger::Severity::kERROR, "expects one input of rank 4 (P, 2, N, C)");
      return 1;
    }
    outputs[0].nbDims = 3;
    outputs[0].d[0] = inputs[0].d[0];  // P (dynamic)
    outputs[0].d[1] = inputs[0].d[2];  // N
    outputs[0].d[2] = inputs[0].d[3];  // C
    return 0;
  }

  bool supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                 int32_t nbOutputs) noexcept override {
    if (nbInputs != 1 || nbOutputs != 1 || pos < 0 || pos > 1) return false;
    PluginTensorDesc const& d = inOut[pos].desc;
    if (d.format != TensorFormat::kLINEAR) return false;
    if (pos == 0) return typeOk(d.type);
    return d.type == inOut[0].desc.type;
  }

  int32_t configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* /*out*/,
                          int32_t nbOutputs) noexcept override {
    if (nbInputs != 1 || nbOutputs != 1) return 1;
    return checkDims(in[0].desc.dims) ? 0 : 1;
  }

  size_t getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                          DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept override {
    if (nbInputs != 1) return 0;
    int64_t P = inputs[0].max.nbDims == 4 ? inputs[0].max.d[0] : 0;
    if (P < 0) P = 0;
    TIShape s = shape(int32_t(P));
    return ti_workspace_size(s);  // u, weights (+ split: band sums, packed W_in)
  }

  char const* getMetadataString() noexcept override { return mDescription.c_str(); }

  // IPluginV3OneRuntime
  int32_t onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out,
                        int32_t nbOutputs) noexcept override {
    if (nbInputs != 1 || nbOutputs != 1 || !checkDims(in[0].dims)) return 1;
    if (out[0].dims.nbDims != 3 || out[0].type != in[0].type) return 1;
    return 0;
  }

  int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc, void const* const* inputs,
                  void* const* outputs, void* workspace, cudaStream_t stream) noexcept override {
    Dims const& d = inputDesc[0].dims;
    if (!checkDims(d) || !typeOk(inputDesc[0].type) || outputDesc[0].type != inputDesc[0].type) return 1;
    if (!uploadWeights(stream)) return 1;
    TIShape const s = shape(int32_t(d.d[0]));
    char err[256] = {};
    int rc = ti_launch(s, toDType(inputDesc[0].type), inputs[0], outputs[0], mDevW, workspace, ti_workspace_size(s),
                       stream, mOpt, err, int(sizeof(err)));
    if (rc != 0) logMsg(ILogger::Severity::kERROR, err);
    return rc;
  }

  IPluginV3* attachToContext(IPluginResourceContext* /*context*/) noexcept override { return clone(); }

  PluginFieldCollection const* getFieldsToSerialize() noexcept override {
    refreshFields();
    return &mFC;
  }

 private:
  TIShape shape(int32_t P) const {
    TIShape s{P, mCfg.grid_h, mCfg.grid_w, mCfg.C, mCfg.D, mCfg.groups, mCfg.S, {}, mCfg.softmax, mCfg.cls_mean, mCfg.eps};
    for (int i = 0; i < mCfg.S && i < kTIMaxScales; ++i) s.dil[i] = mCfg.dilations[size_t(i)];
    return s;
  }

  // (P, 2, N, C) with N = 1 + grid_h * grid_w and C from the weights; -1 (unknown) passes.
  bool checkDims(Dims const& d) const {
    int64_t const N = 1 + int64_t(mCfg.grid_h) * mCfg.grid_w;
    bool ok = d.nbDims == 4 && (d.d[1] == 2 || d.d[1] == -1) && (d.d[2] == N || d.d[2] == -1) &&
              (d.d[3] == mCfg.C || d.d[3] == -1);
    if (!ok) {
      std::string msg = "input must be (P, 2, " + std::to_string(N) + ", " + std::to_string(mCfg.C) + "), got (";
      for (int i = 0; i < d.nbDims; ++i) msg += (i ? ", " : "") + std::to_string(d.d[i]);
      logMsg(ILogger::Severity::kERROR, msg + ")");
    }
    return ok;
  }

  void refreshFields() {
    mFieldStore = toPluginFields(mCfg.fields());
    mFC.nbFields = int32_t(mFieldStore.size());
    mFC.fields = mFieldStore.data();
    mDescription = mCfg.describe();
  }

  bool uploadWeights(cudaStream_t stream) {
    if (mDevBuf) return true;
    std::vector<float> const* parts[kNumWeightFields];
    size_t total = 0;
    for (int i = 0; i < kNumWeightFields; ++i) {
      parts[i] = mCfg.weightSlot(i);
      total += (parts[i]->size() + 3) & ~size_t(3);  // keep each array 16-byte aligned
    }
    if (cudaMalloc(&mDevBuf, total * sizeof(float)) != cudaSuccess) {
      mDevBuf = nullptr;
      logMsg(ILogger::Severity::kERROR, "cudaMalloc of the weights failed");
      return false;
    }
    float* base = static_cast<float*>(mDevBuf);
    float const* ptrs[kNumWeightFields];
    size_t off = 0;
    for (int i = 0; i < kNumWeightFields; ++i) {
      ptrs[i] = base + off;
      if (cudaMemcpyAsync(base + off, parts[i]->data(), parts[i]->size() * sizeof(float), cudaMemcpyHostToDevice,
                          stream) != cudaSuccess) {
        logMsg(ILogger::Severity::kERROR, "copying the weights to the device failed");
        return false;
      }
      off += (parts[i]->size() + 3) & ~size_t(3);
    }
    // pageable host memory: the copies are complete (staged) when cudaMemcpyAsync returns
    mDevW.w_in = ptrs[0];
    mDevW.b_in = ptrs[1];
    mDevW.dw_weight = ptrs[2];
    mDevW.dw_bias = ptrs[3];
    mDevW.w_out = ptrs[4];
    mDevW.b_out = ptrs[5];
    return true;
  }

  void freeDevice() {
    if (mDevBuf) cudaFree(mDevBuf);
    mDevBuf = nullptr;
  }

  TIConfig mCfg;
  TIOptions mOpt;
  std::vector<PluginField> mFieldStore;
  PluginFieldCollection mFC{};
  std::string mDescription;
  void* mDevBuf = nullptr;
  TIWeights mDevW;
};

class TokenInterpolationCreator : public IPluginCreatorV3One {
 public:
  TokenInterpolationCreator() {
    mNames = toPluginFields(TIConfig::fieldNames());
    mFC.nbFields = int32_t(mNames.size());
    mFC.fields = mNames.data();
  }

  IPluginV3* createPlugin(AsciiChar const* name, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept override {
    try {
      std::vector<FieldView> views;
      for (int32_t i = 0; fc && i < fc->nbFields; ++i) {
        PluginField const& f = fc->fields[i];
        views.push_back({f.name, f.data, int32_t(f.type), f.length});
      }
      TIConfig cfg;
      std::string err;
      if (!cfg.parse(views.data(), int32_t(views.size()), &err)) {
        logMsg(ILogger::Severity::kERROR, std::string(name ? name : "") + ": " + err);
        return nullptr;
      }
      return new TokenInterpolationPlugin(std::move(cfg));
    } catch (std::exception const& e) {
      logMsg(ILogger::Severity::kERROR, e.what());
    } catch (...) {
    }
    return nullptr;
  }

  PluginFieldCollection const* getFieldNames() noexcept override { return &mFC; }
  AsciiChar const* getPluginName() const noexcept override { return kPluginName; }
  AsciiChar const* getPluginVersion() const noexcept override { return kPluginVersion; }
  AsciiChar const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

 private:
  std::vector<PluginField> mNames;
  PluginFieldCollection mFC{};
};

}  // namespace
}  // namespace inti

// Plugin-library entry points (IPluginRegistry::loadLibrary, trtexec --dynamicPlugins, Polygraphy LoadPlugins).
INTI_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder) {
  std::lock_guard<std::mutex> lock(inti::gLogMutex);
  inti::gLoggerFinder = finder;
}

INTI_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
  static inti::TokenInterpolationCreator creator;
  static nvinfer1::IPluginCreatorInterface* const creators[] = {&creator};
  nbCreators = 1;
  return creators;
}

// Deprecated name of getCreators, looked up by loaders that predate it.
INTI_EXPORT nvinfer1::IPluginCreatorInterface* const* getPluginCreators(int32_t& nbCreators) {
  return getCreators(nbCreators);
}
