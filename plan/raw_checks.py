"""Checks on raw config values that hold before any schema: numbers the Pulumi engine can carry exactly."""
import math
from typing import Any, Iterator

from plan.errors import Problem, join_path

# The engine carries every config and property number as a protobuf double: integers beyond 2^53 lose digits, and
# beyond the double range the SDK fails with an OverflowError while registering a resource.
LARGEST_EXACT_INTEGER = 2 ** 53 - 1


def _numbers(value: Any, loc: tuple) -> Iterator[tuple[tuple, Any]]:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _numbers(item, (*loc, index))


def number_problems(raw: dict[str, Any], prefix: str) -> list[Problem]:
    """Every number in the raw config that is not finite or not exactly representable by the engine."""
    problems = []
    for loc, number in _numbers(raw, ()):
        if isinstance(number, float) and not math.isfinite(number):
            problems.append(Problem(join_path(prefix, loc), f"is not a finite number ({number})",
                                    "write a plain number, e.g. 8"))
        elif abs(number) > LARGEST_EXACT_INTEGER:
            problems.append(Problem(join_path(prefix, loc), f"is out of range (|value| > {LARGEST_EXACT_INTEGER}, "
                                    "the largest integer the Pulumi engine carries exactly)",
                                    "check for extra digits and write the intended value"))
    return problems
