"""Novelty among images: ``fashion_mnist``, the MMD-FUSE "corruption" protocol on Fashion-MNIST.

Needs only NumPy and the Fashion-MNIST files (optional: the Debian package
``dataset-fashion-mnist`` installs them); nothing is downloaded.  See
:mod:`sparker.scenarios` for the conventions every generator follows.

The data set (Xiao, Rasul and Vollgraf, arXiv:1708.07747) has 70,000 grey-scale images of
28 x 28 pixels in ten classes of 7,000 (60,000 training and 10,000 test images, pooled
here).  The protocol follows the Galaxy-MNIST experiment of MMD-FUSE (Biggs, Schrab and
Gretton, arXiv:2306.08777): the reference is drawn from three classes, the data from
the same mixture with a share ``fraction`` of a fourth class (the "corruption").

Where the files are looked for: the ``data_dir`` argument, else the directory named by
the environment variable ``SPARKER_FASHION_MNIST``, else :data:`FASHION_MNIST_DIR`
(where the Debian package installs them).  The four IDX files
(``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``) may be gzipped (``.gz``, as shipped) or not.  They are read
once per process and directory.
"""

from __future__ import annotations

import functools
import gzip
import math
import os
from pathlib import Path

import numpy as np

from .._validation import check_fraction, check_int
from ._common import as_f64, count_anomalous, make_truth, split_novelty
from .registry import register

__all__ = ["FASHION_MNIST_CLASSES", "FASHION_MNIST_DIR", "FASHION_MNIST_ENV", "fashion_mnist",
           "load_fashion_mnist"]

#: where the Debian package ``dataset-fashion-mnist`` installs the files
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
#: environment variable naming another directory that holds the files
FASHION_MNIST_ENV = "SPARKER_FASHION_MNIST"
#: class names, by label
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
          "t10k-labels-idx1-ubyte")
_INSTALL = (f"install the Debian package 'dataset-fashion-mnist' (apt-get install dataset-fashion-mnist), "
            f"or set {FASHION_MNIST_ENV} (or pass data_dir) to a directory holding these IDX files "
            f"(gzipped or not)")


def _resolve_dir(data_dir) -> Path:
    if data_dir is not None:
        return Path(data_dir)
    return Path(os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR)


