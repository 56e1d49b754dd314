"""Checks on raw config values that hold before any schema: numbers the Pulumi engine can carry exactly, and no
scaffold placeholder left unreplaced."""
import math
from typing import Any, Iterator

from plan.errors import Problem, join_path

# The engine carries every config and property number as a protobuf double: integers beyond 2^53 lose digits, and
# beyond the double range the SDK fails with an OverflowError while registering a resource.
LARGEST_EXACT_INTEGER = 2 ** 53 - 1
# What `python -m scaffold` writes where only the site knows the value: REPLACE-ME(<what to put there>).
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
                                    "write a plain number, e.g. 8"))
        elif abs(number) > LARGEST_EXACT_INTEGER:
            problems.append(Problem(join_path(prefix, loc), f"is out of range (|value| > {LARGEST_EXACT_INTEGER}, "
                                    "the largest integer the Pulumi engine carries exactly)",
                                    "check for extra digits and write the intended value"))
    return problems


def placeholder_problems(raw: dict[str, Any], prefix: str) -> list[Problem]:
    """Every scaffold placeholder still in the config: nothing deploys until the site has named the real value."""
    return [Problem(join_path(prefix, loc), f"is still the scaffold placeholder {value!r}",
                    f"replace it with the site's value: pulumi config set --path '{join_path(prefix, loc)}' <value>")
            for loc, value in _leaves(raw) if isinstance(value, str) and PLACEHOLDER in value]
