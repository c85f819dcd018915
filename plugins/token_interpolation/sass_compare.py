#!/usr/bin/env python3
"""Compares the SASS of the kernels two builds have in common, per kernel function (cuobjdump -sass), to check
without a GPU that a change to the kernel sources leaves the generated code alone.

    python plugins/token_interpolation/sass_compare.py OLD NEW --arch sm_90 --old-params OLD_SRC --new-params NEW_SRC

OLD / NEW: cubins, objects or shared libraries (libinti_plugins.so, the PyTorch extension's .so); a comma-
separated list is read as one build (e.g. ti_split.cubin,ti_fallback.cubin). --arch picks the architecture
of a fat binary. OLD_SRC / NEW_SRC: the file that defines `struct KParams` (the kernels' parameter block) in
each tree. Kernels match by name and template arguments (namespaces and the per-file anonymous namespace
ignored). Per kernel it prints one of:
  identical                           every instruction and its encoding the same;
  identical but for KParams offsets   the same once each parameter offset c[0x0][...] of the old layout is
                                      mapped to the new layout's offset of the same field (the encodings equal
                                      wherever no parameter is read; a 64-bit constant load must read the same
                                      two fields in both);
  DIFFERENT: ...                      the first instruction that differs;
and the resources (cuobjdump -res-usage) where they differ other than by the size of KParams. Exit status 1
if any kernel differs. cuobjdump: $CUOBJDUMP, else on PATH, else /usr/local/cuda/bin.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

PARAM_BASE = {"sm_80": 0x160, "sm_86": 0x160, "sm_87": 0x160, "sm_89": 0x160, "sm_90": 0x210}
POINTER_FIELDS = ("x", "out", "w_in", "b_in", "dw_w", "dw_b", "w_out", "b_out", "wpack", "wcolsum", "ws_u", "ws_w", "ws_wt")


def cuobjdump() -> str:
    for c in (os.environ.get("CUOBJDUMP"), shutil.which("cuobjdump"), "/usr/local/cuda/bin/cuobjdump"):
        if c and os.path.isfile(c):
            return c
    raise SystemExit("cuobjdump not found: set CUOBJDUMP")


def kparams_offsets(src: str) -> tuple[dict[str, int], int]:
    """{field or field[i]: byte offset} and sizeof(KParams), from the struct compiled with the host compiler."""
    m = re.search(r"struct KParams \{(.*?)\n\};", open(src).read(), re.S)
    if not m:
        raise SystemExit(f"no struct KParams in {src}")
    body = re.sub(r"//[^\n]*", "", m.group(1))
    fields = []
    for decl in filter(None, (d.strip() for d in body.split(";"))):
        for d in decl.split(","):
            name = re.search(r"(\w+)\s*(\[[^\]]*\])?$", d.strip())
            fields.append((name.group(1), name.group(2)))
    prog = ["#include <cstdio>", "#include <cstddef>", "struct uint4 { unsigned x, y, z, w; };",
            "constexpr int kTIMaxScales = 4;", "struct KParams {" + body + "};", "int main() {"]
    for name, arr in fields:
        if arr:
            prog.append(f'  for (int i = 0; i < int(sizeof(KParams::{name}) / sizeof(KParams::{name}[0])); ++i) '
                        f'std::printf("{name}[%d] %zu\\n", i, offsetof(KParams, {name}) + i * sizeof(KParams::{name}[0]));')
        else:
            prog.append(f'  std::printf("{name} %zu\\n", offsetof(KParams, {name}));')
    prog.append('  std::printf("sizeof %zu\\n", sizeof(KParams));\n}')
    cxx = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    with tempfile.TemporaryDirectory() as d:
        open(f"{d}/o.cpp", "w").write("\n".join(prog))
        subprocess.run([cxx, "-std=c++17", "-o", f"{d}/o", f"{d}/o.cpp"], check=True)
        out = subprocess.run([f"{d}/o"], capture_output=True, text=True, check=True).stdout
    offs = {l.split()[0]: int(l.split()[1]) for l in out.splitlines()}
    return offs, offs.pop("sizeof")


def kernel_key(mangled: str) -> str:
    """The kernel's name and template arguments, without its namespaces."""
    s = mangled[len("_ZN4inti"):] if mangled.startswith("_ZN4inti") else mangled
    m = re.match(r"(\d+)", s)
    if m and s[len(m.group(1)):].startswith("_GLOBAL__N_"):
        s = s[len(m.group(1)) + int(m.group(1)):]
    return re.sub(r"N(S\d*_|4inti)7KParamsE", "KParams", s)


def dump(files: str, what: str, arch: str) -> str:
    return "".join(subprocess.run([cuobjdump(), what, "-arch", arch, f], capture_output=True, text=True, check=True).stdout
                   for f in files.split(","))


