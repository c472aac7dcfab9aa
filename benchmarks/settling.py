"""How often the default test's scales settle: one fit per scale on signal and null draws.

For each scenario (``name:fraction``, CI sizes of :data:`sparker.app.bench.CI_SIZES`), every
configuration of the default calibrated test (:func:`sparker.calibration.api.training_configs`,
the three scales) is fitted to ``--draws`` signal draws at that fraction and as many draws of
the null version (scenario seeds 100, 101, ...; fit seeds 0, 1, ...). Printed: one Markdown
row per scenario and fraction, with the number of fits per scale whose loss settled
(``SparKer.converged_``; docs/method.md, "Training").

Usage::

    python benchmarks/settling.py
    python benchmarks/settling.py --scenarios square2d:0.05,expo1d:0.01 --draws 2
    python benchmarks/settling.py --set a_max=3
    python benchmarks/settling.py --last-reseed 0.8
    python benchmarks/settling.py --scenarios genval:0.05 --explain

``--last-reseed`` drops the re-seeding points after that fraction of each layer's epochs
(default: every tenth, from 0.1 to 0.9); it is not a setting of the library, so this script
changes the trainer's default for its own process only.  ``--explain`` prints, for every fit
that did not settle, what moved over the last tenth of its epochs (the settling window): the
loss at its start and end, the largest step of the loss from one epoch to the next, and per
kernel the end amplitude, the amplitude's change and the distance its centre moved (in
standardised units); recording the trajectory does not change the fit.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

import sparker.scenarios as scenarios
from sparker import ConvergenceWarning
from sparker.app.bench import CI_SIZES, SIGNAL_PARAMETERS
from sparker.calibration.api import training_configs
from sparker.estimator import from_config

DEFAULT_SCENARIOS = ("square2d:0.05,expo1d:0.01,gauss_highd:0.01,digits_novelty:0.02,"
                     "shuttle_intrusion:0.01,genval:0.05,perturbed_uniform:0.3")


def settled_counts(name: str, fraction: float, draws: int, settings: dict | None = None,
                   explain: bool = False) -> np.ndarray:
    """Fits whose loss settled, per configuration of the default test (with ``settings``
    changed on every scale), shape (K,); with ``explain``, a line per fit that did not."""
    params = dict(CI_SIZES.get(name, {}))
    params.update(SIGNAL_PARAMETERS[name](fraction, params))
    configs = training_configs({**(settings or {}), **({"record_every": 1} if explain else {})}, "multi")
    counts = np.zeros(len(configs), dtype=int)
    for s in range(draws):
        reference, data = scenarios.make(name, seed=100 + s, **params)[:2]
        for k, cfg in enumerate(configs):
            model = from_config(cfg, seed=s).fit(reference, data)
            settled = bool(np.all(model.converged_))
            counts[k] += settled
            if explain and not settled:
                print(f"  {name} {fraction:g}, scale {k}, draw {s}: {_window(model)}")
    return counts


def _window(model) -> str:
    """What moved over the settling window (the last tenth of the epochs) of a recorded fit."""
    h = model.history_
    loss = np.asarray(h["loss_per_epoch"])
    start = len(loss) - len(loss) // 10
    i0 = int(np.searchsorted(np.asarray(h["epoch"]), start))
    amps = np.asarray(h["amplitudes"])
    centres = model.standardizer_.transform(np.asarray(h["centres"]))  # (epochs recorded, M, d), standardised
    moved = np.linalg.norm(centres[-1] - centres[i0], axis=-1)
    return (f"t = {model.statistic_:.1f}; loss {loss[start]:.2f} -> {loss[-1]:.2f}, largest step "
            f"{np.abs(np.diff(loss[start:])).max():.3f}; amplitudes {np.round(amps[-1], 2).tolist()}, changed by "
            f"{np.round(amps[-1] - amps[i0], 2).tolist()}; centres moved {np.round(moved, 2).tolist()}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenarios", default=DEFAULT_SCENARIOS, help="comma-separated name:fraction")
    p.add_argument("--draws", type=int, default=4, help="signal draws, and as many null draws")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a training setting changed on every scale, e.g. a_max=3; repeatable")
    p.add_argument("--last-reseed", type=float, default=None, metavar="FRACTION",
                   help="re-seed only at the tenths of the epochs up to this fraction (default 0.9)")
    p.add_argument("--explain", action="store_true", help="print what moved in every fit that did not settle")
    args = p.parse_args(argv)
    if args.last_reseed is not None:
        from sparker.model import trainer

        points = trainer.train_replicas.__kwdefaults__["reseed_at"]
        trainer.train_replicas.__kwdefaults__["reseed_at"] = tuple(q for q in points if q <= args.last_reseed + 1e-9)
    settings = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            p.error(f"--set: expected NAME=NUMBER, got {item!r}")
    warnings.simplefilter("ignore", ConvergenceWarning)  # counted, not shown
    labels = [f"{c.n_kernels} kernels to the {c.sigma_end_quantile:g} quantile"
              for c in training_configs(settings, "multi")]
    print("| scenario | fraction | " + " | ".join(labels) + " | seconds |")
    print("| --- | --- |" + " --- |" * (len(labels) + 1))
    for item in args.scenarios.split(","):
        name, _, frac = item.partition(":")
        for fraction in (float(frac), 0.0):
            start = time.perf_counter()
            counts = settled_counts(name, fraction, args.draws, settings, args.explain)
            cells = " | ".join(f"{k}/{args.draws}" for k in counts)
            print(f"| {name} | {fraction:g} | {cells} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
