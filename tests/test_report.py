"""Tests for sparker.app.report and the reports written by the command line."""

import base64
import functools
import io
import json
import re
import sys

import numpy as np
import pytest

import sparker
from sparker import SparKer, scenarios
from sparker.app import demo
from sparker.app.cli import main
from sparker.app.report import build_report, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Quick calibrated tests on the command line.
QUICK = ["--epochs", "40", "--n-kernels", "2", "--n-null", "4"]

pytestmark = pytest.mark.usefixtures("one_torch_thread", "quiet_convergence_warning")


@pytest.fixture(autouse=True)
def _agg_backend():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    R = rng.uniform(size=(800, 2))
    D = np.concatenate([rng.uniform(size=(100, 2)), 0.5 + 0.02 * rng.standard_normal((25, 2))])
    return R, D


@pytest.fixture(scope="module")
def result(samples):
    R, D = samples
    return sparker.test(R, D, n_null=4, seed=0, n_kernels=2, epochs=60)


def check_self_contained(page: str) -> list[bytes]:
    """No network references; every <img> is a PNG data URI that decodes. Returns the PNGs."""
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "@import" not in page and "url(" not in page
    for ref in re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]*)['"]""", page, flags=re.IGNORECASE):
        assert not re.match(r"(https?:)?//", ref), ref
    images = re.findall(r"<img\b[^>]*>", page, flags=re.IGNORECASE)
    pngs = []
    for tag in images:
        src = re.search(r"""src\s*=\s*['"]([^'"]*)['"]""", tag).group(1)
        assert src.startswith("data:image/png;base64,"), src[:40]
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(PNG_MAGIC)
        pngs.append(png)
    return pngs


def decodes(png: bytes) -> tuple:
    """Shape of the decoded image (matplotlib's PNG reader; PIL's verify when available)."""
    from matplotlib.image import imread

    image = imread(io.BytesIO(png), format="png")
    try:
        from PIL import Image
    except ImportError:
        pass
    else:
        Image.open(io.BytesIO(png)).verify()
    return image.shape


# ----------------------------------------------------------------------- library


def test_report_of_a_test_is_self_contained_and_every_figure_decodes(result, samples, tmp_path):
    R, D = samples
    report_path, result_path = write_report(tmp_path / "out", result, reference=R, data=D, top_k=5)
    page = report_path.read_text(encoding="utf-8")
    pngs = check_self_contained(page)
    assert len(pngs) == 4  # null distribution, 2-D view, marginals, training
    for png in pngs:
        shape = decodes(png)
        assert shape[0] > 50 and shape[1] > 50
    content = json.loads(result_path.read_text())
    assert {"verdict", "pvalue", "zscore", "statistic", "kernels", "top_points", "plots", "settings",
            "provenance"} <= set(content)
    assert content["pvalue"] == pytest.approx(result.pvalue)
    assert content["verdict"]["calibrated"] and content["verdict"]["significant"] == (result.pvalue <= 0.05)
    assert [p["name"] for p in content["plots"]] == ["null_distribution", "view2d", "marginals", "training"]
    assert len(content["top_points"]) == 5 and content["kernels"] == result.model.kernels_
    assert content["provenance"]["sparker_version"] == sparker.__version__
    assert content["provenance"]["seed"] == 0 and content["provenance"]["created_utc"].endswith("+00:00")
    top = result.model.top_points(5, X=D)
    assert [p["row"] for p in content["top_points"]] == top["row"].tolist()
    assert "look-elsewhere" in page and "local Z" in page


def test_write_report_refuses_to_overwrite(result, samples, tmp_path):
    R, D = samples
    (tmp_path / "report.html").write_text("keep me")
    with pytest.raises(FileExistsError, match="^out_dir:"):
        write_report(tmp_path, result, reference=R, data=D, figures=False)
    assert (tmp_path / "report.html").read_text() == "keep me"
    assert not (tmp_path / "result.json").exists()
    write_report(tmp_path, result, reference=R, data=D, figures=False, overwrite=True)
    assert "keep me" not in (tmp_path / "report.html").read_text()


def test_report_without_matplotlib_says_so(result, samples, tmp_path, monkeypatch):
    R, D = samples
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    report_path, result_path = write_report(tmp_path, result, reference=R, data=D)
    page = report_path.read_text()
    assert "<img" not in page and "matplotlib is not installed" in page
    content = json.loads(result_path.read_text())
    assert content["plots"] == [] and "matplotlib" in content["plots_notes"][0]
    assert content["provenance"]["matplotlib"] is None


def test_report_of_a_model_alone_is_not_calibrated(samples):
    R, D = samples
    model = SparKer(n_kernels=2, epochs=40, seed=0).fit(R, D)
    report = build_report(model=model, reference=R, data=D)
    assert report.result["verdict"]["calibrated"] is False
    assert report.result["verdict"]["significant"] is None
    assert "Not calibrated" in report.html
    assert report.figures == ("view2d", "marginals", "training")
    assert report.result["n_flagged"] == int(model.flag(D).sum())
    # without samples: the stored top points of the fit, no sample figures
    bare = build_report(model=model, figures=True)
    assert bare.figures == ("training",) and len(bare.result["top_points"]) == 10


def test_report_of_a_baseline_has_no_kernels(samples):
    R, D = samples
    res = sparker.baselines.mmd(R[:200], D[:60], n_null=9, seed=0)
    report = build_report(res, reference=R, data=D)
    assert report.figures == ("null_distribution",)
    assert report.result["top_points"] == [] and "kernels" not in report.result
    check_self_contained(report.html)


def test_build_report_checks_arguments(result):
    with pytest.raises(ValueError, match="^result, model:"):
        build_report()
    with pytest.raises(ValueError, match="^alpha:"):
        build_report(result, alpha=1.5)
    with pytest.raises(ValueError, match="^top_k:"):
        build_report(result, top_k=-1)
    with pytest.raises(TypeError, match="^model:"):
        build_report(model=object())


def test_verdict_mentions_resolution_when_toys_are_too_few(result):
    text = build_report(result, figures=False).result["verdict"]["text"]
    assert "4 null toys" in text
    assert "cannot go below 0.2" in text


# -------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def npy_files(samples, tmp_path_factory):
    R, D = samples
    folder = tmp_path_factory.mktemp("report_inputs")
    np.save(folder / "ref.npy", R)
    np.save(folder / "data.npy", D)
    return folder / "ref.npy", folder / "data.npy"


def test_cli_test_out_writes_report_result_and_model(npy_files, tmp_path, capsys):
    ref, data = npy_files
    out = tmp_path / "run"
    assert main(["test", "--reference", str(ref), "--data", str(data), *QUICK, "--out", str(out)]) == 0
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out.splitlines()  # the verdict, not JSON
    pngs = check_self_contained((out / "report.html").read_text())
    assert len(pngs) == 4 and all(len(decodes(p)) == 3 for p in pngs)
    content = json.loads((out / "result.json").read_text())
    assert 0 < content["pvalue"] <= 1 and content["inputs"]["data"]["shape"] == [125, 2]
    assert content["verdict"]["calibrated"] and len(content["top_points"]) == 10
    assert SparKer.load(out / "model.npz").statistic_ == pytest.approx(content["statistic"])


def test_cli_test_refuses_an_existing_report(npy_files, tmp_path, capsys):
    ref, data = npy_files
    (tmp_path / "report.html").write_text("keep me")
    args = ["test", "--reference", str(ref), "--data", str(data), *QUICK, "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "report.html" in err and "--force" in err
    assert (tmp_path / "report.html").read_text() == "keep me" and not (tmp_path / "result.json").exists()
    assert main([*args, "--force"]) == 0
    check_self_contained((tmp_path / "report.html").read_text())


def test_cli_demo_writes_report_and_prints_where(tmp_path, monkeypatch, capsys):
    small = functools.partial(scenarios.make, n_reference=2000, n_background=200, n_per_clump=10)
    monkeypatch.setattr(demo, "make", small)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n-null", "3"]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in printed
    assert "local Z" in printed and "active kernels" in printed
    pngs = check_self_contained((out / "report.html").read_text())
    assert len(pngs) == 4  # null distribution, 2-D view, marginals, training
    content = json.loads((out / "result.json").read_text())
    assert content["verdict"]["calibrated"] is True and content["n_null"] == 3
    assert content["truth"]["n_active"] == sum(k["active"] for k in content["kernels"])
    assert content["scenario"] == "square2d" and content["provenance"]["seed"] == 0
    assert main(["demo", "--out", str(out), "--n-null", "3"]) == 2  # refuses to overwrite without --force
    assert "already exists" in capsys.readouterr().err
