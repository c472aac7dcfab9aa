"""Aggregation rules of SparKer's scales scored on the same draws (docs/defaults.md, "Aggregation of the scales (0.8)").

A SparKer draw of a power study in statistic mode holds one statistic per scale, so every
rule that combines them can be scored on the same signal and null draws without refitting:
each signal draw's statistics are combined with the null draws' exactly as the calibrated
test combines the observation's with its toys (:func:`sparker.stats.aggregate`), and the
power is the share of signal draws with p <= alpha.  Each scale alone (its statistic
against its own null draws) is shown beside the rules.  Every rule is also scored on the
null draws themselves (each against the others, leave-one-out): the type-I error in
statistic mode.

The library's rules (``minp``, ``fisher``, ``minp-fisher``, ...) are scored as they are;
two candidates that were measured and not chosen are defined here:

- ``minp-fisher-gauss``: ``minp-fisher`` with a Gaussian instead of a log-normal fit of
  each column (z-scores of the raw statistics);
- ``l2``: the Euclidean norm of the members' ``-log p`` (rank p-values), between min-p
  (the largest) and Fisher (the sum).

Usage (the studies of ``benchmarks/power_table.py``, SparKer's rows)::

    python benchmarks/power_table.py --methods sparker --n-toys 30 --n-null-draws 50 --out power
    python benchmarks/aggregation_rules.py power/*/power.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats as st

from sparker.stats import AGGREGATIONS, aggregate, binomial_interval, per_config_pvalues

RULES = ("minp", "fisher", "minp-fisher", "minp-fisher-gauss", "l2")


def _shares(values: np.ndarray) -> np.ndarray:
    n = values.shape[0]
    return (n - np.searchsorted(np.sort(values), values, side="left")) / n


def _gauss_minp_fisher(pool: np.ndarray) -> np.ndarray:
    sd = pool.std(axis=0)
    z = (pool - pool.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    logp = -st.norm.logsf(z)
    return -np.log(np.minimum(_shares(logp.max(axis=1)), _shares(logp.sum(axis=1))))


def _l2(pool: np.ndarray) -> np.ndarray:
    p_obs, p_null = per_config_pvalues(pool[0], pool[1:])
    return np.sqrt(np.sum(np.log(np.vstack([p_obs[None], p_null])) ** 2, axis=1))


CANDIDATES = {"minp-fisher-gauss": _gauss_minp_fisher, "l2": _l2}


def rule_pvalue(t_obs: np.ndarray, null: np.ndarray, rule: str) -> float:
    """p-value of one draw's statistics (K,) against the null draws (B, K) under ``rule``."""
    if rule in AGGREGATIONS:
        return aggregate(t_obs, null, method=rule).pvalue
    scores = CANDIDATES[rule](np.vstack([t_obs[None], null]))
    return float((1 + np.sum(scores[1:] >= scores[0])) / scores.shape[0])


def score(path: Path, rules=RULES, alpha: float = 0.05) -> list[dict]:
    """One row per signal fraction of the study at ``path``: power of each rule and scale."""
    study = json.loads(path.read_text())
    fractions = study["fractions"]
    stats = study["statistics"]["sparker"]
    null = np.asarray(stats[fractions.index(0)], dtype=np.float64)
    rows = []
    for i, fraction in enumerate(fractions):
        draws = np.asarray(stats[i], dtype=np.float64)
        if fraction == 0:  # type-I in statistic mode: each null draw against the others
            p = {r: [rule_pvalue(null[j], np.delete(null, j, 0), r) for j in range(len(null))] for r in rules}
            alone = [[(1 + np.sum(np.delete(null[:, k], j) >= null[j, k])) / len(null) for j in range(len(null))]
                     for k in range(null.shape[1])]
        else:
            p = {r: [rule_pvalue(t, null, r) for t in draws] for r in rules}
            alone = [[(1 + np.sum(null[:, k] >= t[k])) / (1 + len(null)) for t in draws]
                     for k in range(null.shape[1])]
        row = {"scenario": study["scenario"], "fraction": fraction, "n": len(p[rules[0]])}
        for name, values in [*p.items(), *((f"scale {k + 1} alone", v) for k, v in enumerate(alone))]:
            k = int(np.sum(np.asarray(values) <= alpha))
            lo, hi = binomial_interval(k, len(values), level=0.6827)
            row[name] = (k / len(values), float(lo), float(hi))
        rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", type=Path, help="power.json files of SparKer studies")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--rules", default=",".join(RULES))
    args = parser.parse_args(argv)
    rules = tuple(args.rules.split(","))
    rows = [row for path in args.studies for row in score(path, rules, args.alpha)]
    columns = [c for c in rows[0] if c not in ("scenario", "fraction", "n")]
    print("| scenario | fraction | draws | " + " | ".join(columns) + " |")
    print("| --- " * (3 + len(columns)) + "|")
    totals = dict.fromkeys(columns, 0.0)
    for row in rows:
        cells = [f"{row[c][0]:.2f}" for c in columns]
        print(f"| {row['scenario']} | {row['fraction']:g}{' (null)' if row['fraction'] == 0 else ''} | "
              f"{row['n']} | " + " | ".join(cells) + " |")
        if row["fraction"] != 0:
            for c in columns:
                totals[c] += row[c][0]
    print("| sum of the signal rows | | | " + " | ".join(f"{totals[c]:.2f}" for c in columns) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
