"""The InTI model: interpolation math, shapes, gradients, encoder/head split, FLOPs, determinism."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inti_edge.model import (
    CheckpointError,
    InterpolationConfig,
    InTIVideoModel,
    PretrainedError,
    TokenInterpolation,
    create_model,
    load_checkpoint,
    make_config,
    save_checkpoint,
)
from inti_edge.model.flops import flops as count_flops

ROOT = Path(__file__).resolve().parents[1]


def _op(C=16, grid=(3, 4), **kw) -> TokenInterpolation:
    torch.manual_seed(0)
    return TokenInterpolation(C, grid, InterpolationConfig(**kw))


def _randomise(op: TokenInterpolation) -> TokenInterpolation:
    """The zero-initialised output layer makes every weight 0.5; give it real values."""
    return op.randomize_(torch.Generator().manual_seed(0))


# --- the interpolation op -------------------------------------------------------------------------
def test_forced_weights_one_zero_give_the_first_frame_exactly():
    op = _op()
    with torch.no_grad():
        op.proj_out.bias.copy_(torch.tensor([100.0, -100.0]))  # logits (w0, w1) -> softmax (1, 0)
    x = torch.randn(5, 2, 13, 16)
    assert torch.equal(op(x), x[:, 0])
    with torch.no_grad():
        op.proj_out.bias.copy_(torch.tensor([-100.0, 100.0]))
    assert torch.equal(op(x), x[:, 1])


def test_fresh_op_averages_the_pair():
    op = _op()
    x = torch.randn(3, 2, 13, 16)
    torch.testing.assert_close(op(x), x.mean(dim=1), rtol=0, atol=1e-6)


@pytest.mark.parametrize("groups", [1, 4])
def test_softmax_weights_sum_to_one_and_blend_is_positionwise(groups):
    op = _randomise(_op(groups=groups))
    x = torch.randn(4, 2, 13, 16)
    w = op.weights(x)  # (P, N, G, 2)
    assert w.shape == (4, 13, groups, 2)
    torch.testing.assert_close(w.sum(-1), torch.ones(4, 13, groups))
    assert (w > 0).all() and w.std() > 0.01  # real, position-dependent weights
    out = op(x)
    xg = x.reshape(4, 2, 13, groups, 16 // groups)
    expect = (w[..., 0:1] * xg[:, 0] + w[..., 1:2] * xg[:, 1]).reshape(4, 13, 16)
    torch.testing.assert_close(out, expect)


def test_positions_never_mix():
    """A token at one position only ever blends with the token at the same position: where both
    frames agree at a position, the output there is that token, whatever the other positions hold."""
    op = _randomise(_op(C=16, grid=(4, 4)))
    x = torch.randn(2, 2, 17, 16)
    x[:, 1, 5] = x[:, 0, 5]  # position 5 (a patch) identical in both frames
    out = op(x)
    torch.testing.assert_close(out[:, 5], x[:, 0, 5], rtol=0, atol=1e-6)
    # and out at a position depends on the tokens of other positions only through the weights:
    # output lies between the two inputs, channel by channel
    lo, hi = torch.minimum(x[:, 0], x[:, 1]), torch.maximum(x[:, 0], x[:, 1])
    assert ((out >= lo - 1e-6) & (out <= hi + 1e-6)).all()


def test_context_uses_neighbours_at_several_scales():
    """Multi-scale: changing a token 3 positions away changes the weights (dilation 3 reaches it);
    the single-scale ablation (dilation 1) does not see that far."""
    x = torch.randn(1, 2, 1 + 7 * 7, 16)
    far = x.clone()
    far[:, :, 1 + 3 * 7 + 6] += 3 * torch.randn(2, 16)  # grid (3, 6); observe weights at grid (3, 3)
    centre = 1 + 3 * 7 + 3 - 1  # index into the patch weights (CLS excluded)
    for dil, sees in (((1, 2, 3), True), ((1,), False)):
        op = _randomise(_op(C=16, grid=(7, 7), dilations=dil))
        with torch.no_grad():
            op.proj_out.weight.normal_(std=1.0)
        d = (op.pair_weights(x) - op.pair_weights(far))[0, centre].abs().max().item()
        assert (d > 1e-4) == sees, (dil, d)


def test_sigmoid_ablation_and_cls_modes():
    op = _randomise(_op(normalize="sigmoid"))
    w = op.weights(torch.randn(2, 2, 13, 16))
    assert not torch.allclose(w.sum(-1), torch.ones_like(w.sum(-1)))
    op_mean = _randomise(_op())
    x = torch.randn(2, 2, 13, 16)
    w = op_mean.weights(x)
    torch.testing.assert_close(w[:, 0], w[:, 1:].mean(dim=1))  # CLS = mean of the patch weights
    op_half = _randomise(_op(cls_mode="half"))
    assert torch.equal(op_half.weights(x)[:, 0], torch.full((2, 1, 2), 0.5))


def test_bad_interpolation_config_is_refused():
    with pytest.raises(ValueError, match="normalize"):
        InterpolationConfig(normalize="tanh")
    with pytest.raises(ValueError, match="divisible"):
        TokenInterpolation(10, (2, 2), InterpolationConfig(groups=3))


# --- the video model ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "preset,frames,halvings",
    [("vit-b16", 8, 1), ("vit-b16", 16, 2), ("vit-l14", 8, 1), ("vit-l14", 16, 1), ("small", 8, 0), ("small", 8, 2)],
)
def test_shapes_for_every_config(preset, frames, halvings):
    cfg = make_config(preset, frames, halvings, num_classes=11)
    S = cfg.vision.image_size
    with torch.device("meta"):  # shapes only: ViT-L/14 without the compute
        model = InTIVideoModel(cfg)
        units = model.encode_units(torch.zeros(2, frames, 3, S, S))
        logits = model.head(units)
    E = cfg.vision.embed_dim
    assert units.shape == (2, frames // 2**halvings, cfg.unit_tokens, E)
    assert logits.shape == (2, 11)
    assert cfg.units == frames // 2**halvings


def test_mean_head_and_temporal_head_differ_in_order_awareness():
    """The temporal head sees the order of units (learned temporal positions); the mean head not."""
    torch.manual_seed(0)
    units = torch.randn(2, 4, 5, 192)
    rev = units.flip(1)
    for head, order_aware in (("temporal", True), ("mean", False)):
        model = create_model(make_config("small", 8, 1, num_classes=7, head=head)).eval()
        with torch.no_grad():
            if head == "temporal":
                model.head.time_pos.normal_(std=1.0)
            a, b = model.head(units), model.head(rev)
        assert a.shape == (2, 7)
        assert (not torch.allclose(a, b, atol=1e-5)) == order_aware, head


def test_schedule_and_config_errors():
    assert make_config("vit-b16").interp_after == (3,)
    assert make_config("vit-l14", halvings=2).interp_after == (6, 12)
    assert make_config("small", halvings=0).variant == "naive"
    with pytest.raises(ValueError, match="units"):
        make_config("small", frames=6, halvings=2)
    with pytest.raises(ValueError, match="unknown model"):
        make_config("vit-h14")


def test_gradients_reach_every_trainable_parameter():
    torch.manual_seed(0)
    model = create_model(make_config("small", 4, 1, num_classes=7)).train()
    for op in model.interps:
        _randomise(op)
    x = torch.randn(2, 4, 3, 112, 112)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([1, 3]))
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not dead, dead


@pytest.mark.parametrize("halvings,pooled_grid", [(0, 2), (1, 2), (2, 2), (1, 4)])
def test_clip_forward_equals_head_of_encoded_units(halvings, pooled_grid):
    torch.manual_seed(0)
    cfg = make_config("small", 8, halvings, num_classes=7, pooled_grid=pooled_grid)
    model = create_model(cfg).eval()
    for op in model.interps:
        _randomise(op)
    clip = torch.randn(3, 8, 3, 112, 112)
    encoder, head = model.split()
    with torch.no_grad():
        full = model(clip)
        u = cfg.unit_frames
        units = torch.stack([encoder(clip[:, i : i + u]) for i in range(0, 8, u)], dim=1)  # (B, U, K, E)
        split = head(units)
    assert units.shape == (3, cfg.units, cfg.unit_tokens, cfg.vision.embed_dim)
    err = (full - split).abs().max().item()
    assert err <= 1e-5, err


def test_determinism_under_a_seed():
    cfg = make_config("small", 4, 1, num_classes=5)

    def run():
        torch.manual_seed(123)
        m = create_model(cfg)
        x = torch.randn(2, 4, 3, 112, 112)
        return m(x)

    a, b = run(), run()
    assert torch.equal(a, b)
    torch.manual_seed(124)
    assert not torch.equal(a, create_model(cfg)(torch.randn(2, 4, 3, 112, 112)))


# --- checkpoints and pretrained -------------------------------------------------------------------
def test_checkpoint_round_trip_carries_config_classes_preprocessing(tmp_path):
    torch.manual_seed(0)
    cfg = make_config("small", 4, 1, num_classes=3)
    model = create_model(cfg).eval()
    classes = ["a", "b", "c"]
    path = save_checkpoint(tmp_path / "m.pt", model, classes, extra={"step": 7})
    loaded, meta = load_checkpoint(path)
    assert loaded.cfg == cfg and meta["classes"] == classes and meta["step"] == 7
    assert meta["preprocess"]["image_size"] == 112 and meta["preprocess"]["frames"] == 4
    x = torch.randn(1, 4, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    half = save_checkpoint(tmp_path / "h.pt", model, classes, half=True)
    assert half.stat().st_size < 0.6 * path.stat().st_size
    with torch.no_grad():
        assert (load_checkpoint(half)[0](x) - model(x)).abs().max() < 0.05
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp file


def test_checkpoint_errors_are_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="a text file, not a checkpoint"):
        load_checkpoint(bad)
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an inti-edge"):
        load_checkpoint(tmp_path / "other.pt")


def test_pretrained_from_a_local_clip_file(tmp_path):
    """A user's open_clip checkpoint ('visual.*' keys of a whole CLIP, other image size) loads."""
    torch.manual_seed(0)
    src_cfg = make_config("small", 4, 1, vision={"image_size": 224})  # 14x14 grid
    src = create_model(src_cfg)
    state = {f"visual.{k}": v for k, v in src.visual.state_dict().items()}
    state["text_projection"] = torch.zeros(3, 3)
    torch.save({"state_dict": state}, tmp_path / "clip.pt")
    cfg = make_config("small", 4, 1)  # 112 px: 7x7 grid, positions resized
    model = create_model(cfg, pretrained=str(tmp_path / "clip.pt"))
    assert torch.equal(model.visual.conv1.weight, src.visual.conv1.weight)
    assert model.visual.positional_embedding.shape == (50, 192)
    torch.testing.assert_close(model.visual.positional_embedding[0], src.visual.positional_embedding[0])


