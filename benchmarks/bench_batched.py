"""Batched replicas against sequential fits, and the step's flop rate against a plain GEMM.

For N pool points, M kernels and B replicas this prints, per dimension d:

(a) the wall time of B sequential single-replica fits divided by the time of
    one fit of all B replicas together (same epochs, same work per replica);
(b) the batched step's flop rate, 4 N d B M flops per step (the two GEMMs it
    performs: the distance product X @ C and the centre gradient G^T @ X; the
    element-wise work is not counted) divided by the step time, as a fraction
    of the rate of a plain ``torch.matmul`` of shape (N x d) @ (d x B*M) timed
    in the same process.

Usage::

    python benchmarks/bench_batched.py                 # N=20000, M=8, B=32, d=32,1024
    python benchmarks/bench_batched.py --dims 32 --epochs 20 --fused eager

Every figure is a ratio measured in one run; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sparker.core.schedules import width_schedule
from sparker.model.trainer import train_replicas


def _problem(N, d, B, M, seed=0):
    rng = np.random.default_rng(seed)
    X = torch.as_tensor(rng.standard_normal((N, d)), dtype=torch.float32)
    n_data = N // 10
    r = torch.zeros(N, B)
    dw = torch.zeros(N, B)
    for b in range(B):  # every replica: a different random data/reference split
        is_data = torch.as_tensor(rng.permutation(N) < n_data)
        dw[is_data, b] = 1.0
        r[~is_data, b] = n_data / (N - n_data)
    idx = np.stack([rng.choice(np.flatnonzero(dw[:, b].numpy()), M, replace=False) for b in range(B)])
    C0 = X[torch.as_tensor(idx)].to(torch.float64)  # (B, M, d)
    s0 = float(np.sqrt(2 * d))
    return X, r, dw, C0, width_schedule("geometric", 10_000, s0, 0.3 * s0)


def _fit(X, r, dw, C0, widths, epochs, fused):
    t = time.perf_counter()
    train_replicas(X, r, dw, C0, widths[:epochs], l1=0.0, reseed=False, record_every=0, fused=fused)
    return time.perf_counter() - t


def _matmul_rate(N, d, K, repeats=10):
    A = torch.randn(N, d)
    W = torch.randn(d, K)
    for _ in range(3):
        A @ W
    t = time.perf_counter()
    for _ in range(repeats):
        A @ W
    return 2.0 * N * d * K * repeats / (time.perf_counter() - t)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--kernels", type=int, default=8)
    p.add_argument("--replicas", type=int, default=32)
    p.add_argument("--dims", default="32,1024")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--fused", default="compile", choices=["auto", "eager", "compile"])
    args = p.parse_args(argv)
    N, M, B, E = args.n, args.kernels, args.replicas, args.epochs
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, fused={args.fused}")
    print(f"N={N} M={M} B={B} epochs={E}")
    print(f"{'d':>6} {'seq s':>8} {'batch s':>8} {'(a) ratio':>9} {'step ms':>8} "
          f"{'GF/s':>7} {'matmul GF/s':>11} {'(b) frac':>8}")
    for d in [int(x) for x in args.dims.split(",")]:
        X, r, dw, C0, widths = _problem(N, d, B, M)
        # warm-up (and compilation) for both shapes
        _fit(X, r, dw, C0, widths, 2, args.fused)
        _fit(X, r[:, :1].contiguous(), dw[:, :1].contiguous(), C0[:1], widths, 2, args.fused)
        t_batch = _fit(X, r, dw, C0, widths, E, args.fused)
        t_seq = sum(
            _fit(X, r[:, b:b + 1].contiguous(), dw[:, b:b + 1].contiguous(), C0[b:b + 1], widths, E, args.fused)
            for b in range(B)
        )
        step = t_batch / E
        rate = 4.0 * N * d * B * M / step
        mm = _matmul_rate(N, d, B * M)
        print(f"{d:>6} {t_seq:>8.2f} {t_batch:>8.2f} {t_seq / t_batch:>9.2f} {1e3 * step:>8.1f} "
              f"{rate / 1e9:>7.1f} {mm / 1e9:>11.1f} {rate / mm:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
