"""The TokenInterpolation CUDA kernels (plugins/token_interpolation/ti_*.cu, via inti_edge.plugin.kernels)
against the PyTorch reference module, on a GPU. Skipped where no CUDA device is present (CPU CI).

The reference is the module evaluated in float64 on the same (rounded) input. On unit-scale inputs
(torch.randn) the max absolute error must stay under fp32 1e-5, fp16 1e-2, bf16 5e-2. On token-like
activations (per-token offsets and scales, a few channels x3: |x| up to ~20) the same tolerances
scale with the output's magnitude (x max(1, max|ref| / 4)): absolute rounding of the output alone is
then ~1e-6 in fp32. Every module has random, non-trivial weights (a fresh module's zero W_out would
make every weight 1/2 and hide the context network).
"""

from __future__ import annotations

import copy
import zlib

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

from inti_edge.plugin import kernels  # noqa: E402
from inti_edge.model.interpolation import InterpolationConfig, TokenInterpolation  # noqa: E402

TOL = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 5e-2}
F32, F16, BF16 = torch.float32, torch.float16, torch.bfloat16

ODD = dict(context_dim=16, dilations=(2,), normalize="sigmoid", groups=3, cls_mode="half")
CASES = {
    # id: (dtype, P, grid, C, InterpolationConfig kwargs)
    "vitb16-f32": (F32, 4, (14, 14), 768, {}),
    "vitb16-f16": (F16, 4, (14, 14), 768, {}),
    "vitb16-bf16": (BF16, 4, (14, 14), 768, {}),
    "vitb16-f16-P128": (F16, 128, (14, 14), 768, {}),
    "vitl14-f32": (F32, 3, (16, 16), 1024, {}),
    "vitl14-f16": (F16, 3, (16, 16), 1024, {}),
    "odd-7x5-c72-g3-sigmoid-clshalf-dil2-f32": (F32, 3, (7, 5), 72, ODD),
    "odd-7x5-c72-g3-sigmoid-clshalf-dil2-f16": (F16, 3, (7, 5), 72, ODD),
    "odd-5x7-c100-g4-d24-f16": (F16, 2, (5, 7), 100, dict(context_dim=24, dilations=(1, 3), groups=4)),
    "odd-5x7-c100-g4-d24-f32": (F32, 2, (5, 7), 100, dict(context_dim=24, dilations=(1, 3), groups=4)),
    "single-dilation-d64-9x11-c200-f16": (F16, 2, (9, 11), 200, dict(context_dim=64, dilations=(1,))),
    "d8-g2-dil1,4-6x6-c96-f32": (F32, 2, (6, 6), 96, dict(context_dim=8, dilations=(1, 4), groups=2)),
    "dilation-past-grid-3x4-c40-f32": (F32, 2, (3, 4), 40, dict(dilations=(5, 1, 2))),
    "grid-1x1-c64-f16": (F16, 2, (1, 1), 64, {}),
    # split path: partial last 16-byte chunk of a row, C below one chunk, D > 64 (two column blocks)
    "d96-g2-6x5-c136-f16": (F16, 3, (6, 5), 136, {"context_dim": 96, "groups": 2}),
    "d80-4x5-c52-f32": (F32, 3, (4, 5), 52, {"context_dim": 80, "dilations": (1, 2)}),
    "c24-4x4-bf16": (BF16, 2, (4, 4), 24, {"context_dim": 8}),
}


def random_module(C: int, grid, cfg_kw: dict, seed: int) -> TokenInterpolation:
    gen = torch.Generator().manual_seed(seed)
    return TokenInterpolation(C, grid, InterpolationConfig(**cfg_kw)).randomize_(gen).eval().cuda()

def random_input(P: int, N: int, C: int, dtype, seed: int) -> torch.Tensor:
    gen = torch.Generator(device="cuda").manual_seed(seed)
    return torch.randn(P, 2, N, C, generator=gen, device="cuda").to(dtype)


