#!/usr/bin/env python3
"""Checks that a model directory written by multiret loads in Python's transformers and
sentence-transformers and reproduces `multiret embed`.

Usage (in a throwaway virtual environment, never a project dependency):

    python3 -m venv /tmp/stvenv && /tmp/stvenv/bin/pip install torch transformers sentence-transformers
    multiret embed --model DIR --kind query   --input texts.txt --output q.npy
    multiret embed --model DIR --kind passage --input texts.txt --output p.npy
    /tmp/stvenv/bin/python scripts/interop_check.py DIR texts.txt q.npy p.npy

It prints one JSON object: for each of transformers (AutoTokenizer + AutoModel, pooled and
normalised by the directory's own sentence-transformers files) and sentence-transformers
(SentenceTransformer(DIR).encode with prompt_name "query" / "passage"), the minimum cosine
to multiret's rows, and exits 1 when any is at or below --min-cos (default 0.99999).
"""

import argparse
import json
import os
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("texts")
    ap.add_argument("queries_npy")
    ap.add_argument("passages_npy")
    ap.add_argument("--min-cos", type=float, default=0.99999)
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(2)
    with open(args.texts, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f]
    ours = {"query": np.load(args.queries_npy), "passage": np.load(args.passages_npy)}

    def min_cos(a, b):
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        return float((a * b).sum(axis=1).min())

    d = args.model_dir
    with open(os.path.join(d, "config_sentence_transformers.json")) as f:
        prompts = json.load(f)["prompts"]
    with open(os.path.join(d, "1_Pooling", "config.json")) as f:
        pool = json.load(f)
    with open(os.path.join(d, "sentence_bert_config.json")) as f:
        max_len = json.load(f)["max_seq_length"]
    modules = json.load(open(os.path.join(d, "modules.json")))
    # A Dense head is a sentence-transformers module: transformers alone stops at pooling.
    hf_dense = any(m["type"].endswith("Dense") for m in modules)

    result = {"model_dir": d, "texts": len(texts)}

    # transformers, by hand: prompt + tokenizer + AutoModel + pooling + L2.
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModel.from_pretrained(d).eval()
    result["transformers_tokenizer_class"] = type(tok).__name__
    if not hf_dense:
        for kind in ("query", "passage"):
            batch = tok(
                [prompts[kind] + t for t in texts],
                padding=True,
                truncation=True,
                max_length=max_len,
                return_tensors="pt",
            )
            with torch.no_grad():
                h = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            if pool.get("pooling_mode_cls_token"):
                v = h[:, 0]
            else:
                v = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            result[f"transformers_{kind}_min_cos"] = min_cos(v.numpy(), ours[kind])

    # sentence-transformers, by its own rules.
    st = SentenceTransformer(d, device="cpu")
    result["st_max_seq_length"] = st.max_seq_length
    for kind in ("query", "passage"):
        v = st.encode(texts, prompt_name=kind, convert_to_numpy=True, batch_size=32)
        result[f"sentence_transformers_{kind}_min_cos"] = min_cos(v, ours[kind])

    worst = min(v for k, v in result.items() if k.endswith("_min_cos"))
    result["min_cos"] = worst
    result["pass"] = worst > args.min_cos
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["pass"] else 1)


if __name__ == "__main__":
    main()
