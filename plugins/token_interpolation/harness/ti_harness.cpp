// Drives libinti_plugins.so the way TensorRT does, without libnvinfer: load the library and find the
// creator through its entry points, create the plugin from fields, query the build interface, clone,
// serialise and recreate from the serialised fields, configure, attach to a context, enqueue on real
// device buffers and compare with reference outputs computed by PyTorch (make_reference.py).
//
//   ti_harness <libinti_plugins.so> <case dir>
//
// The IExprBuilder / IDimensionExpr / IPluginResourceContext / ILoggerFinder objects TensorRT would
// pass in are minimal implementations defined here (TensorRT defines them inside libnvinfer).
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "NvInferRuntime.h"

using namespace nvinfer1;

namespace {

int gFailures = 0, gChecks = 0;
bool gVerbose = false;  // HARNESS_VERBOSE=1 prints every check, else failures only

void check(bool ok, std::string const& what) {
  ++gChecks;
  if (gVerbose || !ok) std::printf("  %-4s %s\n", ok ? "ok" : "FAIL", what.c_str());
  if (!ok) ++gFailures;
}

#define CUDA_OK(call)                                                                                  \
  do {                                                                                                 \
    cudaError_t e_ = (call);                                                                           \
    if (e_ != cudaSuccess) {                                                                           \
      std::printf("CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, __LINE__, #call); \
      std::exit(2);                                                                                    \
    }                                                                                                  \
  } while (0)

// ---- what libnvinfer would provide ----
class Logger : public ILogger {
 public:
  void log(Severity s, AsciiChar const* msg) noexcept override {
    if (gVerbose) std::printf("  [plugin log %d] %s\n", int(s), msg);
    if (s <= Severity::kERROR) ++errors;
  }
  int errors = 0;
};

class LoggerFinder : public ILoggerFinder {
 public:
  ILogger* findLogger() noexcept override { return &logger; }
  Logger logger;
};

class Expr : public IDimensionExpr {
 public:
  struct Impl : apiv::VDimensionExpr {
    bool constant = false;
    int64_t value = 0;
    bool isConstant() const override { return constant; }
    int64_t getConstantValue() const override { return constant ? value : std::numeric_limits<int64_t>::min(); }
    bool isSizeTensor() const override { return false; }
  };
  Expr(bool constant, int64_t value) {
    impl.constant = constant;
    impl.value = value;
    mImpl = &impl;
  }
  ~Expr() noexcept override = default;
  Impl impl;
};

class ExprBuilder : public IExprBuilder {
 public:
  struct Impl : apiv::VExprBuilder {
    std::vector<std::unique_ptr<Expr>> pool;
    IDimensionExpr const* constant(int64_t v) override {
      pool.emplace_back(new Expr(true, v));
      return pool.back().get();
    }
    IDimensionExpr const* operation(DimensionOperation op, IDimensionExpr const& a, IDimensionExpr const& b) override {
      if (!a.isConstant() || !b.isConstant()) {
        pool.emplace_back(new Expr(false, 0));
        return pool.back().get();
      }
      int64_t x = a.getConstantValue(), y = b.getConstantValue(), r = 0;
      switch (op) {
        case DimensionOperation::kSUM: r = x + y; break;
        case DimensionOperation::kPROD: r = x * y; break;
        case DimensionOperation::kMAX: r = x > y ? x : y; break;
        case DimensionOperation::kMIN: r = x < y ? x : y; break;
        case DimensionOperation::kSUB: r = x - y; break;
        case DimensionOperation::kEQUAL: r = x == y; break;
        case DimensionOperation::kLESS: r = x < y; break;
        case DimensionOperation::kFLOOR_DIV: r = x / y; break;
        case DimensionOperation::kCEIL_DIV: r = (x + y - 1) / y; break;
      }
      return constant(r);
    }
    IDimensionExpr const* declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) override {
      return nullptr;
    }
  };
  ExprBuilder() { mImpl = &impl; }
  ~ExprBuilder() noexcept override = default;
  Impl impl;
};

class ResourceContext : public IPluginResourceContext {
 public:
  IGpuAllocator* getGpuAllocator() const noexcept override { return nullptr; }
  IErrorRecorder* getErrorRecorder() const noexcept override { return nullptr; }
};

// ---- reference cases ----
struct Case {
  std::string name, dtype;
  std::map<std::string, std::string> meta;
  std::map<std::string, std::vector<float>> weights;
  std::vector<char> x;
  std::vector<float> ref;
  int P, H, W, C, D, G;
  double tol;
  std::vector<int32_t> ints(std::string const& k) const {
    std::vector<int32_t> v;
    std::stringstream ss(meta.at(k));
    std::string item;
    while (std::getline(ss, item, ',')) v.push_back(std::stoi(item));
    return v;
  }
  int i(std::string const& k) const { return std::stoi(meta.at(k)); }
};

std::vector<char> readFile(std::string const& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::printf("cannot read %s\n", path.c_str());
    std::exit(2);
  }
  return std::vector<char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::vector<float> readFloats(std::string const& path) {
  std::vector<char> b = readFile(path);
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

Case loadCase(std::string const& dir, std::string const& name) {
  Case c;
  c.name = name;
  std::ifstream m(dir + "/" + name + ".meta");
  std::string line;
  while (std::getline(m, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) c.meta[line.substr(0, eq)] = line.substr(eq + 1);
  }
  c.dtype = c.meta.at("dtype");
  c.P = c.i("P");
  c.H = c.i("grid_h");
  c.W = c.i("grid_w");
  c.C = c.i("C");
  c.D = c.i("D");
  c.G = c.i("groups");
  c.tol = std::stod(c.meta.at("tol"));
  for (char const* w : {"w_in", "b_in", "dw_weight", "dw_bias", "w_out", "b_out"})
    c.weights[w] = readFloats(dir + "/" + name + "." + w + ".bin");
  c.x = readFile(dir + "/" + name + ".x.bin");
  c.ref = readFloats(dir + "/" + name + ".ref.bin");
  return c;
}

float bitsToFloat(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  if (exp == 0) return (sign ? -1.f : 1.f) * std::ldexp(float(man), -24);
  if (exp == 0x1f) return bitsToFloat(sign | 0x7f800000u | man << 13);
  return bitsToFloat(sign | (exp + 112) << 23 | man << 13);
}

std::vector<float> toFloat(std::vector<char> const& raw, std::string const& dtype) {
  std::vector<float> out;
  if (dtype == "f32") {
    out.resize(raw.size() / 4);
    std::memcpy(out.data(), raw.data(), raw.size());
  } else {
    out.resize(raw.size() / 2);
    for (size_t i = 0; i < out.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, raw.data() + 2 * i, 2);
      out[i] = dtype == "f16" ? halfToFloat(h) : bitsToFloat(uint32_t(h) << 16);
    }
  }
  return out;
}

DataType dataType(std::string const& d) { return d == "f32" ? DataType::kFLOAT : d == "f16" ? DataType::kHALF : DataType::kBF16; }
size_t elemSize(std::string const& d) { return d == "f32" ? 4 : 2; }

// The fields TensorRT's ONNX parser would pass: the node's attributes, plus ones the plugin ignores.
struct FieldSet {
  std::vector<int32_t> scalars;
  std::vector<int32_t> dil;
  float eps;
  std::vector<PluginField> fields;
  PluginFieldCollection fc{};
  char const* version = "1";
};

void buildFields(Case const& c, FieldSet* fs) {
  fs->scalars = {c.i("grid_h"), c.i("grid_w"), c.i("groups"), c.i("softmax"), c.i("cls_mean")};
  fs->dil = c.ints("dilations");
  fs->eps = std::stof(c.meta.at("eps"));
  char const* names[] = {"grid_h", "grid_w", "groups", "softmax", "cls_mean"};
  fs->fields.clear();
  for (int k = 0; k < 5; ++k) fs->fields.emplace_back(names[k], &fs->scalars[size_t(k)], PluginFieldType::kINT32, 1);
  fs->fields.emplace_back("dilations", fs->dil.data(), PluginFieldType::kINT32, int32_t(fs->dil.size()));
  fs->fields.emplace_back("eps", &fs->eps, PluginFieldType::kFLOAT32, 1);
  for (auto const& kv : c.weights)
    fs->fields.emplace_back(kv.first.c_str(), kv.second.data(), PluginFieldType::kFLOAT32, int32_t(kv.second.size()));
  fs->fields.emplace_back("plugin_version", fs->version, PluginFieldType::kCHAR, 1);  // ignored by the plugin
  fs->fc.nbFields = int32_t(fs->fields.size());
  fs->fc.fields = fs->fields.data();
}

// What an engine stores for a plugin: its serialised fields as bytes, then read back.
std::vector<char> serialize(PluginFieldCollection const* fc) {
  std::vector<char> out;
  auto put = [&](void const* p, size_t n) {
    char const* c = static_cast<char const*>(p);
    out.insert(out.end(), c, c + n);
  };
  int32_t n = fc->nbFields;
  put(&n, 4);
  for (int32_t i = 0; i < n; ++i) {
    PluginField const& f = fc->fields[i];
    int32_t len = int32_t(std::strlen(f.name)), type = int32_t(f.type), count = f.length;
    size_t es = f.type == PluginFieldType::kFLOAT32 || f.type == PluginFieldType::kINT32 ? 4 : 1;
    put(&len, 4);
    put(f.name, size_t(len));
    put(&type, 4);
    put(&count, 4);
    int64_t bytes = int64_t(es) * count;
    put(&bytes, 8);
    put(f.data, size_t(bytes));
  }
  return out;
}

struct Deserialized {
  std::vector<std::string> names;
  std::vector<std::vector<char>> data;
  std::vector<PluginField> fields;
  PluginFieldCollection fc{};
};

void deserialize(std::vector<char> const& b, Deserialized* d) {
  size_t o = 0;
  auto get = [&](void* p, size_t n) {
    std::memcpy(p, b.data() + o, n);
    o += n;
  };
  int32_t n;
  get(&n, 4);
  d->names.resize(size_t(n));
  d->data.resize(size_t(n));
  std::vector<int32_t> types(static_cast<size_t>(n)), counts(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    int32_t len;
    get(&len, 4);
    d->names[size_t(i)].assign(b.data() + o, size_t(len));
    o += size_t(len);
    get(&types[size_t(i)], 4);
    get(&counts[size_t(i)], 4);
    int64_t bytes;
    get(&bytes, 8);
    d->data[size_t(i)].assign(b.data() + o, b.data() + o + bytes);
    o += size_t(bytes);
  }
  for (int32_t i = 0; i < n; ++i)
    d->fields.emplace_back(d->names[size_t(i)].c_str(), d->data[size_t(i)].data(), PluginFieldType(types[size_t(i)]),
                           counts[size_t(i)]);
  d->fc.nbFields = n;
  d->fc.fields = d->fields.data();
}

PluginTensorDesc tensorDesc(std::vector<int64_t> const& dims, DataType t) {
  PluginTensorDesc d{};
  d.dims.nbDims = int32_t(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) d.dims.d[i] = dims[i];
  d.type = t;
  d.format = TensorFormat::kLINEAR;
  d.scale = -1.f;
  return d;
}

// Runs the runtime plugin on the first P pairs of the case and returns the max abs error.
double runOn(IPluginV3* plugin, Case const& c, int P, double* meanErr, bool* allWritten) {
  auto* rt = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
  int const N = 1 + c.H * c.W;
  size_t const es = elemSize(c.dtype);
  size_t const xBytes = size_t(P) * 2 * N * c.C * es, oBytes = size_t(P) * N * c.C * es;
  DataType const t = dataType(c.dtype);
  PluginTensorDesc in = tensorDesc({P, 2, N, c.C}, t), out = tensorDesc({P, N, c.C}, t);
  check(rt->onShapeChange(&in, 1, &out, 1) == 0, "onShapeChange (P=" + std::to_string(P) + ")");
  DynamicPluginTensorDesc din{}, dout{};
  din.desc = in;
  din.min = din.opt = din.max = in.dims;
  dout.desc = out;
  dout.min = dout.opt = dout.max = out.dims;
  auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
  size_t const ws = build ? build->getWorkspaceSize(&din, 1, &dout, 1) : 0;
  void *dx = nullptr, *dout_ = nullptr, *dws = nullptr;
  CUDA_OK(cudaMalloc(&dx, xBytes));
  CUDA_OK(cudaMalloc(&dout_, oBytes));
  if (ws) CUDA_OK(cudaMalloc(&dws, ws));
  CUDA_OK(cudaMemcpy(dx, c.x.data(), xBytes, cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemset(dout_, 0xff, oBytes));  // NaN everywhere: every element must be written
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreate(&stream));
  void const* inputs[] = {dx};
  void* outputs[] = {dout_};
  int rc = rt->enqueue(&in, &out, inputs, outputs, dws, stream);
  check(rc == 0, "enqueue returns 0");
  CUDA_OK(cudaStreamSynchronize(stream));
  CUDA_OK(cudaGetLastError());
  std::vector<char> raw(oBytes);
  CUDA_OK(cudaMemcpy(raw.data(), dout_, oBytes, cudaMemcpyDeviceToHost));
  std::vector<float> got = toFloat(raw, c.dtype);
  double maxErr = 0, sum = 0;
  *allWritten = true;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) {
      *allWritten = false;
      maxErr = std::numeric_limits<double>::infinity();
      continue;
    }
    double e = std::fabs(double(got[i]) - double(c.ref[i]));
    maxErr = std::max(maxErr, e);
    sum += e;
  }
  *meanErr = sum / double(got.size());
  cudaStreamDestroy(stream);
  cudaFree(dx);
  cudaFree(dout_);
  if (dws) cudaFree(dws);
  return maxErr;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::printf("usage: %s <libinti_plugins.so> <case dir>\n", argv[0]);
    return 2;
  }
  gVerbose = std::getenv("HARNESS_VERBOSE") && std::string(std::getenv("HARNESS_VERBOSE")) == "1";
  int nDev = 0;
  bool const haveDevice = cudaGetDeviceCount(&nDev) == cudaSuccess && nDev > 0;
  if (haveDevice) {
    cudaDeviceProp prop{};
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
  } else {
    cudaGetLastError();
    std::printf("no CUDA device: the enqueue steps are skipped\n");
  }

