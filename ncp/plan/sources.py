"""Where raw stack config comes from: the running Pulumi program, or a Pulumi.<stack>.yaml read offline."""
import json
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from ncp.plan.catalog import ROOT
from ncp.plan.errors import ConfigError, Problem, manual_edit
from ncp.plan.local_overlay import OVERLAY_ENV, LocalOverlay, read_overlay
from ncp.plan.names import PROJECT
from ncp.plan.site_plan import SitePlan, build_plan


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _split(config: dict[str, Any]) -> dict[str, Any]:
    prefix = f"{PROJECT}:"
    return {key[len(prefix):]: _decode(value) for key, value in config.items() if key.startswith(prefix)}


def plan_from_pulumi() -> SitePlan:
    """Read every `ncp-inference:*` key the engine passed (so unknown keys are caught too)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    raw = _split(merged)
    secret_keys = {
        key[len(PROJECT) + 1:]
        for key in list(merged)
        if runtime_config.is_config_secret(key) or key in runtime_config.get_config_secret_keys_env()
    }
    source = f"Pulumi.{pulumi.get_stack()}.yaml"
    overlay = local_overlay(source)
    if overlay is not None:
        pulumi.log.warn(f"local control plane overlay {overlay.path} ({OVERLAY_ENV}) is merged over {source}: "
                        "test cluster settings, never a site's")
    return build_plan(raw, secret_keys, source, overlay)


def stack_file(stack: str) -> Path:
    return ROOT / f"Pulumi.{stack}.yaml"


def read_stack_file(stack: str) -> tuple[dict[str, Any], set[str]]:
    """Raw config and secret keys of Pulumi.<stack>.yaml; secure values stay encrypted placeholders. Every command
    that reads a stack file reads it here, so an unreadable or malformed file is one ConfigError (exit 2)."""
    path = stack_file(stack)
    if not path.is_file():
        raise ConfigError(str(path.name), [Problem(path.name, "does not exist",
                                                   f"create it with: pulumi stack init {stack}",
                                                   rule="input.stack-file")])
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(path.name, [Problem(path.name, f"cannot be read ({error.strerror or error})",
                                              f"make the file readable by this user: chmod u+r {path}",
                                              rule="input.stack-file")]) from None
    return config_of_document(data, path.name)


def _line_column(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters of the line's valid prefix) of a byte offset."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def decode_stack_text(data: bytes, source: str) -> str:
    """The stack file's text: Pulumi reads stack files as UTF-8, so any other byte sequence is refused with where."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _line_column(data, error.start)
        raise ConfigError(source, [Problem(
            source, f"is not UTF-8 text at line {line}, column {column} (byte {data[error.start]:#04x}: "
                    f"{error.reason})",
            "save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8), or retype the character there",
            rule="input.stack-file")]) from None


def config_of_document(document: Union[str, bytes], source: str) -> tuple[dict[str, Any], set[str]]:
    """Raw config and secret keys of a stack file's text or bytes; `source` names it in errors."""
    text = decode_stack_text(document, source) if isinstance(document, bytes) else document
    raw, secrets = {}, set()
    for key, value in _split(_stack_config(text, source)).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            secrets.add(key)
        raw[key] = value
    return raw, secrets


# Deeper than any stack the schema describes (about eight levels); the limit keeps a crafted file from exhausting the
# interpreter's stack in the validators that walk every value.
MAX_NESTING = 64


def _nesting(document: Any) -> int:
    """How deep mappings and lists nest, walked without recursion."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            pending += [(item, depth + 1) for item in (value.values() if isinstance(value, dict) else value)]
    return deepest


def _nesting_fix(source: str) -> str:
    return manual_edit(source, "the deepest nesting", "a stack file nests a few levels; remove the runaway nesting")


def _yaml_problem(error: yaml.YAMLError, text: str, source: str) -> Problem:
    mark = getattr(error, "problem_mark", None)
    position = getattr(error, "position", None)  # a ReaderError: a character YAML does not admit
    if mark is not None:
        where = f" at line {mark.line + 1}, column {mark.column + 1}"
    elif isinstance(position, int):
        line_start = text.rfind("\n", 0, position) + 1
        where = f" at line {text.count(chr(10), 0, position) + 1}, column {position - line_start + 1}"
    else:
        where = ""
    reason = getattr(error, "problem", None) or getattr(error, "reason", None) or str(error)
    character = getattr(error, "character", None)  # a ReaderError's: a code point, or a byte when undecodable
    if character is not None:
        reason = f"{reason} ({character if isinstance(character, int) else ord(character):#x})"
    return Problem(source, f"is not valid YAML{where}: {reason}",
                   manual_edit(source, where.strip(" ,:") or "the position above",
                               "fix the YAML there (indentation, quotes, brackets, or a control character)"),
                               rule="input.stack-file")


def _stack_config(text: str, source: str) -> dict[str, Any]:
    """The `config:` mapping of a stack file, or one ConfigError naming the line that is wrong."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(source, [_yaml_problem(error, text, source)]) from None
    except RecursionError:
        raise ConfigError(source, [Problem(source, f"nests mappings or lists deeper than {MAX_NESTING} levels",
                                           _nesting_fix(source), rule="input.stack-file")]) from None
    except ValueError as error:  # an integer literal longer than Python converts (sys.get_int_max_str_digits)
        raise ConfigError(source, [Problem(source, f"holds a value YAML cannot convert: {error}",
                                           manual_edit(source, "the value named above", "check for a "
                                                       "runaway number (extra digits)"),
                                                       rule="input.stack-file")]) from None
    document = {} if document is None else document
    if not isinstance(document, dict):
        raise ConfigError(source, [Problem(source, f"is a YAML {type(document).__name__}, not a mapping",
                                           manual_edit(source, "(top level)", "a stack file is a mapping with a "
                                                       "top-level `config:` key"), rule="input.stack-file")])
    if _nesting(document) > MAX_NESTING:
        raise ConfigError(source, [Problem(source, f"nests mappings or lists deeper than {MAX_NESTING} levels",
                                           _nesting_fix(source), rule="input.stack-file")])
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(source, [Problem(f"{source}: config", f"is a {type(config).__name__}, not a mapping",
                                           manual_edit(source, "config", f"write it as a mapping of "
                                                       f"`{PROJECT}:<key>: <value>` entries"),
                                                       rule="input.stack-file")])
    odd = [key for key in config if not isinstance(key, str)]
    if odd:
        raise ConfigError(source, [Problem(f"{source}: config", f"has the key {odd[0]!r}, which is not a string",
                                           manual_edit(source, f"config: {odd[0]!r}", f"name each key "
                                                       f"`{PROJECT}:<key>`"), rule="input.stack-file")])
    return config


def local_overlay(source: str) -> Optional[LocalOverlay]:
    """The overlay $NCP_LOCAL_OVERLAY names, if any (ncp/plan/local_overlay.py); a bad one is a ConfigError."""
    overlay, problems = read_overlay(source)
    if problems:
        raise ConfigError(source, problems)
    return overlay


def plan_from_stack_file(stack: str) -> SitePlan:
    raw, secrets = read_stack_file(stack)
    source = stack_file(stack).name
    return build_plan(raw, secrets, source, local_overlay(source))
