"""scikit-learn integration of :class:`sparker.SparKer` that its fit and scores share.

- :func:`refuse_pipeline_use`: ``make_pipeline(StandardScaler(), SparKer()).fit(reference,
  data)`` would transform the reference only and pass the data, untransformed, to
  ``SparKer.fit`` as ``y``; SparKer standardises both samples with the reference itself,
  so such a fit is refused.  A Pipeline whose only step is SparKer is harmless.
- :func:`like_input`: scores of a DataFrame as a Series with its index.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["PIPELINE_FRAMES", "like_input", "refuse_pipeline_use"]

#: How many frames above ``SparKer.fit`` are searched for a Pipeline's ``fit`` (a subclass's
#: ``fit`` calling ``super().fit`` adds one).
PIPELINE_FRAMES = 4


def like_input(scores: np.ndarray, X):
    """``scores`` as a Series named ``score`` with the index of a DataFrame ``X``; else as they are."""
    pd = sys.modules.get("pandas")  # a DataFrame means pandas is already imported
    if pd is not None and isinstance(X, pd.DataFrame):
        return pd.Series(scores, index=X.index, name="score")
    return scores


def refuse_pipeline_use(model) -> None:
    """Raise a ValueError if ``model`` is fitted as the last step of a Pipeline with transformers.

    Called at the top of ``SparKer.fit``: the frames above it are searched for a
    ``Pipeline.fit`` whose final step is ``model`` itself, and any step before it that
    is not ``None`` or ``"passthrough"`` makes the fit refused.
    """
    from sklearn.pipeline import Pipeline

    frame = sys._getframe(2)  # (0: here, 1: SparKer.fit) the caller of SparKer.fit
    for _ in range(PIPELINE_FRAMES):
        if frame is None:
            return
        owner = frame.f_locals.get("self") if frame.f_code.co_name == "fit" else None
        if isinstance(owner, Pipeline) and owner.steps and owner.steps[-1][1] is model:
            if any(step not in (None, "passthrough") for _, step in owner.steps[:-1]):
                raise ValueError(
                    "data: SparKer is the last step of a Pipeline that transforms its input; the "
                    "Pipeline would transform the reference only and pass the data unchanged. SparKer "
                    "standardises both samples with the reference itself: use it alone, "
                    "SparKer().fit(reference, data), or transform both samples before fitting")
            return
        frame = frame.f_back
