"""Checks a version bump must pass before it merges, offline and in seconds (run by `ncp check --all`):

- each matrix pin equals the version of the upstream snapshot the tests judge it against (../shared/upstream,
  MANIFEST.md), or carries a `checkedAgainst` note written for this pin and this snapshot;
- a snapshot a pin decides (DERIVED_SNAPSHOTS) was reviewed for this pin;
- a `deviation` that names versions names the pinned one (a bump leaves the old version's reasoning behind).

Each problem names data/compatibility-matrix.yaml, the key and what to write. The copies of pins outside the matrix
are checked by sync_pins.drift.
"""
import functools
import re
from pathlib import Path
from typing import NamedTuple, Optional

import yaml

from ncp.plan.catalog import MATRIX_FILE, ROOT, CompatibilityMatrix

UPSTREAM_DIR = ROOT.parent / "shared" / "upstream"
VERSION_TOKEN = re.compile(r"(?<![\w.])v?\d+\.\d+(?:\.\d+)?(?:[-.][\w.]+)?")

SNAPSHOTS_FILE = ROOT / "data" / "upstream-snapshots.yaml"
HOME = str(SNAPSHOTS_FILE.relative_to(ROOT))
_SNAPSHOT_DATA = yaml.safe_load(SNAPSHOTS_FILE.read_text())
SNAPSHOT_OF: dict[str, str] = _SNAPSHOT_DATA["snapshotOf"]
NO_SNAPSHOT: dict[str, str] = _SNAPSHOT_DATA["noSnapshot"]
# folder -> (matrix entry, value path, the (pin, deployed, snapshot) versions the reason was written for, reason)
DERIVED_SNAPSHOTS = {folder: (note["entry"], tuple(note["valuePath"]), tuple(note["reviewed"]), note["reason"])
                     for folder, note in _SNAPSHOT_DATA["derivedSnapshots"].items()}
UNPINNED_SNAPSHOTS: dict[str, str] = _SNAPSHOT_DATA["unpinnedSnapshots"]


class Snapshot(NamedTuple):
    version: str  # what MANIFEST.md says the snapshot was taken at (git describe, chart version or commit)
    same_as: frozenset  # release tags every file of the snapshot is stated to be identical to


def _version_cell(cell: str) -> str:
    """The version one MANIFEST row names: its `git describe`, chart version, VERSION file, leading tag or commit."""
    for pattern in (r"`(v?\d[\w.+-]*)`", r"\bchart (\d[\w.+-]*\w)", r"\bVERSION (\d[\w.+-]*\w)",
                    r"^\*\*tag (v?\d[\w.+-]*\w)\*\*"):
        found = re.search(pattern, cell)
        if found:
            return found.group(1)
    found = re.search(r"\bcommit ([0-9a-f]{8})", cell)
    return f"commit {found.group(1)}" if found else ""


def _identical_tags(cell: str) -> set:
    return set(re.findall(r"identical to tag (v?\d[\w.+-]*\w)", cell)) | set(
        re.findall(r"tag (v?\d[\w.+-]*\w) has the same file", cell))


