#!/usr/bin/env bash
# The GPU verification of multiret, run once on the device machine (a CUDA GPU, no Rust, no
# network) from the repository root:
#
#     bash scripts/device-check.sh
#
# with target/device/ carried from the dev machine, where scripts/prepare-device.sh built it:
# `multiret` and the two CUDA test binaries (built with `--features cuda`, stripped, gzipped),
# the e5-small model (word-embedding rows pruned to the tokens of the test texts, see
# prepare-device.sh), its tokenizer, the reference fixture, 20,000 XQuAD-R sentences, a small
# training set, and the dev machine's CPU throughput on those sentences (dev-cpu.json).
#
# Steps (each with a timeout; a failure is recorded and the next step runs; steps are skipped,
# and say so, when the overall budget DEVICE_CHECK_BUDGET (default 420 s) runs out):
#   1. unpack into a scratch directory;
#   2. the kernels' CUDA tests (crates/kernels/tests/cuda.rs);
#   3. the model's GPU tests (crates/model/tests/gpu.rs: tiny models vs the CPU engine, the real
#      e5-small vs the fixtures and the CPU engine);
#   4. `multiret embed` on the 20,000 sentences: --device cuda f32 and bf16 (batch 128, and bf16
#      at 256), --device cpu f32 on the machine's cores (at most 16);
#   5. GPU vs CPU embeddings of those sentences (cosine per row; needs python3 with numpy);
#   6. 50 training steps on the GPU, only if this `multiret` has `train` with `--device`;
#   7. $OUT/summary.json (rewritten after every step, so a run cut short still reports), logs
#      in $OUT/logs/. "gpu_verified" is true when both test binaries passed with no test
#      skipped for want of a GPU and both GPU embed runs succeeded.
#
# Suggested `run` call: command `bash scripts/device-check.sh`, carry ["target/device"],
# timeout_s 480. Environment knobs: DEVICE_CHECK_BUDGET (s, default 420), CPU_THREADS (default
# min(nproc, 16)), GPU_BATCH (128), SENTENCES (first N only: local dry runs), TRAIN_EXTRA_ARGS.
#
# The GPU/CPU ratio compares the GPU runs with the dev machine's CPU engine (2 threads, f32,
# dev-cpu.json), the target being at least 20x; the device's own CPU run is reported too.
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
DEV=$ROOT/target/device
OUT=${OUT:-$ROOT/target/device-out}
LOGS=$OUT/logs
mkdir -p "$LOGS"
W=$(mktemp -d "${TMPDIR:-/tmp}/multiret-device.XXXXXX")
BIN=$W/bin
BUDGET=${DEVICE_CHECK_BUDGET:-420}
T_START=$(date +%s)
NPROC=$(nproc 2>/dev/null || echo 1)
CPU_THREADS=${CPU_THREADS:-$((NPROC < 16 ? NPROC : 16))}
GPU_BATCH=${GPU_BATCH:-128}
SENTENCES=${SENTENCES:-} # only the first N sentences (a local dry run); default all
export MULTIRET_CACHE=$W/cache
export MULTIRET_FIXTURES=$W/fixtures # the reference fixtures directory (as tests/fixtures)
export MULTIRET_REQUIRE_GPU=1        # GPU tests fail, not skip, when the GPU is missing
export RUST_BACKTRACE=1

# CUDA libraries: the toolkit's lib directories, when present, go on the loader path (cudarc
# loads libcuda / libnvrtc / libcublas by name at run time).
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    if [ -d "$d" ]; then
        case ":${LD_LIBRARY_PATH:-}:" in
            *":$d:"*) ;;
            *) export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
        esac
    fi
done

declare -A RC SECS STATUS
STEPS=()

log() { echo "[device-check $(($(date +%s) - T_START))s] $*" | tee -a "$LOGS/steps.txt" >&2; }

left() { echo $((BUDGET - ($(date +%s) - T_START))); }

