"""A copy of the project's own files for tests and benchmarks that must write into a project (stack init, a site
editing its stack, a fleet repository), sharing the installed virtualenv.

What counts as the project's files is what git counts: tracked files plus untracked ones .gitignore does not exclude.
Ignore lists kept by hand drifted from .gitignore and copied the twin's virtualenv (1.6 GB, twice through its
``lib64`` link) into every copy until a CI machine's disk filled.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def project_files(root: Path = ROOT) -> list[Path]:
    """Relative paths of the project's files, as git sees the working tree (deleted tracked files left out)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=root, capture_output=True, check=True).stdout
    relative = (Path(name) for name in listed.decode().split("\0") if name)
    return [path for path in relative if (root / path).is_file()]


def copy_project(destination: Path, *, root: Path = ROOT) -> Path:
    """Copy the project's files to ``destination`` and link its ``.venv`` (and the policy pack's) to the original."""
    for relative in project_files(root):
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)
    venv = (root / ".venv").resolve()
    (destination / ".venv").symlink_to(venv)
    if not (destination / "policy" / "venv").exists():
        (destination / "policy" / "venv").symlink_to(venv)
    return destination
