#!/usr/bin/env python3
"""Uncentred against centred evaluation reports, as Markdown, standard library only.

    python3 scripts/centring_table.py LABEL PLAIN.json CENTRED.json [LABEL PLAIN.json CENTRED.json ...]

Each triple is a label and two `multiret eval --out` reports of the same model on the same
dataset: without and with `--center` (docs/method.md §4.5). Prints Mo., Cr., Mul. mAP and the
rank distance (macro averages) of both, then the Mul. mAP and rank distance averaged over the
languages that got their own means and over those that got the pooled mean (the `centering`
field of the centred report)."""
import json
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def main(args):
    if len(args) == 0 or len(args) % 3:
        sys.exit(__doc__)
    print("| Model | Embeddings | Mo. mAP | Cr. mAP | Mul. mAP | Rank dist. |"
          " Mul. / rank dist., own means | Mul. / rank dist., pooled mean |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for i in range(0, len(args), 3):
        label, plain, centred = args[i], load(args[i + 1]), load(args[i + 2])
        c = centred.get("centering")
        if c is None or plain.get("centering") is not None:
            sys.exit(f"{args[i + 1]} must be uncentred and {args[i + 2]} centred")
        own, pooled = c["own_means"], c.get("pooled_mean", [])
        for name, r in (("as given", plain), ("centred", centred)):
            s = r["settings"]
            m = s["multi"]

            def part(langs):
                if not langs:
                    return "-"
                mul = sum(m["map_per_lang"][l] for l in langs) / len(langs)
                rd = sum(m["rank_distance_per_lang"][l] for l in langs) / len(langs)
                return f"{mul:.3f} / {rd:.1f}"

            print(f"| {label} | {name} | {s['mono']['map_macro']:.3f} | "
                  f"{s['cross']['map_macro']:.3f} | {m['map_macro']:.3f} | "
                  f"{m['rank_distance_macro']:.1f} | {part(own)} | {part(pooled)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
