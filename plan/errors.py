"""One error for every way config can be wrong: it lists each problem with its path and the fix."""
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from pydantic import ValidationError


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    fix: str = ""

    def render(self) -> str:
        text = f"{self.path}: {self.message}"
        return f"{text}\n    fix: {self.fix}" if self.fix else text


class ConfigError(Exception):
    """Raised before any resource is registered; its message is meant to be read by a person, not parsed."""

    def __init__(self, source: str, problems: Sequence[Problem]):
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        lines = [f"{source}: {count} problem{'s' if count != 1 else ''}; nothing was deployed."]
        lines += ["  - " + p.render().replace("\n", "\n  ") for p in self.problems]
        super().__init__("\n".join(lines))


def join_path(prefix: str, loc: Iterable) -> str:
    """('tenants', 1, 'gpuQuota') under 'ncp-inference:' -> 'ncp-inference:tenants[1].gpuQuota'."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif path.endswith(":") or not path:
            path += str(part)
        else:
            path += f".{part}"
    return path


_MESSAGES = {
    "missing": ("is required", "set it"),
    "extra_forbidden": ("is not a known key", "remove it or correct its spelling"),
}


def _friendly(error: Mapping[str, Any]) -> tuple[str, str]:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    bounds = {
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        op, key = bounds[kind]
        return f"must be {op} {ctx.get(key)}", f"use a value {op} {ctx.get(key)}"
    if kind == "enum":
        return f"must be one of {ctx.get('expected')}", "use one of the listed values"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}", "use one of the listed values"
    if kind == "string_pattern_mismatch":
        return f"does not match {ctx.get('pattern')}", "use lower-case letters, digits and '-' (a DNS label)"
    if kind in ("too_short", "too_long"):
        return error["msg"].lower(), "adjust the number of entries"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return message, ""


def problems_from_validation(prefix: str, exc: ValidationError, fix_hint=None) -> list[Problem]:
    """Turn a pydantic error into Problems whose paths use the config's own (camelCase) key names."""
    problems = []
    for error in exc.errors():
        loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-")))
        message, fix = _friendly(error)
        path = join_path(prefix, loc)
        if fix_hint is not None:
            fix = fix_hint(path, fix)
        problems.append(Problem(path, message, fix))
    return problems
