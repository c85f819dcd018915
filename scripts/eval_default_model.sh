#!/usr/bin/env bash
# Evaluate camera-motion checkpoints on the CPU (after scripts/train_default_model.sh ran with EVAL=0):
# the BBB test blocks and the other real clips over several evaluation seeds, and untouched footage
# labelled by time range (raw: CSVs), each as the JSON of `inti-edge eval --json` (per class and per
# source), then one summary.json (mean and sd over the seeds, per source).
#   MODELS="runs/default/inti/model.pt runs/default/naive/model.pt" BBB=bbb_160.mp4 CLIPS=a.mp4,b.avi,... \
#     bash scripts/eval_default_model.sh
set -euo pipefail
INTI=${INTI:-inti-edge}            # or "python3 cli.py" from a checkout
MODELS=${MODELS:?set MODELS to the model.pt files, space-separated}
BBB=${BBB:?set BBB to the Big Buck Bunny video the models trained on (the test blocks come from it)}
CLIPS=${CLIPS:?set CLIPS to the comma-separated other real clips}
SEEDS=${SEEDS:-"1 2 3"}            # evaluation seeds of the generated (motion:) sets
RAW=${RAW:-"tests/data/raw_labels.csv calibration/raw_labels.csv"}  # labels CSVs of untouched footage
LABELS=${LABELS:-}                 # apparent | virtual; empty: each checkpoint's own rule
OUTDIR=${OUTDIR:-runs/eval}
WORKERS=${WORKERS:-2}
LIMIT=${LIMIT:-}                   # clips per generated set (empty: all 1,400; a small number for a quick check)
opt=(); [ -n "$LABELS" ] && opt+=(--labels "$LABELS")
[ -n "$LIMIT" ] && opt+=(--limit "$LIMIT")
for model in $MODELS; do
  name=$(basename "$(dirname "$model")")_$(basename "$model" .pt)
  mkdir -p "$OUTDIR/$name"
  for seed in $SEEDS; do
    $INTI eval "$model" --data "motion:$BBB" --split test --seed "$seed" --workers $WORKERS "${opt[@]}" --json > "$OUTDIR/$name/bbb_test_seed$seed.json"
    $INTI eval "$model" --data "motion:$CLIPS" --split all --seed "$seed" --workers $WORKERS "${opt[@]}" --json > "$OUTDIR/$name/other_seed$seed.json"
  done
  for csv in $RAW; do  # raw ranges are the same clips on every run: one evaluation
    $INTI eval "$model" --data "raw:$csv" --workers $WORKERS ${LABELS:+--labels "$LABELS"} --json > "$OUTDIR/$name/raw_$(basename "$(dirname "$csv")")_$(basename "$csv" .csv).json"
  done
done
python3 - "$OUTDIR" <<'PY'
import glob, json, os, re, statistics, sys
out = sys.argv[1]
summary = {}
for d in sorted(glob.glob(os.path.join(out, "*/"))):
    runs = {}
    for f in sorted(glob.glob(os.path.join(d, "*.json"))):
        r = json.load(open(f))
        key = re.sub(r"_seed\d+$", "", os.path.basename(f)[:-5])
        runs.setdefault(key, []).append(r)
    rec = {}
    for key, rs in runs.items():
        top = [100 * r["top1"] for r in rs]
        srcs = {s: [100 * r["per_source"][s]["top1"] for r in rs] for s in rs[0].get("per_source", {})}
        rec[key] = {"top1": round(statistics.mean(top), 1), "sd": round(statistics.stdev(top), 1) if len(top) > 1 else None,
                    "runs": [round(t, 1) for t in top], "n": rs[0]["n"], "labels": rs[0].get("labels"),
                    "per_source": {s: round(statistics.mean(v), 1) for s, v in srcs.items()}}
    summary[os.path.basename(d.rstrip("/"))] = rec
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
print(json.dumps(summary, indent=1))
PY
