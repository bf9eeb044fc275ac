"""PyTorch peer of embed-report: the same model, the same token ids, the same batches.

Started by embed-report (`--torch PYTHON`), never by the test suite. It reads a JSON job
file (the HF directory, the token ids, the batches as lists of indices, the pad id, the
thread count, the precisions it will ask for), loads the model once with transformers'
AutoModel, warms each such precision up on the longest batch, then serves timing requests on
stdin, one per line:

    f32 | bf16        time one pass over every batch; answer one JSON line on stdout
    quit

A pass embeds each batch (padded with the pad id, attention mask over the real tokens),
mean-pools the last hidden state over the real tokens and L2-normalises, in torch ops, under
`torch.inference_mode()`; bf16 runs under `torch.autocast("cpu", dtype=torch.bfloat16)`,
which is how PyTorch users run bf16 on CPU. The first pass of each precision also writes its
embeddings (float32, row-major, input order) to `OUT_DIR/torch-PRECISION.f32` so that
embed-report can check them against its own (after the timing).

Threads: `torch.set_num_threads(threads)` and one inter-op thread, set before any work
(torch_common.py).
"""

import os
import sys

import torch_common as tc


def main():
    job, torch, model = tc.start(sys.argv[1])
    ids = job["ids"]
    pad = int(job["pad_id"])
    out_dir = job["out_dir"]
    n = len(ids)
    tensors = [(b, *tc.padded(torch, [ids[i] for i in b], pad)) for b in job["batches"]]

    def run(precision, batches_):
        with torch.inference_mode(), tc.autocast(torch, precision):
            return [(b, tc.embed(torch, model, inp, mask)) for b, inp, mask in batches_]

    longest = tensors[-1:] if tensors else []
    for p in tc.wanted_precisions(job):
        run(p, longest)
    written = set()

    def answer(precision, outs):
        if precision not in written:
            dim = outs[0][1].shape[1] if outs else 0
            full = torch.zeros((n, dim), dtype=torch.float32)
            for b, emb in outs:
                full[torch.tensor(b, dtype=torch.long)] = emb
            path = os.path.join(out_dir, f"torch-{precision}.f32")
            with open(path, "wb") as f:
                f.write(full.numpy().astype("<f4").tobytes())
            written.add(precision)
        return {}

    tc.serve(torch, {}, lambda p: run(p, tensors), answer)


if __name__ == "__main__":
    main()
