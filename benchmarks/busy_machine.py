"""A fit on a busy machine: its time idle, beside a compute-bound process, with and without
SparKer's thread adaptation (sparker.core.threads).

Each case runs the same fit (``--repeats`` times, the median kept) in a fresh Python
process with torch's default thread count; the busy cases first start a second process
that keeps one core busy with torch matrix products of its own (one thread).  The
``no adaptation`` case sets ``SPARKER_ADAPT_THREADS=0``, which is how SparKer behaved
before: as many threads as cores, spinning while the other process holds one.  Run it on
an otherwise idle machine.

Usage::

    python benchmarks/busy_machine.py                      # 2-d, 20,000 / 2,000 points, 8 kernels
    python benchmarks/busy_machine.py --n-reference 50000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time

_FIT = textwrap.dedent("""
    import json, sys, time, warnings
    import numpy as np, sparker, torch
    warnings.simplefilter("ignore")
    n_ref, n_data, dim, epochs, repeats = map(int, sys.argv[1:6])
    rng = np.random.default_rng(0)
    R, D = rng.uniform(size=(n_ref, dim)), rng.uniform(size=(n_data, dim))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        t = sparker.SparKer(epochs=epochs, seed=1).fit(R, D).statistic_
        times.append(time.perf_counter() - start)
    print(json.dumps({"seconds": sorted(times)[len(times) // 2], "threads": torch.get_num_threads(),
                      "statistic": t}))
""")

_LOAD = textwrap.dedent("""
    import torch
    torch.set_num_threads(1)
    a = torch.randn(512, 512)
    while True:
        a = torch.tanh(a @ a)
""")


def _fit(args, env) -> dict:
    out = subprocess.run([sys.executable, "-c", _FIT, str(args.n_reference), str(args.n_data), str(args.dim),
                          str(args.epochs), str(args.repeats)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-reference", type=int, default=20_000)
    p.add_argument("--n-data", type=int, default=2_000)
    p.add_argument("--dim", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    rows = [("idle", _fit(args, env))]
    load = subprocess.Popen([sys.executable, "-c", _LOAD], env=env)
    try:
        time.sleep(2.0)  # the load is running
        rows.append(("busy (one core taken), adaptation on", _fit(args, env)))
        rows.append(("busy (one core taken), no adaptation", _fit(args, {**env, "SPARKER_ADAPT_THREADS": "0"})))
    finally:
        load.kill()
        load.wait()
    idle = rows[0][1]["seconds"]
    print(f"fit: {args.n_reference:,} / {args.n_data:,} points, d = {args.dim}, {args.epochs} epochs, "
          f"median of {args.repeats}")
    print("| case | seconds per fit | ratio to idle | statistic |")
    print("| --- | --- | --- | --- |")
    for name, r in rows:
        print(f"| {name} | {r['seconds']:.2f} | {r['seconds'] / idle:.2f} | {r['statistic']:.4f} |")


if __name__ == "__main__":
    main()
