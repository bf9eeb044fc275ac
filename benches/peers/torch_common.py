"""What the PyTorch peers (torch_embed.py, torch_train.py) share: the job file, threads, the
model, padding, mean pooling, the precision context, CPU time and the request loop.

Never imported by the test suite; torch is imported only inside `start`, after the thread
settings are in place.
"""

import json
import os
import resource
import sys
import time

PRECISIONS = ("f32", "bf16")


def start(job_path):
    """Reads the JSON job, sets the thread counts (`torch.set_num_threads(threads)`, one
    inter-op thread) before any work, and loads the job's HF directory with transformers'
    AutoModel in f32, in eval mode (no dropout). Returns (job, torch, model)."""
    with open(job_path) as f:
        job = json.load(f)
    threads = int(job["threads"])
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch
    from transformers import AutoModel

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    model = AutoModel.from_pretrained(job["model_dir"], torch_dtype=torch.float32)
    model.eval()
    return job, torch, model


def wanted_precisions(job):
    """The precisions the report will ask for (`precisions`, default both): only these are
    warmed up, since a bf16 pass without native bf16 products takes minutes."""
    return [p for p in job.get("precisions", PRECISIONS) if p in PRECISIONS]


def padded(torch, seqs, pad):
    """Token id lists as one (len(seqs), longest) tensor padded with `pad`, and the attention
    mask over the real tokens."""
    length = max(len(s) for s in seqs)
    inp = torch.full((len(seqs), length), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for r, s in enumerate(seqs):
        inp[r, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[r, : len(s)] = 1
    return inp, mask


def embed(torch, model, inp, mask):
    """The last hidden state mean-pooled over the real tokens, L2-normalised, in f32."""
    h = model(input_ids=inp, attention_mask=mask).last_hidden_state
    w = mask.unsqueeze(-1).to(h.dtype)
    mean = (h * w).sum(1) / w.sum(1)
    return torch.nn.functional.normalize(mean.float(), dim=-1)


def autocast(torch, precision):
    """bf16: `torch.autocast("cpu", dtype=torch.bfloat16)`, as PyTorch users run bf16 on a
    CPU; f32: autocast off."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def serve(torch, ready, run, answer):
    """Prints the ready line (`ready` plus the torch version and thread count), then serves each
    request line of stdin (`f32` or `bf16`; `quit` or an empty line ends): `run(precision)` is
    timed, then `answer(precision, result)` (not timed) gives the dict that goes back as one
    JSON line, with `seconds` and `cpu_seconds` added."""
    line = {"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}
    line.update(ready)
    print(json.dumps(line), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit" or not cmd:
            break
        if cmd not in PRECISIONS:
            print(json.dumps({"error": f"unknown request {cmd!r}"}), flush=True)
            continue
        c0, t0 = cpu_seconds(), time.perf_counter()
        result = run(cmd)
        secs, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        out = answer(cmd, result)
        out["seconds"] = secs
        out["cpu_seconds"] = cpu
        print(json.dumps(out), flush=True)