def sass(files: str, arch: str) -> dict[str, list[tuple[str, str, str]]]:
    """{kernel: [(instruction, encoding word 1, encoding word 2)]}"""
    funcs, cur, pend = {}, None, None
    for line in dump(files, "-sass", arch).splitlines():
        m = re.match(r"\s*Function : (\S+)", line)
        if m:
            cur = kernel_key(m.group(1))
            funcs[cur] = []
        elif cur is not None:
            m = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*/\* (0x[0-9a-f]+) \*/\s*$", line)
            if m:
                pend = [m.group(2), m.group(3)]
                continue
            m = re.match(r"\s*/\* (0x[0-9a-f]+) \*/\s*$", line)
            if m and pend:
                funcs[cur].append((pend[0], pend[1], m.group(1)))
                pend = None
    return funcs


def resources(files: str, arch: str) -> dict[str, str]:
    res, cur = {}, None
    for line in dump(files, "-res-usage", arch).splitlines():
        m = re.match(r"\s*Function (\S+):", line)
        if m:
            cur = kernel_key(m.group(1))
        elif cur and "REG:" in line:
            res[cur] = re.sub(r"\s+", " ", line.strip())
            cur = None
    return res


def compare(a, b, omap, base, osz) -> str:
    if a == b:
        return "identical"
    if len(a) != len(b):
        n = next((i for i, (x, y) in enumerate(zip(a, b)) if x[0] != y[0]), min(len(a), len(b)))
        return (f"DIFFERENT: {len(a)} -> {len(b)} instructions; first difference at {n}: "
                f"{a[n][0] if n < len(a) else '-'}  |  {b[n][0] if n < len(b) else '-'}")
    for (ta, e1a, e2a), (tb, e1b, e2b) in zip(a, b):
        missing = []

        def remap(mo):
            reg, off = mo.group(1) or "", int(mo.group(2), 16)
            if base <= off < base + osz + 4:
                if off not in omap:
                    missing.append(off)
                    return mo.group(0)
                off = omap[off]
            return f"c[0x0][{reg}0x{off:x}]"

        tm = re.sub(r"c\[0x0\]\[(U?R\w+\+)?0x([0-9a-f]+)\]", remap, ta)
        if missing:
            return f"DIFFERENT: the old code reads offset 0x{missing[0]:x}, a field the new KParams lacks: {ta}"
        if ".64" in ta:
            for mo in re.finditer(r"c\[0x0\]\[0x([0-9a-f]+)\]", ta):
                off = int(mo.group(1), 16)
                if base <= off < base + osz and omap.get(off + 4) != omap.get(off, -8) + 4:
                    return f"DIFFERENT: a 64-bit read of 0x{off:x} pairs other fields in the new layout: {ta}"
        if tm != tb:
            return f"DIFFERENT: {ta}  |  {tb}"
        if tm == ta and (e1a, e2a) != (e1b, e2b):
            return f"DIFFERENT: encoding of {ta}: {e1a} {e2a} | {e1b} {e2b}"
    return "identical but for KParams offsets"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--arch", required=True, choices=sorted(PARAM_BASE))
    ap.add_argument("--old-params", required=True, help="the old tree's file with struct KParams")
    ap.add_argument("--new-params", required=True, help="the new tree's file with struct KParams")
    ap.add_argument("--only", help="regex: compare the kernels whose name matches")
    args = ap.parse_args()
    base = PARAM_BASE[args.arch]
    oo, osz = kparams_offsets(args.old_params)
    no, nsz = kparams_offsets(args.new_params)
    omap = {}  # old absolute constant-bank offset -> new, per 4-byte word of every field both layouts have
    for f, o in oo.items():
        if f in no:
            for k in range(0, 8 if f in POINTER_FIELDS else 4, 4):
                omap[base + o + k] = base + no[f] + k
    omap[base + osz] = base + nsz  # a kernel's int parameter after KParams
    old, new = sass(args.old, args.arch), sass(args.new, args.arch)
    ro, rn = resources(args.old, args.arch), resources(args.new, args.arch)
    common = sorted(k for k in new if k in old and (not args.only or re.search(args.only, k)))
    print(f"{args.arch}: {len(old)} kernels in OLD, {len(new)} in NEW, {len(common)} compared; only in NEW: "
          f"{sorted(k for k in new if k not in old) or 'none'}; KParams {osz} -> {nsz} bytes")
    bad = 0
    for k in common:
        tag = compare(old[k], new[k], omap, base, osz)
        # CONSTANT[0] holds the parameters: it may change by the size of KParams, nothing else may
        rko = re.sub(r"CONSTANT\[0\]:(\d+)", lambda m: f"CONSTANT[0]:{int(m.group(1)) - osz + nsz}", ro.get(k, ""))
        if rko != rn.get(k):
            tag += f"; resources {ro.get(k)} -> {rn.get(k)}"
        bad += not tag.startswith("identical") or "resources" in tag
        print(f"  {k}: {len(new[k])} instructions, {tag}")
    print(f"{args.arch}: {len(common) - bad} of {len(common)} kernels identical (or identical but for KParams offsets)"
          + (", resources equal" if not bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