# run_step NAME TIMEOUT CMD...: runs CMD with a timeout (cut to the budget left), output in
# $LOGS/NAME.log; records rc, seconds and a status (ok / failed / timeout / skipped).
run_step() {
    local name=$1 to=$2
    shift 2
    STEPS+=("$name")
    local rem
    rem=$(left)
    if [ "$rem" -lt 15 ]; then
        RC[$name]=-1
        SECS[$name]=0
        STATUS[$name]="skipped: out of time (budget ${BUDGET} s)"
        log "$name: ${STATUS[$name]}"
        write_summary
        return 1
    fi
    [ "$to" -gt "$rem" ] && to=$rem
    log "$name: start (timeout ${to} s)"
    local t0 t1 rc
    t0=$(date +%s.%N)
    timeout --kill-after=10 "$to" "$@" >"$LOGS/$name.log" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    RC[$name]=$rc
    SECS[$name]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    case $rc in
        0) STATUS[$name]=ok ;;
        124 | 137) STATUS[$name]="timeout after ${to} s" ;;
        *) STATUS[$name]="failed (exit $rc)" ;;
    esac
    log "$name: ${STATUS[$name]} in ${SECS[$name]} s"
    write_summary
    return "$rc"
}

skip_step() {
    STEPS+=("$1")
    RC[$1]=-1
    SECS[$1]=0
    STATUS[$1]="skipped: $2"
    log "$1: ${STATUS[$1]}"
    write_summary
}

# --- JSON helpers ---------------------------------------------------------------------------
jstr() {
    local s
    s=$(printf '%s' "$1" | tr -d '\000-\010\013-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' \
        -e 's/\t/\\t/g' | awk 'NR > 1 { printf "\\n" } { printf "%s", $0 }')
    printf '"%s"' "$s"
}
jnum() {
    if [[ ${1:-} =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; then printf '%s' "$1"; else printf 'null'; fi
}
ratio() { # a / b with 2 decimals, or empty
    awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a != "" && b != "" && b + 0 > 0) printf "%.2f", a / b }'
}

# Fields of the `embedded N texts (T tokens, N x D) in S s: R texts/s, Q tokens/s -> F` line.
embed_field() { # LOG FIELD(texts|tokens|secs|texts_per_s|tokens_per_s)
    local line
    line=$(grep '^embedded ' "$1" 2>/dev/null | tail -n 1)
    [ -z "$line" ] && return 0
    case $2 in
        texts) sed -E 's/^embedded ([0-9]+) texts.*/\1/' <<<"$line" ;;
        tokens) sed -E 's/^embedded [0-9]+ texts \(([0-9]+) tokens.*/\1/' <<<"$line" ;;
        secs) sed -E 's/.*\) in ([0-9.]+) s: .*/\1/' <<<"$line" ;;
        texts_per_s) sed -E 's/.* s: ([0-9.]+) texts\/s.*/\1/' <<<"$line" ;;
        tokens_per_s) sed -E 's/.* texts\/s, ([0-9.]+) tokens\/s.*/\1/' <<<"$line" ;;
    esac
}

