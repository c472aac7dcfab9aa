"""Checkpoints of null toys: finished toys on disk, so that a killed run resumes.

A checkpoint belongs to one run, identified by :func:`run_id`: a hash of
everything the toys depend on (reference or pool, settings, widths, seed,
number of toys, null-mode options) but not of the chunk size or back end, so a
resumed run may use other ones (``docs/method.md``, "Calibration").
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import numpy as np

from .._version import __version__
from ..core.nulls import NullSpec
from ..io import read_archive, write_archive

__all__ = ["Checkpoint", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "run_id"]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "sparker-checkpoint"
CHECKPOINT_VERSION = 1


def run_id(fp: str, configs, widths, seed: int, n_null: int, spec: NullSpec, ref_weight) -> str:
    """SHA-256 naming a run of toys: what every toy depends on, nothing about how it runs.

    Parameters
    ----------
    fp : str
        Fingerprint of the pool (reference, or stacked reference and data).
    configs : sequence of TrainingConfig
    widths : sequence
        Per configuration, ``(sigma_start, sigma_end)`` of every layer.
    seed, n_null : int
    spec : NullSpec
    ref_weight : ndarray or None
        Only whether the reference is weighted enters (the weights are in ``fp``).
    """
    blob = json.dumps({
        "fp": fp, "configs": [c.to_dict() for c in configs], "widths": [[list(p) for p in w] for w in widths],
        "seed": int(seed), "n_null": int(n_null), "mode": spec.mode, "n_reference": spec.n_reference,
        "n_data": spec.n_data, "n_expected": spec.n_expected, "poisson": bool(spec.poisson),
        "weighted": ref_weight is not None, "version": CHECKPOINT_VERSION,
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class Checkpoint:
    """Finished toys of one run, on disk (``.npz``: arrays + JSON header, no pickle).

    The file is rewritten atomically after every finished chunk, so a run
    killed at any moment leaves either the previous or the new state, never a
    torn file.

    Parameters
    ----------
    path : path or None
        The file; None keeps the toys in memory only.
    run_id : str
        :func:`run_id` of the run; an existing file of another run, or written by
        another SparKer version, is refused.
    shape : tuple of int
        ``(n_null, n_configs)``.
    """

    def __init__(self, path, run_id: str, shape: tuple[int, int]):
        self.path = None if path is None else os.fspath(path)
        self.run_id = run_id
        self.values = np.full(shape, np.nan)  # (n_null, K)
        self.done = np.zeros(shape, dtype=bool)
        if self.path is None:
            return
        if os.path.exists(self.path):
            self._load()
        else:
            try:
                self._write()  # a bad path fails now, not after the first chunk
            except OSError as exc:
                raise type(exc)(f"checkpoint: cannot write {self.path}: {exc}") from exc

    @staticmethod
    def read(path) -> tuple[dict, np.ndarray, np.ndarray]:
        """(header, values (n_null, K), done (n_null, K)) of a checkpoint file."""
        arrays, meta = read_archive(path, kind="SparKer checkpoint", format_name=CHECKPOINT_FORMAT,
                                    version=CHECKPOINT_VERSION, name="checkpoint")
        try:
            values = np.asarray(arrays["values"], dtype=np.float64)
            done = np.asarray(arrays["done"], dtype=bool)
        except KeyError as exc:
            raise ValueError(f"checkpoint: {os.fspath(path)} lacks the array {exc}") from None
        return meta, values, done

    def _load(self):
        meta, values, done = self.read(self.path)
        if meta.get("sparker_version") != __version__:
            raise ValueError(
                f"checkpoint: {self.path} was written by SparKer {meta.get('sparker_version', '(unknown)')}, "
                f"this is SparKer {__version__}; resuming would mix toys of two versions in one null "
                "distribution: finish the run with that version, or delete the file (or choose another "
                "path) to start afresh"
            )
        if meta.get("run_id") != self.run_id:
            raise ValueError(
                f"checkpoint: {self.path} belongs to a different run (other reference, data, "
                "settings, seed, n_null or null-mode options); choose another path or delete it"
            )
        if values.shape != self.values.shape or done.shape != self.values.shape:
            raise ValueError(f"checkpoint: {self.path} has arrays of shape {values.shape}, "
                             f"expected {self.values.shape}")
        if not np.isfinite(values[done]).all():
            raise ValueError(f"checkpoint: {self.path} has non-finite finished toys")
        self.values, self.done = values, done
        log.info("resuming from %s: %d of %d toy fits done", self.path, int(done.sum()), done.size)

    def _write(self):
        meta = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                "run_id": self.run_id, "sparker_version": __version__}
        write_archive(self.path, {"values": self.values, "done": self.done}, meta, overwrite=True)

    def record(self, k: int, ids, values):
        """Store the statistics of toys ``ids`` under configuration ``k`` (and write the file)."""
        ids = list(ids)
        self.values[ids, k] = values
        self.done[ids, k] = True
        if self.path is not None:
            self._write()
