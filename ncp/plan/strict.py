"""Base class for every config, profile and catalog model: unknown keys are errors, keys are camelCase."""
from typing import Annotated, Callable, Sequence

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class StrictModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
    )


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty or only whitespace; write the text it records")
    return value


# Every free-text value the config records (owners, decisions, reasons, paths, names of things the site provides):
# present means written, so whitespace alone is refused. tests/test_ra_rules.py finds every string field of the
# stack schema and holds that each is this type, or constrained by a pattern or a validator of its own.
Text = Annotated[str, AfterValidator(_not_blank)]


class OneOf:
    """A name that must be one a data file lists, read when a value is validated (never when a module is imported):
    the data file stays the names' one home, and importing the schema reads no file."""

    def __init__(self, names: Callable[[], Sequence[str]], where: str):
        self.names, self.where = names, where

    def __call__(self, value: str) -> str:
        names = self.names()
        if value not in names:
            raise ValueError(f"must be one of {', '.join(map(repr, names))} ({self.where})")
        return value