# `test result: ok. 12 passed; 0 failed; ...` of a Rust test binary's log.
test_json() { # LOG
    local log=$1 passed failed skipped line
    line=$(grep '^test result:' "$log" 2>/dev/null | tail -n 1)
    passed=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$line")
    failed=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line")
    # "skipping: CUDA is available here" is the no-GPU test saying it has nothing to do.
    skipped=$(grep 'skipping: ' "$log" 2>/dev/null | grep -vc 'CUDA is available here')
    local fails
    fails=$(awk '/^failures:$/ { f = 1; l = ""; next } f && /^    [^ ]/ { l = l $1 " " }
        /^test result:/ { f = 0 } END { print l }' "$log" 2>/dev/null)
    printf '"passed": %s, "failed": %s, "skipped_without_gpu": %s, "failed_tests": %s' \
        "$(jnum "$passed")" "$(jnum "$failed")" "$(jnum "$skipped")" "$(jstr "$fails")"
}

DEV_TEXTS_PER_S=$(sed -nE 's/.*"texts_per_s": ([0-9.]+).*/\1/p' "$DEV/assets/dev-cpu.json" 2>/dev/null | head -n 1)
DEV_TOKENS_PER_S=$(sed -nE 's/.*"tokens_per_s": ([0-9.]+).*/\1/p' "$DEV/assets/dev-cpu.json" 2>/dev/null | head -n 1)
GPU_NAME=""
DRIVER=""

write_summary() {
    local f=$OUT/summary.json.tmp s first=1
    {
        printf '{\n'
        printf '  "device": %s,\n' "$(jstr "$GPU_NAME")"
        printf '  "driver": %s,\n' "$(jstr "$DRIVER")"
        printf '  "gpu_describe": %s,\n' "$(jstr "$(grep -h '^device: ' "$LOGS"/embed_gpu_*.log 2>/dev/null | head -n 1 | sed 's/^device: //')")"
        printf '  "host": {"cores": %s, "cpu": %s, "glibc": %s, "ld_library_path": %s},\n' \
            "$(jnum "$NPROC")" "$(jstr "$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')")" \
            "$(jstr "$(ldd --version 2>&1 | head -n 1)")" "$(jstr "${LD_LIBRARY_PATH:-}")"
        printf '  "elapsed_s": %s,\n' "$(($(date +%s) - T_START))"
        printf '  "steps": {'
        for s in ${STEPS[@]+"${STEPS[@]}"}; do
            [ $first = 1 ] || printf ','
            first=0
            printf '\n    %s: {"status": %s, "rc": %s, "secs": %s}' "$(jstr "$s")" \
                "$(jstr "${STATUS[$s]:-}")" "$(jnum "${RC[$s]:-}")" "$(jnum "${SECS[$s]:-}")"
        done
        printf '\n  },\n'
        printf '  "tests": {\n'
        printf '    "kernels_cuda": {%s},\n' "$(test_json "$LOGS/test_kernels_cuda.log")"
        printf '    "model_gpu": {%s}\n' "$(test_json "$LOGS/test_model_gpu.log")"
        printf '  },\n'
        printf '  "dev_cpu_baseline": {"threads": 2, "texts_per_s": %s, "tokens_per_s": %s},\n' \
            "$(jnum "$DEV_TEXTS_PER_S")" "$(jnum "$DEV_TOKENS_PER_S")"
        printf '  "embed": {'
        first=1
        local r log tps toks
        for r in gpu_f32 gpu_bf16 gpu_bf16_b256 cpu_f32; do
            log=$LOGS/embed_$r.log
            [ -f "$log" ] || continue
            [ $first = 1 ] || printf ','
            first=0
            tps=$(embed_field "$log" texts_per_s)
            toks=$(embed_field "$log" tokens_per_s)
            printf '\n    "%s": {"status": %s, "texts": %s, "tokens": %s, "secs": %s, "texts_per_s": %s, "tokens_per_s": %s, "wall_s": %s, "x_dev_cpu_texts": %s, "x_dev_cpu_tokens": %s}' \
                "$r" "$(jstr "${STATUS[embed_$r]:-}")" "$(jnum "$(embed_field "$log" texts)")" \
                "$(jnum "$(embed_field "$log" tokens)")" "$(jnum "$(embed_field "$log" secs)")" \
                "$(jnum "$tps")" "$(jnum "$toks")" "$(jnum "${SECS[embed_$r]:-}")" \
                "$(jnum "$(ratio "$tps" "$DEV_TEXTS_PER_S")")" "$(jnum "$(ratio "$toks" "$DEV_TOKENS_PER_S")")"
        done
        printf '\n  },\n'
        local g32 g16 c16 best
        g32=$(embed_field "$LOGS/embed_gpu_f32.log" tokens_per_s)
        g16=$(embed_field "$LOGS/embed_gpu_bf16.log" tokens_per_s)
        c16=$(embed_field "$LOGS/embed_cpu_f32.log" tokens_per_s)
        best=$(printf '%s\n%s\n' "$g32" "$g16" | awk '$1 != "" && $1 + 0 > m { m = $1 + 0 } END { if (m > 0) print m }')
        printf '  "ratios": {"gpu_f32_vs_dev_cpu": %s, "gpu_bf16_vs_dev_cpu": %s, "gpu_f32_vs_device_cpu": %s, "gpu_bf16_vs_device_cpu": %s, "basis": "tokens/s"},\n' \
            "$(jnum "$(ratio "$g32" "$DEV_TOKENS_PER_S")")" "$(jnum "$(ratio "$g16" "$DEV_TOKENS_PER_S")")" \
            "$(jnum "$(ratio "$g32" "$c16")")" "$(jnum "$(ratio "$g16" "$c16")")"
        local met=null
        if [ -n "$best" ] && [ -n "$DEV_TOKENS_PER_S" ]; then
            met=$(awk -v a="$best" -v b="$DEV_TOKENS_PER_S" 'BEGIN { print (a >= 20 * b) ? "true" : "false" }')
        fi
        printf '  "target_gpu_20x_dev_cpu_met": %s,\n' "$met"
        local verified=false
        if [ "${RC[test_kernels_cuda]:-1}" = 0 ] && [ "${RC[test_model_gpu]:-1}" = 0 ] &&
            [ "$(grep -h 'skipping: ' "$LOGS"/test_*.log 2>/dev/null | grep -vc 'CUDA is available here')" = 0 ] &&
            [ "${RC[embed_gpu_f32]:-1}" = 0 ] && [ "${RC[embed_gpu_bf16]:-1}" = 0 ]; then
            verified=true
        fi
        printf '  "gpu_verified": %s,\n' "$verified"
        if [ -s "$W/compare.json" ]; then
            printf '  "gpu_vs_cpu_embeddings": %s,\n' "$(cat "$W/compare.json")"
        else
            printf '  "gpu_vs_cpu_embeddings": null,\n'
        fi
        printf '  "train": {"status": %s, "note": %s}\n' "$(jstr "${STATUS[train_gpu]:-not run}")" \
            "$(jstr "${TRAIN_NOTE:-}")"
        printf '}\n'
    } >"$f"
    mv -f "$f" "$OUT/summary.json"
}

# --- 0. the machine ---------------------------------------------------------------------------
log "work directory $W, output $OUT, budget ${BUDGET} s, CPU threads $CPU_THREADS"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi >"$LOGS/nvidia-smi.txt" 2>&1
    GPU_NAME=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -n 1)
    DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)