  // 1. the library and its entry points, as IPluginRegistry::loadLibrary finds them
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    std::printf("dlopen failed: %s\n", dlerror());
    return 2;
  }
  using GetCreators = IPluginCreatorInterface* const* (*)(int32_t&);
  using SetLoggerFinder = void (*)(ILoggerFinder*);
  auto getCreators = reinterpret_cast<GetCreators>(dlsym(lib, "getCreators"));
  auto getPluginCreators = reinterpret_cast<GetCreators>(dlsym(lib, "getPluginCreators"));
  auto setLoggerFinder = reinterpret_cast<SetLoggerFinder>(dlsym(lib, "setLoggerFinder"));
  std::printf("library %s\n", argv[1]);
  check(getCreators && setLoggerFinder && getPluginCreators, "exports getCreators, setLoggerFinder, getPluginCreators");
  if (!getCreators || !setLoggerFinder) return 1;
  static LoggerFinder finder;
  setLoggerFinder(&finder);
  int32_t nb = 0;
  IPluginCreatorInterface* const* creators = getCreators(nb);
  check(nb == 1 && creators && creators[0], "getCreators lists one creator");
  InterfaceInfo const info = creators[0]->getInterfaceInfo();
  check(std::string(info.kind) == "PLUGIN CREATOR_V3ONE" && info.major == 1,
        std::string("creator interface ") + info.kind + " " + std::to_string(info.major) + "." + std::to_string(info.minor));
  auto* creator = static_cast<IPluginCreatorV3One*>(creators[0]);
  std::printf("creator %s::%s v%s\n", creator->getPluginNamespace(), creator->getPluginName(), creator->getPluginVersion());
  check(std::string(creator->getPluginName()) == "TokenInterpolation" && std::string(creator->getPluginNamespace()) == "inti" &&
            std::string(creator->getPluginVersion()) == "1",
        "creator name / namespace / version = TokenInterpolation / inti / 1");
  PluginFieldCollection const* names = creator->getFieldNames();
  std::string list;
  for (int32_t i = 0; i < names->nbFields; ++i) list += std::string(i ? "," : "") + names->fields[i].name;
  check(names->nbFields == 13, "creator field names: " + list);

  // 2. a malformed field set is refused (nullptr), not a crash
  {
    int32_t gh = 4;
    PluginField bad[] = {PluginField("grid_h", &gh, PluginFieldType::kINT32, 1)};
    PluginFieldCollection fc{1, bad};
    int const before = finder.logger.errors;
    IPluginV3* p = creator->createPlugin("bad", &fc, TensorRTPhase::kBUILD);
    check(p == nullptr && finder.logger.errors > before, "missing fields -> nullptr and an error logged");
    delete p;
  }

  // 3. the reference cases, through the default path and the fallback path
  std::string const dir = argv[2];
  std::ifstream list_f(dir + "/cases.txt");
  std::vector<std::string> caseNames;
  for (std::string line; std::getline(list_f, line);)
    if (!line.empty()) caseNames.push_back(line);
  std::vector<std::string> summary;
  for (char const* mode : {"auto", "fallback", "split"}) {
    // read by the plugin when it is created; "split": that path (INTI_TI_VARIANT=split)
    bool const variant = std::string(mode) == "split";
    setenv("INTI_TI_PATH", variant ? "auto" : mode, 1);
    if (variant)
      setenv("INTI_TI_VARIANT", mode, 1);
    else
      unsetenv("INTI_TI_VARIANT");
    for (std::string const& name : caseNames) {
      Case c = loadCase(dir, name);
      std::printf("case %s [INTI_TI_PATH=%s] dtype=%s P=%d grid=%dx%d C=%d D=%d G=%d\n", name.c_str(), mode,
                  c.dtype.c_str(), c.P, c.H, c.W, c.C, c.D, c.G);
      FieldSet fs;
      buildFields(c, &fs);
      IPluginV3* p1 = creator->createPlugin(name.c_str(), &fs.fc, TensorRTPhase::kBUILD);
      check(p1 != nullptr, "createPlugin(kBUILD) from fields");
      if (!p1) continue;
      auto* core = static_cast<IPluginV3OneCore*>(p1->getCapabilityInterface(PluginCapabilityType::kCORE));
      auto* build = static_cast<IPluginV3OneBuild*>(p1->getCapabilityInterface(PluginCapabilityType::kBUILD));
      auto* rt1 = static_cast<IPluginV3OneRuntime*>(p1->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
      check(core && build && rt1, "capabilities core / build / runtime");
      check(std::string(core->getInterfaceInfo().kind) == "PLUGIN_V3ONE_CORE" &&
                std::string(build->getInterfaceInfo().kind) == "PLUGIN_V3ONE_BUILD" &&
                std::string(rt1->getInterfaceInfo().kind) == "PLUGIN_V3ONE_RUNTIME",
            "capability interface kinds");
      check(std::string(core->getPluginName()) == creator->getPluginName() &&
                std::string(core->getPluginNamespace()) == creator->getPluginNamespace() &&
                std::string(core->getPluginVersion()) == creator->getPluginVersion(),
            "plugin name / namespace / version match the creator");
      check(build->getNbOutputs() == 1, "one output");
      DataType const t = dataType(c.dtype);
      DataType ot = DataType::kINT8;
      check(build->getOutputDataTypes(&ot, 1, &t, 1) == 0 && ot == t, "output type = input type");
      // formats: pos 0 any of fp32/fp16/bf16 linear, pos 1 the same type as pos 0
      DynamicPluginTensorDesc io[2]{};
      io[0].desc = tensorDesc({-1, 2, 1 + c.H * c.W, c.C}, t);
      io[1].desc = tensorDesc({-1, 1 + c.H * c.W, c.C}, t);
      bool fmt = build->supportsFormatCombination(0, io, 1, 1) && build->supportsFormatCombination(1, io, 1, 1);
      io[1].desc.type = t == DataType::kFLOAT ? DataType::kHALF : DataType::kFLOAT;
      fmt = fmt && !build->supportsFormatCombination(1, io, 1, 1);
      io[1].desc.type = t;
      io[0].desc.type = DataType::kINT8;
      fmt = fmt && !build->supportsFormatCombination(0, io, 1, 1);
      io[0].desc.type = t;
      io[0].desc.format = TensorFormat::kCHW32;
      fmt = fmt && !build->supportsFormatCombination(0, io, 1, 1);
      check(fmt, "supportsFormatCombination: linear fp32/fp16/bf16 in, same type out; int8 / CHW32 refused");
      // output shape with a dynamic batch
      ExprBuilder eb;
      Expr eP(false, 0), e2(true, 2), eN(true, 1 + c.H * c.W), eC(true, c.C);
      DimsExprs inE{};
      inE.nbDims = 4;
      inE.d[0] = &eP;
      inE.d[1] = &e2;
      inE.d[2] = &eN;
      inE.d[3] = &eC;
      DimsExprs outE{};
      int rc = build->getOutputShapes(&inE, 1, nullptr, 0, &outE, 1, eb);
      check(rc == 0 && outE.nbDims == 3 && outE.d[0] == &eP && !outE.d[0]->isConstant() &&
                outE.d[1]->getConstantValue() == 1 + c.H * c.W && outE.d[2]->getConstantValue() == c.C,
            "getOutputShapes: (P, 2, N, C) -> (P, N, C), P symbolic");
      DynamicPluginTensorDesc din{}, dout{};
      din.desc = tensorDesc({-1, 2, 1 + c.H * c.W, c.C}, t);
      din.min = tensorDesc({1, 2, 1 + c.H * c.W, c.C}, t).dims;
      din.opt = din.max = tensorDesc({c.P, 2, 1 + c.H * c.W, c.C}, t).dims;
      dout.desc = tensorDesc({-1, 1 + c.H * c.W, c.C}, t);
      check(build->configurePlugin(&din, 1, &dout, 1) == 0, "configurePlugin with P in [1, " + std::to_string(c.P) + "]");
      DynamicPluginTensorDesc wrong = din;
      wrong.desc.dims.d[3] = c.C + 1;
      int const before = finder.logger.errors;
      check(build->configurePlugin(&wrong, 1, &dout, 1) != 0 && finder.logger.errors > before,
            "configurePlugin refuses a wrong channel count");
      if (gVerbose) std::printf("  workspace %zu bytes for P<=%d, metadata: %s\n", build->getWorkspaceSize(&din, 1, &dout, 1), c.P,
                  build->getMetadataString() ? build->getMetadataString() : "(none)");

      // clone, serialise, recreate (the engine round trip)
      IPluginV3* p2 = p1->clone();
      check(p2 != nullptr, "clone");
      auto* rt2 = static_cast<IPluginV3OneRuntime*>(p2->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
      std::vector<char> blob1 = serialize(rt1->getFieldsToSerialize());
      std::vector<char> blob2 = serialize(rt2->getFieldsToSerialize());
      check(blob1 == blob2, "clone serialises identically (" + std::to_string(blob1.size()) + " bytes)");
      Deserialized ds;
      deserialize(blob2, &ds);
      IPluginV3* p3 = creator->createPlugin(name.c_str(), &ds.fc, TensorRTPhase::kRUNTIME);
      check(p3 != nullptr, "createPlugin(kRUNTIME) from the serialised fields");
      if (!p3) continue;
      auto* rt3 = static_cast<IPluginV3OneRuntime*>(p3->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
      check(serialize(rt3->getFieldsToSerialize()) == blob1, "recreated plugin serialises identically");
      ResourceContext ctx;
      IPluginV3* p4 = rt3->attachToContext(&ctx);
      check(p4 != nullptr, "attachToContext");

      // enqueue on device buffers: all pairs, then a smaller batch (dynamic P)
      if (!haveDevice) {
        delete p4;
        delete p3;
        delete p2;
        delete p1;
        continue;
      }
      double mean = 0;
      bool written = false;
      double err = runOn(p4, c, c.P, &mean, &written);
      char buf[200];
      std::snprintf(buf, sizeof(buf), "P=%d max|err|=%.3g mean|err|=%.3g (tol %.0e), all outputs written", c.P, err, mean, c.tol);
      check(written && err <= c.tol, buf);
      std::printf("  %s\n", buf);
      summary.push_back(std::string(mode) + " " + name + ": " + buf + (written && err <= c.tol ? " PASS" : " FAIL"));
      if (c.P > 1) {
        double err1 = runOn(p4, c, 1, &mean, &written);
        std::snprintf(buf, sizeof(buf), "P=1 (same engine, smaller batch) max|err|=%.3g", err1);
        check(written && err1 <= c.tol, buf);
      }
      delete p4;
      delete p3;
      delete p2;
      delete p1;
    }
  }
  std::printf("\nsummary:\n");
  for (auto const& s : summary) std::printf("  %s\n", s.c_str());
  std::printf("%s: %d of %d checks failed\n", gFailures ? "FAILED" : "PASSED", gFailures, gChecks);
  return gFailures ? 1 : 0;
}
