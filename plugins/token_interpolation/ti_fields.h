// TokenInterpolation: the op's configuration as plugin fields (attributes + context-network weights).
//
// Pure C++17, no CUDA and no TensorRT: the plugin converts nvinfer1::PluginField to FieldView 1:1
// (same member order, FieldType values equal nvinfer1::PluginFieldType), and the CPU test
// tests/test_plugin_spec.py compiles this unit with g++ to check it against inti_edge/plugin/spec.py.
// Field names come from the generated plugin_spec.h (single source of truth: inti_edge/plugin/spec.py).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "plugin_spec.h"

namespace inti {

// Values of nvinfer1::PluginFieldType (NvInferPluginBase.h).
enum FieldType : int32_t {
  kFieldF16 = 0,
  kFieldF32 = 1,
  kFieldF64 = 2,
  kFieldI8 = 3,
  kFieldI16 = 4,
  kFieldI32 = 5,
  kFieldChar = 6,
  kFieldDims = 7,
  kFieldUnknown = 8,
  kFieldBF16 = 9,
  kFieldI64 = 10,
};

struct FieldView {
  char const* name;
  void const* data;
  int32_t type;
  int32_t length;
};

constexpr int kMaxScales = 4;  // dilations per op supported by the kernels
constexpr int kMaxGroups = 16;  // weight groups per token supported by the kernels

// The spec's names, checked at compile time against the meaning this code gives each slot: if
// inti_edge/plugin/spec.py renames or reorders a field, the plugin stops compiling instead of
// reading the wrong attribute.
namespace detail {
constexpr bool same(char const* a, char const* b) {
  return *a == *b && (*a == '\0' || same(a + 1, b + 1));
}
}  // namespace detail
static_assert(kNumIntFields == 5 && detail::same(kIntFields[0], "grid_h") && detail::same(kIntFields[1], "grid_w") &&
                  detail::same(kIntFields[2], "groups") && detail::same(kIntFields[3], "softmax") &&
                  detail::same(kIntFields[4], "cls_mean"),
              "plugin_spec.h int fields changed: update TIConfig");
static_assert(kNumIntsFields == 1 && detail::same(kIntsFields[0], "dilations"), "plugin_spec.h ints fields changed");
static_assert(kNumFloatFields == 1 && detail::same(kFloatFields[0], "eps"), "plugin_spec.h float fields changed");
static_assert(kNumWeightFields == 6 && detail::same(kWeightFields[0], "w_in") && detail::same(kWeightFields[1], "b_in") &&
                  detail::same(kWeightFields[2], "dw_weight") && detail::same(kWeightFields[3], "dw_bias") &&
                  detail::same(kWeightFields[4], "w_out") && detail::same(kWeightFields[5], "b_out"),
              "plugin_spec.h weight fields changed: update TIConfig");

struct TIConfig {
  // attributes (plugin.spec.INT_FIELDS, INTS_FIELDS, FLOAT_FIELDS)
  int32_t grid_h = 0, grid_w = 0, groups = 1, softmax = 1, cls_mean = 1;
  std::vector<int32_t> dilations{1, 2, 3};
  float eps = 1e-5f;
  // weights (plugin.spec.WEIGHT_FIELDS), float32, row-major:
  //   w_in (2C, D), b_in (D), dw_weight (S, D, 3, 3), dw_bias (S, D), w_out (D*(1+S), 2G), b_out (2G)
  std::vector<float> w_in, b_in, dw_weight, dw_bias, w_out, b_out;
  // derived by validate()
  int32_t C = 0, D = 0, S = 0;

  // Reads the fields (unknown names are ignored, e.g. plugin_version / plugin_namespace from ONNX),
  // then validates. Returns false and sets *err on a missing / malformed field or inconsistent sizes.
  bool parse(FieldView const* fields, int32_t nbFields, std::string* err);
  bool validate(std::string* err);
  // The fields to serialise: every spec field, viewing this object's storage (valid while it lives).
  std::vector<FieldView> fields() const;
  // The creator's field list: names and types, no data.
  static std::vector<FieldView> fieldNames();
  // One line describing the op (for logs and getMetadataString).
  std::string describe() const;

  int32_t* intSlot(int i);
  int32_t const* intSlot(int i) const { return const_cast<TIConfig*>(this)->intSlot(i); }
  std::vector<float>* weightSlot(int i);
  std::vector<float> const* weightSlot(int i) const { return const_cast<TIConfig*>(this)->weightSlot(i); }
};

}  // namespace inti