else
    GPU_NAME="(no nvidia-smi)"
fi
{
    echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
    ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libnvrtc\.so|libcublas\.so' || true
    ls -d /usr/local/cuda* 2>/dev/null || true
} >"$LOGS/cuda-libs.txt" 2>&1
write_summary

# --- 1. unpack --------------------------------------------------------------------------------
unpack() {
    set -e
    mkdir -p "$BIN" "$MULTIRET_CACHE/e5-small" "$W/train-data" "$MULTIRET_FIXTURES"
    for b in multiret kernels-cuda model-gpu; do
        gzip -dc "$DEV/bin/$b.gz" >"$BIN/$b"
        chmod +x "$BIN/$b"
    done
    gzip -dc "$DEV/assets/e5-small/model.bin.gz" >"$MULTIRET_CACHE/e5-small/model.bin"
    gzip -dc "$DEV/assets/e5-small/tokenizer.json.gz" >"$MULTIRET_CACHE/e5-small/tokenizer.json"
    gzip -dc "$DEV/assets/me5-small-embeddings.json.gz" >"$MULTIRET_FIXTURES/me5-small-embeddings.json"
    if [ -n "${SENTENCES:-}" ]; then
        gzip -dc "$DEV/assets/sentences.txt.gz" | head -n "$SENTENCES" >"$W/sentences.txt"
    else
        gzip -dc "$DEV/assets/sentences.txt.gz" >"$W/sentences.txt"
    fi
    gzip -dc "$DEV/assets/train-data.tar.gz" | tar -C "$W" -xf -
    ls -la "$BIN" "$MULTIRET_CACHE/e5-small" "$W"
    wc -l "$W/sentences.txt"
    "$BIN/multiret" --version
}
export -f unpack
export DEV BIN W SENTENCES
if ! run_step unpack 60 bash -c unpack; then
    log "cannot unpack target/device (was scripts/prepare-device.sh run, and target/device carried?)"
    write_summary
    exit 1
