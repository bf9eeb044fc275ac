#!/usr/bin/env python3
"""XQuAD-R table of recipe runs (scripts/recipe.sh), as Markdown, standard library only.

    python3 scripts/recipe_table.py BASELINE_JSON RUN_DIR [RUN_DIR ...]

BASELINE_JSON is `multiret eval --out` of the starting model on XQuAD-R; each RUN_DIR holds
`xquad-r.json` (its final model's evaluation) and `run/merge.json` (the chosen merge weight).
Rows are grouped by sampler (the directory name up to `-s`); with several seeds of a sampler
the mean and the sample standard deviation are shown, and paired differences (same seed)
between samplers follow."""
import json
import math
import os
import sys
from collections import defaultdict

METRICS = [
    ("Mo. mAP", lambda s: s["mono"]["map_macro"]),
    ("Cr. mAP", lambda s: s["cross"]["map_macro"]),
    ("Mul. mAP", lambda s: s["multi"]["map_macro"]),
    ("Rank dist.", lambda s: s["multi"]["rank_distance_macro"]),
]


def fmt(v, name):
    return f"{v:.1f}" if name == "Rank dist." else f"{v:.3f}"


def ms(xs, name):
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return fmt(m, name)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
    return f"{fmt(m, name)} ± {fmt(sd, name)}"


def main(baseline, dirs):
    base = json.load(open(baseline))["settings"]
    runs = defaultdict(dict)
    weights = {}
    for d in dirs:
        name = os.path.basename(os.path.normpath(d))
        sampler, _, seed = name.rpartition("-s")
        runs[sampler][seed] = json.load(open(os.path.join(d, "xquad-r.json")))["settings"]
        mp = os.path.join(d, "run", "merge.json")
        weights[name] = json.load(open(mp))["chosen_weight"] if os.path.exists(mp) else None
    head = "| Model | Seeds | " + " | ".join(n for n, _ in METRICS) + " |"
    print(head)
    print("|---|---:|" + "---:|" * len(METRICS))
    print("| e5-small (untrained) | – | " + " | ".join(fmt(f(base), n) for n, f in METRICS) + " |")
    for sampler, seeds in runs.items():
        cells = [ms([f(s) for s in seeds.values()], n) for n, f in METRICS]
        print(f"| + {sampler} | {len(seeds)} | " + " | ".join(cells) + " |")
    print()
    print("Chosen merge weights: " + ", ".join(f"{k}: w = {v}" for k, v in sorted(weights.items())))
    names = list(runs)
    pairs = [(a, b) for a in names for b in names if a < b]
    if pairs:
        print()
        print("| Paired difference | Seeds | " + " | ".join(n for n, _ in METRICS) + " |")
        print("|---|---:|" + "---:|" * len(METRICS))
        for a, b in pairs:
            common = sorted(set(runs[a]) & set(runs[b]))
            if not common:
                continue
            cells = [ms([f(runs[a][s]) - f(runs[b][s]) for s in common], n) for n, f in METRICS]
            print(f"| {a} − {b} | {len(common)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
