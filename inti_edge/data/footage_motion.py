"""The footage's own global motion: how the picture itself moves between frames (phase correlation).

The camera-motion task labels a clip by the motion a viewer sees, which is the virtual window's move
composed with the footage's own camera motion (``motion.py``, ``MotionConfig.labels``). That needs
the footage's motion between any two frames of a clip, thousands of times a second in DataLoader
workers, so it is measured once per video (``FrameStore.motion()``): for every frame p, from p to
p + k, k frames being about one sampling step (1/6 s), on grey thumbnails of short side ``THUMB`` px,
by phase correlation (torch's FFT, Hann window, the peak refined to sub-pixel from its neighbours,
Foroosh et al. 2002). A clip's motion is the sum of the hops between its first and last frame.

Per hop it measures
- the translation of the whole picture (the content moves by (dx, dy) px: a camera panning right
  moves the content left);
- a scale change, from the translations of the four quadrants (a zoom in moves them apart);
- ``ambiguity``: the second-highest peak of the correlation over the highest (0: one clear motion;
  near 1: competing motions, e.g. a large foreground object moving against the background, or a
  frame with no texture). The task redraws a clip whose footage is ambiguous.
Costs: Big Buck Bunny at 284x160 (14,315 frames): see MODEL_CARD.md (seconds, once per process);
memory: four floats per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

THUMB = 64  # px: short side of the grey thumbnails the motion is measured on
PEAK_GUARD = 2  # px: the neighbourhood of the main peak left out when looking for the second peak
MAX_RATE = 0.1  # largest scale change per frame of a pair taken as real (|log scale|)


def grey_thumbs(frames, short: int = THUMB, chunk: int = 512) -> np.ndarray:
    """uint8 (N, 3, H, W) frames (a torch tensor, any device) -> float32 (N, h, w) grey, short side
    ``short`` (area filter, never up)."""
    import torch
    import torch.nn.functional as F

    N, _, H, W = frames.shape
    k = min(H, W) / max(1, min(short, min(H, W)))
    h, w = max(8, round(H / k)), max(8, round(W / k))
    out = np.empty((N, h, w), np.float32)
    for i in range(0, N, chunk):
        x = frames[i : i + chunk].float().mean(1, keepdim=True)  # (n, 1, H, W)
        if (h, w) != (H, W):
            x = F.interpolate(x, size=(h, w), mode="area")
        out[i : i + chunk] = x[:, 0].cpu().numpy()
    return out


def _spectra(x) -> "torch.Tensor":
    """rfft2 of (n, h, w) frames (numpy or torch), each mean-removed and Hann-windowed (torch's FFT:
    all CPU threads)."""
    import torch

    x = torch.as_tensor(x, dtype=torch.float32)
    h, w = x.shape[-2:]
    win = torch.hann_window(h, periodic=False)[:, None] * torch.hann_window(w, periodic=False)[None]
    return torch.fft.rfft2((x - x.mean((-2, -1), keepdim=True)) * win)


def correlate(fa, fb, shape: tuple[int, int], ambiguity: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phase correlation of spectra ``fa`` -> ``fb`` (n pairs of ``_spectra``): (d (n, 2) px, the content
    displacement x, y from a to b, sub-pixel; peak (n,); ambiguity (n,) second peak / peak, zeros
    unless ``ambiguity``)."""
    import torch

    h, w = shape
    r = fb * fa.conj()
    corr = torch.fft.irfft2(r / (r.abs() + 1e-9), s=(h, w))  # (n, h, w): a peak at the displacement
    n = corr.shape[0]
    flat = corr.reshape(n, -1)
    peak, i = flat.max(1)
    py, px = i // w, i % w
    rows = torch.arange(n)

    def vertex(lo, mid, hi):  # sub-pixel offset of the peak from its larger neighbour (Foroosh et al. 2002)
        right = hi >= lo
        side = torch.where(right, hi, lo).clamp(min=0.0)
        off = side / (side + mid).clamp(min=1e-12)
        return torch.where(right, off, -off).clamp(-0.5, 0.5)

    ox = vertex(corr[rows, py, (px - 1) % w], peak, corr[rows, py, (px + 1) % w])
    oy = vertex(corr[rows, (py - 1) % h, px], peak, corr[rows, (py + 1) % h, px])
    dx = torch.where(px > w // 2, px - w, px) + ox
    dy = torch.where(py > h // 2, py - h, py) + oy
    amb = torch.zeros(n)
    if ambiguity:
        g = torch.arange(-PEAK_GUARD, PEAK_GUARD + 1)
        corr[rows[:, None, None], ((py[:, None] + g)[:, :, None]) % h, ((px[:, None] + g)[:, None, :]) % w] = -float("inf")
        amb = (corr.reshape(n, -1).max(1).values / peak.clamp(min=1e-9)).clamp(0.0, 1.0)
    return torch.stack([dx, dy], 1).double().numpy(), peak.double().numpy(), amb.double().numpy()


def pair_shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The content displacement (dx, dy) px from grey frame ``a`` to grey frame ``b`` (same shape)."""
    d, _, _ = correlate(_spectra(a[None]), _spectra(b[None]), a.shape)
    return float(d[0, 0]), float(d[0, 1])


@dataclass
class FootageMotion:
    """The motion of a video's frames, in the pixels of its store.

    ``shift[p]``: where content of frame p has moved by frame p + ``hop`` (N, 2; 0 past the end);
    ``log_scale[p]``: the log of the picture's scale change over that hop (> 0: the content grows, as
    in a zoom in); ``ambiguity[p]``: its ambiguity. Hops of about one sampling step (``hop`` frames):
    few terms to sum over a clip (little drift), moves large enough to measure, and summed the way a
    clip samples its frames; what is left of a span after whole hops counts as that share of a hop."""

    hop: int
    shift: np.ndarray
    log_scale: np.ndarray
    ambiguity: np.ndarray
    width: int  # px of the store
    height: int

    def __post_init__(self) -> None:
        # sums along each chain p, p + hop, p + 2 hop, ... (Python lists: a clip's look-up is a few
        # list reads, ~10 us, in every DataLoader worker)
        k = self.hop
        table = np.concatenate([self.shift, self.log_scale[:, None], self.ambiguity[:, None]], 1)  # (N, 4)
        chain = table.copy()
        for r in range(k):
            chain[r::k] = np.cumsum(table[r::k], 0)
        self._hop = table.tolist()
        self._chain = chain.tolist()

    def between(self, p0: int, p1: int) -> tuple[float, float, float, float]:
        """(dx, dy, log scale, ambiguity) from frame p0 to frame p1 (store px; the hops' mean ambiguity)."""
        if p1 < p0:
            dx, dy, ls, amb = self.between(p1, p0)
            return -dx, -dy, -ls, amb
        k = self.hop
        n, r = divmod(p1 - p0, k)
        dx = dy = ls = amb = 0.0
        if n:
            last = self._chain[p0 + (n - 1) * k]
            before = self._chain[p0 - k] if p0 >= k else (0.0, 0.0, 0.0, 0.0)
            dx, dy, ls, amb = (a - b for a, b in zip(last, before))
        if r:  # the rest of the span: that share of the next hop (its ambiguity counts whole)
            f = r / k
            hx, hy, hl, ha = self._hop[p0 + n * k]
            dx, dy, ls, amb = dx + f * hx, dy + f * hy, ls + f * hl, amb + ha
        hops = n + (r > 0)
        return dx, dy, ls, amb / hops if hops else 0.0


def measure(frames, frame_interval: float, hop_seconds: float = 1 / 6, chunk: int = 512) -> FootageMotion:
    """The FootageMotion of uint8 (N, 3, H, W) frames (a FrameStore's ``frames``) shown
    ``frame_interval`` s apart, with hops of about ``hop_seconds``."""
    N, _, H, W = frames.shape
    g = grey_thumbs(frames)  # (N, h, w)
    h, w = g.shape[1:]
    to_store = min(H, W) / min(h, w)
    k = max(1, min(int(round(hop_seconds / max(frame_interval, 1e-6))), N - 1)) if N > 1 else 1
    qh, qw = h // 2, w // 2
    # quadrant centres relative to the picture centre (x, y), thumb px
    centres = np.array([[-qw / 2, -qh / 2], [qw / 2, -qh / 2], [-qw / 2, qh / 2], [qw / 2, qh / 2]])
    shift, rate, amb = np.zeros((N, 2)), np.zeros(N), np.zeros(N)
    for s in range(0, N - k, chunk):
        e = min(N, s + chunk + k)  # chunks overlap by k frames: the pairs across the border
        f = _spectra(g[s:e])
        shift[s : e - k], _, amb[s : e - k] = correlate(f[:-k], f[k:], (h, w))
        dq = []
        for y in (0, qh):
            for x in (0, qw):
                fq = _spectra(g[s:e, y : y + qh, x : x + qw])
                dq.append(correlate(fq[:-k], fq[k:], (qh, qw), ambiguity=False)[0])
        dq = np.stack(dq, 1)  # (n, 4, 2)
        # a zoom by (1 + z) about the centre moves each quadrant by z x its centre: least squares for z
        z = ((dq - dq.mean(1, keepdims=True)) * centres).sum((1, 2)) / (centres**2).sum()
        rate[s : e - k] = np.log1p(np.clip(z, -MAX_RATE * k, MAX_RATE * k))
    return FootageMotion(k, shift * to_store, rate, amb, W, H)