fi

# --- 2, 3. the CUDA test binaries -------------------------------------------------------------
run_step test_kernels_cuda 180 "$BIN/kernels-cuda" --nocapture --test-threads=4
run_step test_model_gpu 240 "$BIN/model-gpu" --nocapture --test-threads=1

# --- 4. throughput ------------------------------------------------------------------------------
embed() { # NAME DEVICE PRECISION BATCH THREADS TIMEOUT
    run_step "embed_$1" "$6" "$BIN/multiret" embed --model e5-small --kind passage \
        --input "$W/sentences.txt" --output "$W/$1.npy" --device "$2" --precision "$3" \
        --batch-size "$4" --threads "$5"
}
embed gpu_f32 cuda f32 "$GPU_BATCH" "$CPU_THREADS" 120
embed gpu_bf16 cuda bf16 "$GPU_BATCH" "$CPU_THREADS" 120
embed cpu_f32 cpu f32 32 "$CPU_THREADS" 240

# --- 5. GPU vs CPU embeddings -------------------------------------------------------------------
if command -v python3 >/dev/null && python3 -c 'import numpy' 2>/dev/null; then
    run_step compare_embeddings 60 python3 - "$W" <<'EOF'
import json, os, sys
import numpy as np
w = sys.argv[1]
out = {}
cpu = np.load(os.path.join(w, "cpu_f32.npy")) if os.path.exists(os.path.join(w, "cpu_f32.npy")) else None
for name in ["gpu_f32", "gpu_bf16"]:
    p = os.path.join(w, name + ".npy")
    if cpu is None or not os.path.exists(p):
        continue
    g = np.load(p).astype(np.float64)
    c = cpu.astype(np.float64)
    cos = (g * c).sum(1) / (np.linalg.norm(g, axis=1) * np.linalg.norm(c, axis=1))
    out[name + "_vs_cpu_f32"] = {"rows": int(len(cos)), "min_cosine": float(cos.min()),
                                 "mean_cosine": float(cos.mean()),
                                 "max_abs_diff": float(np.abs(g - c).max())}
print(json.dumps(out, indent=1))
json.dump(out, open(os.path.join(w, "compare.json"), "w"))
EOF
else
    skip_step compare_embeddings "python3 with numpy not available"
fi

# Larger GPU batches, when time is left.
embed gpu_bf16_b256 cuda bf16 256 "$CPU_THREADS" 90

# --- 6. training on the GPU (only if this build has it) -------------------------------------
TRAIN_NOTE=""
if "$BIN/multiret" train --help >"$LOGS/train-help.txt" 2>&1; then
    if grep -q -- '--device' "$LOGS/train-help.txt"; then
        # shellcheck disable=SC2086
        run_step train_gpu 150 "$BIN/multiret" train --device cuda --model e5-small \
            --train "$W/train-data" --sampler hybrid --batch-size 32 --steps 50 \
            --out "$W/train-out" ${TRAIN_EXTRA_ARGS:-}
        TRAIN_NOTE="50 steps, batch 32, hybrid sampler, on XQuAD-R en/de/es"
    else
        TRAIN_NOTE="this multiret has \`train\` but no --device option"
        skip_step train_gpu "$TRAIN_NOTE"
    fi
else
    TRAIN_NOTE="this multiret has no \`train\` command"
    skip_step train_gpu "$TRAIN_NOTE"
fi

write_summary
log "done in $(($(date +%s) - T_START)) s; summary: $OUT/summary.json"
cat "$OUT/summary.json"
rm -rf "$W"
exit 0
