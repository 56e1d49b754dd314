"""The stack config reference, generated from the schema: every `ncp-inference:*` key path with its type, default
and description, read from the pydantic models (ncp/plan/config.py and the models it uses), written to
docs/config-reference.md.

    ncp config-reference           # rewrite docs/config-reference.md from the schema
    ncp config-reference --check   # only say whether the committed file is in step (exit 1 if not)

A field's text is its `Field(description=...)`; an object's introduction is its model's docstring. A field without a
description is an error here (exit 1, naming the model and field), so the reference never has a blank row:
describe the field in the schema, then rerun. tests/test_config_reference.py fails while the committed file differs.
Exit codes: 0 in step (or rewritten), 1 stale file or an undescribed field, 3 internal error.
"""
import argparse
import enum
import inspect
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Optional, Sequence

import annotated_types
from pydantic import AfterValidator, BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ncp.cli_exit import FAILED_GATE, OK, GateFailed
from ncp.plan.catalog import ROOT
from ncp.plan.config import StackConfig
from ncp.plan.strict import OneOf
from ncp.plan.rules import RULES, Rule
from ncp.plan.rules.registry import STAGES

COMMAND = "ncp config-reference"
REFERENCE = Path("docs") / "config-reference.md"
RULES_ANCHOR = "what-the-program-refuses"
NAMESPACE = "ncp-inference"
# Constraint metadata (annotated_types) -> how the reference writes it.
BOUNDS = {annotated_types.Ge: ("ge", "≥"), annotated_types.Gt: ("gt", ">"), annotated_types.Le: ("le", "≤"),
          annotated_types.Lt: ("lt", "<")}


class Row(NamedTuple):
    path: str
    type: str
    default: str
    description: str


class Section(NamedTuple):
    path: str
    intro: str
    rows: list[Row]


class Undescribed(GateFailed):
    """Fields of the schema without a description: the reference would have blank rows."""


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the annotation without Optional, whether it was Optional)."""
    args = typing.get_args(annotation)
    if _is_union(annotation) and type(None) in args:
        rest = tuple(a for a in args if a is not type(None))
        return (rest[0] if len(rest) == 1 else typing.Union[rest]), True
    return annotation, False


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _model(annotation: Any) -> Optional[type[BaseModel]]:
    return annotation if inspect.isclass(annotation) and issubclass(annotation, BaseModel) else None


def _constraints(metadata: Sequence[Any]) -> list[str]:
    """What the field's metadata constrains, in words: bounds, lengths, pattern, not blank."""
    found = []
    for item in metadata:
        for kind, (attribute, sign) in BOUNDS.items():
            if isinstance(item, kind):
                found.append(f"{sign} {getattr(item, attribute)}")
        if isinstance(item, annotated_types.MinLen) and item.min_length:
            found.append(f"length ≥ {item.min_length}")
        if isinstance(item, annotated_types.MaxLen):
            found.append(f"length ≤ {item.max_length}")
        if getattr(item, "pattern", None):
            found.append(f"pattern `{item.pattern}`")
        if isinstance(item, AfterValidator) and getattr(item.func, "__name__", "") == "_not_blank":
            found.append("not blank")
    return found


