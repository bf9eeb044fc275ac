#!/usr/bin/env bash
# Prepares target/device/ for scripts/device-check.sh: everything the device machine (a GPU, no
# Rust, no network) needs, in at most 64 MiB (the `run` tool's carry limit).
#
# Run from anywhere inside the repository, on the dev machine (Rust, python3, the e5-small model
# in the cache, the shared data):
#
#     scripts/prepare-device.sh
#
# It writes:
#   target/device/bin/multiret.gz          `multiret` built with `--features cuda`, stripped
#   target/device/bin/kernels-cuda.gz      test binary of crates/kernels/tests/cuda.rs (cuda)
#   target/device/bin/model-gpu.gz         test binary of crates/model/tests/gpu.rs (cuda)
#   target/device/assets/e5-small/model.bin.gz
#                                          the e5-small E5S1 file with the word-embedding rows of
#                                          tokens that cannot occur in the test texts zeroed
#                                          (see below), gzip
#   target/device/assets/e5-small/tokenizer.json.gz   the genuine tokenizer, gzip
#   target/device/assets/me5-small-embeddings.json.gz the reference fixture, gzip
#   target/device/assets/sentences.txt.gz  N_SENTENCES (20,000) XQuAD-R sentences, one a line:
#                                          round-robin over the 11 languages' `sentences`
#                                          (13,014 distinct; the rest repeat)
#   target/device/assets/train-data.tar.gz a few XQuAD-R LANG.json files, for the optional
#                                          training step
#   target/device/assets/dev-cpu.json      the dev machine's CPU throughput (--threads 2) on
#                                          the first DEV_CPU_SENTENCES (2,000) of those
#                                          sentences: the baseline of the GPU/CPU ratio
#   target/device/manifest.txt             sizes, sha256s, what was pruned
#
# Why the model is pruned: model.bin is 71.6 MB and compresses to 64.9 MB (zstd -19), over the
# 64 MiB carry limit with the binaries. 54 MB of it is the Q4_0 word-embedding table (250,037
# rows x 216 bytes). Rows of tokens that cannot appear in the texts the device check encodes
# (the fixture rows and the sentences file, with their `query: ` / `passage: ` prefixes) are
# set to zero bytes (a Q4_0 block of zeros dequantises to 0.0): the token ids of the fixture
# are kept exactly (so the fixture comparison is unaffected, bit for bit), and every piece
# that is a substring of a (NFKC-normalised) word of the sentences is kept (a superset of what
# the tokenizer can produce up to normaliser details; a missed rare token only changes that
# sentence's embedding, never the timing). The rest of the file (vocabulary, layers) is
# untouched. The zeros compress away.
#
# Environment: MULTIRET_CACHE (model cache, default ~/.cache/multiret), XQUAD_R_DIR (default
# data/xquad-r), FIXTURE (default tests/fixtures/me5-small-embeddings.json),
# N_SENTENCES (20000), DEV_CPU_SENTENCES (2000), SKIP_BUILD=1 (reuse target/device/bin),
# SKIP_BASELINE=1 (keep an existing dev-cpu.json).
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=target/device
CACHE=${MULTIRET_CACHE:-$HOME/.cache/multiret}
MODEL_DIR=$CACHE/e5-small
XQ=${XQUAD_R_DIR:-data/xquad-r}
FIXTURE=${FIXTURE:-tests/fixtures/me5-small-embeddings.json}
N_SENTENCES=${N_SENTENCES:-20000}
DEV_N=${DEV_CPU_SENTENCES:-2000}
LIMIT=$((64 * 1024 * 1024))

for f in "$MODEL_DIR/model.bin" "$MODEL_DIR/tokenizer.json" "$FIXTURE" "$XQ/en.json"; do
    [ -f "$f" ] || { echo "missing $f (fetch the model with \`multiret model fetch\`)" >&2; exit 1; }
done
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 1; }

mkdir -p "$DEV/bin" "$DEV/assets/e5-small" "$DEV/tmp"

