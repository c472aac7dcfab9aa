"""Localisation quality of SparKer on square2d: do the active kernels point at the clumps?

For seeds 0..4, fit ``SparKer(n_kernels=4, seed=s)`` on ``square2d`` (20,000 uniform
reference points; 2,000 uniform data points plus three Gaussian clumps of 30 points,
std 0.02) and report, using the scenario's truth:

- the active kernels (``kernels_[i]["active"]``, rule in :mod:`sparker.interpret`): how
  many, how many lie within 0.1 of a true clump centre ("on a clump") and how many do
  not ("stray"), and their local Z;
- for each true clump centre, the distance to the nearest active kernel;
- precision and recall of the flagged data points (:meth:`SparKer.flag`) against the
  truth labels;
- the AUROC of ``f(x)`` for telling the injected clump points from the uniform data
  points, next to scikit-learn's IsolationForest and LocalOutlierFactor(novelty=True),
  both fitted on the reference (:mod:`sparker.baselines.detectors`).

A second table fits the same model to null samples (``n_per_clump=0``) and counts the
active kernels there (false localisations) and the largest ``|local Z|``.

Usage::

    python benchmarks/localisation.py [--seeds 5] [--epochs 1000] [--no-null]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

import sparker
from sparker.baselines.detectors import isolation_forest_scores, lof_scores
from sparker.scenarios import make

#: A kernel counts as on a clump when its centre lies within this distance of it.
TOLERANCE = 0.1


def localisation(model, reference, data, truth) -> dict:
    """The numbers of one fit (see the module docstring)."""
    centres = model.centres_
    active = np.array([bool(k["active"]) for k in model.kernels_])
    z = np.array([np.nan if k["local_z"] is None else k["local_z"] for k in model.kernels_])
    clumps = np.asarray(truth["centres"])
    dist = np.linalg.norm(centres[:, None, :] - clumps[None], axis=-1)  # (M, k)
    on_clump = dist.min(1) <= TOLERANCE
    nearest_active = dist[active].min(0) if active.any() else np.full(len(clumps), np.inf)
    # clumps covered by a distinct active kernel each
    owners = {int(np.argmin(dist[:, j] + np.where(active, 0.0, np.inf))) for j in range(len(clumps))
              if active.any()}
    labels = truth["is_anomaly"]
    flagged = model.flag(data)
    tp = int((flagged & labels).sum())
    return {
        "n_active": int(active.sum()),
        "active_on_clump": int((active & on_clump).sum()),
        "stray_active": int((active & ~on_clump).sum()),
        "one_per_clump": bool(len(owners) == len(clumps) and (nearest_active <= TOLERANCE).all()),
        "active_z": z[active],
        "max_dist": float(nearest_active.max()),
        "precision": tp / max(int(flagged.sum()), 1),
        "recall": tp / max(int(labels.sum()), 1),
        "n_flagged": int(flagged.sum()),
        "auc_sparker": roc_auc_score(labels, model.log_ratio(data)),
        "auc_iforest": roc_auc_score(labels, isolation_forest_scores(reference, data, seed=0)),
        "auc_lof": roc_auc_score(labels, lof_scores(reference, data)),
        "all_z_ok": bool((z[active & on_clump] > 3).all()),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--no-null", action="store_true", help="skip the null-sample table")
    args = p.parse_args(argv)

    print("| seed | active | on a clump | stray | local Z of active kernels | max clump-to-active "
          "distance | flagged | precision | recall | AUROC f(x) | AUROC IForest | AUROC LOF | s/fit |")
    print("| --- " * 13 + "|")
    rows = []
    for seed in range(args.seeds):
        R, D, truth = make("square2d", seed=seed)
        t0 = time.perf_counter()
        m = sparker.SparKer(n_kernels=4, epochs=args.epochs, seed=seed).fit(R, D)
        dt = time.perf_counter() - t0
        r = localisation(m, R, D, truth)
        rows.append(r)
        zs = ", ".join(f"{z:.1f}" for z in r["active_z"])
        print(f"| {seed} | {r['n_active']} | {r['active_on_clump']} | {r['stray_active']} | {zs} | "
              f"{r['max_dist']:.3f} | {r['n_flagged']} | {r['precision']:.2f} | {r['recall']:.2f} | "
              f"{r['auc_sparker']:.3f} | {r['auc_iforest']:.3f} | {r['auc_lof']:.3f} | {dt:.1f} |", flush=True)
    good = sum(r["one_per_clump"] and r["stray_active"] == 0 and r["n_active"] == 3 and r["all_z_ok"]
               for r in rows)
    mean = {k: np.mean([r[k] for r in rows]) for k in ("precision", "recall", "auc_sparker", "auc_iforest",
                                                       "auc_lof")}
    print(f"\nseeds with exactly three active kernels, one per clump, each with local Z > 3 and none "
          f"stray: {good}/{len(rows)}")
    print("mean: " + ", ".join(f"{k} {v:.3f}" for k, v in mean.items()))

    if args.no_null:
        return
    print("\nnull samples (square2d with n_per_clump=0):")
    print("| seed | active kernels | max abs local Z |")
    print("| --- | --- | --- |")
    for seed in range(args.seeds):
        R, D, _ = make("square2d", seed=100 + seed, n_per_clump=0)
        m = sparker.SparKer(n_kernels=4, epochs=args.epochs, seed=seed).fit(R, D)
        n_active = sum(bool(k["active"]) for k in m.kernels_)
        zmax = max(abs(k["local_z"] or 0.0) for k in m.kernels_)
        print(f"| {100 + seed} | {n_active} | {zmax:.2f} |", flush=True)


if __name__ == "__main__":
    main()
