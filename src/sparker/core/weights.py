"""Per-point weights of the reference and the data in the NPLM loss.

See ``docs/method.md``, section "The loss and training".
"""

from __future__ import annotations

import numpy as np

__all__ = ["WEIGHT_RANGE", "check_weight_range", "reference_weights"]


#: Per-point weights are used in float32: positive ones must lie in this range so that
#: neither they nor ``w exp(f)`` (``|f| <= a_max``) underflow or overflow.
WEIGHT_RANGE = (1e-30, 1e9)


def reference_weights(n_ref: int, n_data: float, reference_weight, n_expected, normalize: bool):
    """Per-point reference weights ``w_x`` (float64, shape (n_ref,)).

    Default ``w = N_0 / N_R`` with ``N_0 = n_expected`` or the (weighted) data
    count; user weights are rescaled to sum to ``N_0`` when ``normalize``.
    """
    n0 = float(n_data if n_expected is None else n_expected)
    if reference_weight is None:
        return np.full(n_ref, n0 / n_ref)
    if normalize:
        return reference_weight * (n0 / reference_weight.sum())
    return np.asarray(reference_weight, dtype=np.float64)


def check_weight_range(w: np.ndarray, *, name: str) -> None:
    """Raise ValueError naming ``name`` if a positive weight leaves :data:`WEIGHT_RANGE`."""
    positive = w[w > 0]
    if positive.size == 0:
        return
    lo, hi = float(positive.min()), float(positive.max())
    if not (WEIGHT_RANGE[0] <= lo and hi <= WEIGHT_RANGE[1]):
        raise ValueError(
            f"{name}: per-point weights must lie in [{WEIGHT_RANGE[0]:g}, {WEIGHT_RANGE[1]:g}] for "
            f"float32 training, got weights from {lo:.3g} to {hi:.3g}; rescale them"
        )
