#!/usr/bin/env bash
# The bundled default model: the small config trained from scratch on the camera-motion task over
# Big Buck Bunny (time blocks: train / val / test), and the naive baseline trained the same way;
# both evaluated on the held-out test blocks and on other real clips never trained on.
#   BBB=path/to/big_buck_bunny.mp4 CLIPS=a.mp4,b.avi,... bash scripts/train_default_model.sh
# Evaluation elsewhere (EVAL=0 here): scripts/eval_default_model.sh, the same eval lines over seeds and raw: ranges.
set -euo pipefail
INTI=${INTI:-inti-edge}            # or "python3 cli.py" from a checkout
BBB=${BBB:?set BBB to the Big Buck Bunny video (any size; short side >= 160 px)}
CLIPS=${CLIPS:-}                   # comma-separated other real clips (needed unless OTHER=0)
OUTDIR=${OUTDIR:-runs/default}
EPOCHS=${EPOCHS:-18}
SPE=${SPE:-500}                    # optimizer steps per epoch
BATCH=${BATCH:-128}
WORKERS=${WORKERS:-14}             # DataLoader workers that plan clips (CPU cores - 2)
VARIANTS=${VARIANTS:-"inti naive"}
PARALLEL=${PARALLEL:-0}            # 1: the variants share the GPU side by side (the small model leaves it far from full)
AUGMENT=${AUGMENT:-flip}           # flip (the bundled model) | full: flip, time reversal, colour jitter | real | none
SMOOTH=${SMOOTH:-0}                # label smoothing (0: the bundled model)
POOL=${POOL:-2}                    # unit embedding: CLS + the patch grid pooled to POOL x POOL (2: the bundled model)
EMA=${EMA:-0}                      # decay of a moving average of the weights (0: off, the bundled model; e.g. 0.999)
COMPILE=${COMPILE:-0}              # 1: torch.compile the model (1.3x on the H100 for ~50 s of compiling)
OTHER=${OTHER:-1}                  # 0: leave out the other-clips evaluation (run it elsewhere, e.g. on a CPU)
EVAL=${EVAL:-1}                    # 0: no evaluation at all here (both evals elsewhere, same eval lines)
LABELS=${LABELS:-apparent}         # label rule: apparent (the motion a viewer sees, issue 17) | virtual (the window's move alone: the previous default model)
RAW=${RAW:-}                       # labels CSV(s) of untouched footage, space-separated (e.g. tests/data/raw_labels.csv): also evaluated on raw:CSV
STOP_AFTER=${STOP_AFTER:-}         # stop each variant (with its last.pt) after this many steps, e.g. to fit a GPU lent in short windows
RESUME=${RESUME:-0}                # 1: continue each variant exactly from its $OUTDIR/VARIANT/last.pt (the options come from the checkpoint)
[ "$EVAL" = 1 ] && [ "$OTHER" = 1 ] && [ -z "$CLIPS" ] && { echo "set CLIPS to comma-separated other real clips (or OTHER=0)" >&2; exit 2; }
run() {  # one variant: train, then evaluate on held-out blocks and on the other clips
  variant=$1
  h=1; [ "$variant" = naive ] && h=0
  start=$(date +%s) before=0
  stop=""; [ -z "$STOP_AFTER" ] || stop="--stop-after $STOP_AFTER"
  if [ "$RESUME" = 1 ] && [ -f "$OUTDIR/$variant/last.pt" ]; then
    before=$(sed -n 's/.*"train_wall_s": \([0-9]*\).*/\1/p' "$OUTDIR/$variant/wall.json" 2>/dev/null || true)
    $INTI train --resume "$OUTDIR/$variant/last.pt" --workers $WORKERS $stop --out "$OUTDIR/$variant" --quiet
  else
    $INTI train --data "motion:$BBB" --model small --frames 8 --halvings $h --batch-size $BATCH \
      --lr 2e-4 --warmup-steps 300 --weight-decay 0.05 --half-weights --epochs $EPOCHS --steps-per-epoch $SPE \
      --clips-per-epoch $((SPE * BATCH)) --eval-clips 700 --data-on-device --workers $WORKERS \
      --labels $LABELS --augment $AUGMENT --label-smoothing $SMOOTH --ema $EMA --pooled-grid $POOL $( [ "$COMPILE" = 1 ] && echo --compile ) \
      --seed 0 $stop --out "$OUTDIR/$variant" --quiet
  fi
  echo "{\"variant\": \"$variant\", \"train_wall_s\": $(( ${before:-0} + $(date +%s) - start ))}" > "$OUTDIR/$variant/wall.json"
  [ "$EVAL" = 1 ] && [ -f "$OUTDIR/$variant/model.pt" ] || return 0
  $INTI eval "$OUTDIR/$variant/model.pt" --data "motion:$BBB" --split test --workers $WORKERS --json > "$OUTDIR/$variant/eval_bbb_test.json"
  if [ "$OTHER" = 1 ]; then
    $INTI eval "$OUTDIR/$variant/model.pt" --data "motion:$CLIPS" --split all --workers $WORKERS --json > "$OUTDIR/$variant/eval_other.json"
  fi
  for csv in $RAW; do
    $INTI eval "$OUTDIR/$variant/model.pt" --data "raw:$csv" --workers $WORKERS --json > "$OUTDIR/$variant/eval_raw_$(basename "$(dirname "$csv")")_$(basename "$csv" .csv).json"
  done
}
if [ "$PARALLEL" = 1 ]; then
  for variant in $VARIANTS; do run "$variant" & done
  wait
else
  for variant in $VARIANTS; do run "$variant"; done
fi
