"""Build models from configs, load CLIP weights (``--pretrained``), save and load checkpoints.

A checkpoint is self-describing: it carries the model config, the class names and the
preprocessing, so ``load_checkpoint(path)`` needs nothing else.

Checkpoints are crash-safe: ``save_checkpoint`` writes a temp file, fsyncs it, renames it over the
target and fsyncs the folder, so a reader (or a run killed at any point) sees the old file or the whole
new one. The file is a plain ``torch.save`` zip archive whose zip comment holds the sha256 of the
archive (``inti-edge sha256:<hex>``): any ``torch.load`` still reads it, and ``read_checkpoint`` proves
it whole before loading. Files without that comment (older checkpoints, the bundled model) still load.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ..files import write_atomic
from .config import ModelConfig
from .video import InTIVideoModel

CHECKPOINT_FORMAT = "inti-edge-checkpoint"
CHECKPOINT_VERSION = 1


class PretrainedError(RuntimeError):
    """The --pretrained weights could not be had."""


class CheckpointError(RuntimeError):
    """A file is not a usable inti-edge checkpoint."""


def create_model(cfg: ModelConfig, pretrained: str | None = None) -> InTIVideoModel:
    """A fresh model; with ``pretrained``, its ViT takes CLIP weights (file path or open_clip tag)."""
    model = InTIVideoModel(cfg)
    if pretrained:
        load_clip_visual(model, pretrained)
    return model


def _visual_state_from_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input error
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            raise PretrainedError(f"cannot read weights file {path}: {e}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise PretrainedError(f"{path} holds no state dict")
    state = {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    # a whole open_clip CLIP model ('visual.*' keys), or a bare VisionTransformer
    if any(k.startswith("visual.") for k in state):
        state = {k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")}
    return state


def load_clip_visual(model: InTIVideoModel, pretrained: str) -> None:
    """Load CLIP ViT weights into ``model.visual``.

    ``pretrained`` is a local file (an open_clip / OpenAI CLIP state dict, whole model or visual
    tower; .pt/.bin/.safetensors) or an open_clip pretrained tag such as ``laion2b_s34b_b88k``
    (needs the model hub). Positional embeddings are resized when the image size differs.
    """
    cfg = model.cfg
    path = Path(pretrained).expanduser()
    if path.exists():
        state = _visual_state_from_file(path)
    else:
        name = cfg.vision.open_clip_name
        if name is None:
            raise PretrainedError(
                f"{pretrained!r} is no file, and model {cfg.name!r} has no open_clip architecture to take a tag for"
            )
        try:
            import open_clip

            clip = open_clip.create_model(name, pretrained=pretrained, device="cpu")
        except Exception as e:  # noqa: BLE001 - hub/network/tag errors all mean "cannot have it"
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise PretrainedError(
                f"cannot load open_clip weights {name}/{pretrained!r}: {msg}. "
                "Pass a local weights file instead (--pretrained path/to/open_clip_model.bin)"
            ) from None
        state = clip.visual.state_dict()
    own = model.visual.state_dict()
    pos = state.get("positional_embedding")
    if pos is not None and pos.shape != own["positional_embedding"].shape:
        state["positional_embedding"] = _resize_positions(pos, own["positional_embedding"].shape[0])
    bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if bad:
        raise PretrainedError(
            f"weights do not fit model {cfg.name!r} (shape mismatch in {bad[:3]}); "
            "is the file for this architecture?"
        )
    missing, unexpected = model.visual.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("attn_pool")]
    if missing:
        raise PretrainedError(f"weights lack {len(missing)} tensors of the ViT, e.g. {missing[:3]}")
    if not state:
        raise PretrainedError(f"{pretrained} holds no ViT weights")


def _resize_positions(pos: torch.Tensor, tokens: int) -> torch.Tensor:
    """(1 + g*g, C) positional embedding -> (tokens, C), bicubic on the grid."""
    import torch.nn.functional as F

    cls, grid = pos[:1], pos[1:]
    g_old, g_new = int(round(grid.shape[0] ** 0.5)), int(round((tokens - 1) ** 0.5))
    grid = grid.reshape(1, g_old, g_old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(g_new, g_new), mode="bicubic", align_corners=False)
    return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(g_new * g_new, -1)], dim=0)


# --- checkpoints -----------------------------------------------------------------------------------
def save_checkpoint(
    path: str | os.PathLike,
    model: InTIVideoModel,
    classes: list[str],
    extra: dict[str, Any] | None = None,
    half: bool = False,
    sampling: dict[str, Any] | None = None,
) -> Path:
    """Write a self-describing checkpoint atomically and durably (temp file, fsync, rename, fsync of
    the folder), sealed with the sha256 that ``read_checkpoint`` verifies.

    ``half`` stores floating-point weights as float16 (the bundled model); they load back as float32.
    ``sampling``: the temporal sampling of the training clips (``data.Sampling.to_dict()``), which
    `inti-edge run` repeats on streams.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(classes) != model.cfg.num_classes:
        raise ValueError(f"{len(classes)} class names for a model of {model.cfg.num_classes} classes")
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu() for k, v in model.state_dict().items()}
    obj = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": model.cfg.to_dict(),
        "classes": list(classes),
        "preprocess": preprocess_info(model.cfg),
        **({"sampling": dict(sampling)} if sampling else {}),
        "state_dict": state,
        **(extra or {}),
    }

    def write(f: BinaryIO) -> None:
        torch.save(obj, f)
        _seal(f)

    return write_atomic(path, write)


