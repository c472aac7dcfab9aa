"""Reliability: numerical guards, safe saved files, atomic outputs, determinism, killed runs.

- Numerical guards: no NaN or inf reaches a statistic (overflow of exp, kernels that all
  underflow in high dimension, tiny widths, constant features, values anywhere in the
  float64 range); a fit that diverges is refused with an error, one that has not settled
  says so (``converged``).
- Saved files (models, calibrations, checkpoints): truncated, corrupted, foreign,
  wrong-version and crafted files raise a ValueError naming the argument and execute
  nothing; writes are atomic and never replace an existing output unasked.
- Determinism: the same seed gives bitwise the same statistics in this process and in a
  fresh one, whatever chunk size covers all toys at once.  (Chunk sizes that regroup
  the toys change float32 rounding, see ``test_calibration.py``; back ends at the same
  chunk size are compared bitwise there as well.)
- Killed runs: a calibration SIGKILLed at random points resumes to exactly the
  uninterrupted result, losing no finished toy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
import logging
import math
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sparker
import sparker.app.commands
import sparker.calibration.toys as C
import sparker.methods
import sparker.estimator as E
from sparker.calibration import Calibration
from sparker.calibration.checkpoint import Checkpoint
from sparker.app.cli import main
from sparker.io import read_table, write_json
from sparker.model.step import chunk_terms as _chunk_terms
from sparker.model.trainer import MIN_WIDTH, train_replicas

TINY = {"n_kernels": 2, "epochs": 20, "reseed": False}
SRC = Path(sparker.__file__).parent

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def normal(n, d=2, seed=0, shift=0.0):
    return np.random.default_rng(seed).standard_normal((n, d)) + shift


def bump(seed=0):
    """A reference and a data sample with a clear local excess."""
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((300, 2))
    D = np.r_[rng.standard_normal((80, 2)), 1.5 + 0.1 * rng.standard_normal((40, 2))]
    return R, D


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code, err, *words, status=2):
    """Exit status ``status`` and one error line (log warnings aside) holding ``words``."""
    assert code == status, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("WARNING: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], err


# ====================================================================== numerical guards
def test_exp_overflow_is_guarded_in_float32_training():
    # f far beyond the float32 range of exp: the loss and gradients stay finite
    n, M, B = 50, 3, 2
    Xa = torch.randn(n, 4)
    Ca = torch.zeros(4, M * B)  # every log-kernel 0: each gate is at its largest
    aT = torch.full((M, B), 500.0)
    r, dw = torch.full((n, B), 0.5), torch.zeros(n, B)
    r[: n // 2] = 0.0  # rows with no reference weight: 0 * exp(f) must not be NaN
    dw[: n // 2] = 1.0
    for comp in ((1, 0), (1, 1)):
        loss, ga, gs, gx = _chunk_terms(Xa, Xa, Ca, aT, r, dw, None, *comp, True)
        for value in (loss, ga, gs, gx):
            assert torch.isfinite(value).all()


@pytest.mark.parametrize("settings_", [
    {"competition": "none", "n_kernels": 8, "a_max": 50.0, "lr_amplitudes": 5.0, "sigma_start": 10.0, "sigma_end": 10.0},
    {"n_kernels": 2, "a_max": 50.0, "lr_amplitudes": 5.0, "layers": [{}, {}, {}]},
])
def test_huge_amplitude_steps_give_a_finite_statistic_or_a_clear_error(settings_):
    R, D = bump()
    model = sparker.SparKer(epochs=30, reseed=False, **settings_)
    try:
        model.fit(R, D)
    except ValueError as error:  # diverged: said so, naming what to change
        assert str(error).startswith("statistic:") and "a_max" in str(error)
        return
    assert math.isfinite(model.statistic_) and np.isfinite(model.log_ratio(D)).all()


def test_a_max_beyond_the_float32_range_of_exp_is_refused():
    with pytest.raises(ValueError, match=r"^a_max: must be at most 50"):
        sparker.SparKer(a_max=51.0, **{k: v for k, v in TINY.items()}).fit(*bump())


def test_all_kernels_underflowing_in_high_dimension_gives_finite_results():
    R, D = normal(60, d=2000, seed=1), normal(30, d=2000, seed=2, shift=0.5)
    for widths in ({"sigma_start": 1e-3, "sigma_end": 1e-3}, {"sigma_end_quantile": 0.001}, {}):
        model = sparker.SparKer(**TINY, **widths).fit(R, D)
        assert math.isfinite(model.statistic_)
        assert np.isfinite(model.log_ratio(D)).all() and np.isfinite(model.log_ratio(R)).all()
        for row in model.kernels_:
            assert all(math.isfinite(row[key]) for key in ("amplitude", "n_data", "n_reference"))


@pytest.mark.parametrize("name, value", [("sigma_end", 0.0), ("sigma_end", 1e-300), ("sigma_start", 1e-20),
                                         ("sigma_start", -1.0), ("sigma_end", float("inf"))])
def test_zero_or_tiny_widths_are_refused(name, value):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        sparker.SparKer(**TINY, **{name: value}).fit(*bump())


def test_scheduled_widths_below_float32_resolution_are_raised(caplog):
    X = torch.randn(40, 2)
    r = torch.full((40, 1), 0.5)
    r[:10] = 0.0
    dw = (r == 0).float()
    with caplog.at_level(logging.WARNING, logger="sparker"):
        res = train_replicas(X, r, dw, X[None, :2].double(), np.full(10, 1e-30), l1=0.0, reseed=False)
    assert "below the float32 resolution" in caplog.text
    assert res.sigma == MIN_WIDTH and np.isfinite(res.statistic).all()


def test_reference_of_near_duplicates_gives_finite_results():
    # most points coincide, so the data-derived end width is tiny
    R = np.zeros((500, 2))
    R[:4] = [[1e-9, 0.0], [0.0, 1e-9], [1.0, 1.0], [2.0, 0.5]]
    D = np.r_[np.zeros((20, 2)), [[1.0, 1.0]] * 5]
    model = sparker.SparKer(**TINY).fit(R, D)
    assert math.isfinite(model.statistic_) and np.isfinite(model.log_ratio(D)).all()
    assert all(layer["sigma"] >= MIN_WIDTH for layer in model.layers_)


def test_constant_features():
    R, D = bump()
    R1, D1 = np.c_[R, np.full(len(R), 7.0)], np.c_[D, np.full(len(D), 7.0)]
    shifted = np.c_[D, np.full(len(D), 8.0)]  # the data leave the reference's constant value
    for data in (D1, shifted):
        model = sparker.SparKer(**TINY).fit(R1, data)
        assert math.isfinite(model.statistic_) and np.isfinite(model.log_ratio(data)).all()
    with pytest.raises(ValueError, match="^reference: all points coincide"):
        sparker.SparKer(**TINY).fit(np.ones((50, 3)), D1)


def test_statistic_does_not_depend_on_the_units_across_the_float64_range():
    R, D = bump()
    base = sparker.SparKer(**TINY).fit(R, D).statistic_
    for scale in (1e-300, 1e-13, 1e-8, 1e8, 1e300, 1e307):
        t = sparker.SparKer(**TINY).fit(R * scale, D * scale).statistic_
        assert t == pytest.approx(base, rel=1e-6), scale
    # a large offset with a small spread (e.g. timestamps)
    assert sparker.SparKer(**TINY).fit(R + 1e9, D + 1e9).statistic_ == pytest.approx(base, rel=1e-3)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # widths in original units
def test_data_far_outside_the_reference_is_clipped_with_a_warning(caplog):
    R, D = bump()
    far = D.copy()
    far[:5] = 1e30  # ~1e30 reference standard deviations away
    with caplog.at_level(logging.WARNING, logger="sparker"):
        model = sparker.SparKer(**TINY).fit(R, far)
    assert "clipped" in caplog.text
    assert math.isfinite(model.statistic_) and model.statistic_ > 0
    assert np.isfinite(model.log_ratio(far)).all() and np.isfinite(model.centres_).all()
    big = np.finfo(np.float64).max  # the whole float64 range in one feature
    model = sparker.SparKer(**TINY).fit(np.array([[big, 0.0], [-big, 1.0], [0.0, 0.0], [big / 2, 2.0]]),
                                         np.array([[big, 0.5]]))
    assert math.isfinite(model.statistic_)


def test_a_non_finite_statistic_is_refused_not_returned(monkeypatch):
    real = E.fit_stack

    def poisoned(*args, **kwargs):
        fit = real(*args, **kwargs)
        fit.layers[-1].statistic = np.full_like(fit.layers[-1].statistic, np.nan)
        return fit

    monkeypatch.setattr(E, "fit_stack", poisoned)
    model = sparker.SparKer(**TINY)
    with pytest.raises(ValueError, match=r"^statistic: training diverged"):
        model.fit(*bump())
    assert not hasattr(model, "statistic_")
    with pytest.raises(ValueError, match=r"^statistic:"):
        sparker.test(*bump(), n_null=2, **TINY)


def test_a_non_finite_null_toy_is_refused_and_finished_toys_are_kept(tmp_path, monkeypatch):
    real = C._run_chunk

    def poisoned(problem, k, ids):
        out = real(problem, k, ids)
        if 17 in ids:
            out[list(ids).index(17)] = np.inf
        return out

    monkeypatch.setattr(C, "_run_chunk", poisoned)
    path = tmp_path / "ck.npz"
    with pytest.raises(ValueError, match=r"^statistic: null toy 17 \(configuration 0\)"):
        sparker.calibrate(normal(400), 40, n_null=20, replica_chunk=16, checkpoint=path, **TINY)
    _, values, done = Checkpoint.read(path)
    assert done[:16, 0].all() and not done[16:, 0].any() and np.isfinite(values[done]).all()


def test_a_fit_that_has_not_settled_says_so(tmp_path):
    R, D = bump()
    with pytest.warns(sparker.ConvergenceWarning, match="had not settled"):
        model = sparker.SparKer(n_kernels=2, epochs=10, reseed=False).fit(R, D)
    assert model.converged_ is False
    assert model.to_dict()["converged"] is False
    with pytest.warns(sparker.ConvergenceWarning, match="had not settled"):
        res = sparker.test(R, D, n_null=2, n_kernels=2, epochs=10, reseed=False)
    assert res.converged is False and res.to_dict()["converged"] is False
    np.save(tmp_path / "r.npy", R)
    np.save(tmp_path / "d.npy", D)
    code, out, err = run_cli(["fit", "--reference", tmp_path / "r.npy", "--data", tmp_path / "d.npy",
                              "--n-kernels", 2, "--epochs", 10, "--no-reseed"])
    assert code == 0 and json.loads(out)["converged"] is False
    assert err.splitlines() == [  # one warning, then the closing verdict (stdout holds the JSON)
        "WARNING: SparKer: the loss had not settled at the end of training, so t depends on the number of "
        "epochs; compare it only with null toys trained the same way (a calibrated test does)",
        f"t = {json.loads(out)['statistic']:.4g} from a single fit (not calibrated); loss not settled"]


@pytest.mark.parametrize("kwargs, estimator, name", [
    ({"data_weight": np.full(120, 1e30)}, {}, "data_weight"),
    ({"data_weight": np.full(120, 1e-300)}, {}, "data_weight"),
    ({"reference_weight": np.r_[1e300, np.ones(299)]}, {}, "reference_weight"),
    ({"reference_weight": np.full(300, 1e20), "normalize_reference": False}, {}, "reference_weight"),
    ({}, {"n_expected": 1e300}, "n_expected"),
])
def test_weights_outside_the_float32_range_are_refused(kwargs, estimator, name):
    with pytest.raises(ValueError, match=rf"^{name}: per-point weights must lie in"):
        sparker.SparKer(**TINY, **estimator).fit(*bump(), **kwargs)


# ====================================================================== saved files
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A good model, calibration and checkpoint file, and the reference they belong to."""
    folder = tmp_path_factory.mktemp("saved")
    R, D = bump()
    sparker.SparKer(**TINY).fit(R, D).save(folder / "model.npz")
    cal = sparker.calibrate(R, 40, n_null=4, checkpoint=folder / "checkpoint.npz", **TINY)
    cal.save(folder / "calibration.npz")
    return folder


