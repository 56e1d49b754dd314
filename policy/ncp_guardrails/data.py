"""Data the pack carries so it can be published on its own: chart pins and allowlists.

pins.yaml is generated from the program's data/compatibility-matrix.yaml (`python -m sync_pins` in the project) and
read here rather than the matrix, so the pack enforces the same pins inside the project and published alone."""
from functools import lru_cache
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def pins() -> dict:
    return yaml.safe_load((HERE / "pins.yaml").read_text())["charts"]


@lru_cache(maxsize=None)
def allowlists() -> dict:
    return yaml.safe_load((HERE / "allowlists.yaml").read_text())