# --- crash-safe files ------------------------------------------------------------------------------
# The seal: a zip archive ends with its end-of-central-directory record (22 bytes, the last two the
# comment length) and an optional comment, which zip readers (torch.load included) skip. torch.save
# writes no comment; the seal sets the length and appends "inti-edge sha256:<hex>", the sha256 of the
# archive as torch.save wrote it (comment length still 0).
_ZIP_LOCAL, _ZIP_END, _ZIP_END_SIZE = b"PK\x03\x04", b"PK\x05\x06", 22
_SEAL = b"inti-edge sha256:"
_SEAL_SIZE = len(_SEAL) + 64

def _seal(f: BinaryIO) -> None:
    f.flush()
    size = f.seek(0, os.SEEK_END)
    f.seek(size - _ZIP_END_SIZE)
    end = f.read(_ZIP_END_SIZE)
    if end[:4] != _ZIP_END or end[-2:] != b"\0\0":
        raise RuntimeError("torch.save wrote no zip archive without comment; cannot seal the checkpoint")
    digest = _sha256(f, size - 2, b"\0\0")
    f.seek(size - 2)
    f.write(struct.pack("<H", _SEAL_SIZE) + _SEAL + digest.encode())


def _verify_seal(f: BinaryIO) -> bool | None:
    """True: sealed and whole; False: sealed but truncated or altered; None: never sealed (older file)."""
    size = f.seek(0, os.SEEK_END)
    n = min(size, _ZIP_END_SIZE + _SEAL_SIZE)
    f.seek(size - n)
    tail = f.read(n)
    # the last end record whose 22 bytes fit: a cut inside the comment moves it off its place
    at = tail.rfind(_ZIP_END, 0, len(tail) - _ZIP_END_SIZE + len(_ZIP_END))
    if at < 0:
        # the end record is damaged or cut off: a seal left in the tail still says the file was sealed
        return False if _SEAL in tail else None
    declared = struct.unpack("<H", tail[at + _ZIP_END_SIZE - 2 : at + _ZIP_END_SIZE])[0]
    comment = tail[at + _ZIP_END_SIZE :]
    if declared == 0 and not comment:
        return None
    if declared != _SEAL_SIZE or len(comment) != _SEAL_SIZE or not comment.startswith(_SEAL):
        return False  # a seal cut short or altered (torch.save writes no other comment)
    digest = _sha256(f, size - _SEAL_SIZE - 2, b"\0\0")
    return digest.encode() == comment[len(_SEAL) :]


def _sha256(f: BinaryIO, size: int, then: bytes) -> str:
    """sha256 of the first ``size`` bytes of ``f`` followed by ``then``, read in chunks (checkpoints
    with optimizer state run to gigabytes)."""
    h = hashlib.sha256()
    f.seek(0)
    left = size
    while left > 0:
        chunk = f.read(min(left, 1 << 22))
        if not chunk:
            break
        h.update(chunk)
        left -= len(chunk)
    h.update(then)
    return h.hexdigest()


def preprocess_info(cfg: ModelConfig) -> dict[str, Any]:
    """What a runtime needs to turn video into model input."""
    return {
        "frames": cfg.frames,
        "unit_frames": cfg.unit_frames,
        "image_size": cfg.vision.image_size,
        "resize": "short_side",
        "crop": "center",
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "layout": "B,T,3,H,W RGB float32 in [0,1], normalised (x - mean) / std",
    }


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's raw dict, checksum verified where it has one; raises CheckpointError with a
    one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    damaged = f"{path} is truncated or damaged ({{}}); use an intact copy or an earlier checkpoint, or retrain"
    try:
        with path.open("rb") as f:
            if _verify_seal(f) is False:
                raise CheckpointError(damaged.format("checksum mismatch"))
            f.seek(0)
            zipped = f.read(4) == _ZIP_LOCAL
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    if not zipped:  # every inti-edge checkpoint is a torch.save zip: anything else is not unpickled at all
        raise CheckpointError(_not_a_checkpoint(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only met a class or function it will not build: nothing ran
        raise CheckpointError(f"{path} holds Python objects other than weights: refused by the safe loader (no code in "
                              "it ran); give a checkpoint from `inti-edge train`") from None
    except Exception as e:  # noqa: BLE001 - an archive that cannot be read: cut short (no seal at its end) or corrupted
        raise CheckpointError(damaged.format(f"unreadable archive, {type(e).__name__}")) from None
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is a PyTorch file but not an inti-edge checkpoint (no inti-edge format tag: "
                              "another project's weights?); give a checkpoint from `inti-edge train`")
    if obj.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} has checkpoint version {obj['version']}; this inti-edge reads <= {CHECKPOINT_VERSION}")
    return obj


def _not_a_checkpoint(path: Path) -> str:
    """Why a file that torch cannot load as weights is not a checkpoint, from what it holds."""
    from ..artifact import KINDS, sniff

    kind = sniff(path)
    if kind == "empty":
        return f"{path}: empty file (0 bytes), not a checkpoint"
    if kind == "onnx":
        return f"{path} is an ONNX model, not a checkpoint: give the .pt it was exported from (or run it with `inti-edge run -m`)"
    if kind == "pickle":  # never unpickled: a pickle can run code when loaded
        return (f"{path} is a bare Python pickle, not a checkpoint archive: refused without loading it (no code in it "
                "ran); give a checkpoint from `inti-edge train`")
    return f"{path} is {KINDS[kind]}, not a checkpoint"


def load_checkpoint(path: str | os.PathLike) -> tuple[InTIVideoModel, dict[str, Any]]:
    """(model in eval mode, float32; the checkpoint dict without its state_dict)."""
    obj = read_checkpoint(path)
    cfg = ModelConfig.from_dict(obj["config"])
    model = InTIVideoModel(cfg)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in obj.pop("state_dict").items()}
    model.load_state_dict(state)
    return model.eval(), obj
