"""Day-0 sizing with NVIDIA AIConfigurator: one YAML sizing file per endpoint (sizing/<stack>/<endpoint>.yaml).

Make a file with `python -m sizing ...` (sizing.run, runs the real AIConfigurator); read one with
`sizing.model.load_sizing` (needs only pydantic and PyYAML).
"""
from sizing.model import SizingFileError, SizingRequest, SizingResult, WorkerGroup, load_sizing

__all__ = ["SizingFileError", "SizingRequest", "SizingResult", "WorkerGroup", "load_sizing"]
