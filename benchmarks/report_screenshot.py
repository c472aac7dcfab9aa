"""What a reader sees first: the report's first screen in headless Chromium.

Runs ``sparker demo`` into a temporary folder (or takes ``--report PATH``), renders
``report.html`` with headless Chromium into a PNG of the first screen
(``--window-size``, default 1280x900) and prints the first visible text lines of
the page as Chromium built it (``--dump-dom``, tags stripped with the standard
library's :mod:`html.parser`; figures appear as ``[figure: NAME]``).

Without Chromium (``chromium``, ``chromium-browser``, ``google-chrome`` on the PATH,
or ``--chromium PATH``) it says so and exits with status 0: the check is skipped.

Usage::

    python benchmarks/report_screenshot.py                     # demo report, PNG in the temp folder
    python benchmarks/report_screenshot.py --report run1/report.html --png first.png
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

#: Browsers tried in this order when --chromium is not given.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Elements whose end starts a new line of text.
_BLOCKS = {"p", "div", "h1", "h2", "h3", "h4", "li", "tr", "pre", "figure", "figcaption", "table",
           "br", "section", "header", "title"}
_HIDDEN = {"style", "script", "head", "noscript"}


class _VisibleText(HTMLParser):
    """Visible text of a page, one line per block element; images as ``[figure: alt]``."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._current: list[str] = []
        self._hidden = 0
        self._cell = False

    def _flush(self) -> None:
        text = " ".join(" ".join(self._current).split())
        if text:
            self.lines.append(text)
        self._current = []

    def handle_starttag(self, tag, attrs):
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag == "img":
            self._flush()
            self.lines.append(f"[figure: {dict(attrs).get('alt') or 'image'}]")
        elif tag in ("td", "th") and self._current:
            self._current.append("|")
        elif tag in _BLOCKS:
            self._flush()

    def handle_endtag(self, tag):
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCKS:
            self._flush()

    def handle_data(self, data):
        if not self._hidden and data.strip():
            self._current.append(data.strip())

    def close(self):
        super().close()
        self._flush()


def visible_lines(page: str) -> list[str]:
    """The visible text of an HTML page, one line per block (title and styles left out)."""
    parser = _VisibleText()
    parser.feed(page)
    parser.close()
    return parser.lines


def find_browser(given: str | None) -> str | None:
    if given:
        return given if Path(given).exists() or shutil.which(given) else None
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def _chromium(browser: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    command = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
               "--disable-dev-shm-usage", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def demo_report(folder: Path, seed: int) -> Path:
    """Run ``sparker demo`` into ``folder``; the path of its report."""
    from sparker.app.cli import main

    out = folder / "sparker-demo"
    code = main(["demo", "--seed", str(seed), "--out", str(out)])
    if code != 0:
        raise SystemExit(f"sparker demo failed with status {code}")
    return out / "report.html"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, help="report.html to render (default: run the demo)")
    parser.add_argument("--png", type=Path, help="where to write the screenshot (default: beside the report)")
    parser.add_argument("--window-size", default="1280,900", help="WIDTH,HEIGHT (default: %(default)s)")
    parser.add_argument("--lines", type=int, default=15, help="visible text lines printed (default: 15)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the demo (default: 0)")
    parser.add_argument("--chromium", help="the browser's executable (default: found on the PATH)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per browser call")
    args = parser.parse_args(argv)

    browser = find_browser(args.chromium)
    if browser is None:
        tried = ", ".join([args.chromium] if args.chromium else BROWSERS)
        print(f"SKIPPED: no Chromium found (tried {tried}); install chromium or pass --chromium PATH")
        return 0
    with tempfile.TemporaryDirectory(prefix="sparker-screenshot-") as tmp:
        report = args.report if args.report is not None else demo_report(Path(tmp), args.seed)
        if not report.is_file():
            raise SystemExit(f"--report: file not found: {report}")
        report = report.resolve()
        png = (args.png or report.with_name("first_screen.png")).resolve()
        url = report.as_uri()
        shot = _chromium(browser, f"--screenshot={png}", f"--window-size={args.window_size}", url,
                         timeout=args.timeout)
        if not png.is_file():
            raise SystemExit(f"{browser} wrote no screenshot (status {shot.returncode}):\n"
                             f"{shot.stderr[-2000:]}")
        dom = _chromium(browser, "--dump-dom", url, timeout=args.timeout)
        if dom.returncode != 0 or not dom.stdout.strip():
            raise SystemExit(f"{browser} --dump-dom failed (status {dom.returncode}):\n{dom.stderr[-2000:]}")
        if args.report is None and args.png is None:  # keep the picture of a temporary report
            kept = Path(tempfile.gettempdir()) / "sparker_report_first_screen.png"
            shutil.copyfile(png, kept)
            png = kept
        print(f"browser: {browser}")
        print(f"report: {report if args.report is not None else 'sparker demo (temporary folder)'}")
        print(f"screenshot ({args.window_size}): {png}")
        print(f"first {args.lines} visible text lines:")
        for line in visible_lines(dom.stdout)[: args.lines]:
            print("  " + (line if len(line) <= 160 else line[:157] + "..."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
