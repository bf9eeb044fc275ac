#!/usr/bin/env python3
"""XQuAD-R tables of mono / cross / hybrid runs over seeds, as Markdown, standard library only.

    python3 scripts/results.py runs/experiment > results.md    # scripts/experiment.sh's runs
    python3 scripts/results.py runs/final > results.md         # scripts/recipe.sh's runs

OUT holds the starting model's evaluation (baseline/eval.json, or untrained.json) and one
directory per run named <sampler>-s<seed>, with its XQuAD-R evaluation (eval.json, or
xquad-r.json), its training log (log.jsonl, or run/log.jsonl) and, for a run with
--merge-grid, run/merge.json. Prints the mean and sample standard deviation over seeds per
sampler, every run (with the chosen merge weight), and paired differences between samplers
(same seed) with the paired t statistic."""
import json
import math
import os
import re
import sys

METRICS = [
    ("Mo. mAP", lambda s: s["mono"]["map_macro"]),
    ("Cr. mAP", lambda s: s["cross"]["map_macro"]),
    ("Mul. mAP", lambda s: s["multi"]["map_macro"]),
    ("Mo. R@1", lambda s: s["mono"]["r1_macro"]),
    ("Cr. R@1", lambda s: s["cross"]["r1_macro"]),
    ("Mul. R@10", lambda s: s["multi"]["r10_macro"]),
    ("Rank dist.", lambda s: s["multi"]["rank_distance_macro"]),
]
SAMPLERS = ["mono", "cross", "hybrid", "mixed", "group", "hybrid-group"]


def mean_sd(xs):
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, float("nan")
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def fmt(v, name):
    return f"{v:.1f}" if name == "Rank dist." else f"{v:.3f}"


def fmt_ms(xs, name):
    m, sd = mean_sd(xs)
    if math.isnan(sd):
        return fmt(m, name)
    return f"{fmt(m, name)} ± {fmt(sd, name)}"


def load(path):
    with open(path) as f:
        return json.load(f)


def first(*paths):
    return next((p for p in paths if os.path.exists(p)), None)


def merge_weight(run):
    path = first(os.path.join(run, "run", "merge.json"), os.path.join(run, "merge.json"))
    return load(path)["chosen_weight"] if path else None


def train_stats(run):
    steps, toks, secs, val = 0, 0.0, 0.0, []
    path = first(os.path.join(run, "log.jsonl"), os.path.join(run, "run", "log.jsonl"))
    if path is None:
        return None
    with open(path) as f:
        for line in f:
            v = json.loads(line)
            if "val_loss" in v and v.get("val_loss") is not None:
                val.append((v.get("step"), v["val_loss"]))
            if "tokens" in v and "tokens_per_s" in v and v["tokens_per_s"]:
                steps = max(steps, v.get("step", 0))
                toks += v["tokens"]
                secs += v["tokens"] / v["tokens_per_s"]
    return {"steps": steps, "tokens_per_s": toks / secs if secs else float("nan"), "val": val}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "runs/experiment"
    base_path = first(os.path.join(out, "baseline", "eval.json"), os.path.join(out, "untrained.json"))
    if base_path is None:
        sys.exit(f"{out}: no baseline/eval.json or untrained.json (the starting model's evaluation)")
    base = load(base_path)["settings"]
    runs = {}
    for name in sorted(os.listdir(out)):
        m = re.fullmatch(r"([\w-]+?)-s(\d+)", name)
        ev = first(os.path.join(out, name, "eval.json"), os.path.join(out, name, "xquad-r.json"))
        if m and ev:
            run = os.path.join(out, name)
            runs.setdefault(m.group(1), {})[int(m.group(2))] = (
                load(ev)["settings"],
                train_stats(run),
                merge_weight(run),
            )
    head = "| Model | Seeds | " + " | ".join(n for n, _ in METRICS) + " |"
    rule = "|---|---:|" + "---:|" * len(METRICS)
    print("## XQuAD-R, mean ± standard deviation over seeds\n")
    print(head)
    print(rule)
    print("| e5-small (untrained) | – | " + " | ".join(fmt(f(base), n) for n, f in METRICS) + " |")
    for s in SAMPLERS:
        if s not in runs:
            continue
        seeds = runs[s]
        cells = [fmt_ms([f(seeds[k][0]) for k in sorted(seeds)], n) for n, f in METRICS]
        print(f"| + {s} | {len(seeds)} | " + " | ".join(cells) + " |")
    print("\n## Every run\n")
    merged = any(w is not None for seeds in runs.values() for _, _, w in seeds.values())
    extra = " Merge w |" if merged else ""
    print("| Run | Steps | Train tokens/s |" + extra + " " + " | ".join(n for n, _ in METRICS) + " |")
    print("|---|---:|---:|" + ("---:|" if merged else "") + "---:|" * len(METRICS))
    for s in SAMPLERS:
        for k in sorted(runs.get(s, {})):
            ev, st, w = runs[s][k]
            steps = st["steps"] if st else "?"
            tps = f"{st['tokens_per_s']:.0f}" if st else "?"
            wcell = (f" {w} |" if w is not None else " – |") if merged else ""
            print(f"| {s} seed {k} | {steps} | {tps} |{wcell} " + " | ".join(fmt(f(ev), n) for n, f in METRICS) + " |")
    print("\n## Paired differences (same seed), mean ± standard deviation\n")
    print("| Comparison | Pairs | " + " | ".join(n for n, _ in METRICS) + " |")
    print("|---|---:|" + "---:|" * len(METRICS))
    pairs = [("hybrid", "cross"), ("hybrid", "mono"), ("cross", "mono")]
    pairs += [("hybrid-group", b) for b in ("hybrid", "mono", "cross")]
    for a, b in pairs:
        if a not in runs or b not in runs:
            continue
        common = sorted(set(runs[a]) & set(runs[b]))
        if not common:
            continue
        cells = []
        for n, f in METRICS:
            d = [f(runs[a][k][0]) - f(runs[b][k][0]) for k in common]
            m, sd = mean_sd(d)
            t = m / (sd / math.sqrt(len(d))) if len(d) > 1 and sd > 0 else float("nan")
            cell = f"{m:+.1f}" if n == "Rank dist." else f"{m:+.3f}"
            if not math.isnan(sd):
                cell += f" ± {sd:.1f}" if n == "Rank dist." else f" ± {sd:.3f}"
            if not math.isnan(t):
                cell += f" (t={t:+.1f})"
            cells.append(cell)
        print(f"| {a} − {b} | {len(common)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
