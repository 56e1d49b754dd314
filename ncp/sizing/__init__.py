"""Day-0 sizing with NVIDIA AIConfigurator: one YAML sizing file per endpoint (sizing/<stack>/<endpoint>.yaml).

Make a file with `ncp sizing ...` (sizing.run, runs the real AIConfigurator); read one with
`plan.sizing_file.load_sizing` (needs only pydantic and PyYAML).
"""
from ncp.plan.sizing_file import SizingFileError, SizingRequest, SizingResult, SizedGroup, load_sizing

__all__ = ["SizingFileError", "SizingRequest", "SizingResult", "SizedGroup", "load_sizing"]
