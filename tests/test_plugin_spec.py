"""The TensorRT plugin and the exporter's contract (inti_edge/plugin/spec.py) agree - on the CPU.

* plugins/token_interpolation/plugin_spec.h is exactly what `python -m inti_edge.plugin.spec --header`
  generates (the plugin compiles against the committed header; CMake refuses a stale one too);
* the plugin takes its name / namespace / version from that header, not from literals;
* the plugin's field parser (ti_fields.cpp, compiled here with g++) accepts the fields of a real
  TokenInterpolation module as inti_edge.plugin.fields.module_fields writes them, derives the module's shape,
  serialises exactly the spec's fields in the spec's order, reads its own serialisation back, and
  refuses malformed field sets.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from inti_edge.plugin import spec as plugin_spec

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "plugins" / "token_interpolation"
SPEC_FIELDS = (*plugin_spec.INT_FIELDS, *plugin_spec.INTS_FIELDS, *plugin_spec.FLOAT_FIELDS, *plugin_spec.WEIGHT_FIELDS)
K_INT32, K_FLOAT32, K_FLOAT64, K_INT64, K_CHAR = 5, 1, 2, 10, 6  # nvinfer1::PluginFieldType values

DRIVER = r"""
// Reads fields (u32 name length, name, i32 type, i32 count, data), parses them with TIConfig, prints
// the derived shape, the serialised field list and the creator's field names, then parses its own
// serialisation again and checks it is identical.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>
#include "ti_fields.h"
using namespace inti;
static size_t esize(int t) { return t == kFieldF64 || t == kFieldI64 ? 8 : t == kFieldF16 || t == kFieldBF16 || t == kFieldI16 ? 2 : t == kFieldI8 || t == kFieldChar ? 1 : 4; }
int main(int argc, char** argv) {
  std::ifstream f(argv[1], std::ios::binary);
  std::vector<std::string> names; std::vector<std::vector<char>> data; std::vector<int> types, counts;
  unsigned n;
  while (f.read(reinterpret_cast<char*>(&n), 4)) {
    std::string name(n, '\0'); f.read(&name[0], n);
    int t, c; f.read(reinterpret_cast<char*>(&t), 4); f.read(reinterpret_cast<char*>(&c), 4);
    std::vector<char> d(esize(t) * size_t(c)); f.read(d.data(), std::streamsize(d.size()));
    names.push_back(name); types.push_back(t); counts.push_back(c); data.push_back(d);
  }
  std::vector<FieldView> views;
  for (size_t i = 0; i < names.size(); ++i) views.push_back({names[i].c_str(), data[i].data(), types[i], counts[i]});
  TIConfig cfg; std::string err;
  if (!cfg.parse(views.data(), int(views.size()), &err)) { std::printf("error: %s\n", err.c_str()); return 1; }
  std::printf("shape C=%d D=%d S=%d G=%d grid=%dx%d softmax=%d cls_mean=%d eps=%g\n", cfg.C, cfg.D, cfg.S, cfg.groups,
              cfg.grid_h, cfg.grid_w, cfg.softmax, cfg.cls_mean, double(cfg.eps));
  for (auto const& v : cfg.fields()) std::printf("field %s %d %d\n", v.name, v.type, v.length);
  for (auto const& v : TIConfig::fieldNames()) std::printf("name %s %d\n", v.name, v.type);
  std::vector<FieldView> ser = cfg.fields();
  TIConfig again;
  if (!again.parse(ser.data(), int(ser.size()), &err)) { std::printf("error: reparse: %s\n", err.c_str()); return 1; }
  std::vector<FieldView> const back = again.fields();
  bool same = back.size() == ser.size();
  for (size_t i = 0; same && i < ser.size(); ++i) {
    auto const& a = ser[i]; auto const& b = back[i];
    same = !std::strcmp(a.name, b.name) && a.type == b.type && a.length == b.length &&
           !std::memcmp(a.data, b.data, esize(a.type) * size_t(a.length));
  }
  std::printf("roundtrip %s\n", same ? "identical" : "DIFFERENT");
  std::printf("describe %s\n", cfg.describe().c_str());
  return 0;
}
"""


def test_committed_header_is_generated_from_the_spec():
    assert (PLUGIN / "plugin_spec.h").read_text() == plugin_spec.header()


def test_header_cli_prints_the_header():
    out = subprocess.run([sys.executable, "-m", "inti_edge.plugin.spec", "--header"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out == plugin_spec.header()


def test_plugin_takes_identity_from_the_header():
    src = (PLUGIN / "ti_plugin.cpp").read_text()
    assert '#include "plugin_spec.h"' in src
    for fn, const in (("getPluginName", "kPluginName"), ("getPluginVersion", "kPluginVersion"),
                      ("getPluginNamespace", "kPluginNamespace")):
        assert src.count(f"{fn}() const noexcept override {{ return {const}; }}") == 2, fn  # plugin and creator
    for literal in (plugin_spec.PLUGIN_NAME, plugin_spec.PLUGIN_NAMESPACE):
        assert f'"{literal}"' not in src
    # the library name the exporter / CLI load is the one CMake builds
    assert plugin_spec.PLUGIN_LIBRARY == "libinti_plugins.so"
    assert "add_library(inti_plugins SHARED" in (PLUGIN / "CMakeLists.txt").read_text()


def _encode(fields: dict) -> bytes:
    """Fields as the plugin receives them: ints int32, floats / weights float32, like the ONNX parser."""
    out = b""
    for name, v in fields.items():
        if isinstance(v, tuple):  # (type, count, raw bytes) given explicitly
            t, c, raw = v
        elif isinstance(v, int):
            t, c, raw = K_INT32, 1, struct.pack("<i", v)
        elif isinstance(v, float):
            t, c, raw = K_FLOAT32, 1, struct.pack("<f", v)
        elif isinstance(v, list):
            t, c, raw = K_INT32, len(v), struct.pack(f"<{len(v)}i", *v)
        else:  # a tensor
            a = v.detach().cpu().float().contiguous().numpy()
            t, c, raw = K_FLOAT32, a.size, a.tobytes()
        out += struct.pack("<I", len(name)) + name.encode() + struct.pack("<ii", t, c) + raw
    return out


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    d = tmp_path_factory.mktemp("fields")
    (d / "driver.cpp").write_text(DRIVER)
    exe = d / "driver"
    subprocess.run([cxx, "-std=c++17", "-O1", f"-I{PLUGIN}", str(d / "driver.cpp"), str(PLUGIN / "ti_fields.cpp"), "-o",
                    str(exe)], check=True, capture_output=True, text=True)

    def run(fields: dict) -> subprocess.CompletedProcess:
        path = d / "fields.bin"
        path.write_bytes(_encode(fields))
        return subprocess.run([str(exe), str(path)], capture_output=True, text=True)

    return run


def _module(C=96, grid=(5, 7), **kw):
    torch = pytest.importorskip("torch")
    from inti_edge.model.interpolation import InterpolationConfig, TokenInterpolation

    torch.manual_seed(0)
    return TokenInterpolation(C, grid, InterpolationConfig(**kw))


def _fields(m) -> dict:
    from inti_edge.plugin import kernels

    return kernels.module_fields(m)


def test_module_fields_are_the_spec_fields():
    m = _module(context_dim=24, dilations=(1, 3), groups=4, normalize="sigmoid", cls_mode="half")
    f = _fields(m)
    assert tuple(f) == SPEC_FIELDS
    assert f["w_in"].shape == (2 * 96, 24) and f["w_out"].shape == (24 * 3, 8)
    assert (f["softmax"], f["cls_mean"], f["groups"], f["dilations"]) == (0, 0, 4, [1, 3])


@pytest.mark.parametrize("kw", [{}, dict(context_dim=24, dilations=(2,), groups=3, normalize="sigmoid", cls_mode="half")])
def test_plugin_parses_module_fields(driver, kw):
    m = _module(C=72, grid=(7, 5), **kw)
    res = driver(_fields(m))
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    cfg = m.cfg
    assert lines[0] == (f"shape C=72 D={cfg.context_dim} S={len(cfg.dilations)} G={cfg.groups} grid=7x5 "
                        f"softmax={int(cfg.normalize == 'softmax')} cls_mean={int(cfg.cls_mode == 'mean')} eps=1e-05")
    fields = [ln.split()[1:] for ln in lines if ln.startswith("field ")]
    assert [f[0] for f in fields] == list(SPEC_FIELDS)  # serialised: every spec field, in spec order
    sizes = {k: (v.numel() if hasattr(v, "numel") else len(v) if isinstance(v, list) else 1) for k, v in _fields(m).items()}
    for name, typ, length in fields:
        assert int(length) == sizes[name], name
        assert int(typ) == (K_FLOAT32 if name in plugin_spec.WEIGHT_FIELDS + plugin_spec.FLOAT_FIELDS else K_INT32), name
    names = [ln.split()[1] for ln in lines if ln.startswith("name ")]
    assert names == list(SPEC_FIELDS)  # the creator's getFieldNames
    assert "roundtrip identical" in lines


def test_plugin_accepts_other_numeric_encodings_and_ignores_unknown_fields(driver):
    m = _module()
    f = _fields(m)
    f["grid_h"] = (K_INT64, 1, struct.pack("<q", 5))  # an INT64 attribute
    f["eps"] = (K_FLOAT64, 1, struct.pack("<d", 1e-5))
    f["plugin_version"] = (K_CHAR, 1, b"1")  # attributes the ONNX parser may pass along
    res = driver(f)
    assert res.returncode == 0, res.stdout
    assert res.stdout.startswith("shape C=96 D=32 S=3 G=1 grid=5x7")


@pytest.mark.parametrize("break_it, message", [
    (lambda f: f.pop("w_out"), "missing field w_out"),
    (lambda f: f.pop("grid_w"), "missing field grid_w"),
    (lambda f: f.update(b_out=f["b_out"][:1]), "b_out has 1 values"),
    (lambda f: f.update(groups=5), "not divisible by groups"),
    (lambda f: f.update(dilations=[1, 2, 3, 4, 5]), "dilations must hold 1 to 4 values"),
    (lambda f: f.update(dw_bias=f["dw_bias"][:1]), "dw_bias has"),
])
def test_plugin_refuses_malformed_fields(driver, break_it, message):
    f = _fields(_module())
    break_it(f)
    res = driver(f)
    assert res.returncode == 1 and message in res.stdout, res.stdout
