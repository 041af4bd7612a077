"""The HTML report opened in a real headless Chromium: tables render and every image decodes."""

import os
from pathlib import Path

import pytest

from ferkit.report.evaluation import compute_metrics
from ferkit.report.writer import write_evaluation
from test_report import CLASSES, FACTS, fake_predictions

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed at /usr/bin/chromium")
def test_report_renders_in_chromium(tmp_path: Path):
    from playwright import sync_api as playwright

    preds = fake_predictions()
    metrics = compute_metrics(preds, CLASSES, abstain_above=0.3)
    paths = write_evaluation(tmp_path / "eval", preds, metrics, CLASSES, FACTS, abstain_above=0.3)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(paths["report"].resolve().as_uri())
            page.wait_for_load_state("load")
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.complete ? e.naturalWidth : 0)")
            n_tables = page.eval_on_selector_all("table", "els => els.length")
            n_rows = page.eval_on_selector_all("table tbody tr", "els => els.length")
            heading = page.inner_text("h1")
            acc_row = page.inner_text("section#headline table")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert len(widths) == 7 and all(w > 0 for w in widths), widths
    assert n_tables >= 6 and n_rows > 20
    assert heading == "ferkit evaluation"
    assert "Accuracy" in acc_row and f"{metrics['headline']['accuracy']:.4f}" in acc_row
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert (tmp_path / "report.png").stat().st_size > 10_000
