"""Scaling of SparKer and the baselines: time and peak memory against N, d, M and replicas.

Parts (``--part``, several allowed; default all):

``sweep``
    SparKer's time per epoch and peak memory (RSS) against the pool size N, the
    dimension d, the number of kernels M (one fit each, ``SparKer.fit``) and the
    number of replicas B (``train_replicas``); the baselines MMD (``mmd``) and
    kernel NPLM (``nplm_kernel``, small ``n_null``) against N.  Every point runs
    in a fresh subprocess, so its peak RSS (``VmHWM``) is its own.
``linearity``
    Time per epoch at N and 4N (2.5e5 and 1e6 by default, d = 100), interleaved
    in one process: the ratio should be near 4 (docs/method.md, "Cost model").
``flops``
    The batched step's flop rate (4 N d B M per step: its two GEMMs, the
    element-wise work not counted) against a plain
    ``torch.matmul`` of shape (N x d) @ (d x B*M), in one process, interleaved,
    best of ``--repeats``: the fraction the issue asks to be >= 0.6.
``chunks``
    Time per epoch against the rows per chunk (what ``default_chunk_rows`` was
    tuned on).
``fits``
    Full fits with default settings (1000 epochs): N_R = 10**6, N_D = 10**4,
    d = 100 and N_R = 10**5, d = 2048, M = 8, the reference read memory-mapped
    from a ``.npy`` file: wall time and peak RSS.
``largest``
    The largest reference size N_R (N_D = N_R / 10, d = 32) for which a method
    finishes within ``--budget`` seconds (600), per method (SparKer, MMD,
    kernel NPLM, default settings), for the statistic alone and for one
    calibrated test with ``--n-null`` null samples (100).  N doubles until a
    run takes longer than ``--cap`` seconds; beyond that the time is
    extrapolated from the measured growth (the exponent between the last two
    sizes, at least the method's asymptotic one: 1 for SparKer and NPLM, 2 for
    MMD), and the output says so.  SparKer's largest N is predicted instead
    from its per-epoch and re-seeding costs measured at two large N (its
    small-N runs are dominated by per-epoch overheads, and large runs switch
    to the compiled step); the plain extrapolation is kept beside it.
``toys``
    A block of 16 resample toys as the calibrated test trains them (its three scales,
    N_D = N_R / 10, d = 32) at N_R = 100,000 and 400,000, interleaved in one process:
    time per epoch and its ratio between the sizes, with the fixed costs beside it (a
    re-seeding pass, the float64 final pass, compilation, standardising and widths, the
    toys' weights).
``versus``
    ``sparker.test`` (the default, and on the whole pool: ``reference_batch="all"``) and
    kernel NPLM's calibrated test (``--n-null`` null samples) on the same inputs, N_R = 50,000,
    N_D = 5,000, d = 32, in one process: the time ratios.
``batched``
    The largest N_R (N_D = N_R / 10, d = 32) for one default calibrated test (reference and
    data batches under "auto") within ``--budget`` seconds: tests at doubling N_R until one
    takes longer than ``--cap``, then extrapolated with the measured growth.
``memory``
    Peak RSS of a calibrated test at N_R = 10^6, N_D = 10^5, d = 32 with 3 epochs per
    scale (the memory of a test does not depend on its epochs).

Results go to ``--out`` (``scaling.json`` and PNG plots, matplotlib needed for
the plots).  ``--quick`` shrinks every part to a few minutes in all.  On a busy
machine run with ``--threads 1``: two OpenMP threads competing with other
processes for two cores slow down by up to 10x, which no ratio survives.

Usage::

    python benchmarks/bench_scaling.py --quick --out /tmp/scaling
    python benchmarks/bench_scaling.py --part fits linearity flops --threads 1 --out /tmp/scaling
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import sparker
from sparker.baselines import mmd, nplm_kernel
from sparker.core.schedules import width_schedule
from sparker.model.trainer import _COMPILE_WORK, default_chunk_rows, train_replicas

GiB = 2**30


# ============================================================ measurements (in a worker)
def _peak_rss() -> int:
    """Peak resident set size of this process in bytes (VmHWM)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _samples(n_ref: int, n_data: int, d: int, seed: int = 0):
    """float32 reference ~ N(0, I) and data with a 1% clump."""
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((n_ref, d), dtype=np.float32)
    D = rng.standard_normal((n_data, d), dtype=np.float32)
    k = max(1, n_data // 100)
    D[:k] = 0.2 * D[:k] + 1.0
    return R, D


def _replica_problem(N: int, d: int, B: int, M: int, seed: int = 0, device: str = "cpu"):
    """Pool, B random reference/data splits (10% data), starting centres, widths (on ``device``)."""
    rng = np.random.default_rng(seed)
    X = torch.as_tensor(rng.standard_normal((N, d), dtype=np.float32))
    n_data = max(M, N // 10)
    r = torch.zeros(N, B)
    dw = torch.zeros(N, B)
    idx = np.empty((B, M), dtype=np.int64)
    for b in range(B):
        rows = rng.permutation(N)
        dw[rows[:n_data], b] = 1.0
        r[rows[n_data:], b] = n_data / (N - n_data)
        idx[b] = rows[:M]
    C0 = X[torch.as_tensor(idx)].to(torch.float64)  # (B, M, d)
    s0 = math.sqrt(2 * d)
    X, r, dw, C0 = (t.to(device) for t in (X, r, dw, C0))
    return X, r, dw, C0, width_schedule("geometric", 1000, s0, 0.3 * s0)


def _time_train(X, r, dw, C0, widths, epochs, fused="auto", chunk_rows=None) -> float:
    """Seconds per training epoch, from the epoch callbacks (no set-up or final pass)."""
    stamps = []
    train_replicas(X, r, dw, C0, widths[:epochs], l1=0.0, reseed=False, record_every=0, fused=fused,
                   chunk_rows=chunk_rows, callback=lambda e, loss: stamps.append(time.perf_counter()))
    return (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)


def work_fit_epoch(N, d, M, epochs=12, **_):
    """SparKer.fit at N (N_D = N / 100): peak RSS of a short fit, then the time per epoch of
    the same training (1 replica) from the trainer's epoch callbacks."""
    R, D = _samples(N, max(M, N // 100), d)
    start = time.perf_counter()
    sparker.SparKer(n_kernels=M, epochs=2, reseed=False, record_every=0, seed=0).fit(R, D)
    fixed = time.perf_counter() - start
    rss = _peak_rss()  # the fit's own peak, before the timing run below
    X, r, dw, C0, widths = _replica_problem(N, d, 1, M)
    return {"epoch_s": _time_train(X, r, dw, C0, widths, epochs), "fixed_s": fixed, "fit_peak_rss": rss}


def work_replicas_epoch(N, d, M, B, epochs=8, **_):
    """train_replicas with B replicas: time per epoch, peak RSS."""
    X, r, dw, C0, widths = _replica_problem(N, d, B, M)
    return {"epoch_s": _time_train(X, r, dw, C0, widths, epochs)}


def work_baseline(method, N, d, n_null, **_):
    """One baseline test at N_R = N, N_D = N / 10."""
    R, D = _samples(N, max(2, N // 10), d)
    start = time.perf_counter()
    if method == "mmd":
        mmd(R, D, n_null=n_null, seed=0)
    else:
        nplm_kernel(R, D, n_null=n_null, seed=0)
    return {"test_s": time.perf_counter() - start}


def work_test(method, N, d, n_null, **_):
    """At N_R = N, N_D = N / 10, default settings: one calibrated test with ``n_null`` null
    samples, or with ``n_null = 0`` the statistic alone (SparKer: one fit; the baselines:
    their smallest test, one null sample)."""
    R, D = _samples(N, max(2, N // 10), d)
    start = time.perf_counter()
    if method == "sparker":
        if n_null:
            sparker.test(R, D, n_null=n_null, seed=0)
        else:
            sparker.SparKer(seed=0).fit(R, D)
    elif method == "mmd":
        mmd(R, D, n_null=max(1, n_null), seed=0)
    else:
        nplm_kernel(R, D, n_null=max(1, n_null), seed=0)
    return {"test_s": time.perf_counter() - start}


def _fused_for(work: float) -> str:
    """The step ``fused="auto"`` picks for this much work (rows x replicas x kernels x epochs)."""
    return "compile" if work >= _COMPILE_WORK else "eager"


def _probe_epochs(X, r, dw, C0, widths, **train):
    """A re-seeding run over ``widths`` timed epoch by epoch: the median seconds per epoch,
    the seconds its re-seeding passes add (9 in 24 or more epochs), and its TrainResult."""
    stamps: list[float] = []
    res = train_replicas(X, r, dw, C0, widths, reseed=True, record_every=0, **train,
                         callback=lambda e, loss: stamps.append(time.perf_counter()))
    gaps = np.diff(stamps)
    per_epoch = float(np.median(gaps))
    return per_epoch, float(np.sum(gaps) - per_epoch * len(gaps)), res


def work_sparker_model(N, d, n_null, epochs=1000, probe=24, **_):
    """Predicted time of SparKer's fit and calibrated test at N_R = N, N_D = N / 10.

    Measures, at this N: the fixed cost of a fit (standardising, widths, pool, kernel
    table: a 2-epoch fit), the time per epoch and the cost of the 8 re-seeding passes for
    1 replica (the observed fit) and for a block of 16 (the null toys), with the compiled
    or eager step that ``fused="auto"`` picks for ``epochs`` epochs.  A test is the
    observed fit plus ``ceil(n_null / 16)`` blocks.
    """
    R, D = _samples(N, max(2, N // 10), d)
    start = time.perf_counter()
    sparker.SparKer(epochs=2, reseed=False, seed=0).fit(R, D)
    fixed = time.perf_counter() - start
    out = {"fixed_s": fixed}
    for B in (1, 16):
        X, r, dw, C0, widths = _replica_problem(N + N // 10, d, B, 8)
        fused = _fused_for((N + N // 10) * B * 8 * epochs)
        _time_train(X, r, dw, C0, widths, 3, fused=fused)  # warm-up (and compilation)
        per_epoch, reseeds, _ = _probe_epochs(X, r, dw, C0, widths[:probe], l1=0.0, fused=fused)
        out[f"epoch_s_B{B}"] = per_epoch
        out[f"reseed_s_B{B}"] = reseeds  # the fit's 9 re-seeding passes
        out[f"fused_B{B}"] = fused
    fit = fixed + epochs * out["epoch_s_B1"] + out["reseed_s_B1"]
    blocks = -(-n_null // 16)
    out["fit_s"] = fit
    out["test_s"] = fit + blocks * (epochs * out["epoch_s_B16"] + out["reseed_s_B16"])
    return out


def work_full_fit(N, d, M, epochs, n_data, data_dir, **_):
    """A default fit with the reference memory-mapped from a .npy file: time and peak RSS."""
    path = Path(data_dir) / f"reference_{N}_{d}.npy"
    if not path.exists():  # written in row blocks: never the whole array in memory
        rng = np.random.default_rng(0)
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(N, d))
        for lo in range(0, N, 50_000):
            mm[lo:lo + 50_000] = rng.standard_normal((min(N, lo + 50_000) - lo, d), dtype=np.float32)
        mm.flush()
        del mm
    R = np.load(path, mmap_mode="r")
    D = _samples(n_data, n_data, d, seed=1)[1]
    start = time.perf_counter()
    model = sparker.SparKer(n_kernels=M, epochs=epochs, seed=0).fit(R, D)
    return {"fit_s": time.perf_counter() - start, "statistic": model.statistic_}


def _toy_block(N: int, d: int, config, seed: int = 0):
    """A block of 16 resample toys at N_R = N, N_D = N / 10, as the calibrated test builds it.

    Returns the pool (N, d) float32 tensor, the block's weights (N, 16) and starting centres,
    the configuration's width schedule and the seconds spent on standardising, widths and
    the toys' weights.
    """
    from sparker.calibration.toys import TOY_KEY, WIDTH_KEY, child_seed, toy_block_weights
    from sparker.core.nulls import NullSpec
    from sparker.core.pool import preprocessing
    from sparker.core.streaming import standardized_pool
    from sparker.model.ensemble import init_centres, resolve_widths

    R, _ = _samples(N, 2, d, seed=seed)
    start = time.perf_counter()
    _, Rs = preprocessing(R, None, None, "reference")
    pool = standardized_pool([Rs], augmented=False)  # (N, d) float32, canonical order
    (s0, s1), = resolve_widths(Rs, config, child_seed(seed, WIDTH_KEY))
    prep = time.perf_counter() - start
    start = time.perf_counter()
    ids = tuple(range(16))
    r, dw = toy_block_weights(NullSpec("resample", N, max(2, N // 10)), seed, ids, None)
    weights = time.perf_counter() - start
    rngs = [np.random.default_rng(child_seed(seed, TOY_KEY, b, 1)) for b in ids]
    C0 = init_centres(pool, r, dw, config.n_kernels, rngs)
    widths = width_schedule(config.schedule, config.epochs, s0, s1)
    return pool, r, dw, C0, widths, prep, weights


def work_toy_cost(sizes, d, probe=24, repeats=3, **_):
    """Costs of a block of 16 resample toys at each N_R of ``sizes`` (N_D = N_R / 10) for every
    configuration of the default calibrated test (its three scales), the sizes interleaved
    in one process: seconds per epoch (median over ``repeats`` probe runs of ``probe``
    epochs, compiled or eager as ``fused="auto"`` picks for the full run), one re-seeding
    pass (a fit has 9), the float64 final pass, the first run's compilation, and
    standardising with widths, and drawing the 16 toys' weights."""
    from sparker.calibration.api import training_configs
    from sparker.model.trainer import evaluate_loss

    out = {"sizes": list(sizes), "configs": []}
    for cfg in training_configs({}, "auto"):
        problems = {N: _toy_block(N, d, cfg) for N in sizes}
        rows = {N: {"epoch": [], "reseed": []} for N in sizes}
        fused = {N: _fused_for(N * 16 * cfg.n_kernels * cfg.epochs) for N in sizes}
        kw = dict(l1=cfg.l1, a_max=cfg.a_max, lr_centres=cfg.lr_centres, lr_amplitudes=cfg.lr_amplitudes,
                  competition=cfg.competition)
        first = {}
        for N, (X, r, dw, C0, widths, *_) in problems.items():
            start = time.perf_counter()
            train_replicas(X, r, dw, C0, widths[:2], reseed=False, record_every=0, fused=fused[N],
                           **kw)  # compiles once
            first[N] = time.perf_counter() - start
        for _ in range(repeats):
            for N, (X, r, dw, C0, widths, *_) in problems.items():
                per_epoch, reseeds, res = _probe_epochs(X, r, dw, C0, widths[:probe], fused=fused[N], **kw)
                rows[N]["epoch"].append(per_epoch)
                rows[N]["reseed"].append(reseeds / 9)
                rows[N]["result"] = res
        entry = {"n_kernels": cfg.n_kernels, "epochs": cfg.epochs, "by_size": {}}
        for N, (X, r, dw, C0, widths, prep, weights) in problems.items():
            res = rows[N].pop("result")
            start = time.perf_counter()
            evaluate_loss(X, res.centres, res.amplitudes, res.sigma, r, dw, competition=cfg.competition)
            final = time.perf_counter() - start
            per_epoch = float(np.median(rows[N]["epoch"]))
            entry["by_size"][str(N)] = {
                "fused": fused[N], "epoch_s": per_epoch, "epoch_s_runs": rows[N]["epoch"],
                "reseed_s": float(np.median(rows[N]["reseed"])), "final_s": final,
                "first_run_s": first[N], "prepare_s": prep, "weights_s": weights,
            }
        out["configs"].append(entry)
    return out


def work_memory(N, d, n_null, epochs, **_):
    """A calibrated test at N_R = N, N_D = N / 10 with ``epochs`` epochs per scale (the memory
    of a test does not depend on its epochs): wall time; peak RSS is added by the worker."""
    from sparker import config as sparker_config

    R, D = _samples(N, max(2, N // 10), d)
    scales = tuple({**c, "epochs": epochs} for c in sparker_config.SCALES["multi"])
    sparker_config.SCALES["multi"] = scales  # same three scales, fewer epochs each
    start = time.perf_counter()
    sparker.test(R, D, n_null=n_null, seed=0, scales="multi")
    return {"test_s": time.perf_counter() - start}


def work_versus(N, d, n_null, **_):
    """sparker.test (the default, and on the whole pool: ``reference_batch="all"``) and
    kernel NPLM's calibrated test on the same inputs, one process."""
    R, D = _samples(N, max(2, N // 10), d)
    start = time.perf_counter()
    nplm_kernel(R, D, n_null=n_null, seed=0)
    nplm = time.perf_counter() - start
    start = time.perf_counter()
    res = sparker.test(R, D, n_null=n_null, seed=0)
    default = time.perf_counter() - start
    start = time.perf_counter()
    whole = sparker.test(R, D, n_null=n_null, seed=0, reference_batch="all")
    return {"nplm_s": nplm, "sparker_s": default, "sparker_p": float(res.pvalue),
            "whole_pool_s": time.perf_counter() - start, "whole_pool_p": float(whole.pvalue)}


WORKERS = {
    "fit_epoch": work_fit_epoch,
    "replicas_epoch": work_replicas_epoch,
    "baseline": work_baseline,
    "test": work_test,
    "sparker_model": work_sparker_model,
    "full_fit": work_full_fit,
    "toy_cost": work_toy_cost,
    "memory": work_memory,
    "versus": work_versus,
}


def _worker(spec: dict) -> None:
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    out = WORKERS[spec["kind"]](**spec)
    out["peak_rss"] = _peak_rss()
    print("RESULT " + json.dumps(out), flush=True)


def run_point(spec: dict, threads: int | None, timeout: float | None = None) -> dict | None:
    """Run one measurement in a fresh process; None if it ran past ``timeout`` or failed."""
    spec = {**spec, "threads": threads}
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, check=False,
                              text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        print(f"    worker failed ({spec['kind']}): {proc.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    out = json.loads(lines[-1][len("RESULT "):])
    out["wall_s"] = time.perf_counter() - start
    return out


# ============================================================ parts
def part_sweep(args, results):
    q = args.quick
    res = results.setdefault("sweep", {})
    grids = {
        "N": [10_000, 100_000] if q else [10_000, 30_000, 100_000, 300_000, 1_000_000],
        "d": [16, 64, 256] if q else [16, 64, 256, 1024, 2048],
        "M": [2, 32] if q else [2, 4, 8, 16, 32],
        "B": [1, 4, 16] if q else [1, 4, 16, 64],
    }
    base = {"N": 30_000 if q else 100_000, "d": 32, "M": 8}
    print("\n== sweep: SparKer time per epoch and peak RSS", flush=True)
    for axis in ("N", "d", "M"):
        rows = []
        for v in grids[axis]:
            spec = {**base, axis: v, "kind": "fit_epoch"}
            if axis == "d":
                spec["N"] = 20_000
            out = run_point(spec, args.threads)
            if out:
                out["peak_rss"] = out.pop("fit_peak_rss")  # the fit's peak, not the timing run's
                rows.append({**spec, **out})
                print(f"  {axis}={v:>8}: {1e3 * out['epoch_s']:9.2f} ms/epoch  peak RSS of the fit "
                      f"{out['peak_rss'] / GiB:6.2f} GiB  (N={spec['N']}, d={spec['d']}, M={spec['M']})", flush=True)
        res[f"sparker_vs_{axis}"] = rows
    rows = []
    for B in grids["B"]:
        spec = {"kind": "replicas_epoch", "N": 20_000, "d": 32, "M": 8, "B": B}
        out = run_point(spec, args.threads)
        if out:
            rows.append({**spec, **out})
            print(f"  B={B:>8}: {1e3 * out['epoch_s']:9.2f} ms/epoch  "
                  f"({1e3 * out['epoch_s'] / B:.2f} ms per replica)  peak RSS {out['peak_rss'] / GiB:.2f} GiB",
                  flush=True)
    res["sparker_vs_B"] = rows
    print("\n== sweep: baselines against N (N_R = N, N_D = N / 10, d = 32)", flush=True)
    for method, n_null in (("mmd", 10), ("nplm_kernel", 4)):
        rows = []
        N = 1_000
        while N <= (8_000 if q else 1_000_000):
            spec = {"kind": "baseline", "method": method, "N": N, "d": 32, "n_null": n_null}
            out = run_point(spec, args.threads, timeout=args.cap)
            if out is None:
                print(f"  {method} N={N}: longer than --cap {args.cap:g} s; stopping", flush=True)
                break
            rows.append({**spec, **out})
            print(f"  {method:<11} N={N:>8}: {out['test_s']:8.2f} s per test (n_null={n_null})  "
                  f"peak RSS {out['peak_rss'] / GiB:.2f} GiB", flush=True)
            N *= 2
        res[f"{method}_vs_N"] = rows


def part_linearity(args, results):
    n1, n4 = (50_000, 200_000) if args.quick else (250_000, 1_000_000)
    d = 100
    print(f"\n== linearity: time per epoch at N={n1} and N={n4} (d={d}, M=8, B=1), interleaved", flush=True)
    X, r, dw, C0, widths = _replica_problem(n4, d, 1, 8, device=args.device)
    small = (X[:n1], r[:n1].contiguous(), dw[:n1].contiguous(), C0, widths)  # the first N rows: same mix
    big = (X, r, dw, C0, widths)
    epochs = 6 if args.quick else 11
    for prob in (small, big):
        _time_train(*prob, 3)  # warm-up
    t = {n1: [], n4: []}
    for _ in range(args.repeats):
        t[n1].append(_time_train(*small, epochs))
        t[n4].append(_time_train(*big, epochs))
    b1, b4 = min(t[n1]), min(t[n4])  # noise from other processes only adds time: best of repeats
    m1, m4 = float(np.median(t[n1])), float(np.median(t[n4]))
    print(f"  N={n1}: {1e3 * b1:.1f} ms/epoch  N={n4}: {1e3 * b4:.1f} ms/epoch (best of {args.repeats})  "
          f"ratio {b4 / b1:.2f}; medians {1e3 * m1:.1f} / {1e3 * m4:.1f} ms, ratio {m4 / m1:.2f} "
          f"(linear: 4; target [3.5, 4.5])", flush=True)
    print(f"  all (ms): {[round(1e3 * x, 1) for x in t[n1]]} / {[round(1e3 * x, 1) for x in t[n4]]}", flush=True)
    results["linearity"] = {"N": [n1, n4], "d": d, "epoch_s": [b1, b4], "ratio": b4 / b1,
                            "median_ratio": m4 / m1, "all": {str(k): v for k, v in t.items()}}


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _matmul_time(N, d, K, device="cpu") -> float:
    A = torch.randn(N, d, device=device)
    W = torch.randn(d, K, device=device)
    for _ in range(2):
        A @ W
    _sync(device)
    start = time.perf_counter()
    for _ in range(10):
        A @ W
    _sync(device)
    return (time.perf_counter() - start) / 10


def part_flops(args, results):
    N, B, M = 20_000, 32, 8
    dims = args.flops_dims or ([32, 1024] if args.quick else [32, 100, 1024])
    if str(args.device).startswith("cuda"):
        N = 200_000  # a GPU needs more work per step to leave launch overheads behind
    print(f"\n== flops on {args.device}: batched step vs plain matmul (N={N}, B={B}, M={M}; "
          f"4 N d B M flops per step)", flush=True)
    rows = []
    for d in dims:
        X, r, dw, C0, widths = _replica_problem(N, d, B, M, device=args.device)
        mm_flops = 2.0 * N * d * B * M  # one (N x d) @ (d x B*M) product
        step_flops = 2 * mm_flops  # the step's two GEMMs: X @ C and G^T @ X
        for fused in ("eager", "compile"):
            _time_train(X, r, dw, C0, widths, 2, fused=fused)  # warm-up / compilation
            steps, mms = [], []
            epochs = 6 if d > 256 else 11
            for _ in range(args.repeats):
                steps.append(_time_train(X, r, dw, C0, widths, epochs, fused=fused))
                mms.append(_matmul_time(N, d, B * M, args.device))
            step, mm = min(steps), min(mms)
            rate, mm_rate = step_flops / step, mm_flops / mm
            rows.append({"d": d, "fused": fused, "step_s": step, "matmul_s": mm, "fraction": rate / mm_rate,
                         "median_fraction": float(np.median([(step_flops / s) / (mm_flops / m)
                                                             for s, m in zip(steps, mms)]))})
            print(f"  d={d:>5} {fused:>7}: step {1e3 * step:8.1f} ms  {rate / 1e9:6.1f} GF/s   matmul "
                  f"{mm_rate / 1e9:6.1f} GF/s   fraction {rate / mm_rate:.2f} (best of {args.repeats}; "
                  f"median {rows[-1]['median_fraction']:.2f})", flush=True)
    results["flops"] = rows


def part_chunks(args, results):
    print("\n== chunks: time per epoch against rows per chunk", flush=True)
    shapes = [(100_000, 100, 1), (50_000, 32, 16), (20_000, 1024, 16), (20_000, 2048, 1)]
    if args.quick:
        shapes = shapes[:2]
    rows = []
    for N, d, B in shapes:
        X, r, dw, C0, widths = _replica_problem(N, d, B, 8)
        default = default_chunk_rows(N, B * 8)
        line = []
        for rows_ in sorted({256, 512, 1024, 2048, 4096, 8192, 16384, 32768, default}):
            t = min(_time_train(X, r, dw, C0, widths, 4, fused="eager", chunk_rows=rows_) for _ in range(2))
            rows.append({"N": N, "d": d, "B": B, "chunk_rows": rows_, "epoch_s": t, "default": rows_ == default})
            line.append(f"{rows_}{'*' if rows_ == default else ''}:{1e3 * t:.0f}")
        print(f"  N={N} d={d} B={B} (ms/epoch; * = default): " + " ".join(line), flush=True)
    results["chunks"] = rows


def part_fits(args, results):
    epochs = 20 if args.quick else 1000
    cases = [(1_000_000, 100), (100_000, 2048)]
    if args.quick:
        cases = [(200_000, 100), (20_000, 2048)]
    print(f"\n== fits: SparKer.fit, M=8, N_D=10**4, {epochs} epochs, reference memory-mapped (.npy)", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.data_dir) as tmp:
        for N, d in cases:
            spec = {"kind": "full_fit", "N": N, "d": d, "M": 8, "epochs": epochs, "n_data": 10_000,
                    "data_dir": tmp}
            out = run_point(spec, args.threads)
            if out:
                rows.append({**{k: v for k, v in spec.items() if k != "data_dir"}, **out})
                print(f"  N_R={N:>8} d={d:>5}: fit {out['fit_s']:7.1f} s  peak RSS {out['peak_rss'] / GiB:.2f} GiB "
                      f"(incl. the memory-mapped file's resident pages)  t={out['statistic']:.3f}", flush=True)
    results["fits"] = rows


def _extrapolate(rows, budget, min_exponent):
    """Largest N with predicted time <= budget from the last two measured (N, time) points."""
    (n0, t0), (n1, t1) = rows[-2], rows[-1]
    k = max(min_exponent, math.log(t1 / t0) / math.log(n1 / n0)) if t1 > 0 and t0 > 0 else min_exponent
    return n1 * (budget / t1) ** (1.0 / k), k


def _largest_measured(method, n_null, args, min_k):
    """Run tests at N_R = 1000, 2000, ... until one takes longer than --cap; extrapolate."""
    rows = []
    N = 1_000
    while True:
        spec = {"kind": "test", "method": method, "N": N, "d": 32, "n_null": n_null}
        out = run_point(spec, args.threads, timeout=min(args.cap, args.budget))
        if out is None:
            break
        rows.append((N, out["test_s"]))
        print(f"  {method:<11} N_R={N:>8}: {out['test_s']:8.1f} s  peak RSS {out['peak_rss'] / GiB:.2f} GiB",
              flush=True)
        if out["test_s"] > args.budget:
            break
        N *= 2
    if not rows:
        return {"largest_N": None, "note": "the smallest size already ran past the cap", "points": []}
    if len(rows) >= 2 and rows[-1][1] < args.budget:
        n_max, k = _extrapolate(rows, args.budget, min_k)
        note = (f"extrapolated: time ~ N^{k:.2f} from N_R={rows[-2][0]}..{rows[-1][0]} "
                f"(measured up to N_R={rows[-1][0]}: {rows[-1][1]:.0f} s)")
    else:
        n_max = max((n for n, t in rows if t <= args.budget), default=None)
        note = "measured"
    return {"largest_N": None if n_max is None else int(n_max), "note": note,
            "points": [{"N": n, "test_s": t} for n, t in rows]}


def _largest_sparker_model(n_null, args):
    """SparKer's time at two large N from measured per-epoch costs; linear in N between them."""
    sizes = (20_000, 60_000) if args.quick else (100_000, 400_000)
    pts = []
    for N in sizes:
        out = run_point({"kind": "sparker_model", "N": N, "d": 32, "n_null": n_null}, args.threads)
        if out is None:
            return None
        key = "test_s" if n_null else "fit_s"
        pts.append((N, out[key]))
        print(f"  sparker     N_R={N:>8}: predicted {out[key]:8.1f} s  ({1e3 * out['epoch_s_B1']:.1f} ms/epoch "
              f"for the fit, {1e3 * out['epoch_s_B16']:.1f} ms/epoch per block of 16 toys, "
              f"{out['fused_B16']}; peak RSS {out['peak_rss'] / GiB:.2f} GiB)", flush=True)
    (n0, t0), (n1, t1) = pts
    slope = (t1 - t0) / (n1 - n0)
    n_max = n1 + (args.budget - t1) / slope if slope > 0 else None
    note = (f"predicted from per-epoch times measured at N_R={n0} ({t0:.0f} s) and {n1} ({t1:.0f} s), "
            f"linear in N")
    return {"largest_N": None if n_max is None else int(n_max), "note": note,
            "points": [{"N": n, "test_s": t, "predicted": True} for n, t in pts]}


def part_largest(args, results):
    asymptotic = {"sparker": 1.0, "mmd": 2.0, "nplm_kernel": 1.0}
    out = {"budget_s": args.budget, "n_null": args.n_null}
    for n_null, label in ((0, "statistic"), (args.n_null, "test")):
        what = ("the statistic alone (SparKer: one fit, 1000 epochs; MMD, kernel NPLM: one null sample)"
                if n_null == 0 else f"one calibrated test with {n_null} null samples")
        print(f"\n== largest N_R (N_D = N_R / 10, d = 32) for {what} within {args.budget:g} s; runs are "
              f"capped at {args.cap:g} s, beyond that extrapolated", flush=True)
        table = {m: _largest_measured(m, n_null, args, k) for m, k in asymptotic.items()}
        model = _largest_sparker_model(n_null, args)
        if model is not None:
            table["sparker"]["extrapolated_N"] = table["sparker"]["largest_N"]
            table["sparker"].update({k: v for k, v in model.items() if k != "points"})
            table["sparker"]["points"] += model["points"]
        print(f"\n  largest N_R within {args.budget:g} s, {what}:")
        for method, row in table.items():
            n = row["largest_N"]
            print(f"    {method:<11} {'-' if n is None else f'{n:,.0f}':>14}   {row['note']}")
        out[label] = table
    results["largest"] = out


def part_batched(args, results):
    """Largest N_R for the default calibrated test (N_D = N_R / 10, d = 32, ``--n-null`` null
    samples; reference and data batches under "auto"), measured at doubling N_R up to ``--cap``
    seconds, then extrapolated with the measured growth (at least linear)."""
    print(f"\n== largest N_R for one default calibrated test, {args.n_null} null samples, "
          f"within {args.budget:g} s (runs capped at {args.cap:g} s)", flush=True)
    row = _largest_measured("sparker", args.n_null, args, 1.0)
    n = row["largest_N"]
    print(f"  sparker: {'-' if n is None else f'{n:,.0f}'}   {row['note']}")
    results["batched"] = row


def part_toys(args, results):
    """Per-epoch cost of a block of 16 toys at N_R and 4 N_R, the fixed costs beside it."""
    sizes = (20_000, 80_000) if args.quick else (100_000, 400_000)
    out = run_point({"kind": "toy_cost", "sizes": sizes, "d": 32, "repeats": args.repeats}, args.threads)
    if out is None:
        return
    n0, n1 = (str(n) for n in sizes)
    print(f"\n== a block of 16 resample toys, d = 32, N_D = N_R / 10 (peak RSS {out['peak_rss'] / GiB:.2f} GiB)")
    for c in out["configs"]:
        a, b = c["by_size"][n0], c["by_size"][n1]
        print(f"  {c['n_kernels']} kernels, {c['epochs']} epochs: {1e3 * a['epoch_s']:.1f} ms/epoch at N_R={n0}, "
              f"{1e3 * b['epoch_s']:.1f} at {n1}: ratio {b['epoch_s'] / a['epoch_s']:.2f} ({b['fused']})")
        for n, x in ((n0, a), (n1, b)):
            print(f"    N_R={n}: re-seeding {x['reseed_s']:.2f} s per pass (9 per fit), final float64 pass "
                  f"{x['final_s']:.2f} s, first 2-epoch run {x['first_run_s']:.1f} s (compilation), "
                  f"standardising + widths {x['prepare_s']:.2f} s, 16 toys' weights {x['weights_s']:.2f} s")
    results["toys"] = out


def part_versus(args, results):
    """sparker.test against kernel NPLM's test at N_R = 50,000, N_D = 5,000, d = 32, one process."""
    N = 10_000 if args.quick else 50_000
    out = run_point({"kind": "versus", "N": N, "d": 32, "n_null": args.n_null}, args.threads)
    if out is None:
        return
    print(f"\n== calibrated tests, {args.n_null} null samples, N_R = {N}, N_D = {N // 10}, d = 32: "
          f"sparker {out['sparker_s']:.1f} s (on the whole pool: {out['whole_pool_s']:.1f} s), "
          f"kernel NPLM {out['nplm_s']:.1f} s: {out['sparker_s'] / out['nplm_s']:.1f}x NPLM's time "
          f"({out['whole_pool_s'] / out['nplm_s']:.1f}x on the whole pool)")
    results["versus"] = out


def part_memory(args, results):
    """Peak RSS of a calibrated test at N_R = 10^6 (three scales, few epochs: memory does not
    depend on the epochs)."""
    N = 100_000 if args.quick else 1_000_000
    out = run_point({"kind": "memory", "N": N, "d": 32, "n_null": args.n_null, "epochs": 3}, args.threads)
    if out is None:
        return
    print(f"\n== calibrated test at N_R = {N}, N_D = {N // 10}, d = 32, {args.n_null} null samples, 3 epochs "
          f"per scale: peak RSS {out['peak_rss'] / GiB:.2f} GiB ({out['test_s']:.0f} s)")
    results["memory"] = out


# ============================================================ plots
def plot(results, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def _save(fig, path: Path) -> Path:
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    written = []
    sweep = results.get("sweep")
    if sweep:
        fig, axes = plt.subplots(2, 2, figsize=(11, 8))
        ax = axes[0, 0]
        rows = sweep.get("sparker_vs_N", [])
        if rows:
            ax.loglog([r["N"] for r in rows], [r["epoch_s"] for r in rows], "o-", label="SparKer, per epoch")
            ax.loglog([r["N"] for r in rows], [1000 * r["epoch_s"] + r["fixed_s"] for r in rows], "o--",
                      label="SparKer fit, 1000 epochs (est.)")
        for method, style in (("mmd", "s-"), ("nplm_kernel", "^-")):
            rows_b = sweep.get(f"{method}_vs_N", [])
            if rows_b:
                ax.loglog([r["N"] for r in rows_b], [r["test_s"] for r in rows_b], style,
                          label=f"{method}, one test (n_null={rows_b[0]['n_null']})")
        ax.set(xlabel="N (reference points)", ylabel="seconds", title="time against N (d = 32)")
        ax.legend(fontsize=8)
        ax = axes[0, 1]
        for key, label in (("sparker_vs_N", "SparKer fit"), ("mmd_vs_N", "mmd"), ("nplm_kernel_vs_N", "nplm_kernel")):
            rows_m = sweep.get(key, [])
            if rows_m:
                ax.loglog([r["N"] for r in rows_m], [r["peak_rss"] / GiB for r in rows_m], "o-", label=label)
        ax.set(xlabel="N", ylabel="peak RSS (GiB)", title="peak memory against N")
        ax.legend(fontsize=8)
        ax = axes[1, 0]
        rows = sweep.get("sparker_vs_d", [])
        if rows:
            ax.loglog([r["d"] for r in rows], [r["epoch_s"] for r in rows], "o-", label="time per epoch (s)")
            ax.loglog([r["d"] for r in rows], [r["peak_rss"] / GiB for r in rows], "s--", label="peak RSS (GiB)")
        ax.set(xlabel="d", title="SparKer against d (N = 20,000, M = 8)")
        ax.legend(fontsize=8)
        ax = axes[1, 1]
        for key, label in (("sparker_vs_M", "M kernels (B = 1)"), ("sparker_vs_B", "B replicas (M = 8)")):
            rows = sweep.get(key, [])
            if rows:
                x = [r["M"] if key.endswith("M") else r["B"] for r in rows]
                ax.loglog(x, [r["epoch_s"] for r in rows], "o-", label=label)
        ax.set(xlabel="M or B", ylabel="seconds per epoch", title="SparKer against M and B")
        ax.legend(fontsize=8)
        written.append(_save(fig, out / "scaling.png"))
    largest = results.get("largest")
    if largest:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, label in zip(axes, ("statistic", "test")):
            for method, row in largest.get(label, {}).items():
                pts = [pt for pt in row.get("points", []) if not pt.get("predicted")]
                pred = [pt for pt in row.get("points", []) if pt.get("predicted")]
                if pts:
                    line = ax.loglog([pt["N"] for pt in pts], [pt["test_s"] for pt in pts], "o-", label=method)[0]
                    if pred:
                        ax.loglog([pt["N"] for pt in pred], [pt["test_s"] for pt in pred], "x--",
                                  color=line.get_color(), label=f"{method} (predicted)")
            ax.axhline(largest["budget_s"], color="grey", ls=":", label="budget")
            title = "statistic alone" if label == "statistic" else f"test, {largest['n_null']} null samples"
            ax.set(xlabel="N_R (N_D = N_R / 10, d = 32)", ylabel="seconds", title=title)
            ax.legend(fontsize=8)
        written.append(_save(fig, out / "largest_n.png"))
    return written


PARTS = {
    "sweep": part_sweep,
    "linearity": part_linearity,
    "flops": part_flops,
    "chunks": part_chunks,
    "fits": part_fits,
    "largest": part_largest,
    "toys": part_toys,
    "versus": part_versus,
    "batched": part_batched,
    "memory": part_memory,
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--part", nargs="+", choices=sorted(PARTS), default=None, help="parts to run (default: all)")
    p.add_argument("--out", type=Path, default=Path("scaling-results"), help="folder for JSON and PNGs")
    p.add_argument("--quick", action="store_true", help="small sizes: a few minutes in all")
    p.add_argument("--threads", type=int, default=None, help="torch/OpenMP threads (default: torch's)")
    p.add_argument("--budget", type=float, default=600.0, help="seconds for 'largest' (default: 600)")
    p.add_argument("--cap", type=float, default=None,
                   help="longest single run before extrapolating (default: 60 s, 8 s with --quick)")
    p.add_argument("--n-null", type=int, default=100, help="null samples per test in 'largest' (default: 100)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats in 'linearity' and 'flops'")
    p.add_argument("--flops-dims", type=int, nargs="+", default=None,
                   help="dimensions of the 'flops' part (default: 32 100 1024)")
    p.add_argument("--device", default="cpu",
                   help="device of the 'linearity' and 'flops' parts, e.g. cuda (default: cpu)")
    p.add_argument("--data-dir", default=None, help="where 'fits' writes its temporary .npy (default: TMPDIR)")
    args = p.parse_args(argv)
    if args.worker:
        _worker(json.loads(args.worker))
        return 0
    if args.cap is None:
        args.cap = 8.0 if args.quick else 60.0
    if args.threads:
        torch.set_num_threads(args.threads)
    parts = args.part or ["sweep", "linearity", "flops", "chunks", "fits", "largest"]
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}, quick={args.quick}", flush=True)
    results: dict = {"threads": torch.get_num_threads(), "quick": args.quick}
    start = time.perf_counter()
    for name in parts:
        PARTS[name](args, results)
        (args.out / "scaling.json").write_text(json.dumps(results, indent=1))
    try:
        for path in plot(results, args.out):
            print(f"wrote {path}")
    except ImportError:
        print("matplotlib is not installed: no plots")
    print(f"wrote {args.out / 'scaling.json'}; total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