def test_pretrained_errors_are_clear(tmp_path):
    cfg = make_config("small", 4, 1)
    with pytest.raises(PretrainedError, match="no open_clip architecture"):
        create_model(cfg, pretrained="laion2b_s34b_b88k")
    (tmp_path / "junk.bin").write_bytes(b"junk")
    with pytest.raises(PretrainedError, match="cannot read"):
        create_model(cfg, pretrained=str(tmp_path / "junk.bin"))
    other = create_model(make_config("small", 4, 1, vision={"width": 128, "embed_dim": 128}))
    torch.save(other.visual.state_dict(), tmp_path / "other.pt")
    with pytest.raises(PretrainedError, match="do not fit"):
        create_model(cfg, pretrained=str(tmp_path / "other.pt"))


# --- FLOPs ----------------------------------------------------------------------------------------
def test_flops_vit_b16_one_halving_meets_the_goal():
    r = count_flops("vit-b16", 8, 1)
    assert 17.0 < r["naive_gflops"] / 8 < 18.0  # CLIP ViT-B/16 @224: ~17.6 GMACs per frame
    assert r["ratio"] <= 0.63  # the paper's 37.5% saving, weight network included
    assert r["weightnet_gflops"] > 0 and r["weightnet_fraction"] <= 0.01


def test_flops_two_halvings_and_vit_l14():
    two = count_flops("vit-b16", 8, 2)
    assert two["ratio"] < 0.52 and two["inti_gflops"] < count_flops("vit-b16", 8, 1)["inti_gflops"]
    large = count_flops("vit-l14", 16, 1)
    assert large["ratio"] <= 0.63 and large["weightnet_fraction"] <= 0.01
    assert large["naive_gflops"] > 4 * count_flops("vit-b16", 16, 1)["naive_gflops"]


