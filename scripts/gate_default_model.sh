#!/usr/bin/env bash
# The README's gate figures of the default model: export it once, then build and gate each precision /
# target on held-out clips of the Big Buck Bunny test blocks (INT8 calibrated on training-split clips),
# and print one table row per build from its report.json.
#   BBB=path/to/bbb_160.mp4 bash scripts/gate_default_model.sh
set -uo pipefail
INTI=${INTI:-inti-edge}            # or "python3 cli.py" from a checkout
M=${M:-inti_edge/assets/default_motion_small.pt}
BBB=${BBB:?set BBB to the Big Buck Bunny video the model trained on (its test blocks are the gate clips)}
OUTDIR=${OUTDIR:-runs/gate}
CLIPS=${CLIPS:-512}                # gate clips
CALIB=${CALIB:-calibration/default.json}
BUILDS=${BUILDS:-"fp32:cpu fp16:h100 int8:h100 int8:cpu int8:cpu-vnni"}   # precision:target
mkdir -p "$OUTDIR"
$INTI export "$M" -o "$OUTDIR/export" || exit
for b in $BUILDS; do
  p=${b%%:*} t=${b##*:}
  calib=(); [ "$p" = int8 ] && calib=(--calib "$CALIB")
  $INTI build "$OUTDIR/export" -p "$p" -t "$t" "${calib[@]}" --data "motion:$BBB" --split test --clips "$CLIPS" \
    -o "$OUTDIR/$p-$t" > "$OUTDIR/$p-$t.log" 2>&1
  echo "build $p $t: exit $?"
done
python3 - "$OUTDIR" $BUILDS <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| artifact | top-1 agreement | logits cosine mean / min | max abs error / logit scale | top-1 reference / artifact (delta) | gate |")
print("| --- | --- | --- | --- | --- | --- |")
for b in sys.argv[2:]:
    p, t = b.split(":")
    f = out / f"{p}-{t}" / "report.json"
    if not f.is_file():
        print(f"| {p}, {t} | no report ({out}/{p}-{t}.log) | | | | |")
        continue
    r = json.loads(f.read_text())
    m = r["metrics"]
    acc = "-" if m.get("accuracy_ref") is None else f"{m['accuracy_ref']:.2f}% / {m['accuracy_art']:.2f}% ({m['accuracy_delta']:+.2f})"
    print(f"| {p}, {t} ({r['backend']}) | {100 * m['agreement']:.1f}% | {m['cos_mean']:.7f} / {m['cos_min']:.7f} | "
          f"{m['max_abs_rel']:.2g} | {acc} | {'passed' if r['passed'] else 'FAILED: ' + '; '.join(r['failures'])} |")
PY