LOADERS = {
    "model": lambda p: sparker.SparKer.load(p),
    "calibration": lambda p: Calibration.load(p),
    "checkpoint": lambda p: Checkpoint.read(p),
}
ARG_NAME = {"model": "path", "calibration": "path", "checkpoint": "checkpoint"}


def _content(kind, obj):
    """What a loaded object holds, for comparisons."""
    if kind == "model":
        return json.dumps(obj.to_dict(), sort_keys=True), obj.log_ratio(bump()[1]).tobytes()
    if kind == "calibration":
        return obj.null.tobytes(), json.dumps(obj.settings_dicts()), repr(obj), obj.widths, obj.fingerprint
    meta, values, done = obj
    return json.dumps(meta, sort_keys=True), values.tobytes(), done.tobytes()


@settings(max_examples=max(10, settings.default.max_examples))
@given(kind=st.sampled_from(sorted(LOADERS)), data=st.data())
def test_corrupted_files_are_refused_or_load_unchanged(saved, tmp_path_factory, kind, data):
    raw = bytearray((saved / f"{kind}.npz").read_bytes())
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(1, 255)),
                               min_size=1, max_size=4), label="flips")
    for position, mask in flips:
        raw[position] ^= mask
    path = tmp_path_factory.mktemp("flip") / f"{kind}.npz"
    path.write_bytes(bytes(raw))
    try:
        loaded = LOADERS[kind](path)
    except ValueError as error:
        assert str(error).startswith(f"{ARG_NAME[kind]}:"), str(error)
        return
    # a flip in bytes that hold no content (zip timestamps, ...): the content is intact
    assert _content(kind, loaded) == _content(kind, LOADERS[kind](saved / f"{kind}.npz"))