def tokenlike_input(P: int, N: int, C: int, dtype, seed: int) -> torch.Tensor:
    """Token-like activations: per-token offset and scale, some large channels."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(P, 2, N, C, generator=gen, device="cuda") * (0.5 + torch.rand(P, 2, N, 1, generator=gen, device="cuda"))
    x += torch.randn(P, 2, N, 1, generator=gen, device="cuda") * 0.5
    x[..., :: max(1, C // 7)] *= 3.0
    return x.to(dtype)


def reference(m: TokenInterpolation, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return copy.deepcopy(m).double()(x.double())


def max_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    assert torch.isfinite(y).all(), "non-finite output (unwritten or overflow)"
    return (y.double() - ref).abs().max().item()


@pytest.fixture(scope="module", autouse=True)
def _built():
    assert kernels.available(), f"CUDA present but the extension did not build: {kernels.load_error()}"


def _sm90() -> bool:
    return torch.cuda.get_device_capability()[0] >= 9


# mode: (path, variant); "split": the split path (streaming kernels; where C*sizeof(dtype) % 16 != 0 it
# falls back). The fused (token / channel) and tile paths and their tests moved out of the build with them
# (branch exp/fused-tile-paths, plugins/README.md).
MODES = {"auto": ("auto", "auto"), "fallback": ("fallback", "auto"), "split": ("auto", "split")}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("mode", list(MODES))
def test_kernel_matches_reference(case, mode):
    dtype, P, grid, C, kw = CASES[case]
    path, variant = MODES[mode]
    m = random_module(C, grid, kw, seed=zlib.crc32(case.encode()) % 1000)
    x = random_input(P, 1 + grid[0] * grid[1], C, dtype, seed=7)
    with torch.no_grad():
        y = kernels.token_interpolation(x, m, path=path, variant=variant)
    assert y.shape == (P, x.shape[2], C) and y.dtype == dtype
    err = max_err(y, reference(m, x))
    plan = kernels.plan(x, m, path=path, variant=variant)
    print(f"{case} [{mode} -> {plan['path']} {plan['variant']} slice={plan['slice']}] max|err|={err:.3g}")
    assert err <= TOL[dtype], f"{case} {mode} ({plan}): max|err| {err:.3g} > {TOL[dtype]}"


@pytest.mark.parametrize("case", ["vitb16-f32", "vitb16-f16", "vitl14-f32", "vitl14-f16", "vitb16-bf16"])
@pytest.mark.parametrize("path", ["auto", "fallback", "split"])
def test_tokenlike_activations(case, path):
    dtype, P, grid, C, kw = CASES[case]
    m = random_module(C, grid, kw, seed=zlib.crc32(case.encode()) % 1000)
    x = tokenlike_input(P, 1 + grid[0] * grid[1], C, dtype, seed=8)
    path, variant = MODES[path]
    with torch.no_grad():
        y = kernels.token_interpolation(x, m, path=path, variant=variant)
    ref = reference(m, x)
    tol = TOL[dtype] * max(1.0, ref.abs().max().item() / 4)
    err = max_err(y, ref)
    print(f"token-like {case} [{path}] max|ref|={ref.abs().max().item():.1f} max|err|={err:.3g} tol={tol:.2g}")
    assert err <= tol


def test_fast_path_is_taken_on_vit_shapes():
    """On Hopper the vit-b16 / vit-l14 shapes run their default fast path (split, every dtype), not the
    fallback."""
    if not _sm90():
        pytest.skip("the defaults were measured on sm_90")
    for C, grid in ((768, (14, 14)), (1024, (16, 16))):
        for dtype in (F32, F16, BF16):
            m = random_module(C, grid, {}, seed=1)
            x = random_input(2, 1 + grid[0] * grid[1], C, dtype, seed=1)
            plan = kernels.plan(x, m)
            assert (plan["path"], plan["variant"]) == ("split", "split"), (C, dtype, plan)


def test_split_path_is_planned_and_deterministic():
    """variant="split" runs the split path on any GPU where C*sizeof(dtype) % 16 == 0; its result is
    bit-identical run to run (fixed reduction orders); P=1 and a partial last projection tile."""
    m = random_module(768, (14, 14), {}, seed=6)
    for dtype in (F32, F16, BF16):
        for P in (1, 3):
            x = random_input(P, 197, 768, dtype, seed=6)
            plan = kernels.plan(x, m, variant="split")
            assert plan["path"] == "split" and plan["variant"] == "split", plan
            with torch.no_grad():
                a = kernels.token_interpolation(x, m, variant="split")
                b = kernels.token_interpolation(x, m, variant="split")
            assert torch.equal(a, b)
            assert max_err(a, reference(m, x)) <= TOL[dtype]
    x = random_input(2, 36, 100, F16, seed=6)  # 200-byte rows: not 16-byte vectors -> fallback
    assert kernels.plan(x, random_module(100, (5, 7), {}, seed=6), variant="split")["path"] == "fallback"


@pytest.mark.parametrize("weights", ["lane", "warp"])
@pytest.mark.parametrize("case", ["vitb16-f32", "vitb16-f16", "vitl14-f16", "odd-7x5-c72-g3-sigmoid-clshalf-dil2-f32",
                                  "odd-5x7-c100-g4-d24-f16", "single-dilation-d64-9x11-c200-f16",
                                  "d8-g2-dil1,4-6x6-c96-f32", "dilation-past-grid-3x4-c40-f32", "grid-1x1-c64-f16"])
def test_split_weights_kernels(case, weights, monkeypatch):
    """The split path with each of its weights kernels (INTI_TI_SP_WEIGHTS: lane, the default where its tile
    fits; warp, the fallback) against the reference, and bit-identical run to run."""
    monkeypatch.setenv("INTI_TI_SP_WEIGHTS", weights)
    dtype, P, grid, C, kw = CASES[case]
    m = random_module(C, grid, kw, seed=zlib.crc32(case.encode()) % 1000)
    x = random_input(P, 1 + grid[0] * grid[1], C, dtype, seed=12)
    if kernels.plan(x, m, variant="split")["path"] != "split":
        pytest.skip("split path cannot run this case")
    with torch.no_grad():
        a = kernels.token_interpolation(x, m, variant="split")
        b = kernels.token_interpolation(x, m, variant="split")
    assert torch.equal(a, b)
    err = max_err(a, reference(m, x))
    assert err <= TOL[dtype], f"{case} {weights}: max|err| {err:.3g}"


@pytest.mark.parametrize("weights", ["lane", "warp"])
def test_split_path_pdl_matches_plain_launches(weights, monkeypatch):
    """The split path's kernels after the first start as programmatic dependents of the one before (sm_90+):
    the output is bit-identical to plain launches (INTI_TI_PDL=0) and to the reference within tolerance, for
    every dtype, P=1 and many pairs, a grid with a partial band, and back-to-back calls on one workspace."""
    monkeypatch.setenv("INTI_TI_SP_WEIGHTS", weights)
    for C, grid, dtype, P in ((768, (14, 14), F16, 256), (768, (14, 14), F32, 64), (1024, (16, 16), BF16, 3),
                              (96, (9, 11), F16, 1), (96, (9, 11), F32, 5)):
        m = random_module(C, grid, {}, seed=C + P)
        x = random_input(P, 1 + grid[0] * grid[1], C, dtype, seed=P)
        assert kernels.plan(x, m, variant="split")["path"] == "split"
        with torch.no_grad():
            a = [kernels.token_interpolation(x, m, variant="split") for _ in range(3)]
            monkeypatch.setenv("INTI_TI_PDL", "0")
            b = kernels.token_interpolation(x, m, variant="split")
            monkeypatch.delenv("INTI_TI_PDL")
        for r in a:
            assert torch.equal(r, b), (C, grid, dtype, P)
        assert max_err(b, reference(m, x)) <= TOL[dtype]


@pytest.mark.parametrize("dtype", [F16, F32])
def test_split_path_captured_in_cuda_graph(dtype):
    """The split path (programmatic dependent launches on sm_90+) captured in a CUDA graph, as TensorRT and
    PyTorch do: replays on new input equal eager calls bit for bit."""
    m = random_module(768, (14, 14), {}, seed=21)
    x = random_input(8, 197, 768, dtype, seed=21)
    with torch.no_grad():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the capture: extension, cached weights
            kernels.token_interpolation(x, m, variant="split")
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            y = kernels.token_interpolation(x, m, variant="split")
        for seed in (22, 23):
            x2 = random_input(8, 197, 768, dtype, seed=seed)
            x.copy_(x2)
            g.replay()
            torch.cuda.synchronize()
            assert torch.equal(y, kernels.token_interpolation(x2, m, variant="split")), seed


def test_deterministic_and_stream_ordered():
    m = random_module(768, (14, 14), {}, seed=5)
    x = random_input(16, 197, 768, F16, seed=5)
    with torch.no_grad():
        a = kernels.token_interpolation(x, m)
        s = torch.cuda.Stream()
        with torch.cuda.stream(s):
            b = kernels.token_interpolation(x, m)
        s.synchronize()
    assert torch.equal(a, b)


def test_matches_module_in_its_own_dtype():
    """As the model would use it: module and kernel on the same fp16 input agree closely."""
    m = random_module(768, (14, 14), {}, seed=9)
    x = random_input(4, 197, 768, F16, seed=9)
    with torch.no_grad():
        y = kernels.token_interpolation(x, m)
        y_mod = copy.deepcopy(m).half()(x)
    assert (y.float() - y_mod.float()).abs().max().item() < 2e-2


def test_weights_cache_follows_parameter_updates():
    m = random_module(96, (6, 6), dict(context_dim=8), seed=2)
    x = random_input(2, 37, 96, F32, seed=2)
    with torch.no_grad():
        y1 = kernels.token_interpolation(x, m)
        m.proj_out.bias.add_(torch.tensor([1.0, -1.0], device="cuda"))  # in-place: version bump
        y2 = kernels.token_interpolation(x, m)
    assert not torch.allclose(y1, y2)
    assert max_err(y2, reference(m, x)) <= TOL[F32]


def test_rejects_bad_input():
    m = random_module(96, (6, 6), dict(context_dim=8), seed=2)
    with pytest.raises(ValueError):
        kernels.token_interpolation(torch.zeros(2, 2, 36, 96, device="cuda"), m)  # N != 1 + 6*6
    with pytest.raises(ValueError):
        kernels.token_interpolation(torch.zeros(2, 2, 37, 95, device="cuda"), m)  # C != width
    with pytest.raises(TypeError):
        kernels.token_interpolation(torch.zeros(2, 2, 37, 96, device="cuda", dtype=torch.float64), m)
    with pytest.raises(RuntimeError):
        kernels.token_interpolation(torch.zeros(2, 2, 37, 96, device="cuda", requires_grad=True), m)


def test_video_model_fast_path_matches_reference_path():
    """InTIVideoModel.use_kernels(): inference with the kernel equals the reference path (fp32)."""
    from inti_edge.model import create_model, make_config

    torch.manual_seed(0)
    model = create_model(make_config("small", 8, 2, num_classes=7)).eval()
    for op in model.interps:
        op.randomize_()
    model.cuda()
    clip = torch.randn(3, 8, 3, 112, 112, device="cuda")
    with torch.no_grad():
        ref = model(clip)
        assert model.use_kernels()
        fast = model(clip)
    model.use_kernels(False)
    assert (fast - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())
