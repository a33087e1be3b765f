"""The README and the pages under docs/: every relative link points at a file of the repository (and, with an
#anchor, at a heading of that file, by GitHub's slug rules); the README stays a short front door that names the
test command CI runs (``make test``, ``.ci/run``) and links every page; a table of numbers a page derives from the
committed runs is what the page's own code computes."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path
from urllib.parse import unquote

import pytest

from conftest import md_rows

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = sorted((REPO / "docs").glob("*.md"))
README_MAX_LINES = 160

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets (an image in a link)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
ATX_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def code_lines(text: str) -> list[str]:
    """The lines inside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif fenced:
            lines.append(line)
    return lines


def links(path: Path) -> list[str]:
    """Targets of the links of a markdown file, outside code, in order."""
    found = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        definition = REFERENCE_DEFINITION.match(line)
        if definition:
            found.append(definition.group(1))
            continue
        found += INLINE_LINK.findall(INLINE_CODE.sub("", line))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text lower-cased, every character that is not a letter, digit,
    underscore, hyphen or space dropped, each space made a hyphen."""
    text = INLINE_CODE.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link's text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = re.sub(r"(\*+|(?<!\w)_+|_+(?!\w))", "", text)  # emphasis markers, not underscores inside words
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a markdown file's headings (a repeated slug gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    result = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        heading = ATX_HEADING.match(line)
        if not heading:
            continue
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def relative_links() -> list[tuple[Path, str]]:
    return list(dict.fromkeys((source, target) for source in [README, *PAGES] for target in links(source)
                              if target and not SCHEME.match(target) and not target.startswith("//")))


RELATIVE_LINKS = relative_links()


def test_the_documents_have_relative_links():
    """The parametrised link test below must have something to check, in the README and in the pages."""
    sources = {source for source, _ in RELATIVE_LINKS}
    assert README in sources
    assert PAGES and set(PAGES) & sources


@pytest.mark.parametrize(("source", "target"), RELATIVE_LINKS,
                         ids=[f"{source.relative_to(REPO)}->{target}" for source, target in RELATIVE_LINKS])
def test_relative_link_points_at_a_file_and_heading(source: Path, target: str):
    file_part, _, anchor = target.partition("#")
    linked = (source.parent / unquote(file_part)).resolve() if file_part else source
    assert linked.is_relative_to(REPO), f"{source.name}: {target} leaves the repository"
    assert linked.exists(), f"{source.name}: {target} does not exist ({linked})"
    if anchor:
        assert linked.suffix == ".md", f"{source.name}: {target}: an anchor into a file that is not markdown"
        assert unquote(anchor).lower() in anchors(linked), (
            f"{source.name}: {target}: no heading of {linked.name} has the anchor #{anchor} "
            f"(its anchors: {', '.join(sorted(anchors(linked)))})")


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"


def test_readme_names_the_test_command_ci_runs():
    """``.ci/run`` runs ``make test``; the README shows it as a command of its own."""
    assert "make test" in (REPO / ".ci" / "run").read_text()
    commands = [line.split("#", 1)[0].strip() for line in code_lines(README.read_text(encoding="utf-8"))]
    assert "make test" in commands


def test_readme_links_every_page():
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in links(README)}
    assert [page.name for page in PAGES if page.resolve() not in linked] == []


@pytest.mark.parametrize(("heading", "anchor"), [
    ("Python API and DataFrames", "python-api-and-dataframes"),
    ("Findings (reduced protocol)", "findings-reduced-protocol"),
    ("`report --check`", "report---check"),
    ("A searcher's `Options`: sd_darts", "a-searchers-options-sd_darts"),
    ("**Bold** and [a link](x.md)", "bold-and-a-link"),
])
def test_slug_follows_github(heading: str, anchor: str):
    assert slug(heading) == anchor


def run_page_code(page: str, monkeypatch, capsys) -> tuple[str, dict, str]:
    """A docs page's text, and the names and printed output of its first Python code block, run from the
    repository root as a reader would run it."""
    text = (REPO / "docs" / page).read_text(encoding="utf-8")
    block = text.split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(REPO)
    capsys.readouterr()
    scope: dict = {}
    exec(textwrap.dedent(block), scope)
    return text, scope, capsys.readouterr().out


def test_the_noise_floor_table_is_what_its_code_computes_from_the_committed_records(monkeypatch, capsys):
    """docs/calibration.md's re-run table (DARTS seeds computed batched and alone) against its own code block,
    run on the committed run folders: the cells and accuracies it shows are the records', not copied by hand."""
    text, scope, _ = run_page_code("calibration.md", monkeypatch, capsys)
    final = scope["by"].groupby("seed").tail(1).droplevel("epoch")
    rows = [row for row in md_rows(text) if len(row) == 5 and row[0].isdigit() and row[1].startswith("#")]
    assert [int(row[0]) for row in rows] == [0, 1, 2, 3]
    for seed, batched, alone, change, _ in rows:
        cells = final.loc[int(seed), "arch_index"]
        accuracy = final.loc[int(seed), "lookup.cifar10_test"]
        assert batched == f"#{cells['quick']:.0f}, {accuracy['quick']:.2f}"
        assert alone == f"#{cells['reduced']:.0f}, {accuracy['reduced']:.2f}"
        assert change == f"{accuracy['reduced'] - accuracy['quick']:+.2f}"


def test_the_findings_table_is_what_its_code_computes_from_the_committed_records(monkeypatch, capsys):
    """docs/findings.md's reduced-protocol table against its own code block, run on the committed report and run
    folders: every row the report has is there, with the report's statistics and the records' seeds, so adding
    runs without rewriting the Findings fails here."""
    text, _, out = run_page_code("findings.md", monkeypatch, capsys)
    printed = md_rows(out)
    page = [row for row in md_rows(text) if len(row) == len(printed[0])]
    assert printed[0][0] == "method" and len(printed) > 1
    assert page == printed
