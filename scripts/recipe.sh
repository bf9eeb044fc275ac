#!/usr/bin/env bash
# One run of the fine-tuning recipe of docs/results.md ("The recipe"), exactly as reported:
# e5-small fine-tuned on MLQA-R with SAMPLER batches, model selection and the merge with the
# starting model chosen on held-out MLQA-R paragraphs only, then the reported model evaluated on
# XQuAD-R (never seen, never used to choose).
#
#   bash scripts/recipe.sh SAMPLER SEED OUT      SAMPLER: mono | cross | hybrid (alpha 0.5)
#                                                 | hybrid-group (alpha 0.5, GROUP_LANGS) | group
#
# Leaves OUT/run (the training run: log.jsonl with the validation scores, checkpoint/, merged/,
# merge.json), OUT/final (the reported model, after the merge: an HF / sentence-transformers
# directory) and OUT/xquad-r.json / .md (its evaluation). Resumable: a finished step is skipped.
#
# The recipe's settings are the defaults below. The variables exist for the ablations of
# docs/results.md (each one a documented `multiret train` option); a run with any of them changed
# is not the reported recipe.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 3 ]; then
  echo "usage: $0 SAMPLER SEED OUT" >&2
  exit 2
fi
SAMPLER=$1
SEED=$2
OUT=$3
case "$SAMPLER" in mono | cross | hybrid | hybrid-group | group) ;; *)
  echo "$0: SAMPLER must be mono, cross, hybrid, hybrid-group or group, not $SAMPLER" >&2
  exit 2
  ;;
esac
DATA=${MULTIRET_DATA:-data}
STEPS=${STEPS:-100}
BATCH=${BATCH:-32}
LR=${LR:-3e-5}
TAU=${TAU:-0.01}
CTX=${CTX:-1}                      # --context-negatives
NEG_LANGS=${NEG_LANGS:-both}       # --negative-langs
VAL_GROUPS=${VAL_GROUPS:-128}      # held-out MLQA-R groups (whole paragraphs)
EVAL_EVERY=${EVAL_EVERY:-50}
SELECT=${SELECT:-mean}             # --select
MERGE=${MERGE-0.25,0.5,0.75,1}     # --merge-grid ("" for none)
MAX_LEN=${MAX_LEN:-128}
GROUP_LANGS=${GROUP_LANGS:-2}      # --group-langs (group samplers)
SYMMETRIC=${SYMMETRIC:-0}          # 1: --symmetric
FREEZE_LAYERS=${FREEZE_LAYERS:-0}  # --freeze-layers
FREEZE_EMB=${FREEZE_EMB:-1}        # 0: train the word embeddings too
XQUAD=${XQUAD:-1}                  # 0: stop after training and validation (ablations)
BIN=${MULTIRET_BIN:-target/release/multiret}
[ -x "$BIN" ] || cargo build --release -q -p multiret
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/recipe.log"; }

run="$OUT/run"
if [ ! -f "$run/checkpoint/model.safetensors" ] || { [ -n "$MERGE" ] && [ ! -f "$run/merge.json" ]; }; then
  rm -rf "$run"
  log "train $SAMPLER seed $SEED"
  alpha=()
  case "$SAMPLER" in hybrid | hybrid-group) alpha=(--alpha 0.5) ;; esac
  case "$SAMPLER" in group | hybrid-group) alpha+=(--group-langs "$GROUP_LANGS") ;; esac
  merge=()
  [ -n "$MERGE" ] && merge=(--merge-grid "$MERGE")
  knobs=()
  [ "$SYMMETRIC" = 1 ] && knobs+=(--symmetric)
  [ "$FREEZE_LAYERS" != 0 ] && knobs+=(--freeze-layers "$FREEZE_LAYERS")
  [ "$FREEZE_EMB" = 1 ] && knobs+=(--freeze-embeddings)
  "$BIN" train --model e5-small --train mlqa-r --data-dir "$DATA" --sampler "$SAMPLER" "${alpha[@]}" \
    --batch-size "$BATCH" --steps "$STEPS" --lr "$LR" --temperature "$TAU" --seed "$SEED" \
    --max-len "$MAX_LEN" --bf16 "${knobs[@]}" \
    --context-negatives "$CTX" --negative-langs "$NEG_LANGS" \
    --val-groups "$VAL_GROUPS" --eval-every "$EVAL_EVERY" --select "$SELECT" "${merge[@]}" \
    --out "$run" --quiet
fi
if [ ! -f "$OUT/final/model.safetensors" ]; then
  src="$run/checkpoint"
  [ -n "$MERGE" ] && src="$run/merged"
  rm -rf "$OUT/final.tmp"
  cp -r "$src" "$OUT/final.tmp"
  rm -f "$OUT/final.tmp/trainer_state.json"
  mv "$OUT/final.tmp" "$OUT/final"
fi
if [ "$XQUAD" = 1 ] && [ ! -f "$OUT/xquad-r.json" ]; then
  log "eval $SAMPLER seed $SEED on xquad-r"
  "$BIN" eval --model "$OUT/final" --dataset xquad-r --data-dir "$DATA" --precision bf16 --no-cache -q \
    --out "$OUT/xquad-r.json" --markdown "$OUT/xquad-r.md"
fi
log "done: $OUT/final"