# --- 1. binaries (cuda feature), stripped and gzipped --------------------------------------
exe_of() { # the test executable named in cargo's JSON messages on stdin
    python3 -c '
import json, sys
exe = None
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m.get("profile", {}).get("test"):
        exe = m["executable"]
print(exe or "")'
}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "== building (release, --features cuda)" >&2
    cargo build --release -p multiret --features cuda
    kt=$(cargo test --release -p multiret-kernels --features cuda --test cuda --no-run \
        --message-format=json | exe_of)
    mt=$(cargo test --release -p multiret-model --features cuda --test gpu --no-run \
        --message-format=json | exe_of)
    [ -x "$kt" ] && [ -x "$mt" ] || { echo "test executables not found ($kt, $mt)" >&2; exit 1; }
    for pair in "target/release/multiret:multiret" "$kt:kernels-cuda" "$mt:model-gpu"; do
        src=${pair%%:*}
        dst=${pair##*:}
        strip -o "$DEV/tmp/$dst" "$src"
        gzip -9 -n -c "$DEV/tmp/$dst" >"$DEV/bin/$dst.gz"
        rm -f "$DEV/tmp/$dst"
    done
fi

# --- 2. sentences, fixture, training data ---------------------------------------------------
echo "== assets" >&2
python3 - "$XQ" "$N_SENTENCES" "$DEV/tmp/sentences.txt" <<'EOF'
import json, sys
xq, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
langs = ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"]
per = []
for l in langs:
    d = json.load(open(f"{xq}/{l}.json", encoding="utf-8"))
    s = [" ".join(t.split()) for a in d["data"] for p in a["paragraphs"] for t in p["sentences"]]
    per.append([t for t in s if t])
with open(out, "w", encoding="utf-8") as f:
    for i in range(n):
        s = per[i % len(langs)]
        f.write(s[(i // len(langs)) % len(s)] + "\n")
EOF
gzip -9 -n -c "$DEV/tmp/sentences.txt" >"$DEV/assets/sentences.txt.gz"
gzip -9 -n -c "$FIXTURE" >"$DEV/assets/me5-small-embeddings.json.gz"
mkdir -p "$DEV/tmp/train-data"
cp "$XQ/en.json" "$XQ/de.json" "$XQ/es.json" "$DEV/tmp/train-data/"
tar -C "$DEV/tmp" -cf - train-data | gzip -9 -n >"$DEV/assets/train-data.tar.gz"

# --- 3. the pruned model ---------------------------------------------------------------------
echo "== pruning and compressing the model" >&2
python3 - "$MODEL_DIR/model.bin" "$MODEL_DIR/tokenizer.json" "$FIXTURE" \
    "$DEV/tmp/sentences.txt" "$DEV/tmp/model.bin" "$DEV/tmp/prune.txt" <<'EOF'
import json, struct, sys, unicodedata
src, tok, fixture, sentences, dst, report = sys.argv[1:7]
b = bytearray(open(src, "rb").read())
pos = 0
def take(n):
    global pos
    s = b[pos:pos + n]
    pos += n
    return bytes(s)
assert take(4) == b"E5S1"
take(4)
hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack("<7i", take(28))
take(8)
n_pieces = struct.unpack("<5i", take(20))[0]
blob_len, = struct.unpack("<Q", take(8))
take((n_pieces + 1) * 4); take(n_pieces * 4); take(blob_len)
take(4); nb, = struct.unpack("<I", take(4)); take(nb)
nt, = struct.unpack("<i", take(4))
word = None
for _ in range(nt):
    nl, = struct.unpack("<H", take(2))
    name = take(nl).decode()
    dt, = struct.unpack("<B", take(1))
    n, = struct.unpack("<I", take(4))
    off, nbytes = struct.unpack("<QQ", take(16))
    if name == "emb.word":
        word = (dt, n, off, nbytes)
assert word and word[0] == 1 and word[1] == vocab * hidden, word
row_bytes = hidden // 32 * 18
pieces = [p for p, _ in json.load(open(tok, encoding="utf-8"))["model"]["vocab"]]
maxlen = min(max(len(p) for p in pieces), 32)
subs = set()
def add_text(t):
    for w in unicodedata.normalize("NFKC", t).split():
        s = "\u2581" + w
        for i in range(len(s)):
            for j in range(i + 1, min(len(s), i + maxlen) + 1):
                subs.add(s[i:j])
fix = json.load(open(fixture, encoding="utf-8"))["rows"]
keep = {0, 1, 2, 3}
for r in fix:
    keep.update(r["ids"])
    add_text(r["text"])
add_text("query: passage:")
for line in open(sentences, encoding="utf-8"):
    add_text(line)
keep.update(i for i, p in enumerate(pieces) if p in subs)
zero = bytes(row_bytes)
off = word[2]
for r in range(vocab):
    if r not in keep:
        b[off + r * row_bytes: off + (r + 1) * row_bytes] = zero
open(dst, "wb").write(b)
with open(report, "w") as f:
    f.write(f"word rows kept: {len(keep)} of {vocab} (fixture ids: all kept; sentence pieces by "
            f"substring match); every other row zeroed\n")
EOF
gzip -9 -n -c "$DEV/tmp/model.bin" >"$DEV/assets/e5-small/model.bin.gz"
gzip -9 -n -c "$MODEL_DIR/tokenizer.json" >"$DEV/assets/e5-small/tokenizer.json.gz"

# --- 4. the dev machine's CPU baseline (same binary, same sentences, --threads 2) -------------
if [ "${SKIP_BASELINE:-0}" != 1 ] || [ ! -f "$DEV/assets/dev-cpu.json" ]; then
    echo "== dev-machine CPU baseline: $DEV_N sentences, --threads 2" >&2
    head -n "$DEV_N" "$DEV/tmp/sentences.txt" >"$DEV/tmp/dev-sentences.txt"
    mkdir -p "$DEV/tmp/cache/e5-small"
    cp "$DEV/tmp/model.bin" "$DEV/tmp/cache/e5-small/model.bin"
    cp "$MODEL_DIR/tokenizer.json" "$DEV/tmp/cache/e5-small/tokenizer.json"
    MULTIRET_CACHE=$PWD/$DEV/tmp/cache target/release/multiret embed --model e5-small \
        --kind passage --input "$DEV/tmp/dev-sentences.txt" --output "$DEV/tmp/dev-cpu.npy" \
        --device cpu --precision f32 --threads 2 2>"$DEV/tmp/dev-cpu.log"
    line=$(grep '^embedded ' "$DEV/tmp/dev-cpu.log" | tail -n 1)
    cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
    python3 - "$line" "$cpu" "$(nproc)" >"$DEV/assets/dev-cpu.json" <<'EOF'
import json, re, sys
line, cpu, cores = sys.argv[1], sys.argv[2], int(sys.argv[3])
m = re.match(r"embedded (\d+) texts \((\d+) tokens, .*?\) in ([0-9.]+) s: ([0-9.]+) texts/s, ([0-9.]+) tokens/s", line)
assert m, line
n, tok, secs, tps, toks = m.groups()
print(json.dumps({"machine": "dev", "cpu": cpu, "cores": cores, "threads": 2, "precision": "f32",
                  "batch_size": 32, "texts": int(n), "tokens": int(tok), "secs": float(secs),
                  "texts_per_s": float(tps), "tokens_per_s": float(toks), "line": line}, indent=1))
EOF
    cat "$DEV/assets/dev-cpu.json" >&2
fi

# --- 5. manifest, size check ----------------------------------------------------------------
{
    echo "prepared $(date -u +%FT%TZ) on $(hostname)"
    echo "model.bin source sha256: $(sha256sum "$MODEL_DIR/model.bin" | cut -d' ' -f1)"
    echo "pruned model.bin sha256: $(sha256sum "$DEV/tmp/model.bin" | cut -d' ' -f1)"
    cat "$DEV/tmp/prune.txt"
    find "$DEV/bin" "$DEV/assets" -type f -printf '%s\t%p\n' | sort -k2
} >"$DEV/tmp/manifest.txt"
mv "$DEV/tmp/manifest.txt" "$DEV/manifest.txt"
rm -rf "$DEV/tmp"
total=$(find "$DEV" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
cat "$DEV/manifest.txt" >&2
echo "total: $total bytes (limit $LIMIT)" >&2
if [ "$total" -gt "$LIMIT" ]; then
    echo "target/device is over the 64 MiB carry limit" >&2
    exit 1
fi
cat >&2 <<EOF

Ready. On the device (run tool), from the repository root:
  command:  bash scripts/device-check.sh
  carry:    ["target/device"]
  timeout:  480   (the script keeps itself within DEVICE_CHECK_BUDGET=420 s)
Results: \$OUT/summary.json (and \$OUT/logs/).
EOF
