"""One short CPU-versus-GPU check: a calibrated test and a large fit, timed on both.

Two representative jobs run on the CPU and, when there is one, on a CUDA device:

(A) ``sparker.test`` with 100 null toys at N_R = 20,000, N_D = 2,000, d = 32
    (``gauss_highd`` with a 1% clump), default training settings;
(B) ``SparKer.fit`` at N_R = 10**6, N_D = 10**4, d = 100, M = 8 (float32 input).

For each it prints the wall time on both devices and their ratio, and checks
that the results agree: the statistics within ``--rtol`` (training runs in
float32, whose rounding differs between devices and grows over the epochs), the
null distributions' medians within ``--rtol`` and the p-values within 0.05.  It
exits 0 (with ``--strict``, 1 on disagreement).  Without a GPU, or with
``--cpu-only``, it says so and times the CPU alone.

The whole run is sized for under 3 minutes (``--time-limit``, 170 s) on a machine
with a GPU: compilation warm-ups and short CPU probes first (compilation is left out
of (A)'s timings; (B)'s fits compile on both devices, which the output says); (A) runs fewer toys if its CPU side would take
more than half the limit, and (B) runs ``--fit-epochs`` epochs (default 200), fewer
if the rest of the limit would be exceeded.  Both devices then run the reduced
count, and the output says so.  (On a busy 2-core machine, one thread, (A) alone
takes about 3.5 minutes on the CPU.)

Usage::

    python benchmarks/gpu_check.py              # CPU and GPU (if any)
    python benchmarks/gpu_check.py --cpu-only   # CPU timings only
    python benchmarks/gpu_check.py --quick      # small sizes: a smoke run
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np
import torch

import sparker


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device: str):
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


def _test_job(R, D, device, n_null, epochs):
    return sparker.test(R, D, n_null=n_null, seed=0, device=device, epochs=epochs)


def _fit_job(R, D, device, epochs):
    return sparker.SparKer(n_kernels=8, epochs=epochs, seed=0, device=device).fit(R, D)


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(1.0, abs(b))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu-only", action="store_true", help="time the CPU only (no GPU needed)")
    p.add_argument("--device", default="cuda", help="the GPU to compare with (default: cuda)")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--n-null", type=int, default=100)
    p.add_argument("--test-epochs", type=int, default=1000, help="epochs of (A) (default: 1000)")
    p.add_argument("--fit-epochs", type=int, default=200, help="epochs of (B) (default: 200)")
    p.add_argument("--time-limit", type=float, default=170.0,
                   help="seconds for the whole check; (B) shrinks its epochs to fit (default: 170)")
    p.add_argument("--rtol", type=float, default=0.05, help="agreement tolerance (default: 0.05)")
    p.add_argument("--strict", action="store_true", help="exit 1 if the devices disagree")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    t_start = time.perf_counter()

    use_gpu = not args.cpu_only and torch.cuda.is_available()
    if args.cpu_only:
        print("--cpu-only: timing the CPU only")
    elif not use_gpu:
        print("no CUDA device available (torch.cuda.is_available() is False): timing the CPU only; "
              "run this on a GPU machine for the CPU/GPU ratios")
    devices = (["cpu", args.device] if use_gpu else ["cpu"])
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}"
          + (f", GPU {torch.cuda.get_device_name(torch.device(args.device))}" if use_gpu else ""))

    if args.quick:
        n_ref, n_data, d_a, n_null, test_epochs = 4_000, 400, 16, 16, 100
        n_big, n_big_data, d_b, fit_epochs = 100_000, 1_000, 32, 30
    else:
        n_ref, n_data, d_a, n_null, test_epochs = 20_000, 2_000, 32, args.n_null, args.test_epochs
        n_big, n_big_data, d_b, fit_epochs = 1_000_000, 10_000, 100, args.fit_epochs

    # (A) calibrated test -------------------------------------------------------
    R, D, _ = sparker.scenarios.make("gauss_highd", seed=0, n_reference=n_ref, n_data=n_data, d=d_a, eps=0.01)
    # Warm-ups: one block of 16 toys per device, so that torch.compile's one-off compilation
    # (about 20 s on either device) is left out of the timings; the CPU's second block is the
    # probe: (A) gets at most half of --time-limit on the CPU
    for dev in devices:
        _, t_first = _timed(lambda dev=dev: sparker.calibrate(R, n_data, n_null=16, seed=0, epochs=test_epochs,
                                                              device=dev), dev)
        print(f"  warm-up on {dev}: 16 toys in {t_first:.1f} s (with compilation)")
    _, t_block = _timed(lambda: sparker.calibrate(R, n_data, n_null=16, seed=1, epochs=test_epochs), "cpu")
    blocks = -(-n_null // 16)
    if (blocks + 1) * t_block > 0.5 * args.time_limit - t_block:
        fit_blocks = max(1, int((0.5 * args.time_limit - t_block) / t_block) - 1)
        print(f"\n(A) the CPU would need about {(blocks + 1) * t_block:.0f} s for {n_null} toys; running "
              f"{16 * fit_blocks} toys on every device to stay within --time-limit {args.time_limit:g} s")
        n_null = 16 * fit_blocks
    print(f"\n(A) sparker.test: N_R={n_ref}, N_D={n_data}, d={d_a}, n_null={n_null}, epochs={test_epochs}")
    res_a = {}
    for dev in reversed(devices):
        res_a[dev], t = _timed(lambda dev=dev: _test_job(R, D, dev, n_null, test_epochs), dev)
        r = res_a[dev]
        res_a[dev + "_time"] = t
        print(f"  {dev:>6}: {t:8.1f} s   t={r.statistic:.4f}  p={r.pvalue:.4f}  Z={r.zscore:.2f}  "
              f"null median={np.median(r.null_distribution):.4f}")

    # (B) large fit -------------------------------------------------------------
    rng = np.random.default_rng(1)
    Rb = rng.standard_normal((n_big, d_b), dtype=np.float32)
    Db = rng.standard_normal((n_big_data, d_b), dtype=np.float32)
    Db[: n_big_data // 100] = 0.2 * Db[: n_big_data // 100] + 1.5  # a 1% clump
    # CPU probe: two short fits give the cost per epoch and the fixed cost (pool, widths, table)
    _, t_short = _timed(lambda: _fit_job(Rb, Db, "cpu", 3), "cpu")
    _, t_long = _timed(lambda: _fit_job(Rb, Db, "cpu", 9), "cpu")
    per_epoch = max(1e-6, (t_long - t_short) / 6)
    fixed = max(0.0, t_short - 3 * per_epoch)
    remaining = args.time_limit - (time.perf_counter() - t_start)
    epochs_b = fit_epochs
    if fixed + per_epoch * fit_epochs > 0.8 * remaining:
        epochs_b = max(9, int((0.8 * remaining - fixed) / per_epoch))
        print(f"\n(B) the CPU would need about {fixed + per_epoch * fit_epochs:.0f} s for {fit_epochs} epochs; "
              f"running {epochs_b} epochs on every device to stay within --time-limit {args.time_limit:g} s")
    print(f"\n(B) SparKer.fit: N_R={n_big}, N_D={n_big_data}, d={d_b}, M=8, epochs={epochs_b} "
          "(wall time of the whole fit: standardisation, widths, compilation, training, kernel table)")
    res_b = {}
    for dev in reversed(devices):
        res_b[dev], t = _timed(lambda dev=dev: _fit_job(Rb, Db, dev, epochs_b), dev)
        res_b[dev + "_time"] = t
        print(f"  {dev:>6}: {t:8.1f} s   ({1e3 * t / epochs_b:.1f} ms/epoch)  t={res_b[dev].statistic_:.4f}")

    # agreement and ratios --------------------------------------------------------
    ok = True
    if use_gpu:
        g = args.device
        print("\nCPU time / GPU time:")
        print(f"  (A) calibrated test: {res_a['cpu_time'] / res_a[g + '_time']:.1f}x")
        print(f"  (B) large fit:       {res_b['cpu_time'] / res_b[g + '_time']:.1f}x")
        checks = {
            "(A) observed statistic": _rel(res_a[g].statistic, res_a["cpu"].statistic) <= args.rtol,
            "(A) null median": _rel(float(np.median(res_a[g].null_distribution)),
                                    float(np.median(res_a["cpu"].null_distribution))) <= args.rtol,
            "(A) p-value": abs(res_a[g].pvalue - res_a["cpu"].pvalue) <= 0.05,
            "(B) statistic": _rel(res_b[g].statistic_, res_b["cpu"].statistic_) <= args.rtol,
        }
        print("agreement (float32 training: rounding differs between devices):")
        for name, good in checks.items():
            print(f"  {name:<24} {'ok' if good else 'DIFFERS'}")
        ok = all(checks.values())
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    return 1 if (args.strict and not ok) else 0


if __name__ == "__main__":
    sys.exit(main())