@settings(max_examples=max(10, settings.default.max_examples // 2))
@given(kind=st.sampled_from(sorted(LOADERS)), fraction=st.floats(0.0, 0.999))
def test_truncated_files_are_refused(saved, tmp_path_factory, kind, fraction):
    raw = (saved / f"{kind}.npz").read_bytes()
    path = tmp_path_factory.mktemp("cut") / f"{kind}.npz"
    path.write_bytes(raw[: int(fraction * len(raw))])
    with pytest.raises(ValueError, match=rf"^{ARG_NAME[kind]}:"):
        LOADERS[kind](path)


@pytest.mark.parametrize("kind, other", list(itertools.permutations(sorted(LOADERS), 2)))
def test_files_of_another_kind_are_refused(saved, kind, other):
    with pytest.raises(ValueError, match=rf"^{ARG_NAME[kind]}: .* is not a SparKer {kind}"):
        LOADERS[kind](saved / f"{other}.npz")


def _rewrite(src: Path, dst: Path, meta_changes=None, arrays=None, raw_meta: bytes | None = None):
    """Copy an archive, changing its JSON header or arrays."""
    with np.load(src) as z:
        content = {k: z[k] for k in z.files}
    meta = json.loads(content["__meta__"].tobytes().decode())
    meta.update(meta_changes or {})
    text = raw_meta if raw_meta is not None else json.dumps(meta).encode()
    content["__meta__"] = np.frombuffer(text, dtype=np.uint8)
    content.update(arrays or {})
    np.savez(dst, **content)
    return dst


@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_wrong_versions_are_refused(saved, tmp_path, kind):
    for version in (99, 0, True, "1", None, 1.5):
        path = _rewrite(saved / f"{kind}.npz", tmp_path / "v.npz", {"format_version": version})
        with pytest.raises(ValueError, match=rf"^{ARG_NAME[kind]}: .* format version"):
            LOADERS[kind](path)


class _Payload:
    """Unpickling this creates ``marker``: proof that code from a file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_crafted_pickles_are_never_executed(saved, tmp_path, kind):
    marker = tmp_path / "executed"
    evil = _Payload(marker)
    (tmp_path / "pickle.npz").write_bytes(pickle.dumps(evil))  # a bare pickle named .npz
    np.savez(tmp_path / "member.npz", null=np.array([evil], dtype=object), values=np.array([evil], dtype=object))
    _rewrite(saved / f"{kind}.npz", tmp_path / "inside.npz",  # a good file with one pickled array
             arrays={"mean" if kind == "model" else ("null" if kind == "calibration" else "values"):
                     np.array([evil], dtype=object)})
    assert b"touch" in (tmp_path / "member.npz").read_bytes()  # the payload is really there
    for name in ("pickle", "member", "inside"):
        with pytest.raises(ValueError, match=rf"^{ARG_NAME[kind]}:"):
            LOADERS[kind](tmp_path / f"{name}.npz")
        assert not marker.exists()
    for name in ("pickle.npz", "member.npz"):  # input tables: no pickle either
        with pytest.raises(ValueError, match="^data:"):
            read_table(tmp_path / name, name="data", key="null" if name == "member.npz" else None)
    np.save(tmp_path / "evil.npy", np.array([evil], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="^data:"):
        read_table(tmp_path / "evil.npy", name="data")
    assert not marker.exists()


def test_crafted_headers_and_arrays_are_refused(saved, tmp_path):
    model, cal = saved / "model.npz", saved / "calibration.npz"
    with np.load(model) as z:
        centres, mean = z["centres_0"], z["mean"]
    bad_models = {
        "nan_header": {"raw_meta": b'{"format": "sparker-model", "format_version": 1, "statistic": NaN}'},
        "not_json": {"raw_meta": b"\xff\xfe not json"},
        "header_list": {"raw_meta": b"[1, 2, 3]"},
        "nan_centres": {"arrays": {"centres_0": np.full_like(centres, np.nan)}},
        "wrong_shape": {"arrays": {"centres_0": centres[:, :1]}},
        "text_centres": {"arrays": {"centres_0": np.full(centres.shape, "a")}},
        "no_kernels": {"arrays": {"centres_0": centres[:0], "amplitudes_0": np.zeros(0)}},
        "zero_scale": {"arrays": {"scale": np.zeros_like(mean)}},
        "inf_mean": {"arrays": {"mean": np.full_like(mean, np.inf)}},
        "zero_sigma": {"meta_changes": {"sigmas": [0.0]}},
        "sigma_text": {"meta_changes": {"sigmas": ["wide"]}},
        "no_layers": {"meta_changes": {"sigmas": []}},
        "features": {"meta_changes": {"n_features_in": 5}},
        "names": {"meta_changes": {"feature_names_in": ["a"]}},
        "huge_int": {"raw_meta": json.dumps(json.loads(np.load(model)["__meta__"].tobytes())
                                             | {"n_features_in": 1e400}).encode().replace(b"Infinity", b"1e400")},
        "statistic_null": {"meta_changes": {"statistic": None}},
        "params": {"meta_changes": {"params": {"n_kernels": 2, "bogus": 1}}},
        "bad_setting": {"meta_changes": {"params": {"a_max": 1e9}, "config": {"a_max": 1e9}}},
        "history_keys": {"meta_changes": {"history_keys": []}},
    }
    for name, change in bad_models.items():
        path = _rewrite(model, tmp_path / f"{name}.npz", **change)
        with pytest.raises(ValueError, match=r"^(path|a_max):"):
            sparker.SparKer.load(path)
    bad_calibrations = {
        "widths": {"meta_changes": {"widths": [[[0.0, -1.0]]]}},
        "n_expected": {"meta_changes": {"n_expected": 0}},
        "n_data": {"meta_changes": {"n_data": 0}},
        "null": {"arrays": {"null": np.full((4, 1), np.inf)}},
        "weights": {"arrays": {"reference_weight": np.zeros(300)}},
    }
    for name, change in bad_calibrations.items():
        path = _rewrite(cal, tmp_path / f"{name}.npz", **change)
        with pytest.raises(ValueError, match=r"^path:"):
            Calibration.load(path)


def test_no_pickle_or_unsafe_torch_load_in_the_package():
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(c?pickle|dill|joblib)\b", text, re.MULTILINE), path
        assert "allow_pickle=True" not in text, path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)


# ---------------------------------------------------------------------- atomic writes
class _DiskFull:
    """``os.fdopen`` replacement whose stream writes half of the bytes, then fails."""

    def __init__(self, fdopen):
        self.fdopen, self.calls = fdopen, 0

    def __call__(self, fd, *args, **kwargs):
        self.calls += 1
        stream = self.fdopen(fd, *args, **kwargs)
        real_write = stream.write

        def write(data):
            real_write(bytes(data)[: len(data) // 2])
            raise OSError(28, "No space left on device")

        stream.write = write
        return stream


def _writers(tmp_path):
    """name -> (target file, function that (re)writes it with overwrite)."""
    R, D = bump()
    model = sparker.SparKer(**TINY).fit(R, D)
    cal = sparker.calibrate(R, 40, n_null=2, **TINY)
    ck = Checkpoint(tmp_path / "ck.npz", "run", (2, 1))
    np.save(tmp_path / "r.npy", R)
    np.save(tmp_path / "d.npy", D)
    fit_argv = ["fit", "--reference", tmp_path / "r.npy", "--data", tmp_path / "d.npy", "--n-kernels", 2,
                "--epochs", 20, "--out", tmp_path / "fit.json", "--model", tmp_path / "cli-model.npz", "--force"]
    cal_argv = ["calibrate", "--reference", tmp_path / "r.npy", "--n-data", 40, "--n-null", 2, "--n-kernels", 2,
                "--epochs", 20, "--out", tmp_path / "cli-cal.npz", "--force"]
    return {
        "model": (tmp_path / "model.npz", lambda: model.save(tmp_path / "model.npz", overwrite=True)),
        "calibration": (tmp_path / "cal.npz", lambda: cal.save(tmp_path / "cal.npz", overwrite=True)),
        "json": (tmp_path / "r.json", lambda: write_json(tmp_path / "r.json", {"a": [1, 2]}, overwrite=True)),
        "checkpoint": (tmp_path / "ck.npz", lambda: ck.record(0, [1], [2.5])),
        "cli fit": (tmp_path / "fit.json", lambda: run_cli(fit_argv)),
        "cli calibrate": (tmp_path / "cli-cal.npz", lambda: run_cli(cal_argv)),
    }


@pytest.mark.parametrize("name", ["model", "calibration", "json", "checkpoint", "cli fit", "cli calibrate"])
def test_a_crash_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, name):
    target, write = _writers(tmp_path)[name]
    first = write()
    if name.startswith("cli"):
        assert first[0] == 0, first[2]
    before = target.read_bytes()
    files = sorted(p.name for p in tmp_path.iterdir())
    disk_full = _DiskFull(os.fdopen)
    monkeypatch.setattr(os, "fdopen", disk_full)
    if name.startswith("cli"):
        code, _, err = write()
        assert_one_line_error(code, err, "No space left")
    else:
        with pytest.raises(OSError, match="No space left"):
            write()
    monkeypatch.undo()
    assert disk_full.calls >= 1
    assert target.read_bytes() == before  # the old file, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == files  # no temporary left behind


@pytest.mark.parametrize("command, flag", [("fit", "--out"), ("fit", "--model"), ("test", "--out"),
                                           ("calibrate", "--out")])
def test_existing_outputs_are_refused_before_any_work(tmp_path, monkeypatch, command, flag):
    R, D = bump()
    np.save(tmp_path / "r.npy", R)
    np.save(tmp_path / "d.npy", D)
    target = tmp_path / ("out" if command == "test" else "out.npz")
    if command == "test":
        target.mkdir()
        (target / "result.json").write_text("old")
        existing = target / "result.json"
    else:
        target.write_text("old")
        existing = target

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the output check")

    monkeypatch.setattr(sparker.SparKer, "fit", no_work)
    monkeypatch.setattr(sparker.app.commands, "calibrate_reference", no_work)
    monkeypatch.setitem(sparker.methods.METHODS, "sparker",
                        dataclasses.replace(sparker.methods.METHODS["sparker"], test=no_work))
    argv = {"fit": ["fit", "--reference", tmp_path / "r.npy", "--data", tmp_path / "d.npy"],
            "test": ["test", "--reference", tmp_path / "r.npy", "--data", tmp_path / "d.npy"],
            "calibrate": ["calibrate", "--reference", tmp_path / "r.npy", "--n-data", 40]}[command]
    code, _, err = run_cli([*argv, flag, target])
    assert_one_line_error(code, err, flag, "already exists", "--force")
    assert existing.read_text() == "old"
    # an output folder that cannot be created is also found before any work
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = run_cli([*argv, flag, blocker / "sub" / "out.npz"])
    assert_one_line_error(code, err, flag)


def test_an_unwritable_checkpoint_is_refused_before_any_toy(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(C, "_run_chunk", lambda *args: pytest.fail("a toy ran"))
    with pytest.raises(OSError, match="^checkpoint: cannot write"):
        sparker.calibrate(normal(400), 40, n_null=2, checkpoint=blocker / "ck.npz", **TINY)
    np.save(tmp_path / "r.npy", normal(400))
    code, _, err = run_cli(["calibrate", "--reference", tmp_path / "r.npy", "--n-data", 40, "--n-null", 2,
                            "--out", tmp_path / "cal.npz", "--checkpoint", blocker / "ck.npz"])
    assert_one_line_error(code, err, "checkpoint: cannot write")


def test_unexpected_errors_are_one_line_without_debug(tmp_path, monkeypatch):
    R, D = bump()
    np.save(tmp_path / "r.npy", R)
    np.save(tmp_path / "d.npy", D)

    def broken(*args, **kwargs):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(sparker.SparKer, "fit", broken)
    argv = ["fit", "--reference", tmp_path / "r.npy", "--data", tmp_path / "d.npy"]
    code, _, err = run_cli(argv)
    assert_one_line_error(code, err, "internal error: RuntimeError: something broke", "--debug", status=1)
    code, _, err = run_cli(["--debug", *argv])
    assert code == 1 and "Traceback" in err


# ====================================================================== determinism
_IN_A_FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import sparker
    R = np.random.default_rng(1).standard_normal((300, 2))
    D = np.random.default_rng(2).standard_normal((40, 2)) + 0.3
    kw = dict(n_kernels=2, epochs=40)
    out = {
        "fit": sparker.SparKer(seed=3, **kw).fit(R, D).statistic_.hex(),
        "null": [x.hex() for x in sparker.calibrate(R, 40, n_null=6, seed=3, replica_chunk=4, **kw).null[:, 0]],
        "test": [x.hex() for x in sparker.test(R[:60], D, n_null=4, seed=3, **kw).null_distribution],
    }
    print(json.dumps(out))
""")


def test_same_seed_gives_bitwise_identical_statistics_in_this_and_a_fresh_process():
    R = np.random.default_rng(1).standard_normal((300, 2))
    D = np.random.default_rng(2).standard_normal((40, 2)) + 0.3
    kw = {"n_kernels": 2, "epochs": 40}

    def here():
        return {
            "fit": sparker.SparKer(seed=3, **kw).fit(R, D).statistic_.hex(),
            "null": [x.hex() for x in sparker.calibrate(R, 40, n_null=6, seed=3, replica_chunk=4, **kw).null[:, 0]],
            "test": [x.hex() for x in sparker.test(R[:60], D, n_null=4, seed=3, **kw).null_distribution],
        }

    first = here()
    assert here() == first
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _IN_A_FRESH_PROCESS], env=env, capture_output=True, check=False,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == first
    assert sparker.SparKer(seed=4, **kw).fit(R, D).statistic_.hex() != first["fit"]


