"""report.md renders user text (claims, level names) as literal text: no live link, no raw HTML,
no table cell of its own. Checked with a real CommonMark + GFM-tables parser."""

from __future__ import annotations

import re

from conftest import tiny_hypothesis, write
from markdown_it import MarkdownIt

from analysis.outputs import md_code, md_escape

LINK = "[click](javascript:alert(2))"
IMAGE = "![i](http://x/y.png)"


def _html(md: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(md)


def test_md_escape_makes_user_text_literal():
    for text in (LINK, IMAGE, "<b>bold</b>", "a|b", "*em* _em_ `code` ~~del~~", "# heading", "line\n# two"):
        html = _html(f"| a | b |\n|---|---|\n| {md_escape(text)} | {md_code(text)} |\n")
        assert "<a " not in html and "<img" not in html and "<b>" not in html and "<em>" not in html, html
        assert "<h1>" not in html and "<del>" not in html
        row = re.findall(r"<tr>\s*(.*?)</tr>", html, re.S)[-1]
        assert row.count("<td>") == 2, html  # the | stayed inside its cell
    assert md_escape("iwae_nll") == "iwae_nll"  # an underscore inside a word is literal already


def test_report_md_keeps_hostile_level_names_and_claims_literal(project, cli):
    text = tiny_hypothesis(claim=f"A claim with {LINK} and {IMAGE}.", seeds=2, steps=5)
    text = text.replace("    hidden: int = 16\n", '    hidden: int = 16\n    tag: str = "a"  # a label\n')
    text = text.replace('ablate={"hidden": [8, 16]}', f'ablate={{"tag": ["a", {LINK!r}, "p|q", "`t`"]}}')
    write(project / "hypotheses" / "hostile_md.py", text)
    assert cli("run", "hostile_md").exit_code == 0
    r = cli("report", "hostile_md")
    assert r.exit_code == 0, r.output
    md = (project / "runs" / "reports" / "hostile_md" / "report.md").read_text()
    html = _html(md)
    assert 'href="javascript' not in html and "<img" not in html
    assert "<a " not in html  # no user text became a link (the report itself writes none)
    for table in re.findall(r"<table>.*?</table>", html, re.S):
        head = len(re.findall(r"<th[ >]", table.split("</thead>")[0]))
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("</thead>")[1], re.S):
            assert len(re.findall(r"<td[ >]", row)) == head, row  # `p|q` did not add a cell
    assert "p|q" in html and LINK in html  # shown, literally
