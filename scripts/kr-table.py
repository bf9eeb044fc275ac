#!/usr/bin/env python3
"""kernels-report JSON lines (stdin or files) -> the Markdown table of the closing notes."""
import json, sys, fileinput
d = {}
for l in fileinput.input():
    l = l.strip()
    if l.startswith("{"):
        r = json.loads(l)
        d[(r["kernel"], r["m"], r["k"], r["n"], r["threads"], r["impl"])] = r["gflops"]
shapes = sorted({(k[1], k[2], k[3]) for k in d}, key=lambda s: (s[0] != 4096, s))
print("| m x k x n | threads | multiret f32 | gemm 0.19 | matrixmultiply 0.3 | f32 vs faster peer | multiret bf16 | bf16 / f32 |")
print("|---|---|---|---|---|---|---|---|")
for t in (1, 2):
    for (m, k, n) in shapes:
        o = d.get(("gemm_f32", m, k, n, t, "multiret"))
        g = d.get(("gemm_f32", m, k, n, t, "gemm"), 0)
        mm = d.get(("gemm_f32", m, k, n, t, "matrixmultiply"), 0)
        b = d.get(("gemm_bf16", m, k, n, t, "multiret"))
        if o is None:
            continue
        peer = max(g, mm)
        ratio = f"{o / peer:.2f}" if peer else "–"
        print(f"| {m}x{k}x{n} | {t} | {o:.0f} | {g:.0f} | {mm:.0f} | {ratio} | {b:.0f} | {b / o:.2f} |")