def type_name(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    """The annotation as a reader of a YAML file needs it: text, integer, one of "a" | "b", list of …, map … → …"""
    annotation, _ = _unwrap(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:  # Annotated[str, Field(pattern=...)]: the FieldInfo carries the constraints
        extras = [item for extra in args[1:] for item in (extra.metadata if isinstance(extra, FieldInfo) else [extra])]
        return type_name(args[0], [*extras, *metadata])
    words = _constraints(metadata)
    suffix = f" ({', '.join(words)})" if words else ""
    if origin is typing.Literal:
        return " | ".join(json.dumps(value) for value in args) + suffix
    one_of = next((item.func for item in metadata if isinstance(item, AfterValidator)
                   and isinstance(item.func, OneOf)), None)
    if one_of is not None:  # a name a data file lists: the names as they are when the reference is written
        return " | ".join(json.dumps(value) for value in one_of.names()) + suffix
    if _is_union(annotation):
        return " | ".join(type_name(arg) for arg in args) + suffix
    if origin is list:
        return f"list of {type_name(args[0])}{suffix}"
    if origin is dict:
        return f"map {type_name(args[0])} → {type_name(args[1])}{suffix}"
    if inspect.isclass(annotation) and issubclass(annotation, enum.Enum):
        return " | ".join(json.dumps(member.value) for member in annotation) + suffix
    if _model(annotation):
        return "object" + suffix
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return simple.get(annotation, getattr(annotation, "__name__", str(annotation))) + suffix


def _plain(value: Any) -> Any:
    """A default as it would be written in the stack file (camelCase keys, enum values)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def default_text(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.get_default(call_default_factory=True)
    if _model(type(value)):
        return "its fields' defaults"
    value = _plain(value)
    if value is None:
        return "unset"
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return f"`{text}`"


def _child(annotation: Any) -> Optional[tuple[str, type[BaseModel]]]:
    """The suffix a nested model's keys take under this field ('' object, '[]' list item, '.<key>' map value)."""
    annotation, _ = _unwrap(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if _model(annotation):
        return "", annotation
    if origin is list and _model(args[0]):
        return "[]", args[0]
    if origin is dict and _model(args[1]):
        return ".<key>", args[1]
    return None


def _first_sentence(text: Optional[str]) -> str:
    words = " ".join(inspect.cleandoc(text or "").split())
    return words.split(". ")[0].rstrip(".") if words else ""


def _description(field: FieldInfo, child: Optional[tuple[str, type[BaseModel]]], seen: dict) -> str:
    """The field's description; an object without one says what its model's docstring says. A model already
    described at another path points there instead of repeating its keys."""
    text = " ".join((field.description or "").split()) or (_first_sentence(child[1].__doc__) if child else "")
    if child is not None and child[1] in seen:
        text = (text + "; " if text else "") + f"keys as under [`{seen[child[1]]}`](#{_anchor(seen[child[1]])})"
    return text


def sections(model: type[BaseModel] = StackConfig, path: str = "",
             seen: Optional[dict] = None) -> Iterator[Section]:
    """One section per object of the schema, depth first, each with a row per key. A model used at several paths
    (a storage tier, a local decision, acceptance thresholds) gets its section once, at the first."""
    seen = {} if seen is None else seen
    rows, nested = [], []
    for name, field in model.model_fields.items():
        full = f"{path}.{field.alias or name}" if path else field.alias or name
        child = _child(field.annotation)
        description = _description(field, child, seen)
        if child is not None and child[1] not in seen:
            seen[child[1]] = full + child[0]
            nested.append((full + child[0], child[1]))
        kind = type_name(field.annotation, field.metadata)
        if child is not None:  # the object's keys are in its section: link the type there
            kind = kind.replace("object", f"[object](#{_anchor(seen[child[1]])})", 1)
        rows.append(Row(full, kind, default_text(field), description))
    yield Section(path, " ".join(inspect.cleandoc(model.__doc__ or "").split()) if path else "", rows)
    for child_path, child_model in nested:
        yield from sections(child_model, child_path, seen)


def undescribed(model: type[BaseModel] = StackConfig) -> list[str]:
    """The key path of every field of the schema without a description."""
    return [row.path for section in sections(model) for row in section.rows if not row.description]


def _cell(text: str) -> str:
    """Text for a table cell: GitHub's tables split at every unescaped `|`, inside code spans too."""
    return text.replace("\n", " ").replace("|", "\\|")


def _heading(path: str) -> str:
    return f"`{NAMESPACE}:{path}`" if path else f"Top level: `{NAMESPACE}:*`"


def render(model: type[BaseModel] = StackConfig) -> str:
    """docs/config-reference.md for the schema rooted at `model`."""
    all_sections = list(sections(model))
    lines = [
        "# Stack config reference",
        "",
        f"<!-- Generated by `{COMMAND}` from the pydantic schema (ncp/plan/config.py and the models it uses). "
        "Do not edit: describe the field in the schema and rerun. -->",
        "",
        f"Every key of a stack file (`Pulumi.<site>.yaml`) under the `{NAMESPACE}:` namespace, as the program "
        "validates it. Keys are camelCase; a path `a.b[].c` is key `c` of each item of list `b`; `.<key>` is a map "
        "entry. Set one with `pulumi config set --path '" + NAMESPACE + ":<path>' <value>` or edit the stack file. "
        "Defaults apply when a key is absent (\"required\": no default; \"unset\": absent means off or derived, as "
        "the description says). The secret `" + NAMESPACE + ":ngcApiKey` is not part of this schema: set it with "
        "`pulumi config set --secret " + NAMESPACE + ":ngcApiKey <key>` (required in prod). Cross-field rules "
        "(quotas that must fit, prod-only requirements, the policy rules config can know) are checked after "
        f"these types: every one is listed under [What the program refuses](#{RULES_ANCHOR}).",
        "",
        "## Contents",
        "",
    ]
    lines += [f"- [{_heading(s.path)}](#{_anchor(s.path)})" for s in all_sections]
    for section in all_sections:
        lines += ["", f'<a id="{_anchor(section.path)}"></a>', f"## {_heading(section.path)}", ""]
        if section.intro:
            lines += [section.intro, ""]
        lines += ["| Key | Type | Default | Description |", "|---|---|---|---|"]
        lines += [f"| `{row.path}` | {_cell(row.type)} | {_cell(row.default)} | {_cell(row.description)} |"
                  for row in section.rows]
    if model is StackConfig:
        lines += render_rules()
    return "\n".join(lines) + "\n"


def _code(text: Optional[str]) -> str:
    return f"`{_cell(text)}`" if text else "—"


def render_rules(rules: Optional[Sequence[Rule]] = None) -> list[str]:
    """The section listing what the program refuses: one row per rule of ncp/plan/rules, by stage."""
    lines = ["", f'<a id="{RULES_ANCHOR}"></a>', "## What the program refuses", "",
             "Every rule `ncp check` and `pulumi preview` apply (`ncp/plan/rules`, `RULES`), in the order "
             "they run: `input` while a document is read, `raw` over the stack's values before the schema, `config` "
             "over the parsed config, every problem of a stage collected before anything is refused. Each problem "
             "the program prints ends with `rule: <id>`. *Policy* is the pack policy (policy/ncp_guardrails) the rule "
             "refuses ahead of; *RA* the sentence of the Reference Architecture it carries."]
    for stage in STAGES:
        lines += ["", f"### Stage `{stage}`", "", "| Rule | Key | Refuses | Fix | Policy | RA |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| `{rule.id}` | {_code(rule.path)} | {_cell(rule.refuses)} | {_code(rule.fix)} | "
                  f"{_code(rule.policy)} | {_cell(rule.ra or '—')} |" for rule in rules or RULES
                  if rule.stage == stage]
    return lines


def _anchor(path: str) -> str:
    """A stable anchor for a section: `endpoints[].slo` -> endpoints-slo."""
    return "-".join(re.findall(r"[a-z0-9]+", path.lower())) or "top"


def stale(root: Optional[Path] = None) -> Optional[str]:
    """Why the committed reference under `root` (default: the project) is not what the schema generates, or None."""
    target = (root or ROOT) / REFERENCE
    if not target.is_file():
        return f"{REFERENCE} is missing: run `{COMMAND}`"
    if target.read_text() != render():
        return f"{REFERENCE} differs from the schema's descriptions: run `{COMMAND}` and commit it"
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="say whether the committed file is in step; write nothing")
    arguments = parser.parse_args(argv)
    missing = undescribed()
    if missing:
        raise Undescribed(f"{len(missing)} config keys have no description (add Field(description=...) in the "
                          f"schema, then run `{COMMAND}`): {', '.join(missing)}")
    if arguments.check:
        problem = stale()
        print(problem or f"{REFERENCE} is in step with the schema")
        return FAILED_GATE if problem else OK
    (ROOT / REFERENCE).parent.mkdir(parents=True, exist_ok=True)
    (ROOT / REFERENCE).write_text(render())
    print(f"wrote {REFERENCE}")
    return OK