def parse_manifest(text: str) -> dict:
    """Snapshot folder -> Snapshot, from the file table of shared/upstream/MANIFEST.md (column "commit / version";
    a folder's version is its first row's, and a release tag counts as the same only if every row says so)."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| local path |"))
    column = [c.strip() for c in lines[header].strip("|").split("|")].index("commit / version")
    rows: dict[str, list[str]] = {}
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.setdefault(cells[0].split("/")[0], []).append(cells[column])
    return {folder: Snapshot(_version_cell(cells[0]), frozenset(set.intersection(*map(_identical_tags, cells))))
            for folder, cells in rows.items()}


def snapshot_problems(matrix, snapshots: dict) -> list:
    """Every matrix pin either equals the version of the snapshot its checks read, or carries a `checkedAgainst` note
    written for this pin and this snapshot. Each problem names the matrix file, the key and what to write."""
    where = MATRIX_FILE.relative_to(ROOT)
    problems = []
    for section, entries in (("components", matrix.components), ("workloads", matrix.workloads)):
        for name, pin in entries.items():
            key = f"{where} {section}.{name}"
            if name in NO_SNAPSHOT:
                continue
            if name not in SNAPSHOT_OF:
                problems.append(f"{key}: no upstream snapshot is named for it: add it to snapshotOf or noSnapshot "
                                f"in {HOME}")
                continue
            snapshot = snapshots[SNAPSHOT_OF[name]]
            note = pin.checked_against
            fix = (f"write `checkedAgainst: {{pinned: {pin.version}, snapshot: {snapshot.version}, "
                   f"reason: <why the pin differs from the snapshot the checks read, and what they still prove>}}`")
            if pin.version in snapshot.same_as | {snapshot.version}:
                if note is not None:
                    problems.append(f"{key}.checkedAgainst: version {pin.version} is the snapshot's version: remove "
                                    f"the note")
            elif note is None:
                problems.append(f"{key}.version: {pin.version} differs from the upstream snapshot the checks read "
                                f"(shared/upstream/{SNAPSHOT_OF[name]}, {snapshot.version} per MANIFEST.md): {fix}")
            elif (note.pinned, note.snapshot) != (pin.version, snapshot.version):
                problems.append(f"{key}.checkedAgainst: written for pin {note.pinned} against snapshot "
                                f"{note.snapshot}, but the pin is {pin.version} and the snapshot {snapshot.version}: "
                                f"re-check, then {fix}")
    return problems


def derived_snapshot_problems(matrix, snapshots: dict, upstream: Path) -> list:
    """A snapshot a pin decides (DERIVED_SNAPSHOTS) was reviewed for this pin, this deployed version and this snapshot;
    each problem names the matrix key that moved and the note to re-write."""
    problems = []
    for folder, (entry, path, reviewed, _reason) in DERIVED_SNAPSHOTS.items():
        values = yaml.safe_load((upstream / SNAPSHOT_OF[entry] / "values.yaml").read_text())
        deployed = functools.reduce(dict.get, path, values)
        now = (matrix.components[entry].version, deployed, snapshots[folder].version)
        if now != reviewed:
            problems.append(
                f"{MATRIX_FILE.relative_to(ROOT)} components.{entry}.version {now[0]} deploys {folder} {deployed} "
                f"({SNAPSHOT_OF[entry]} values {'.'.join(path)}), and the checks read shared/upstream/{folder} at "
                f"{now[2]} (MANIFEST.md); the note in {HOME} derivedSnapshots was written for "
                f"{reviewed}: re-check {folder}, then write {now} there with the reason")
    return problems


def read_snapshots(upstream: Path = UPSTREAM_DIR) -> Optional[dict]:
    """The snapshots' versions from MANIFEST.md, or None where the upstream folder is absent."""
    manifest = upstream / "MANIFEST.md"
    return parse_manifest(manifest.read_text()) if manifest.is_file() else None


def deviation_problems(matrix: CompatibilityMatrix) -> list:
    """A deviation that names versions must name the pinned one: after a bump it still argues for the old pin."""
    where = MATRIX_FILE.relative_to(ROOT)
    problems = []
    for section, entries in (("components", matrix.components), ("workloads", matrix.workloads)):
        for name, pin in entries.items():
            deviation = pin.deviation or ""
            named = VERSION_TOKEN.findall(deviation)
            if named and pin.version not in deviation:
                problems.append(f"{where} {section}.{name}.deviation: names {', '.join(dict.fromkeys(named))} but not "
                                f"the pinned {pin.version}: rewrite it for {pin.version} (why this pin differs from "
                                f"the RA matrix entry)")
    return problems


def bump_problems(matrix: CompatibilityMatrix, upstream: Path = UPSTREAM_DIR) -> tuple[list, list]:
    """(problems, notes): every bump check that can run here; a note says what could not (no upstream folder)."""
    problems, notes = deviation_problems(matrix), []
    snapshots = read_snapshots(upstream)
    if snapshots is None:
        notes.append(f"checkedAgainst notes not checked: {upstream} is absent (the upstream snapshots' MANIFEST.md)")
    else:
        problems += snapshot_problems(matrix, snapshots) + derived_snapshot_problems(matrix, snapshots, upstream)
    return problems, notes
