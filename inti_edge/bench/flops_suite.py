"""flops: counted GMACs of InTI against the naive baseline (``inti_edge.model.flops``, the `flops` command).
No timing: the speed-up a perfect implementation would reach (the "FLOPs limit" of the gpu suite)."""

from __future__ import annotations

from . import Context

CASES = [(m, t, h) for m in ("vit-b16", "vit-l14") for t in (8, 16) for h in (1, 2)] + [("small", 8, 1)]


def run(ctx: Context, cases=None) -> dict:
    from ..model.flops import flops as count_flops

    cases = cases or CASES
    reports = []
    for i, (model, frames, halvings) in enumerate(cases):
        ctx.update(f"flops {model} {frames}f {halvings}h", i, len(cases))
        reports.append(count_flops(model, frames, halvings))
    rows = [[r["model"], r["frames"], r["halvings"], round(r["inti_gflops"], 2), round(r["naive_gflops"], 2), r["ratio"],
             round(1 / r["ratio"], 3), r["weightnet_gflops"], round(100 * r["weightnet_fraction"], 3)] for r in reports]
    cols = ["model", "frames", "halvings", "InTI GMACs", "naive GMACs", "ratio", "speed-up limit", "weight net GMACs",
            "weight net %"]
    labels = [f"{r['model']} {r['frames']}f" for r in reports if r["halvings"] == 1]
    by = {(r["model"], r["frames"], r["halvings"]): r for r in reports}
    series = {f"{h} halving{'s' if h > 1 else ''}": [round(1 / by[(m, t, h)]["ratio"], 3) if (m, t, h) in by else None
                                                     for m, t in ((r["model"], r["frames"]) for r in reports if r["halvings"] == 1)]
              for h in sorted({r["halvings"] for r in reports})}
    return {"suite": "flops", "title": "counted GMACs per clip, InTI vs naive", "settings": {"units": "GMACs (multiply-adds) per clip"},
            "tables": [{"title": "GMACs per clip", "columns": cols, "rows": rows,
                        "note": "Counted by running the model (torch.utils.flop_counter, meta device); GMACs = giga "
                                "multiply-adds, attention included. Speed-up limit = naive / InTI."}],
            "plots": [{"name": "flops-limit", "title": "FLOPs speed-up limit of InTI over naive", "kind": "bar",
                       "x": labels, "ylabel": "naive / InTI GMACs", "series": series}],
            "data": {"reports": reports}}
