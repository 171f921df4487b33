"""The HTML report in a real browser: Debian's headless Chromium loads every figure without console errors.

The page checks itself: a copy of ``index.html`` gets, as the first element of its head, a script that
records ``window.onerror``/resource errors and ``console.error`` calls and, after ``load``, writes
``IMAGES_OK n=.. ok=.. ERRORS=..`` into the DOM, which ``--dump-dom`` prints. A copy with a broken image
shows that the check can fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from scoreset_fixtures import make_scoreset

from neurofit.report import report

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian's chromium is not installed at /usr/bin/chromium (.ci/install-system "
                              "installs it with apt-get)"),
]

CHECK_SCRIPT = """<script>
(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    var t = e.target || {};
    errors.push("error:" + (e.message || t.src || t.href || "resource"));
  }, true);
  var original = console.error;
  console.error = function () {
    errors.push("console:" + Array.prototype.join.call(arguments, " "));
    original.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    var images = document.images, ok = 0, bad = [];
    for (var i = 0; i < images.length; i++) {
      if (images[i].complete && images[i].naturalWidth > 0) { ok++; } else { bad.push(images[i].getAttribute("src")); }
    }
    var div = document.createElement("div");
    div.id = "nf-check";
    div.textContent = (bad.length === 0 ? "IMAGES_OK" : "IMAGES_BAD") + " n=" + images.length + " ok=" + ok +
      " ERRORS=" + errors.length + " ;" + bad.join(",") + ";" + errors.join(" | ");
    document.body.appendChild(div);
  });
})();
</script>"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--hide-scrollbars", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def _self_check(tmp_path: Path, page: Path) -> str:
    checked = page.with_name(f"check-{page.name}")
    checked.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>\n" + CHECK_SCRIPT, 1),
                       encoding="utf-8")
    result = _chromium(tmp_path, "--virtual-time-budget=15000", "--dump-dom", checked.as_uri())
    found = re.search(r'<div id="nf-check">([^<]*)</div>', result.stdout)
    assert found, f"the page never reported its check; chromium said: {result.stderr[-2000:]}"
    return found.group(1)


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("browser")
    sets = [make_scoreset("feedforward", regions={"V4": 8, "IT": 10}, n_bins=15, late=0.3, seed=0, grid=False),
            make_scoreset("convrnn", regions={"V4": 8, "IT": 10}, n_bins=15, late=0.7, seed=1)]
    return report(sets, folder / "report", window=(60, 150), n_boot=100)


def test_every_figure_loads_in_chromium_without_console_errors(index, tmp_path):
    status = _self_check(tmp_path, index)
    n_images = index.read_text().count("<img ")
    assert status.startswith(f"IMAGES_OK n={n_images} ok={n_images} ERRORS=0 "), status
    assert n_images == 6


def test_the_self_check_catches_a_broken_image(index, tmp_path):
    broken = index.with_name("broken.html")
    broken.write_text(index.read_text().replace('src="figures/', 'src="figures/missing-', 1), encoding="utf-8")
    status = _self_check(tmp_path, broken)
    assert status.startswith("IMAGES_BAD") and "ERRORS=1" in status and "missing-" in status, status


def test_chromium_screenshot_of_the_report_shows_content(index, tmp_path):
    shot = tmp_path / "report.png"
    result = _chromium(tmp_path, "--window-size=1100,3000", f"--screenshot={shot}", index.as_uri())
    assert shot.exists(), result.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1100, 3000)
        grey = image.convert("L")
        # A blank page is one colour; the report has text, tables and figures.
        assert len(grey.getcolors(maxcolors=256 * 256) or range(257)) > 50
    keep = index.parent / "screenshot.png"
    shutil.copyfile(shot, keep)
