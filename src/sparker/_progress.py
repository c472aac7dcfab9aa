"""Optional progress bars: a tqdm bar when it is wanted and installed, None otherwise."""

from __future__ import annotations

import logging

__all__ = ["progress_bar"]

log = logging.getLogger(__name__)


def progress_bar(total: int | None, *, enabled: bool, desc: str, unit: str):
    """A ``tqdm`` bar on stderr, or None when ``enabled`` is false, ``total`` is 0, or tqdm
    (an optional dependency) is not installed."""
    if not enabled or total == 0:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress bars are optional
        log.info("progress: install tqdm for progress bars")
        return None
    return tqdm(total=total, desc=desc, unit=unit)
