"""The config reference (docs/config-reference.md) is generated from the schema's field descriptions
(ncp/config_reference.py, `ncp config-reference`): the committed file must be what the schema generates, every key
must be described, and every key the example stacks use must be in it under the path a site would write."""
from typing import Annotated, Literal, Optional

import pytest
import yaml
from pydantic import Field

from ncp import config_reference
from ncp.cli import main as ncp_main
from ncp.cli_exit import FAILED_GATE, OK
from ncp.config_reference import REFERENCE, render, sections, stale, undescribed
from ncp.plan.catalog import ROOT
from ncp.plan.strict import StrictModel, Text
from tests.conftest import EXAMPLE_STACKS, FROZEN_STACKS


def test_committed_reference_is_what_the_schema_generates():
    problem = stale()
    assert problem is None, problem  # e.g. "docs/config-reference.md differs ...: run `ncp config-reference` ..."


def test_every_key_of_the_schema_is_described():
    assert undescribed() == [], "describe these keys with Field(description=...), then run `ncp config-reference`"


def test_a_stale_or_missing_reference_names_the_command(tmp_path):
    assert "run `ncp config-reference`" in stale(tmp_path)  # missing
    (tmp_path / REFERENCE).parent.mkdir()
    (tmp_path / REFERENCE).write_text(render().replace("GPUs guaranteed", "GPUs promised"))
    assert stale(tmp_path) == (f"{REFERENCE} differs from the schema's descriptions: run `ncp config-reference` "
                               "and commit it")
    (tmp_path / REFERENCE).write_text(render())
    assert stale(tmp_path) is None


def test_check_command_exits_1_on_a_stale_file(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(config_reference, "ROOT", tmp_path)
    assert ncp_main(["config-reference", "--check"]) == FAILED_GATE
    assert "run `ncp config-reference`" in capsys.readouterr().out
    assert ncp_main(["config-reference"]) == OK  # writes it
    assert (tmp_path / REFERENCE).read_text() == render()
    assert ncp_main(["config-reference", "--check"]) == OK


class _Inner(StrictModel):
    """An inner object. Second sentence."""

    size: Annotated[str, Field(pattern=r"^[0-9]+Gi$")] = Field(description="how big")


class _Outer(StrictModel):
    """Outer."""

    mode: Literal["a", "b"] = Field(default="a", description="which")
    limit: Optional[Annotated[int, Field(ge=1)]] = Field(default=None, description="cap")
    items: list[_Inner] = Field(default_factory=list, description="the list")
    by_name: dict[str, _Inner] = Field(default_factory=dict, description="the map")
    owner: Text


def test_rows_give_path_type_default_and_description():
    top, items = list(sections(_Outer))
    assert [tuple(row) for row in top.rows] == [
        ("mode", '"a" | "b"', '`"a"`', "which"),
        ("limit", "integer (≥ 1)", "unset", "cap"),
        ("items", "list of [object](#items)", "`[]`", "the list"),
        ("byName", "map string → [object](#items)", "`{}`", "the map; keys as under [`items[]`](#items)"),
        ("owner", "string (not blank)", "required", ""),
    ]
    assert items.path == "items[]" and items.intro == "An inner object. Second sentence."
    assert tuple(items.rows[0]) == ("items[].size", "string (pattern `^[0-9]+Gi$`)", "required", "how big")
    assert undescribed(_Outer) == ["owner"]
    assert "| `mode` | \"a\" \\| \"b\" |" in render(_Outer), "a | in a table cell is escaped"


def test_an_undescribed_key_fails_the_command(monkeypatch, capsys):
    monkeypatch.setattr(config_reference, "undescribed", lambda: ["tenants[].viewers"])
    assert ncp_main(["config-reference", "--check"]) == FAILED_GATE
    assert "tenants[].viewers" in capsys.readouterr().err


def _paths(value, path: str = ""):
    """Every key path of a stack file's ncp-inference values, spelled as the reference spells them."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}" if path else key
            yield from _paths(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for item in value:
            yield from _paths(item, f"{path}[]")


MAPS = ("components.gpuOperator.mig.layout.", "components.serving.imageDigests.",
        "components.telemetry.prometheusSelectorLabels.", "components.telemetry.dashboardLabel.",
        "inferenceServices[].engine.inputs.", "inferenceServices[].engine.outputs.",
        "endpoints[].planner.minReplicas.", "endpoints[].planner.maxReplicas.")


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_every_key_an_example_stack_sets_is_in_the_reference(stack):
    config = yaml.safe_load((FROZEN_STACKS / f"Pulumi.{stack}.yaml").read_text())["config"]
    documented = {row.path for section in sections() for row in section.rows}
    keys = {key.split(":", 1)[1]: value for key, value in config.items()
            if key.startswith("ncp-inference:") and key != "ncp-inference:ngcApiKey"}
    used = {path for key, value in keys.items() for path in [key, *_paths(value, key)] if not path.startswith(MAPS)}
    # A storage tier, local decision or thresholds object is described once; its other paths point there.
    shared = {row.path for section in sections() for row in section.rows if "keys as under" in row.description}
    missing = sorted(path for path in used - documented
                     if not any(path.startswith(prefix + ".") for prefix in shared))
    assert len(used) > 20, "the walk found the stack's keys"
    assert missing == [], f"keys of Pulumi.{stack}.yaml missing from {REFERENCE}"
    assert (ROOT / REFERENCE).is_file()
