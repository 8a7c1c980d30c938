"""The README and docs/ stay true: relative links resolve, and every table matches the results file it cites."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _docs_tables():
    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "scripts" / "docs_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page."""
    anchors = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: link to {target} does not resolve"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{page.name}: no heading #{anchor} in {path or page.name}"


def test_docs_tables_match_their_results_files():
    assert _docs_tables().check() == []


def test_a_changed_results_file_is_caught(tmp_path, monkeypatch):
    docs_tables = _docs_tables()
    docs = tmp_path / "docs"
    (docs / "results").mkdir(parents=True)
    results = {"command": "cmd", "commit": "abc", "machine": "m", "date": "d",
               "rows": [{"scene": "fox", "label": "auto", "metrics": {"psnr": 32.1, "num_gaussians": 1000}}]}
    (docs / "results" / "r.json").write_text(json.dumps(results))
    (docs / "page.md").write_text("# P\n\n<!-- table: results/r.json kind=runs -->\n<!-- end table -->\n")  # empty
    monkeypatch.setattr(docs_tables, "DOCS", docs)
    assert docs_tables.check() == ["docs/page.md: results/r.json"]
    docs_tables.write()
    text = (docs / "page.md").read_text()
    assert docs_tables.check() == [] and text.count("| fox | auto | 32.10 |") == 1 and text.count("<!--") == 2
    docs_tables.write()
    assert (docs / "page.md").read_text() == text  # writing twice changes nothing
    results["rows"][0]["metrics"]["psnr"] = 31.0
    (docs / "results" / "r.json").write_text(json.dumps(results))
    assert docs_tables.check() == ["docs/page.md: results/r.json"]
