#!/usr/bin/env python3
"""The validation table of a recipe ablation, as Markdown, standard library only.

    python3 scripts/ablation_table.py runs/ablation/A runs/ablation/B ...

Each argument is a run directory holding `run/log.jsonl` and `run/merge.json` (a
`multiret train --select ... --merge-grid ...` run, e.g. from scripts/recipe.sh). For each run
it prints the held-out MLQA-R scores (val_mo, val_cr, val_mul, val_rank_distance) of every
validation step, and of every weight of the merge grid (w = 1 is the trained model itself,
w = 0 the starting model). These are validation numbers: what the recipe is chosen on."""
import json
import os
import sys


def fmt(v, rd=False):
    if v is None:
        return "-"
    return f"{v:.1f}" if rd else f"{v:.3f}"


def row(label, s):
    mean = (s["val_mo"] + s["val_cr"] + s["val_mul"]) / 3
    return (f"| {label} | {fmt(s['val_mo'])} | {fmt(s['val_cr'])} | {fmt(s['val_mul'])} | "
            f"{fmt(mean)} | {fmt(s.get('val_rank_distance'), True)} |")


def main(dirs):
    print("| run | Mo. | Cr. | Mul. | mean | rank dist. |")
    print("|---|---:|---:|---:|---:|---:|")
    for d in dirs:
        name = os.path.basename(os.path.normpath(d))
        log = os.path.join(d, "run", "log.jsonl")
        with open(log) as f:
            steps = [json.loads(l) for l in f if l.strip()]
        for s in steps:
            if "val_mo" in s:
                print(row(f"{name}, step {s['step']}", s))
        mpath = os.path.join(d, "run", "merge.json")
        if os.path.exists(mpath):
            with open(mpath) as f:
                m = json.load(f)
            for g in m["grid"]:
                mark = " (chosen)" if g["weight"] == m["chosen_weight"] else ""
                print(row(f"{name}, merge w = {g['weight']}{mark}", g["scores"]))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
