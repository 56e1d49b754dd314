"""Bad stack files end in exit 2 with the file and where, never a traceback: the shared loader (ncp/plan/sources.py)
refuses unreadable and non-UTF-8 files for every command that reads one, and a seeded fuzz of the loader and the
validation behind it (mutations of the example stacks, bad bytes, deep nesting, huge numbers, wrong types) sees only
an accepted plan or a ConfigError."""
import copy
import random
import re

import pytest
import yaml

import ncp.lifecycle.cli as lifecycle_cli
import ncp.offline.check as check_cli
import ncp.offline.diff as diff_cli
import ncp.plan.sources
import ncp.preflight.cli as preflight_cli
import ncp.scaffold.checklist as checklist_cli
from ncp.plan.errors import ConfigError
from ncp.plan.names import PROJECT
from ncp.plan.site_plan import build_plan
from ncp.plan.sources import config_of_document
from tests.conftest import FROZEN_STACKS

SEED = 26
MUTATIONS_PER_STACK = 40
EXAMPLES = ("lab", "prod")
LATIN1 = "Pulumi.bad.yaml"


def _example_bytes(stack: str) -> bytes:
    return (FROZEN_STACKS / f"Pulumi.{stack}.yaml").read_bytes()


def _load(data: bytes, source: str = "Pulumi.fuzz.yaml"):
    """What every command does with a stack file: read it, then validate it into a plan."""
    raw, secrets = config_of_document(data, source)
    return build_plan(raw, secrets, source)


def _non_utf8(stack: str) -> bytes:
    """The example with a Latin-1 'é' in the tenant's display name (line and column known)."""
    text = _example_bytes(stack).decode()
    line = next(number for number, content in enumerate(text.splitlines(), 1) if "displayName:" in content)
    return text.replace("displayName: ", "displayName: Caf\xe9 ", 1).encode("latin-1"), line


@pytest.mark.parametrize("stack", EXAMPLES)
def test_non_utf8_stack_file_names_line_and_column(stack):
    data, line = _non_utf8(stack)
    with pytest.raises(ConfigError) as error:
        _load(data, LATIN1)
    (problem,) = error.value.problems
    assert problem.path == LATIN1
    column = data.splitlines()[line - 1].index(b"\xe9") + 1
    assert f"is not UTF-8 text at line {line}, column {column} (byte 0xe9" in problem.message
    assert "UTF-8" in problem.fix


