"""One error for every way config can be wrong: it lists each problem with its path and the fix."""
import difflib
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence, get_args

from pydantic import BaseModel, ValidationError

from ncp.cli_exit import BadInput

# The project's one CLI is installed in its virtualenv (scripts/setup.sh), so a fix line written as `ncp <command>`
# is printed as `.venv/bin/ncp <command>`: copied into a shell at the project root, it runs.
VENV_NCP = ".venv/bin/ncp"
_BARE_NCP = re.compile(r"(?<![\w/.-])ncp (?=[a-z])")


def runnable(text: str) -> str:
    return _BARE_NCP.sub(f"{VENV_NCP} ", text)


def set_command(path: str, value: str = "<value>") -> str:
    """The command that sets one stack key (a leaf: never the object holding it)."""
    return f"pulumi config set --path '{path}' {value}"


def rm_command(path: str) -> str:
    return f"pulumi config rm --path '{path}'"


def manual_edit(file: str, where: str, what: str) -> str:
    """A fix no command makes: an edit of a project file, naming the file and the key (or position) to change."""
    return f"edit {file}, {where}: {what}"


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    fix: str = ""
    rule: str = ""  # the id of the rule that found it (ncp/plan/rules), stamped by the rule runner

    def render(self) -> str:
        text = f"{self.path}: {self.message}"
        text = f"{text}\n    fix: {runnable(self.fix)}" if self.fix else text
        return f"{text}\n    rule: {self.rule}" if self.rule else text


class ConfigError(BadInput):
    """Raised before any resource is registered; its message is meant to be read by a person, not parsed."""

    def __init__(self, source: str, problems: Sequence[Problem]):
        self.source = source
        self.problems = list(dict.fromkeys(problems))  # one problem found by two checks is printed once
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


def _model_in(annotation: Any) -> Optional[type[BaseModel]]:
    """The pydantic model an annotation holds (through Optional, list, dict and unions), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def known_keys(model: type[BaseModel], loc: Sequence) -> list[str]:
    """The config keys (camelCase) a mapping at `loc` under `model` accepts; [] where that is not a model."""
    current: Optional[type[BaseModel]] = model
    for part in loc:
        if current is None:
            return []
        if isinstance(part, int):
            continue
        field = next((f for name, f in current.model_fields.items() if part in (name, f.alias)), None)
        current = _model_in(field.annotation) if field is not None else None
    if current is None:
        return []
    return [field.alias or name for name, field in current.model_fields.items()]


def _named_keys(model: type[BaseModel], loc: tuple, message: str) -> list[str]:
    """The keys of the object at `loc` a rule's message names, in the order it names them."""
    found = [(match.start(), key) for key in known_keys(model, loc)
             if (match := re.search(rf"(?<![\w.]){re.escape(key)}\b", message))]
    return [key for _, key in sorted(found)]


def _unknown_key(prefix: str, loc: tuple, model: type[BaseModel], config: bool) -> tuple[str, str, str]:
    """(message, fix, suggested key) for a key the schema does not know: the likeliest intended key by spelling.
    `config`: the key is stack config, fixed with `pulumi config` (otherwise a data file, edited by hand)."""
    path, key = join_path(prefix, loc), str(loc[-1])
    keys = known_keys(model, loc[:-1])
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    remove = f"pulumi config rm --path '{path}'" if config else "delete that line"
    if close:
        rename = (f"{remove} && pulumi config set --path '{join_path(prefix, (*loc[:-1], close[0]))}' <value>"
                  if config else f"write `{close[0]}` instead")
        return f"is not a known key; did you mean `{close[0]}`?", f"rename it: {rename}", close[0]
    known = f" (keys here: {', '.join(sorted(keys))})" if keys else ""
    return f"is not a known key{known}", f"remove it: {remove}", ""


def problems_from_validation(prefix: str, exc: ValidationError, fix_hint=None,
                             model: Optional[type[BaseModel]] = None, config: bool = True) -> list[Problem]:
    """Turn a pydantic error into Problems whose paths use the config's own (camelCase) key names. With `model`, a
    misspelled key names the key it most likely means, and that key's own 'is required' is not repeated; `config`
    says the keys are stack config (fixed with `pulumi config`) rather than a data file's."""
    rule = "schema" if config else "input.data-file"  # the stack's schema, or a data file's (ncp/plan/rules)
    problems = []
    renamed = set()
    errors = [(tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-"))),
               error) for error in exc.errors()]
    for loc, error in errors:
        if error["type"] == "extra_forbidden" and loc and model is not None:
            message, fix, suggested = _unknown_key(prefix, loc, model, config)
            if suggested:
                renamed.add((*loc[:-1], suggested))
            problems.append(Problem(join_path(prefix, loc), message, fix, rule=rule))
            continue
        message, fix = _friendly(error)
        path = join_path(prefix, loc)
        named = _named_keys(model, loc, message) if error["type"] == "value_error" and model is not None else []
        if named and config:  # a rule over several keys: fix the keys it names, not the object holding them
            fix = " or ".join(f"pulumi config set --path '{join_path(prefix, (*loc, key))}' <value>" for key in named)
        elif fix_hint is not None:
            fix = fix_hint(path, fix)
        problems.append(Problem(path, message, fix, rule=rule))
    missing = {join_path(prefix, loc) for loc, error in errors if error["type"] == "missing" and loc in renamed}
    return [p for p in problems if not (p.path in missing and p.message == "is required")]
