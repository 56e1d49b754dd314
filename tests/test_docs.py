"""The landing README and the pages behind it (docs/) stay short, linked and true to the code: the README within its
line budget, every relative link and anchor resolving, every page reachable from the README, the README's command
table equal to the CLI's, every `ncp <command>` the docs name a real command, every top-level folder in the layout
table, and the architecture page's layering ranks equal to tests/test_layering.py's RANKS."""
import re
import subprocess
from pathlib import Path

import pytest

from ncp.cli import COMMANDS
from tests.test_layering import RANKS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 150
LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")
ANCHOR = re.compile(r'<a id="(?P<id>[^"]+)"></a>')
COMMAND = re.compile(r"(?:`|bin/|^)ncp (?P<name>[a-z][a-z-]*)(?: (?P<sub>[a-z][a-z-]*))?", re.M)


def pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = page.read_text()
    headings = re.findall(r"^#{1,6} (.+)$", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S), re.M)
    return {_slug(h) for h in headings} | {m["id"] for m in ANCHOR.finditer(text)}


def prose(text: str) -> str:
    """The text without code blocks and code spans (a regex in a code span is not a link)."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    found = []
    for match in LINK.finditer(prose(page.read_text())):
        target = match["target"]
        if re.match(r"^[a-z]+:", target):  # http(s), mailto: not checked offline
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            found.append(f"{page.relative_to(root)}: {target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            found.append(f"{page.relative_to(root)}: {target}: no heading or anchor #{anchor} in it")
    return found


def test_readme_is_a_landing_page():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail to docs/"


def test_every_relative_link_and_anchor_resolves():
    assert [problem for page in pages() for problem in broken_links(page)] == []


def test_a_broken_link_or_anchor_is_reported(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A section: of it\n\n[ok](#a-section-of-it) [bad](#nowhere) [gone](missing.md) "
                    "`[a-z](code span, not a link)`\n")
    assert broken_links(page, tmp_path) == ["page.md: #nowhere: no heading or anchor #nowhere in it",
                                            "page.md: missing.md: no such file"]


def test_every_page_of_docs_is_reachable_from_the_readme():
    reached, todo = set(), [README]
    while todo:
        page = todo.pop()
        for match in LINK.finditer(prose(page.read_text())):
            path = match["target"].partition("#")[0]
            target = (page.parent / path).resolve() if path else page
            if target.is_dir():
                target = target / "README.md"
            if target.suffix == ".md" and target.is_file() and target not in reached:
                reached.add(target)
                todo.append(target)
    unreached = sorted(str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md") if p.resolve() not in reached)
    assert unreached == [], "link these pages from the README or a page it links"


def test_readme_command_table_is_the_cli():
    table = re.findall(r"^\| `ncp (?P<name>[a-z-]+)` \|", README.read_text(), re.M)
    assert sorted(table) == sorted(COMMANDS), "README.md's command table must list each of ncp.cli.COMMANDS once"


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_the_docs_name_exists(page):
    unknown = []
    for match in COMMAND.finditer(page.read_text()):
        entry = COMMANDS.get(match["name"])
        if entry is None or (isinstance(entry, dict) and match["sub"] is not None and match["sub"] not in entry):
            unknown.append(match.group(0))
    assert unknown == [], f"{page.relative_to(ROOT)} names commands `ncp --help` does not know"


def test_layout_table_names_every_top_level_folder():
    try:
        tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked folders are unknown")
    folders = {line.split("/")[0] for line in tracked.splitlines() if "/" in line and not line.startswith(".")
               and not line.split("/")[0].endswith(".egg-info")}  # setuptools' build output, not a project folder
    layout = README.read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    assert sorted(f for f in folders if f"`{f}/" not in layout) == []


def test_architecture_ranks_are_the_layering_test_ranks():
    text = (DOCS / "architecture.md").read_text()
    rows = re.findall(r"^\| (?P<rank>-?\d+) \| (?P<units>[^|]+) \|", text, re.M)
    documented = {unit: int(rank) for rank, units in rows for unit in re.findall(r"`([\w.]+)`", units)}
    assert documented == RANKS, "docs/architecture.md's rank table differs from tests/test_layering.py RANKS"


def test_architecture_plan_parts_are_the_layering_test_parts():
    from tests.test_layering import PLAN_MODULES, PLAN_PARTS
    text = (DOCS / "architecture.md").read_text().split("### Inside the plan", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (?P<part>[a-z]+) \| (?P<order>\d+) \| (?P<modules>[^|]+) \|", text, re.M)
    assert {part: int(order) for part, order, _ in rows} == PLAN_PARTS
    assert {part: tuple(re.findall(r"`(\w+)`", modules)) for part, _, modules in rows} == PLAN_MODULES, \
        "docs/architecture.md's plan parts differ from tests/test_layering.py PLAN_MODULES"
