// TokenInterpolation plugin fields: parse, validate, serialise (see ti_fields.h).
#include "ti_fields.h"

#include <cmath>
#include <cstring>
#include <sstream>

namespace inti {
namespace {

float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        man <<= 1;
      } while (!(man & 0x400));
      bits = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | man << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16ToFloat(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Element i of a numeric field as double; false for a type that is not numeric.
bool element(FieldView const& f, int32_t i, double* v) {
  char const* p = static_cast<char const*>(f.data);
  switch (f.type) {
    case kFieldF16: { uint16_t h; std::memcpy(&h, p + 2 * i, 2); *v = halfToFloat(h); return true; }
    case kFieldBF16: { uint16_t h; std::memcpy(&h, p + 2 * i, 2); *v = bf16ToFloat(h); return true; }
    case kFieldF32: { float x; std::memcpy(&x, p + 4 * i, 4); *v = x; return true; }
    case kFieldF64: { double x; std::memcpy(&x, p + 8 * i, 8); *v = x; return true; }
    case kFieldI8: { int8_t x; std::memcpy(&x, p + i, 1); *v = x; return true; }
    case kFieldI16: { int16_t x; std::memcpy(&x, p + 2 * i, 2); *v = x; return true; }
    case kFieldI32: { int32_t x; std::memcpy(&x, p + 4 * i, 4); *v = x; return true; }
    case kFieldI64: { int64_t x; std::memcpy(&x, p + 8 * i, 8); *v = double(x); return true; }
    default: return false;
  }
}

bool readInts(FieldView const& f, std::vector<int32_t>* out, std::string* err) {
  out->clear();
  if (f.length < 1 || f.data == nullptr) {
    *err = std::string("field ") + f.name + " is empty";
    return false;
  }
  for (int32_t i = 0; i < f.length; ++i) {
    double v;
    if (!element(f, i, &v) || v != std::floor(v) || std::fabs(v) > 2147483647.0) {
      *err = std::string("field ") + f.name + " is not an integer field (type " + std::to_string(f.type) + ")";
      return false;
    }
    out->push_back(int32_t(v));
  }
  return true;
}

bool readFloats(FieldView const& f, std::vector<float>* out, std::string* err) {
  out->clear();
  if (f.length < 1 || f.data == nullptr) {
    *err = std::string("field ") + f.name + " is empty";
    return false;
  }
  out->reserve(size_t(f.length));
  for (int32_t i = 0; i < f.length; ++i) {
    double v;
    if (!element(f, i, &v)) {
      *err = std::string("field ") + f.name + " is not a float field (type " + std::to_string(f.type) + ")";
      return false;
    }
    out->push_back(float(v));
  }
  return true;
}

}  // namespace

int32_t* TIConfig::intSlot(int i) {
  switch (i) {
    case 0: return &grid_h;
    case 1: return &grid_w;
    case 2: return &groups;
    case 3: return &softmax;
    case 4: return &cls_mean;
    default: return nullptr;
  }
}

std::vector<float>* TIConfig::weightSlot(int i) {
  switch (i) {
    case 0: return &w_in;
    case 1: return &b_in;
    case 2: return &dw_weight;
    case 3: return &dw_bias;
    case 4: return &w_out;
    case 5: return &b_out;
    default: return nullptr;
  }
}

bool TIConfig::parse(FieldView const* fields, int32_t nbFields, std::string* err) {
  bool seenInt[kNumIntFields] = {}, seenWeight[kNumWeightFields] = {};
  for (int32_t k = 0; k < nbFields; ++k) {
    FieldView const& f = fields[k];
    if (f.name == nullptr) continue;
    bool known = false;
    for (int i = 0; i < kNumIntFields && !known; ++i) {
      if (std::strcmp(f.name, kIntFields[i]) != 0) continue;
      std::vector<int32_t> v;
      if (!readInts(f, &v, err)) return false;
      if (v.size() != 1) {
        *err = std::string("field ") + f.name + " must hold one integer";
        return false;
      }
      *intSlot(i) = v[0];
      seenInt[i] = known = true;
    }
    if (!known && std::strcmp(f.name, kIntsFields[0]) == 0) {
      if (!readInts(f, &dilations, err)) return false;
      known = true;
    }
    if (!known && std::strcmp(f.name, kFloatFields[0]) == 0) {
      std::vector<float> v;
      if (!readFloats(f, &v, err)) return false;
      if (v.size() != 1) {
        *err = "field eps must hold one float";
        return false;
      }
      eps = v[0];
      known = true;
    }
    for (int i = 0; i < kNumWeightFields && !known; ++i) {
      if (std::strcmp(f.name, kWeightFields[i]) != 0) continue;
      if (!readFloats(f, weightSlot(i), err)) return false;
      seenWeight[i] = known = true;
    }
  }
  for (int i = 0; i < 2; ++i) {  // grid_h, grid_w have no default
    if (!seenInt[i]) {
      *err = std::string("missing field ") + kIntFields[i];
      return false;
    }
  }
  for (int i = 0; i < kNumWeightFields; ++i) {
    if (!seenWeight[i]) {
      *err = std::string("missing field ") + kWeightFields[i];
      return false;
    }
  }
  return validate(err);
}

bool TIConfig::validate(std::string* err) {
  std::ostringstream e;
  S = int32_t(dilations.size());
  D = int32_t(b_in.size());
  if (grid_h < 1 || grid_w < 1) e << "grid_h and grid_w must be >= 1; ";
  if (groups < 1 || groups > kMaxGroups) e << "groups must be in [1, " << kMaxGroups << "]; ";
  if (softmax != 0 && softmax != 1) e << "softmax must be 0 or 1; ";
  if (cls_mean != 0 && cls_mean != 1) e << "cls_mean must be 0 or 1; ";
  if (S < 1 || S > kMaxScales) e << "dilations must hold 1 to " << kMaxScales << " values; ";
  for (int32_t d : dilations)
    if (d < 1) e << "dilations must be >= 1; ";
  if (!(eps >= 0.f) || !std::isfinite(eps)) e << "eps must be finite and >= 0; ";
  if (D < 1) {
    e << "b_in is empty; ";
  } else if (w_in.empty() || w_in.size() % size_t(2 * D) != 0) {
    e << "w_in has " << w_in.size() << " values, not a multiple of 2*D = " << 2 * D << "; ";
  } else {
    C = int32_t(w_in.size() / size_t(2 * D));
    if (groups >= 1 && C % groups != 0) e << "C = " << C << " is not divisible by groups = " << groups << "; ";
  }
  size_t const G = size_t(groups > 0 ? groups : 1), Ds = size_t(D > 0 ? D : 0), Ss = size_t(S > 0 ? S : 0);
  if (dw_weight.size() != Ss * Ds * 9) e << "dw_weight has " << dw_weight.size() << " values, expected S*D*9 = " << Ss * Ds * 9 << "; ";
  if (dw_bias.size() != Ss * Ds) e << "dw_bias has " << dw_bias.size() << " values, expected S*D = " << Ss * Ds << "; ";
  if (w_out.size() != Ds * (1 + Ss) * 2 * G) e << "w_out has " << w_out.size() << " values, expected D*(1+S)*2G = " << Ds * (1 + Ss) * 2 * G << "; ";
  if (b_out.size() != 2 * G) e << "b_out has " << b_out.size() << " values, expected 2G = " << 2 * G << "; ";
  std::string msg = e.str();
  if (!msg.empty()) {
    *err = "TokenInterpolation: " + msg.substr(0, msg.size() - 2);
    return false;
  }
  return true;
}

std::vector<FieldView> TIConfig::fields() const {
  std::vector<FieldView> out;
  for (int i = 0; i < kNumIntFields; ++i) out.push_back({kIntFields[i], intSlot(i), kFieldI32, 1});
  out.push_back({kIntsFields[0], dilations.data(), kFieldI32, int32_t(dilations.size())});
  out.push_back({kFloatFields[0], &eps, kFieldF32, 1});
  for (int i = 0; i < kNumWeightFields; ++i) {
    std::vector<float> const* w = weightSlot(i);
    out.push_back({kWeightFields[i], w->data(), kFieldF32, int32_t(w->size())});
  }
  return out;
}

std::vector<FieldView> TIConfig::fieldNames() {
  std::vector<FieldView> out;
  for (int i = 0; i < kNumIntFields; ++i) out.push_back({kIntFields[i], nullptr, kFieldI32, 1});
  out.push_back({kIntsFields[0], nullptr, kFieldI32, 0});
  out.push_back({kFloatFields[0], nullptr, kFieldF32, 1});
  for (int i = 0; i < kNumWeightFields; ++i) out.push_back({kWeightFields[i], nullptr, kFieldF32, 0});
  return out;
}

std::string TIConfig::describe() const {
  std::ostringstream s;
  s << kPluginNamespace << "::" << kPluginName << " v" << kPluginVersion << " C=" << C << " D=" << D << " grid=" << grid_h
    << "x" << grid_w << " groups=" << groups << " dilations=";
  for (size_t i = 0; i < dilations.size(); ++i) s << (i ? "," : "") << dilations[i];
  s << " " << (softmax ? "softmax" : "sigmoid") << " cls=" << (cls_mean ? "mean" : "half") << " eps=" << eps;
  return s.str();
}

}  // namespace inti