def _commands(tmp_path):
    """Every command that reads a stack file, called as a user would (argv), on the stack `bad`."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    return {
        "offline.check": lambda: check_cli.main(["--stack", "bad"]),
        "scaffold.checklist": lambda: checklist_cli.main(["--stack", "bad"]),
        "offline.diff": lambda: diff_cli.main(["lab", "bad"]),
        "preflight": lambda: preflight_cli.main(["--stack", "bad", "--kubeconfig", str(kubeconfig)]),
        "lifecycle": lambda: lifecycle_cli.main(["--stack", "bad", "--from", "HEAD"]),
    }


@pytest.mark.parametrize("command", ["offline.check", "scaffold.checklist", "offline.diff", "preflight",
                                     "lifecycle"])
@pytest.mark.parametrize("damage", ["latin-1", "unreadable"])
def test_every_command_refuses_a_bad_stack_file_with_exit_2(command, damage, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "Pulumi.bad.yaml"
    if damage == "latin-1":
        bad.write_bytes(_non_utf8("lab")[0])
    else:
        bad.mkdir()  # exists but cannot be read as a file: the same refusal as a file without read permission
        monkeypatch.setattr(type(bad), "is_file", lambda path: path.name == "Pulumi.bad.yaml" or path.exists())
    frozen = ncp.plan.sources.stack_file
    monkeypatch.setattr(ncp.plan.sources, "stack_file",
                        lambda stack: bad if stack == "bad" else frozen(stack))
    assert _commands(tmp_path)[command]() == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    expected = r"is not UTF-8 text at line \d+, column \d+" if damage == "latin-1" else r"cannot be read \("
    assert re.search(rf"Pulumi\.bad\.yaml: {expected}", err), err


# Values a site could type where another type belongs; each replaces a random node of a valid example.
HOSTILE_VALUES = (
    None, True, 0, -1, 2 ** 64, 10 ** 30, -(10 ** 300), 1e308 * 10, float("nan"), 0.5, "", "   ", "\t\n",
    "x" * 5000, "REPLACE-ME", "main", "😀", "\x07", [], {}, [[]], {"": None}, {"secure": "v1:abc"}, [None] * 3,
    {"unknownKey": 1}, list(range(50)),
)


def _nodes(value, loc=()):
    yield loc
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _nodes(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nodes(item, (*loc, index))


def _replace(document: dict, loc: tuple, value) -> dict:
    result = copy.deepcopy(document)
    parent = result
    for part in loc[:-1]:
        parent = parent[part]
    if value is _DELETE:
        del parent[loc[-1]]
    else:
        parent[loc[-1]] = value
    return result


_DELETE = object()


def _nested(depth: int):
    value: object = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def _structural(rng: random.Random, document: dict) -> bytes:
    """The example's YAML with one node (a leaf, a list or a mapping) replaced, deleted, or nested deeply."""
    config_loc = ("config",)
    locs = [loc for loc in _nodes(document) if loc[:1] == config_loc and len(loc) > 1]
    loc = rng.choice(locs)
    choice = rng.random()
    if choice < 0.15:
        value = _DELETE
    elif choice < 0.25:
        value = _nested(rng.choice((20, 70, 200)))
    else:
        value = rng.choice(HOSTILE_VALUES)
    mutated = _replace(document, loc, value)
    return yaml.safe_dump(mutated, allow_unicode=rng.random() < 0.5, sort_keys=False).encode()


def _textual(rng: random.Random, data: bytes) -> bytes:
    """The example's bytes damaged: bad bytes, a cut, a runaway number or nesting, a control character."""
    position = rng.randrange(len(data))
    kind = rng.randrange(7)
    if kind == 0:
        return data[:position] + bytes([rng.choice((0x80, 0xC3, 0xE9, 0xFF, 0xFE, 0xED))]) + data[position:]
    if kind == 1:
        return data[:position] + bytes([rng.randrange(256)]) + data[position + 1:]
    if kind == 2:
        return data[:position]
    if kind == 3:
        return data + f"\n  {PROJECT}:huge: {'9' * rng.choice((20, 400, 5000))}\n".encode()
    if kind == 4:
        depth = rng.choice((100, 3000, 20000))
        return data + f"\n  {PROJECT}:deep: {'[' * depth}{']' * depth}\n".encode()
    if kind == 5:
        return data[:position] + b"\x00\x1b" + data[position:]
    return data.replace(b"\n", b"\r", rng.randrange(1, 4))


@pytest.mark.parametrize("stack", EXAMPLES)
def test_fuzzed_stack_files_end_accepted_or_in_a_config_error(stack):
    rng = random.Random(f"{SEED}-{stack}")
    data = _example_bytes(stack)
    document = yaml.safe_load(data)
    _load(data)  # the unmutated example is accepted: the fuzz starts from a valid stack
    outcomes = {"accepted": 0, "refused": 0}
    for case in range(MUTATIONS_PER_STACK):
        mutated = _structural(rng, document) if case % 2 else _textual(rng, data)
        try:
            _load(mutated)
            outcomes["accepted"] += 1
        except ConfigError as error:
            assert str(error).startswith("Pulumi.fuzz.yaml: "), str(error)
            outcomes["refused"] += 1
        except Exception as error:  # noqa: BLE001 - the point of the fuzz: name the case that escaped
            pytest.fail(f"{stack} case {case} (seed {SEED}) ended in {type(error).__name__}: {error}\n"
                        f"input: {mutated[:400]!r}")
    assert outcomes["refused"] > MUTATIONS_PER_STACK // 2, outcomes  # most mutations break the stack
