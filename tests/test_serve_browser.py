"""The `ferkit serve` page in a real headless Chromium over a real checkpoint with real face detection:
upload scikit-image's astronaut, see the face boxed and labelled and the probability chart drawn."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from ferkit.serve.app import create_app
from ferkit.serve.limits import Limits
from ferkit.serve.server import BackgroundServer
from serve_helpers import served_model

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]   # a synthetic webcam
FACE_COLOUR = (0x1F, 0x6F, 0xEB)          # COLOURS[0] in static/app.js: the first confident face
UNCERTAIN_COLOUR = (0xD9, 0x77, 0x06)     # UNCERTAIN in static/app.js


def _upload_and_read(page, url: str, photo: Path, shot: Path) -> dict:
    """Open the page, pick ``photo`` with the file input, wait for the answer; what the page shows."""
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url + "/")
    page.wait_for_function("document.getElementById('model-info').textContent.startsWith('Model:')")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("body[data-state=done]", timeout=60_000)
    seen = page.evaluate("""() => {
        const body = window.ferkitLast, row = body.rows[0], c = document.getElementById('view');
        const s = parseFloat(c.dataset.scale), ctx = c.getContext('2d');
        const [x1, y1, x2, y2] = row.box.map(v => v * s);
        const edge = ctx.getImageData(Math.round(x1), Math.round((y1 + y2) / 2), 1, 1).data;
        return {row, edge: Array.from(edge).slice(0, 3), canvas: [c.width, c.height],
                labels: Array.from(document.querySelectorAll('.face .label')).map(e => e.textContent),
                badges: document.querySelectorAll('.face .badge').length,
                bars: Array.from(document.querySelectorAll('.bar')).map(b => [b.dataset.cls, parseFloat(b.dataset.p),
                                                                         b.getBoundingClientRect().width]),
                track: document.querySelector('.track').getBoundingClientRect().width,
                status: document.getElementById('status').textContent,
                error: document.getElementById('error').hidden};
    }""")
    page.screenshot(path=str(shot), full_page=True)
    seen["requests"] = requests
    return seen


def _webcam_capture(page, url: str) -> dict:
    """Start the (fake) webcam, capture a frame, and return what the server answered for it."""
    page.goto(url + "/")
    page.click("#camera-start")
    page.wait_for_function("document.getElementById('video').videoWidth > 0", timeout=30_000)
    page.click("#camera-capture")
    page.wait_for_selector("body[data-state=done]", timeout=60_000)
    return page.evaluate("() => ({rows: window.ferkitLast.rows, image: window.ferkitLast.image,"
                         " status: document.getElementById('status').textContent})")


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed at /usr/bin/chromium")
def test_page_boxes_labels_and_charts_the_astronaut(tmp_path: Path, tmp_path_factory):
    from playwright import sync_api as playwright
    from skimage import data

    model = served_model(str(tmp_path_factory.getbasetemp()))
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(photo, quality=92)
    results = {}
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for name, threshold in (("confident", 0.99), ("uncertain", 0.5)):
                app = create_app(model, Limits(), abstain_above=threshold)
                with BackgroundServer(app) as srv:
                    page = browser.new_page(viewport={"width": 1200, "height": 820})
                    results[name] = _upload_and_read(page, srv.url, photo, tmp_path / f"serve-{name}.png")
                    results[name]["url"] = srv.url
                    page.close()
                    if name == "uncertain":
                        context = browser.new_context()
                        context.grant_permissions(["camera"], origin=srv.url)
                        webcam = _webcam_capture(context.new_page(), srv.url)
                        context.close()
        finally:
            browser.close()
    # the webcam frame (Chromium's synthetic test pattern, no face) went through the same upload path
    assert webcam["rows"][0]["file"] == "webcam.jpg" and webcam["image"]["width"] > 0
    assert webcam["rows"][0]["face"] is None and "no face" in webcam["status"].lower()
    classes = list(model.classes)
    for name, seen in results.items():
        row = seen["row"]
        assert seen["error"] and "1 face in astronaut.jpg" in seen["status"], seen["status"]
        assert seen["canvas"] == [512, 512]
        x1, y1, x2, y2 = row["box"]
        assert 150 < (x1 + x2) / 2 < 300 and 50 < (y1 + y2) / 2 < 220          # the astronaut's face
        assert seen["labels"] == [row["label"]] and row["label"] in classes     # the label, as text
        # one bar per class, widths proportional to the probabilities, summing to one
        assert [b[0] for b in seen["bars"]] == classes
        assert sum(b[1] for b in seen["bars"]) == pytest.approx(1.0, abs=1e-4)
        for _, prob, width in seen["bars"]:
            assert width == pytest.approx(prob * seen["track"], abs=1.5)
        # the box is drawn on the canvas: its left edge has the face's colour
        want = UNCERTAIN_COLOUR if name == "uncertain" else FACE_COLOUR
        assert all(abs(a - b) < 40 for a, b in zip(seen["edge"], want, strict=True)), (name, seen["edge"])
        assert seen["badges"] == (1 if name == "uncertain" else 0)
        assert row["abstained"] is (name == "uncertain")
        assert all(u.startswith(seen["url"]) or u.startswith("blob:") for u in seen["requests"]), seen["requests"]
        assert (tmp_path / f"serve-{name}.png").stat().st_size > 20_000
