"""A global "tilt" statistic beside SparKer's three scales, scored on the power table's draws (docs/defaults.md).

The widest Gaussian kernel tends, as its width grows, to an exponential tilt of the
reference: log n(x)/n_R(x) = b + w . u(x), with u the reference's whitened coordinates.
This is the likelihood-ratio test of a mean shift, which is what median-width MMD sees in
high dimensions (genval, where every SparKer scale and kernel NPLM are near 0).  This
study asks whether a fourth column of the calibrated aggregation, the tilt's statistic,
would pay for itself:

- the tilt: ``u`` the first ``k`` principal axes of the reference (``k = min(d, K)`` for
  each K of ``--ks``), each scaled to unit variance; the same extended likelihood as
  SparKer's loss (reference weighted by N_D / N_R), minimised by Newton's method; its
  statistic is ``-2 min L``;
- for every SparKer study of ``benchmarks/power_table.py`` given (statistic mode; a draw
  holds one statistic per scale), every draw is made again from its seeds, its tilt
  statistics computed, and the power of the tilt alone, of the three scales
  (``minp-fisher``, the default) and of the three scales with the tilt as a fourth column
  is printed, all against the study's own null draws.

The tilt statistics of each study are kept in ``OUT/<scenario>-seed<seed>.json``, so a
second run only scores.

Usage::

    python benchmarks/power_table.py --methods sparker --n-toys 30 --n-null-draws 50 --out power
    python benchmarks/tilt_column.py power/*/power.json --out tilt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sparker.app.bench import SIGNAL_PARAMETERS, draw_seeds, power_from_draws
from sparker.scenarios import make


def whitened(reference: np.ndarray, data: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Both samples on the reference's first ``k`` principal axes, each of unit variance."""
    mean = reference.mean(axis=0)
    cov = np.atleast_2d(np.cov(reference - mean, rowvar=False))
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    keep = values > 1e-9 * max(values[0], 1e-300)
    project = vectors[:, keep][:, :k] / np.sqrt(values[keep][:k])
    return (reference - mean) @ project, (data - mean) @ project


def tilt_statistic(reference, data, k: int, iterations: int = 60) -> float:
    """``-2 min L`` of the exponential tilt on ``k`` principal axes (see the module docstring)."""
    ur, ud = whitened(np.asarray(reference, dtype=np.float64), np.asarray(data, dtype=np.float64), k)
    ur = np.hstack([np.ones((len(ur), 1)), ur])  # (N_R, k + 1): the constant, then the axes
    data_sum = np.hstack([np.ones((len(ud), 1)), ud]).sum(axis=0)
    weight = len(ud) / len(ur)

    def loss(theta):
        return weight * np.expm1(np.clip(ur @ theta, -50, 50)).sum() - data_sum @ theta

    theta = np.zeros(ur.shape[1])
    current = loss(theta)
    for _ in range(iterations):
        e = weight * np.exp(np.clip(ur @ theta, -50, 50))
        hessian = (ur * e[:, None]).T @ ur + 1e-10 * np.eye(len(theta))
        step = np.linalg.solve(hessian, ur.T @ e - data_sum)
        scale, trial = 1.0, loss(theta - step)
        while trial > current and scale > 1e-6:  # halve the step until the loss falls
            scale /= 2
            trial = loss(theta - scale * step)
        if trial > current:
            break
        gain, theta, current = current - trial, theta - scale * step, trial
        if gain < 1e-10 * (1 + abs(current)):
            break
    return -2.0 * current


def tilt_draws(study: dict, ks: list[int], store: Path) -> dict:
    """Tilt statistics of every draw of ``study``: ``{"ks": ks, "tilt": [fraction][draw][k]}``."""
    if store.exists():
        kept = json.loads(store.read_text())
        if kept["ks"] == ks:
            return kept
    scenario, params, seed = study["scenario"], study["params"], study["settings"]["seed"]
    tilt = []
    for i, fraction in enumerate(study["fractions"]):
        n = len(study["statistics"]["sparker"][i])
        values = []
        for scenario_seed, _ in draw_seeds(seed, i, n):
            reference, data, _ = make(scenario, seed=scenario_seed,
                                      **{**params, **SIGNAL_PARAMETERS[scenario](fraction, params)})
            values.append([tilt_statistic(reference, data, k) for k in ks])
        tilt.append(values)
    out = {"ks": ks, "tilt": tilt}
    store.write_text(json.dumps(out))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", type=Path, help="power.json files of SparKer studies")
    parser.add_argument("--ks", default="4,16,64", help="comma-separated caps K on the principal axes")
    parser.add_argument("--out", type=Path, required=True, help="folder for the tilt statistics")
    args = parser.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    columns = ["three scales"] + [f"tilt {k} alone" for k in ks] + [f"three + tilt {k}" for k in ks]
    print("| scenario | fraction | seed | " + " | ".join(columns) + " |")
    print("| --- " * (3 + len(columns)) + "|")
    totals = dict.fromkeys(columns, 0.0)
    for path in args.studies:
        study = json.loads(path.read_text())
        seed = study["settings"]["seed"]
        tilt = tilt_draws(study, ks, args.out / f"{study['scenario']}-seed{seed}.json")["tilt"]
        i0 = study["fractions"].index(0.0)
        null3, null_t = np.asarray(study["statistics"]["sparker"][i0]), np.asarray(tilt[i0])
        for i, fraction in enumerate(study["fractions"]):
            if fraction == 0:
                continue
            alt3, alt_t = np.asarray(study["statistics"]["sparker"][i]), np.asarray(tilt[i])
            power = {"three scales": power_from_draws(null3, alt3)["power"]}
            for j, k in enumerate(ks):
                power[f"tilt {k} alone"] = power_from_draws(null_t[:, j], alt_t[:, j])["power"]
                power[f"three + tilt {k}"] = power_from_draws(np.column_stack([null3, null_t[:, j]]),
                                                              np.column_stack([alt3, alt_t[:, j]]))["power"]
            for c in columns:
                totals[c] += power[c]
            print(f"| {study['scenario']} | {fraction:g} | {seed} | " + " | ".join(f"{power[c]:.2f}" for c in columns)
                  + " |", flush=True)
    print("| sum | | | " + " | ".join(f"{totals[c]:.2f}" for c in columns) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
