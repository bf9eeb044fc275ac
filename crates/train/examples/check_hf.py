"""Loads a multiret checkpoint with Python `transformers` and compares its mean-pooled,
L2-normalised embeddings with the engine's (`ids.json`, `embeddings.json` written beside the
checkpoint by examples/gpu_check.rs).

    python3 check_hf.py CHECKPOINT_DIR
"""
import json
import sys

import torch
from transformers import AutoModel

ckpt = sys.argv[1]
model = AutoModel.from_pretrained(ckpt).eval()
ids = json.load(open(f"{ckpt}/ids.json"))
want = torch.tensor(json.load(open(f"{ckpt}/embeddings.json"))).view(len(ids), -1)
n = max(len(s) for s in ids)
pad = model.config.pad_token_id or 0
x = torch.tensor([s + [pad] * (n - len(s)) for s in ids])
mask = torch.tensor([[1] * len(s) + [0] * (n - len(s)) for s in ids])
with torch.no_grad():
    h = model(input_ids=x, attention_mask=mask).last_hidden_state
m = mask.unsqueeze(-1).float()
emb = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
diff = (emb - want).abs().max().item()
print(json.dumps({"transformers_max_diff": diff, "ok": diff < 1e-4}))