def test_flops_cli_prints_one_json_object():
    out = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "flops", "--model", "small", "--frames", "8", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout
    r = json.loads(out)
    assert {"model", "frames", "inti_gflops", "naive_gflops", "ratio", "weightnet_gflops"} <= set(r)
    assert r["model"] == "small" and r["ratio"] < 0.65


def test_flops_cli_bad_model_is_one_line_error():
    p = subprocess.run([sys.executable, str(ROOT / "cli.py"), "flops", "--model", "nope"], capture_output=True, text=True)
    assert p.returncode == 2 and "unknown model" in p.stderr and "Traceback" not in p.stderr


def test_use_kernels_without_a_gpu_keeps_the_reference_path():
    torch.manual_seed(0)
    model = create_model(make_config("small", 4, 1, num_classes=3)).eval()
    x = torch.randn(1, 4, 3, 112, 112)
    with torch.no_grad():
        ref = model(x)
        model.use_kernels()  # CPU tensors: the CUDA kernel never applies
        assert torch.equal(model(x), ref)


def test_bundled_default_model_loads_and_is_what_the_card_says():
    import hashlib

    from inti_edge.defaults import DEFAULT_MODEL, DEFAULT_MODEL_SHA256

    assert hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest() == DEFAULT_MODEL_SHA256
    model, meta = load_checkpoint(DEFAULT_MODEL)
    assert meta["classes"] == ["static", "pan_left", "pan_right", "pan_up", "pan_down", "zoom_in", "zoom_out"]
    assert model.cfg.name == "small" and model.cfg.interp_after == (2,) and model.cfg.frames == 8
    card = (DEFAULT_MODEL.parent / "MODEL_CARD.md").read_text()
    assert DEFAULT_MODEL_SHA256 in card and f"{DEFAULT_MODEL.stat().st_size:,}" in card


def test_kernel_field_cache_key_follows_weights_also_for_inference_tensors():
    """The kernels cache the interpolation's fields per module until a weight changes; weights made under
    torch.inference_mode (how a runtime may load them) have no version counter and must still key."""
    from inti_edge.plugin.kernels import params_key

    w = torch.zeros(4)
    k0 = params_key([w])
    w.add_(1)  # in place: same storage, new version
    assert params_key([w]) != k0
    with torch.inference_mode():
        wi = torch.zeros(4)
        ki = params_key([wi])
    assert ki == params_key([wi]) and ki != params_key([torch.zeros(4)])