def _find_files(directory: Path) -> list[Path]:
    """The four IDX files in ``directory`` (``.gz`` first); FileNotFoundError names any missing."""
    found, missing = [], []
    for name in _FILES:
        candidates = [directory / f"{name}.gz", directory / name]
        path = next((c for c in candidates if c.is_file()), None)
        (found if path else missing).append(path or name)
    if missing:
        raise FileNotFoundError(f"scenario 'fashion_mnist': missing Fashion-MNIST files {missing} in "
                                f"{directory}; {_INSTALL}")
    return found


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX array of unsigned bytes with ``ndim`` dimensions (magic number 0x08 << 8 | ndim)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    header = 4 * (1 + ndim)
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
    if magic != 0x0800 + ndim or len(raw) < header:
        raise ValueError(f"{path.name}: not an IDX file of unsigned bytes with {ndim} dimension(s)")
    shape = tuple(int.from_bytes(raw[4 * (i + 1): 4 * (i + 2)], "big") for i in range(ndim))
    if len(raw) - header != math.prod(shape):
        raise ValueError(f"{path.name}: {len(raw) - header} bytes of data for an array of shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


@functools.lru_cache(maxsize=2)
def _load(files: tuple[Path, ...], stamps: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Images (70,000, 784) uint8 and labels (70,000,), read-only; ``stamps`` keys the cache."""
    train_x, train_y, test_x, test_y = (_read_idx(f, 3 if "images" in f.name else 1) for f in files)
    images = np.concatenate([train_x, test_x]).reshape(len(train_x) + len(test_x), -1)
    labels = np.concatenate([train_y, test_y]).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"Fashion-MNIST files: {len(images)} images but {len(labels)} labels")
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_fashion_mnist(data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """All Fashion-MNIST images and labels, training images first.

    Parameters
    ----------
    data_dir : str or path, optional
        Directory of the four IDX files; None means ``$SPARKER_FASHION_MNIST``, else
        :data:`FASHION_MNIST_DIR`.

    Returns
    -------
    images : ndarray of shape (70_000, 784), uint8, read-only
        Pixel values 0-255, row-major 28 x 28.
    labels : ndarray of shape (70_000,), int64, read-only

    Raises
    ------
    FileNotFoundError
        Naming the missing files and how to install them.
    """
    files = tuple(_find_files(_resolve_dir(data_dir)))
    stamps = tuple((f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    return _load(files, stamps)


def _fashion_checks(classes, held_out, fraction, n_reference, n_data, pca) -> tuple:
    """Validated settings of :func:`fashion_mnist`, in the order of its signature."""
    if isinstance(classes, (int, np.integer)):
        classes = (classes,)
    try:
        classes = [check_int(c, name="classes", minimum=0, maximum=9) for c in classes]
    except TypeError as err:
        raise TypeError(f"classes: expected a sequence of labels 0-9, got {classes!r}") from err
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes: expected distinct labels 0-9, at least one, got {classes}")
    held_out = check_int(held_out, name="held_out", minimum=0, maximum=9)
    if held_out in classes:
        raise ValueError(f"held_out: class {held_out} is also one of the nominal classes {classes}")
    fraction = check_fraction(fraction, name="fraction")
    n_reference = check_int(n_reference, name="n_reference", minimum=1)
    n_data = check_int(n_data, name="n_data", minimum=1)
    if pca is not None:
        pca = check_int(pca, name="pca", minimum=1, maximum=min(784, n_reference))
    return classes, held_out, fraction, n_reference, n_data, pca


def _pca(reference: np.ndarray, data: np.ndarray, k: int, centre: np.ndarray):
    """Project on the first ``k`` principal axes of the reference alone (sign: largest loading > 0)."""
    mean = reference.mean(axis=0)  # (784,)
    cov = np.cov(reference - mean, rowvar=False)  # (784, 784)
    eigval, eigvec = np.linalg.eigh(cov)  # ascending
    axes = eigvec[:, ::-1][:, :k]  # (784, k), decreasing variance
    axes *= np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(k)])  # deterministic signs
    return (reference - mean) @ axes, (data - mean) @ axes, (centre - mean) @ axes


def _split(rng, labels, classes, held_out, fraction, n_reference, n_data):
    """Disjoint image indices (reference, data) and the anomalous count; anomalies last in data."""
    novel_idx = np.flatnonzero(labels == held_out)
    if count_anomalous(fraction, n_data) > len(novel_idx):
        raise ValueError(f"fraction: {count_anomalous(fraction, n_data)} anomalous rows requested "
                         f"(fraction * n_data) but class {held_out} has only {len(novel_idx)} images")
    return split_novelty(rng, np.flatnonzero(np.isin(labels, classes)), novel_idx, n_reference, n_data,
                         fraction, available=f"images of class {held_out}")


@register("fashion_mnist")
def fashion_mnist(
    seed: int = 0,
    *,
    classes=(0, 1, 2),
    held_out: int = 3,
    fraction: float = 0.1,
    n_reference: int = 5_000,
    n_data: int = 1_000,
    pca: int | None = None,
    data_dir: str | None = None,
):
    """Image novelty on Fashion-MNIST: three classes in the reference, a fourth one rare in the data.

    Parameters
    ----------
    seed : int, default=0
    classes : sequence of int, default=(0, 1, 2)
        Nominal classes (labels 0-9; 0 T-shirt/top, 1 Trouser, 2 Pullover), pooled
        (7,000 images each, so the mixture is uniform over the classes).
    held_out : int, default=3
        The novel class (3 is Dress), absent from the reference.
    fraction : float, default=0.1
        Share of data rows from ``held_out`` (``round(fraction * n_data)``, at most
        7,000 rows); 0 gives a null sample.
    n_reference : int, default=5_000
        Reference rows.
    n_data : int, default=1_000
        Data rows.
    pca : int or None, default=None
        None keeps the 784 raw pixels scaled to [0, 1]; an integer k projects both
        samples on the first k principal axes of the reference images alone (the
        data never inform the projection), centred at the reference mean.
    data_dir : str or None, default=None
        Directory of the Fashion-MNIST files; None means ``$SPARKER_FASHION_MNIST``,
        else :data:`FASHION_MNIST_DIR` (see :mod:`sparker.scenarios.images`).

    Returns
    -------
    reference : ndarray of shape (n_reference, 784 or pca)
    data : ndarray of shape (n_data, 784 or pca)
    truth : dict
        See :mod:`sparker.scenarios`; ``centres`` has one row, the mean of the
        whole held-out class in the output space (empty when ``fraction=0``).
        Extra key ``labels``: class label of each data row.

    Raises
    ------
    FileNotFoundError
        If the Fashion-MNIST files are missing: the message names them and how to
        install them.

    Notes
    -----
    Rows are split without replacement: reference and data share no image, and with
    ``fraction=0`` both are random disjoint subsets of the nominal classes.  The
    anomalous count is fixed (``round(fraction * n_data)``) where the MMD-FUSE
    protocol draws it from a binomial law.
    """
    classes, held_out, fraction, n_reference, n_data, pca = _fashion_checks(classes, held_out, fraction,
                                                                           n_reference, n_data, pca)
    images, labels = load_fashion_mnist(data_dir)
    ref_idx, data_idx, n_anom = _split(np.random.default_rng(seed), labels, classes, held_out, fraction,
                                       n_reference, n_data)
    reference = images[ref_idx] / 255.0  # (n_reference, 784)
    data = images[data_idx] / 255.0  # (n_data, 784)
    centre = images[labels == held_out].mean(axis=0) / 255.0  # (784,)
    names = [f"pixel_{i // 28}_{i % 28}" for i in range(784)]
    if pca is not None:
        reference, data, centre = _pca(reference, data, pca, centre)
        names = [f"pc{i}" for i in range(pca)]
    is_anomaly = np.arange(n_data) >= n_data - n_anom
    centres = centre[None] if n_anom else np.empty((0, len(names)))
    params = {"classes": classes, "held_out": held_out, "fraction": fraction, "n_reference": n_reference,
              "n_data": n_data, "pca": pca}
    truth = make_truth(is_anomaly, centres, params, names, labels=labels[data_idx].tolist())
    return as_f64(reference), as_f64(data), truth
