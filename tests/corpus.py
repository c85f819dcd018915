"""Bad, damaged and odd inputs, made on the fly from the committed clips (nothing binary is committed).

Each maker takes a folder and returns the path it wrote. tests/test_reliability.py runs every
command on them; RELIABILITY.md is generated from the same list.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import av
import numpy as np

DATA = Path(__file__).resolve().parent / "data"
BBB = DATA / "bbb_8s_160x90.mp4"  # h264 in mp4, 160x90, 24 fps, 8 s, a keyframe every 2 s
SOCCER = DATA / "soccer_juggling_4s_160x120.avi"  # mpeg4 in AVI, 160x120, 29.97 fps, 4 s


def _frames(src: Path = BBB):
    with av.open(str(src)) as c:
        for f in c.decode(video=0):
            yield f


def encode(dst: Path, *, width: int = 160, height: int = 90, fps: float = 24.0, seconds: float | None = None,
           codec: str = "libx264", times: list[float] | None = None, rotate: float | None = None,
           movflags: str | None = None, gop: int = 48, src: Path = BBB, pix_fmt: str = "yuv420p") -> Path:
    """Frames of ``src`` re-encoded (``inti_edge.data.transcode.retime``): size, rate, length; ``times``
    (s) gives each frame's own time (variable rate, gaps; no B-frames then, so packets keep them);
    ``rotate`` sets a display matrix (degrees); ``movflags`` e.g. faststart."""
    from inti_edge.data.transcode import retime

    options = {"bf": "0"} if codec == "libx264" and times is not None else {}
    return retime(src, dst, width=width, height=height, fps=fps, seconds=seconds, times=times, codec=codec,
                  options=options, gop=gop, pix_fmt=pix_fmt, rotate=rotate,
                  container_options={"movflags": movflags} if movflags else None)


# --- the makers ---------------------------------------------------------------------------------------
def missing(d: Path) -> Path:
    return d / "no_such_video.mp4"


def folder(d: Path) -> Path:
    p = d / "a_folder"
    p.mkdir(exist_ok=True)
    return p


def empty(d: Path) -> Path:
    p = d / "empty.mp4"
    p.write_bytes(b"")
    return p


def text_as_video(d: Path) -> Path:
    p = d / "notes.mp4"
    p.write_text("these are not the frames you are looking for\n" * 20)
    return p


def random_bytes(d: Path) -> Path:
    p = d / "noise.mp4"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    return p


def first_half(src: Path, dst: Path) -> Path:
    """``src`` cut after half its bytes (a copy that stopped, a download cut short)."""
    b = src.read_bytes()
    dst.write_bytes(b[: len(b) // 2])
    return dst


def truncated_moov_at_end(d: Path) -> Path:
    """An mp4 cut at 50% whose index (moov) sat at the end: nothing can be read."""
    return first_half(encode(d / "_full_moov_end.mp4", seconds=8), d / "cut_moov_at_end.mp4")


def truncated_faststart(d: Path) -> Path:
    """An mp4 with its index first (faststart), cut at 50%: the first half decodes."""
    return first_half(encode(d / "_full_faststart.mp4", seconds=8, movflags="faststart"), d / "cut_faststart.mp4")


def audio_only(d: Path) -> Path:
    p = d / "tone.m4a"
    with av.open(str(p), mode="w") as out:
        st = out.add_stream("aac", rate=16000)
        t = np.arange(16000 * 2) / 16000
        samples = (0.2 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)[None]
        for i in range(0, samples.shape[1], 1024):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, i : i + 1024]), format="fltp", layout="mono")
            fr.sample_rate = 16000
            for pk in st.encode(fr):
                out.mux(pk)
        for pk in st.encode(None):
            out.mux(pk)
    return p


def still_image(d: Path) -> Path:
    from PIL import Image

    p = d / "frame.png"
    Image.fromarray(next(_frames()).to_ndarray(format="rgb24")).save(p)
    return p


def one_frame(d: Path) -> Path:
    return encode(d / "one_frame.mp4", seconds=1 / 24)


def half_second(d: Path) -> Path:
    return encode(d / "half_second.mp4", seconds=0.5)


def corrupt_packets(d: Path) -> Path:
    """h264 with every 5th frame's payload overwritten by noise (in the middle of the file)."""
    src = encode(d / "_clean.mkv", seconds=8, gop=24)
    p = d / "corrupt_packets.mkv"
    rng = np.random.default_rng(1)
    with av.open(str(src)) as cin, av.open(str(p), mode="w") as cout:
        sin = cin.streams.video[0]
        sout = cout.add_stream_from_template(sin)
        for i, pk in enumerate(cin.demux(sin)):
            if pk.size == 0:
                continue
            if 40 <= i < 150 and i % 5 == 0 and not pk.is_keyframe:
                data = bytearray(bytes(pk))
                noise = rng.integers(0, 256, len(data) - 8, dtype=np.uint8).tobytes()
                data[8:] = noise
                new = av.Packet(bytes(data))
                new.pts, new.dts, new.time_base, new.duration = pk.pts, pk.dts, pk.time_base, pk.duration
                pk = new
            pk.stream = sout
            cout.mux(pk)
    return p


