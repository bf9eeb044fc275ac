"""PyTorch peer of train-report: the same model, the same batches, the same training step.

Started by train-report (`--torch PYTHON`), never by the test suite. It reads a JSON job file
(the HF directory, the batches' token ids and masks, the pad id, the loss and optimiser
settings, the thread count, the precisions it will ask for), loads the model once with
transformers' AutoModel, makes one untimed warm-up step per such precision, then serves
requests on stdin, one per line:

    f32 | bf16        one training step on every batch, in order; answer one JSON line
    quit

A step is what `multiret train` does, in torch ops: every query and passage of the batch is
encoded (padded per side with the pad id, attention mask over the real tokens, token type
ids zero), mean-pooled over the real tokens and L2-normalised; the loss is InfoNCE at the
job's temperature over the batch's positives and exclusions (each positive against the
query's negatives, the mean over its positives; the symmetric passage-to-query half over the
positives' block when asked); then `loss.backward()`, `clip_grad_norm_` and
`torch.optim.AdamW` (the job's betas, eps and weight decay; fused or foreach, whichever torch
picks on the CPU). Word embeddings are frozen (`requires_grad_(False)`) when the job says so.
The model trains without dropout (`model.eval()` sets dropout off, as multiret trains).
bf16 runs the forward pass and the loss under `torch.autocast("cpu", dtype=torch.bfloat16)`,
which is how PyTorch users train in bf16 on a CPU; parameters, gradients and the optimiser
stay f32.

The answer: `{"seconds": S, "cpu_seconds": C, "losses": [...]}` (the loss of each step). The
first batch's losses on the starting weights (per precision, before any step) come with the
ready line, so that train-report can check them against its own.

Threads: `torch.set_num_threads(threads)` and one inter-op thread, set before any work.
"""

import json
import os
import resource
import sys
import time


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    threads = int(job["threads"])
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch
    import torch.nn.functional as F
    from transformers import AutoModel

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(0)
    model = AutoModel.from_pretrained(job["model_dir"], torch_dtype=torch.float32)
    model.eval()  # no dropout, as multiret trains
    if job["freeze_embeddings"]:
        model.embeddings.word_embeddings.weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        params,
        lr=float(job["lr"]),
        betas=(float(job["beta1"]), float(job["beta2"])),
        eps=float(job["eps"]),
        weight_decay=float(job["weight_decay"]),
    )
    pad = int(job["pad_id"])
    tau = float(job["temperature"])
    symmetric = bool(job["symmetric"])
    clip = job.get("grad_clip")

    def padded(seqs):
        length = max(len(s) for s in seqs)
        inp = torch.full((len(seqs), length), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), length), dtype=torch.long)
        for r, s in enumerate(seqs):
            inp[r, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[r, : len(s)] = 1
        return inp, mask

    batches = []
    for b in job["batches"]:
        n, m = len(b["queries"]), len(b["passages"])
        pos = torch.zeros((n, m), dtype=torch.bool)
        for i in range(n):
            pos[i, i] = True
        for i, j in b["positives"]:
            if i < n and j < n:
                pos[i, j] = True
        excl = torch.zeros((n, m), dtype=torch.bool)
        for i, j in b["excluded"]:
            if i < n and j < m and not pos[i, j]:
                excl[i, j] = True
        batches.append((padded(b["queries"]), padded(b["passages"]), pos, excl))

    def embed(inp, mask):
        h = model(input_ids=inp, attention_mask=mask).last_hidden_state
        w = mask.unsqueeze(-1).to(h.dtype)
        mean = (h * w).sum(1) / w.sum(1)
        return F.normalize(mean.float(), dim=-1)

    def nce_rows(s, pos, excl):
        neg = ~(pos | excl)
        lse = torch.logsumexp(s.masked_fill(~neg, float("-inf")), dim=1, keepdim=True)
        per = F.softplus(lse - s) * pos
        return (per.sum(1) / pos.sum(1)).mean()

    def loss_of(batch, precision):
        (qi, qm), (pi, pm), pos, excl = batch
        ctx = (
            torch.autocast("cpu", dtype=torch.bfloat16)
            if precision == "bf16"
            else torch.autocast("cpu", enabled=False)
        )
        with ctx:
            q = embed(qi, qm)
            d = embed(pi, pm)
            s = (q @ d.T) / tau
            loss = nce_rows(s, pos, excl)
            if symmetric:
                n = q.shape[0]
                loss = (loss + nce_rows(s[:, :n].T, pos[:, :n].T, excl[:, :n].T)) / 2
        return loss

    def step(batch, precision):
        loss = loss_of(batch, precision)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, float(clip))
        opt.step()
        return float(loss)

    def cpu_seconds():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    # The first batch's loss on the starting weights, then one untimed step per precision
    # that the report will ask for (`precisions`, default both: a bf16 step without native
    # bf16 products, on an AVX2-only CPU, takes minutes).
    precisions = [p for p in job.get("precisions", ["f32", "bf16"]) if p in ("f32", "bf16")]
    warm = {}
    if batches:
        with torch.no_grad():
            warm = {p: float(loss_of(batches[0], p)) for p in precisions}
        for p in precisions:
            step(batches[0], p)
    print(json.dumps({"ready": True, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "warmup_losses": warm}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit" or not cmd:
            break
        if cmd not in ("f32", "bf16"):
            print(json.dumps({"error": f"unknown request {cmd!r}"}), flush=True)
            continue
        c0, t0 = cpu_seconds(), time.perf_counter()
        losses = [step(b, cmd) for b in batches]
        secs = time.perf_counter() - t0
        print(json.dumps({"seconds": secs, "cpu_seconds": cpu_seconds() - c0,
                          "losses": losses}), flush=True)


if __name__ == "__main__":
    main()
