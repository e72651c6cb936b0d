"""The report in a real headless Chromium, from file://, and against a second, separate store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import ROOT, tiny_hypothesis, write

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)",
)


def open_in_chromium(path: Path, screenshot: Path) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        problems: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.resolve().as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        verdict_visible = page.is_visible("#verdict")
        verdict_text = page.inner_text("#verdict") if verdict_visible else ""
        claim_text = page.inner_text("#claim") if page.query_selector("#claim") else ""
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return {"problems": problems, "images": images, "verdict_visible": verdict_visible,
            "verdict": verdict_text, "claim": claim_text, "requests": requests}


def assert_not_blank(png: Path) -> None:
    """The screenshot shows a page: a tall image with ink on a good part of it, in many colours
    (a blank, an error page or an unstyled stub fails)."""
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB"))
    ink = (img.min(axis=-1) < 200).mean()
    colours = len(np.unique(img.reshape(-1, 3)[:: 7], axis=0))
    assert img.shape[0] > 2000, img.shape  # every section rendered, not a stub
    assert ink > 0.03 and colours > 100, (ink, colours)


def test_report_renders_in_chromium_from_a_second_store(project, cli, tmp_path):
    write(project / "hypotheses" / "tiny.py", tiny_hypothesis(claim="A <script>alert('x')</script> claim & more.",
                                                              seeds=3, steps=10))
    other = tmp_path / "elsewhere" / "store.db"
    store = f"sqlite:///{other}"
    assert cli("run", "tiny", "--store", store).exit_code == 0
    r = cli("report", "tiny", "--store", store)
    assert r.exit_code == 0, r.output
    report = other.parent / "reports" / "tiny" / "index.html"
    assert report.exists() and not (project / "runs").exists(), "the report belongs to the named store"
    res = open_in_chromium(report, ARTIFACTS / "report.png")
    assert_not_blank(ARTIFACTS / "report.png")
    assert res["problems"] == [], res["problems"]
    assert len(res["images"]) >= 8 and all(ok and width > 0 for _, ok, width in res["images"]), res["images"]
    assert res["verdict_visible"]
    assert any(w in res["verdict"] for w in ("SUPPORTED", "REFUTED", "INCONCLUSIVE"))
    assert res["claim"] == "A <script>alert('x')</script> claim & more."  # shown as text, not run
    assert all(u.startswith(("file:", "data:")) for u in res["requests"]), res["requests"]
    index = open_in_chromium(other.parent / "reports" / "index.html", ARTIFACTS / "index.png")
    assert index["problems"] == [] and not index["verdict_visible"]