def tiny_16px(d: Path) -> Path:
    return encode(d / "tiny_16x16.mp4", width=16, height=16, seconds=8)


def rotated(d: Path) -> Path:
    """A portrait phone clip: 160x90 pixels stored with a display matrix that turns them 90 degrees."""
    return encode(d / "rotated_90.mp4", seconds=8, rotate=90)


def variable_rate(d: Path) -> Path:
    rng = np.random.default_rng(2)
    times = np.cumsum(rng.uniform(1 / 40, 1 / 12, 200))
    return encode(d / "vfr.mkv", times=list(times - times[0]))


def time_gap(d: Path) -> Path:
    """8 s at 24 fps with 2 s missing in the middle (a camera that stalled)."""
    t = np.arange(192) / 24
    t[96:] += 2.0
    return encode(d / "gap_2s.mkv", times=list(t))


def ten_bit(d: Path) -> Path:
    if "libx265" in av.codecs_available:
        return encode(d / "hevc_10bit.mkv", seconds=8, codec="libx265", pix_fmt="yuv420p10le")
    return encode(d / "h264_422.mkv", seconds=8, pix_fmt="yuv422p")


def mjpeg_avi(d: Path) -> Path:
    return encode(d / "mjpeg.avi", seconds=8, codec="mjpeg", pix_fmt="yuvj420p")


# --- model files --------------------------------------------------------------------------------------
def onnx_named_pt(d: Path, onnx_file: Path) -> Path:
    p = d / "model_is_onnx.pt"
    p.write_bytes(onnx_file.read_bytes())
    return p


def checkpoint_named_onnx(d: Path, ckpt: Path) -> Path:
    p = d / "checkpoint.onnx"
    p.write_bytes(ckpt.read_bytes())
    return p


def truncated_checkpoint(d: Path, ckpt: Path) -> Path:
    return first_half(ckpt, d / "truncated.pt")


def text_as_checkpoint(d: Path) -> Path:
    p = d / "notes.pt"
    p.write_text("not a checkpoint\n")
    return p


def foreign_checkpoint(d: Path) -> Path:
    """A PyTorch file of another project: a bare state dict."""
    import torch

    p = d / "resnet_state.pt"
    torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3), "fc.bias": torch.zeros(10)}, p)
    return p


class _Payload:
    """Unpickling this runs code (it would write the canary file)."""

    def __init__(self, canary: Path):
        self.canary = str(canary)

    def __reduce__(self):
        return (Path.write_text, (Path(self.canary), "code ran"))


def malicious_pickle(d: Path) -> Path:
    p = d / "malicious.pt"
    with open(p, "wb") as f:
        pickle.dump({"format": "inti-edge-checkpoint", "x": _Payload(d / "CANARY")}, f)
    return p


def malicious_zip_checkpoint(d: Path) -> Path:
    """A real torch.save archive, inti-edge's format tag and all, that runs code when unpickled unsafely."""
    import torch

    p = d / "malicious_archive.pt"
    torch.save({"format": "inti-edge-checkpoint", "version": 1, "x": _Payload(d / "CANARY")}, p)
    return p


def onnx_without_metadata(d: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Identity", ["a"], ["b"])], "g",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])])
    p = d / "plain.onnx"
    onnx.save(helper.make_model(g), str(p))
    return p


def onnx_external_data_outside(d: Path, onnx_file: Path) -> Path:
    """An inti-edge ONNX whose weights point to a file outside its folder (../../etc/passwd)."""
    import onnx
    from onnx.external_data_helper import set_external_data

    m = onnx.load(str(onnx_file))
    init = max(m.graph.initializer, key=lambda t: len(t.raw_data))
    set_external_data(init, location="../../../../../../etc/passwd")
    init.ClearField("raw_data")
    out = d / "evil"
    out.mkdir(exist_ok=True)
    p = out / "model.onnx"
    onnx.save(m, str(p))
    return p