def test_chunk_sizes_that_cover_all_toys_give_bitwise_identical_toys():
    R = normal(400, seed=5)
    base = sparker.calibrate(R, 40, n_null=7, seed=2, replica_chunk=7, **TINY).null
    for chunk in (8, 64, 1000):
        np.testing.assert_array_equal(sparker.calibrate(R, 40, n_null=7, seed=2, replica_chunk=chunk,
                                                        **TINY).null, base)


# ====================================================================== killed runs
_PACED_CLI = textwrap.dedent("""
    import sys, time
    import sparker.calibration.toys as C
    from sparker.app.cli import main

    compute = C._run_chunk

    def paced(*args):  # slows the run down so that the parent can kill it part-way
        out = compute(*args)
        time.sleep(0.25)
        return out

    C._run_chunk = paced
    sys.exit(main(sys.argv[1:]))
""")


def _done(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    if not path.exists():
        return None
    _, values, done = Checkpoint.read(path)  # always readable: writes are atomic
    return values, done


def test_calibration_killed_at_random_points_resumes_to_the_uninterrupted_result(tmp_path):
    R = normal(300, seed=7)
    np.save(tmp_path / "r.npy", R)
    ck, out = tmp_path / "ck.npz", tmp_path / "cal.npz"
    kw = {"n_null": 96, "seed": 5, "replica_chunk": 16, "n_kernels": 2, "epochs": 20, "reseed": False}
    argv = ["calibrate", "--reference", tmp_path / "r.npy", "--n-data", 30, "--out", out, "--checkpoint", ck,
            "--n-null", 96, "--seed", 5, "--replica-chunk", 16, "--n-kernels", 2, "--epochs", 20, "--no-reseed"]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "MKL_NUM_THREADS": "1"}
    rng = np.random.default_rng(0)
    previous, kills = None, 0
    for _ in range(2):  # two kills at random moments, each after at least one more finished chunk
        proc = subprocess.Popen([sys.executable, "-c", _PACED_CLI, *map(str, argv)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        already = 0 if previous is None else int(previous[1].sum())
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                state = _done(ck)
                if state is not None and state[1].sum() >= already + 16:
                    break
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.4))  # anywhere in a chunk, possibly mid-write
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        finally:
            proc.kill()
            _, err = proc.communicate()
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()[-2000:]
        state = _done(ck)
        assert state is not None
        if previous is not None:  # no finished toy is ever lost or changed
            assert (state[1] >= previous[1]).all()
            np.testing.assert_array_equal(state[0][previous[1]], previous[0][previous[1]])
        previous = state
        if proc.returncode == 0:
            break
    assert kills >= 1
    if not out.exists():  # (a second run may have finished before its kill)
        n_done = int(previous[1].sum())
        assert 0 < n_done < 96 and n_done % 16 == 0  # whole chunks only
        code, _, err = run_cli(argv)  # resume here
        assert code == 0, err
    resumed = Calibration.load(out).null
    uninterrupted = sparker.calibrate(R, 30, **kw).null
    np.testing.assert_array_equal(resumed, uninterrupted)
    np.testing.assert_array_equal(resumed[previous[1]], previous[0][previous[1]])
