"""Saving and loading a fitted :class:`sparker.SparKer` (a ``.npz`` archive, no pickle).

The archive holds plain arrays (``mean``, ``scale``, per layer ``centres_<l>`` and
``amplitudes_<l>``, the trajectory as ``history_<l>_<key>``, and optionally the
fitted data's top points ``top_index`` and ``top_points``) plus a JSON header
``__meta__`` with the format name and version, the parameters, the training
configuration, the widths and the summary.  Reading never executes code from the
file, and every value read is checked before the model is returned.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, is_dataclass

import numpy as np
import torch

from ._version import __version__
from .config import TrainingConfig, validate_config
from .core.standardize import Standardizer
from .io import read_archive, write_archive
from .model.stack import KernelStack

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "check_loaded",
    "history_layers",
    "json_default",
    "load_model",
    "save_model",
]

#: Version of the archive layout; bumped whenever a reader of the old one would misread it.
FORMAT_VERSION = 1
FORMAT_NAME = "sparker-model"

#: Errors of a value read from an archive that does not fit (reported as a bad file).
_BAD_VALUE = (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError)


def history_layers(history: dict) -> list[dict]:
    """The per-layer trajectories of a ``history_`` (one dict for a single layer)."""
    return history.get("layers", [history])


def save_model(model, path, params: dict, *, overwrite: bool = False) -> None:
    """Write a fitted model to ``path`` atomically (see :meth:`sparker.SparKer.save`).

    Parameters
    ----------
    model : SparKer
        A fitted model.
    path : str or path-like
    params : dict
        The constructor parameters to store, in the order they are written.
    overwrite : bool, default=False
    """
    stack = model.stack_
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "sparker_version": __version__,
        "params": params,
        "config": model.config_.to_dict(),
        "feature_names_in": model.feature_names_in_,
        "n_features_in": model.n_features_in_,
        "statistic": model.statistic_,
        "converged": model.converged_,
        "kernels": model.kernels_,
        "sigmas": stack.sigmas,
        "history_keys": [
            sorted(k for k, v in h.items() if isinstance(v, np.ndarray))
            for h in history_layers(model.history_)
        ],
    }
    meta = json.loads(json.dumps(meta, default=json_default))  # plain JSON types only
    arrays = {"mean": model.standardizer_.mean, "scale": model.standardizer_.scale}
    for k, (c, a, _) in enumerate(stack.layers()):
        arrays[f"centres_{k}"] = c.numpy()
        arrays[f"amplitudes_{k}"] = a.numpy()
    for k, (h, keys) in enumerate(zip(history_layers(model.history_), meta["history_keys"])):
        for key in keys:
            arrays[f"history_{k}_{key}"] = h[key]
    top = getattr(model, "_fit_top_", None)
    if top is not None:  # the fitted data's top points, for top_points() after loading
        arrays["top_index"] = np.asarray(top["index"], dtype=np.int64)
        arrays["top_points"] = np.asarray(top["points"], dtype=np.float64)
    write_archive(path, arrays, meta, overwrite=overwrite)


def load_model(cls, path):
    """Read a model written by :func:`save_model` (see :meth:`sparker.SparKer.load`).

    Parameters
    ----------
    cls : type
        The estimator class, called with the stored parameters.
    path : str or path-like

    Raises
    ------
    ValueError
        ``path: ...`` for a file that is not a readable, complete and consistent model
        of this format version; a stored configuration that fails
        :func:`~sparker.config.validate_config` raises its own error.
    """
    arrays, meta = read_archive(path, kind="SparKer model", format_name=FORMAT_NAME,
                                version=FORMAT_VERSION)
    try:
        # saved before 0.3 (0.4): trained on the whole pool (every data row)
        model = cls(**{"reference_batch": None, "data_batch": None, **meta["params"]})
        cfg = TrainingConfig.from_dict(meta["config"])
    except _BAD_VALUE as exc:
        raise ValueError(f"path: {path} is an incomplete or inconsistent SparKer model ({exc})") from None
    validate_config(cfg)
    try:
        model.standardizer_ = Standardizer(arrays["mean"], arrays["scale"])
        model.feature_names_in_ = meta["feature_names_in"]
        model.n_features_in_ = int(meta["n_features_in"])
        model.config_ = cfg
        model.stack_ = KernelStack(
            [torch.as_tensor(arrays[f"centres_{k}"]) for k in range(len(meta["sigmas"]))],
            [torch.as_tensor(arrays[f"amplitudes_{k}"]) for k in range(len(meta["sigmas"]))],
            [float(s) for s in meta["sigmas"]],
            cfg.competition,
        )
        model.statistic_ = float(meta["statistic"])
        model.converged_ = bool(meta["converged"])
        model.kernels_ = meta["kernels"]
        per_layer = [
            {key: arrays[f"history_{k}_{key}"] for key in keys}
            for k, keys in enumerate(meta["history_keys"])
        ]
        model.history_ = dict(per_layer[0])
        if len(per_layer) > 1:
            model.history_["layers"] = per_layer
        if "top_index" in arrays:
            model._fit_top_ = _read_top(arrays, model.n_features_in_)
        check_loaded(model)
    except _BAD_VALUE as exc:
        raise ValueError(f"path: {path} is an incomplete or inconsistent SparKer model ({exc})") from None
    return model


def _read_top(arrays, n_features: int) -> dict:
    """The stored top points of the fitted data (ValueError if malformed)."""
    index = np.asarray(arrays["top_index"])
    points = np.asarray(arrays["top_points"], dtype=np.float64)
    if (index.ndim != 1 or index.dtype.kind not in "iu" or points.shape != (len(index), n_features)
            or not np.isfinite(points).all()):
        raise ValueError("top_index/top_points have the wrong shape, type or values")
    return {"index": index, "points": points}


def check_loaded(model) -> None:
    """Shapes, types and finiteness of a model read from a file (ValueError if wrong).

    The per-layer parameters were checked by :class:`~sparker.model.stack.KernelStack`.
    """
    n = model.n_features_in_
    if n < 1:
        raise ValueError(f"n_features_in is {n}")
    names = model.feature_names_in_
    if names is not None and not (isinstance(names, list) and len(names) == n
                                  and all(isinstance(x, str) for x in names)):
        raise ValueError("feature_names_in is not a list of one name per feature")
    std = model.standardizer_
    for key, value in (("mean", std.mean), ("scale", std.scale)):
        if value.shape != (n,) or not np.isfinite(value).all():
            raise ValueError(f"{key} is not {n} finite numbers")
    if not (std.scale > 0).all():
        raise ValueError("scale has entries <= 0")
    if model.stack_.n_layers != len(model.config_.layer_configs()):
        raise ValueError("the number of layers differs from the configuration")
    if model.stack_.n_features != n:
        raise ValueError(f"the centres have {model.stack_.n_features} features, not {n}")
    if not math.isfinite(model.statistic_):
        raise ValueError("the statistic is not finite")


def json_default(obj):
    """JSON form of NumPy scalars and arrays and of config dataclasses (for :func:`save_model`)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
