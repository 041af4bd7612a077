"""The docs site as a reader meets it: the pages generated from data (CLI reference, config keys, results) are
what ``docs/gen_pages.py`` writes from today's parsers, dataclasses and stored results, byte for byte; every page
is in the navigation; and ``mkdocs build --strict`` passes (no broken link, no missing page)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_generated_pages_match_their_data(tmp_path):
    proc = subprocess.run([sys.executable, str(DOCS / "gen_pages.py"), "--check"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_check_fails_when_a_page_drifts(tmp_path):
    out = tmp_path / "docs"
    subprocess.run([sys.executable, str(DOCS / "gen_pages.py"), "--out", str(out)], check=True, cwd=ROOT, timeout=120)
    page = out / "results" / "dicefer-random-init.md"
    page.write_text(page.read_text().replace("0.572 ± 0.028", "0.600 ± 0.028"))
    proc = subprocess.run([sys.executable, str(DOCS / "gen_pages.py"), "--check", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 1 and "results/dicefer-random-init.md" in proc.stdout


def _nav_pages(nav) -> set[str]:
    out: set[str] = set()
    for item in nav:
        values = item.values() if isinstance(item, dict) else [item]
        for v in values:
            out |= _nav_pages(v) if isinstance(v, list) else {v}
    return out


def test_every_page_is_in_the_navigation():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages - _nav_pages(config["nav"]) == set()
    assert _nav_pages(config["nav"]) - pages == set()


def test_mkdocs_build_strict(tmp_path):
    mkdocs = Path(sys.executable).with_name("mkdocs")          # the docs extra, which the Makefile installs
    proc = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "results" / "dicefer-random-init" / "index.html").exists()
