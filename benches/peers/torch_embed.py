"""PyTorch peer of embed-report: the same model, the same token ids, the same batches.

Started by embed-report (`--torch PYTHON`), never by the test suite. It reads a JSON job
file (the HF directory, the token ids, the batches as lists of indices, the pad id, the
thread count), loads the model once with transformers' AutoModel, warms each precision up on
the longest batch, then serves timing requests on stdin, one per line:

    f32 | bf16        time one pass over every batch; answer one JSON line on stdout
    quit

A pass embeds each batch (padded with the pad id, attention mask over the real tokens),
mean-pools the last hidden state over the real tokens and L2-normalises, in torch ops, under
`torch.inference_mode()`; bf16 runs under `torch.autocast("cpu", dtype=torch.bfloat16)`,
which is how PyTorch users run bf16 on CPU. The first pass of each precision also writes its
embeddings (float32, row-major, input order) to `OUT_DIR/torch-PRECISION.f32` so that
embed-report can check them against its own.

Threads: `torch.set_num_threads(threads)` and one inter-op thread, set before any work.
"""

import json
import os
import resource
import sys
import time


def main():
    job_path = sys.argv[1]
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
    ids = job["ids"]
    pad = int(job["pad_id"])
    batches = job["batches"]
    out_dir = job["out_dir"]
    n = len(ids)

    tensors = []
    for b in batches:
        length = max(len(ids[i]) for i in b)
        inp = torch.full((len(b), length), pad, dtype=torch.long)
        mask = torch.zeros((len(b), length), dtype=torch.long)
        for r, i in enumerate(b):
            inp[r, : len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
            mask[r, : len(ids[i])] = 1
        tensors.append((b, inp, mask))

    def run(precision, batches_):
        outs = []
        ctx = (
            torch.autocast("cpu", dtype=torch.bfloat16)
            if precision == "bf16"
            else torch.autocast("cpu", enabled=False)
        )
        with torch.inference_mode(), ctx:
            for b, inp, mask in batches_:
                h = model(input_ids=inp, attention_mask=mask).last_hidden_state
                m = mask.unsqueeze(-1).to(h.dtype)
                mean = (h * m).sum(1) / m.sum(1)
                emb = torch.nn.functional.normalize(mean.float(), dim=-1)
                outs.append((b, emb))
        return outs

    def cpu_seconds():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    longest = tensors[-1:] if tensors else []
    for p in ("f32", "bf16"):
        run(p, longest)
    print(json.dumps({"ready": True, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}), flush=True)
    written = set()
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit" or not cmd:
            break
        if cmd not in ("f32", "bf16"):
            print(json.dumps({"error": f"unknown request {cmd!r}"}), flush=True)
            continue
        c0, t0 = cpu_seconds(), time.perf_counter()
        outs = run(cmd, tensors)
        secs = time.perf_counter() - t0
        cpu = cpu_seconds() - c0
        if cmd not in written:
            dim = outs[0][1].shape[1] if outs else 0
            full = torch.zeros((n, dim), dtype=torch.float32)
            for b, emb in outs:
                full[torch.tensor(b, dtype=torch.long)] = emb
            path = os.path.join(out_dir, f"torch-{cmd}.f32")
            with open(path, "wb") as f:
                f.write(full.numpy().astype("<f4").tobytes())
            written.add(cmd)
        print(json.dumps({"seconds": secs, "cpu_seconds": cpu}), flush=True)


if __name__ == "__main__":
    main()
