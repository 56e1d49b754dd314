"""Data the pack carries so it can be published on its own: chart pins, allowlists and the names it shares with the
program (labels, annotations, resource and signal names).

Each file is generated from the program's own home (data/compatibility-matrix.yaml, data/allowlists.yaml, the
program files program.yaml names) by `ncp sync-pins` in the project, and read here rather than there, so the
pack enforces the same facts inside the project and published alone."""
from functools import lru_cache
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def pins() -> dict:
    return yaml.safe_load((HERE / "pins.yaml").read_text())["charts"]


@lru_cache(maxsize=None)
def names() -> dict:
    return yaml.safe_load((HERE / "program.yaml").read_text())


@lru_cache(maxsize=None)
def allowlists() -> dict:
    return yaml.safe_load((HERE / "allowlists.yaml").read_text())
