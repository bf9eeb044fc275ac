#!/usr/bin/env bash
# The hybrid-batch experiment of docs/results.md: e5-small fine-tuned on MLQA-R with mono, cross
# and hybrid (alpha 0.5) batches, three seeds each, every run evaluated on XQuAD-R (never seen in
# training) beside the untrained model; then scripts/results.py writes the table.
#
#   bash scripts/experiment.sh [OUT_DIR]        (default runs/experiment; resumable: finished
#                                                runs are skipped)
#
# Settings (identical for every run) are the variables below; override them from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/experiment}
DATA=${MULTIRET_DATA:-data} # the repository's data/ (xquad-r/, mlqa-r/)
STEPS=${STEPS:-100}
BATCH=${BATCH:-32}
LR=${LR:-3e-5}
SEEDS=${SEEDS:-"1 2 3"}
SAMPLERS=${SAMPLERS:-"mono cross hybrid"}
VAL_GROUPS=${VAL_GROUPS:-256}
EVAL_EVERY=${EVAL_EVERY:-25}
PATIENCE=${PATIENCE:-2}
MAX_LEN=${MAX_LEN:-128}
BIN=target/release/multiret
cargo build --release -q -p multiret
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/experiment.log"; }

if [ ! -f "$OUT/baseline/eval.json" ]; then
  mkdir -p "$OUT/baseline"
  log "eval baseline"
  "$BIN" eval --model e5-small --dataset xquad-r --data-dir "$DATA" --precision bf16 --no-cache -q \
    --out "$OUT/baseline/eval.json" --markdown "$OUT/baseline/eval.md"
fi
for seed in $SEEDS; do
  for sampler in $SAMPLERS; do
    run="$OUT/$sampler-s$seed"
    if [ -f "$run/eval.json" ]; then continue; fi
    if [ ! -f "$run/checkpoint/model.safetensors" ]; then
      rm -rf "$run"
      log "train $sampler seed $seed"
      alpha=(); [ "$sampler" = hybrid ] && alpha=(--alpha 0.5)
      "$BIN" train --model e5-small --train mlqa-r --data-dir "$DATA" --sampler "$sampler" "${alpha[@]}" \
        --batch-size "$BATCH" --steps "$STEPS" --lr "$LR" --seed "$seed" --max-len "$MAX_LEN" \
        --val-groups "$VAL_GROUPS" --eval-every "$EVAL_EVERY" --patience "$PATIENCE" \
        --freeze-embeddings --bf16 --out "$run" > "$run.train.txt" 2>&1
      mv "$run.train.txt" "$run/train.txt"
      rm -rf "$run/best"
    fi
    log "eval $sampler seed $seed"
    "$BIN" eval --model "$run/checkpoint" --dataset xquad-r --data-dir "$DATA" --precision bf16 --no-cache -q \
      --out "$run/eval.json" --markdown "$run/eval.md"
  done
done
log "done"
python3 scripts/results.py "$OUT" > "$OUT/results.md"
log "table in $OUT/results.md"
