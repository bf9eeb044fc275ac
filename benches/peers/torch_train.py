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

Threads: `torch.set_num_threads(threads)` and one inter-op thread, set before any work
(torch_common.py).
"""

import sys

import torch_common as tc


def main():
    job, torch, model = tc.start(sys.argv[1])
    import torch.nn.functional as F

    torch.manual_seed(0)
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
        batches.append(
            (tc.padded(torch, b["queries"], pad), tc.padded(torch, b["passages"], pad), pos, excl)
        )

    def nce_rows(s, pos, excl):
        neg = ~(pos | excl)
        lse = torch.logsumexp(s.masked_fill(~neg, float("-inf")), dim=1, keepdim=True)
        per = F.softplus(lse - s) * pos
        return (per.sum(1) / pos.sum(1)).mean()

    def loss_of(batch, precision):
        (qi, qm), (pi, pm), pos, excl = batch
        with tc.autocast(torch, precision):
            q = tc.embed(torch, model, qi, qm)
            d = tc.embed(torch, model, pi, pm)
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
        return float(loss.detach())

    # The first batch's loss on the starting weights, then one untimed step per precision
    # that the report will ask for.
    precisions = tc.wanted_precisions(job)
    warm = {}
    if batches:
        with torch.no_grad():
            warm = {p: float(loss_of(batches[0], p)) for p in precisions}
        for p in precisions:
            step(batches[0], p)
    tc.serve(
        torch,
        {"warmup_losses": warm},
        lambda p: [step(b, p) for b in batches],
        lambda _p, losses: {"losses": losses},
    )


if __name__ == "__main__":
    main()
