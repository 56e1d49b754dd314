"""Checks on raw config values that hold before any schema: numbers the Pulumi engine can carry exactly, and no
scaffold placeholder left unreplaced."""
import math
from typing import Any, Iterator, Sequence

from ncp.plan.errors import Problem, join_path, set_command

# The engine carries every config and property number as a protobuf double: integers beyond 2^53 lose digits, and
# beyond the double range the SDK fails with an OverflowError while registering a resource.
LARGEST_EXACT_INTEGER = 2 ** 53 - 1
# What `ncp scaffold` writes where only the site knows the value: REPLACE-ME(<what to put there>).
PLACEHOLDER = "REPLACE-ME"


def _leaves(value: Any, loc: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*loc, index))
    else:
        yield loc, value


def number_problems(raw: dict[str, Any], prefix: str) -> list[Problem]:
    """Every number in the raw config that is not finite or not exactly representable by the engine."""
    problems = []
    numbers = ((loc, v) for loc, v in _leaves(raw) if isinstance(v, (int, float)) and not isinstance(v, bool))
    for loc, number in numbers:
        if isinstance(number, float) and not math.isfinite(number):
            problems.append(Problem(join_path(prefix, loc), f"is not a finite number ({number})",
                                    "write a plain number: " + set_command(join_path(prefix, loc), "<number>")))
        elif abs(number) > LARGEST_EXACT_INTEGER:
            problems.append(Problem(join_path(prefix, loc), f"is out of range (|value| > {LARGEST_EXACT_INTEGER}, "
                                    "the largest integer the Pulumi engine carries exactly)",
                                    "check for extra digits and write the intended value: "
                                    + set_command(join_path(prefix, loc), "<number>")))
    return problems


def placeholder_problems(raw: dict[str, Any], prefix: str, secret_keys: Sequence[str] = ()) -> list[Problem]:
    """Every scaffold placeholder still in the config: nothing deploys until the site has named the real value
    (a secret's with `--secret`, so it is stored encrypted)."""
    problems = []
    for loc, value in _leaves(raw):
        if isinstance(value, str) and PLACEHOLDER in value:
            path = join_path(prefix, loc)
            secret = loc[0] in secret_keys and len(loc) == 1
            problems.append(Problem(path, f"is still the scaffold placeholder {value!r}",
                                    "replace it with the site's value: "
                                    + (f"pulumi config set --secret {path} <value>" if secret else set_command(path))))
    return problems


# A value of the right kind per key, validated in place of a placeholder so that the other problems of a scaffolded
# stack show in the same round (ncp/plan/site_plan.py build_plan); problems about these values themselves are dropped.
# List entries get their index ({n}) so that no list holds a stand-in twice.
_STAND_INS = {
    "railSubnet": "10.200.0.0/16",
    "railInterfaces": "ens{n}f0np0",
    "path": "s3://replace-me/evidence/",
    "url": "http://replace-me.invalid:3128",
    "cidrs": "192.0.2.{n}/32",
    "allowedCidrs": "192.0.2.{n}/32",
}
_IMAGE_STAND_IN = "nvcr.io/replace-me/tools/tool:0@sha256:" + "0" * 64


def _stand_in(loc: tuple) -> str:
    key = next((part for part in reversed(loc) if isinstance(part, str)), "")
    if key.endswith("Image"):
        return _IMAGE_STAND_IN
    index = loc[-1] + 1 if loc and isinstance(loc[-1], int) else 1
    return _STAND_INS.get(key, "replace-me-{n}" if isinstance(loc[-1], int) else "replace-me").format(n=index)


def with_stand_ins(raw: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """raw with each placeholder replaced by a stand-in of its kind, and the top-level keys that held one."""
    replaced: set[str] = set()

    def walk(value: Any, loc: tuple) -> Any:
        if isinstance(value, dict):
            return {key: walk(item, (*loc, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, (*loc, index)) for index, item in enumerate(value)]
        if isinstance(value, str) and PLACEHOLDER in value:
            replaced.add(str(loc[0]))
            return _stand_in(loc)
        return value

    return walk(raw, ()), replaced


def at_placeholder(path: str, placeholders: list[Problem]) -> bool:
    """Whether a problem is about a placeholder's own value (its path, or a path inside it)."""
    return any(path == p.path or path.startswith((f"{p.path}.", f"{p.path}[")) for p in placeholders)
