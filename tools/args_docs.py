"""Component arguments without documentation: `python tools/args_docs.py [--list]`.

Every public dataclass in components/ (the *Args classes and the records they carry) documents each field in its
docstring's `Attributes:` section (Google style, as Sphinx napoleon reads it): one `name: text` entry per field, with
`Default: <value>` when the field has a default and `Unit: <unit>` when it is a number. Prints the count of problems;
tests/test_component_args.py requires none.
"""
import argparse
import dataclasses
import importlib
import inspect
import pkgutil
import re
import sys
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*): (?P<text>.+)$")


def attribute_docs(cls: type) -> dict[str, str]:
    """name -> text of each entry in the `Attributes:` section of the class docstring."""
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    if "Attributes:" not in lines:
        return {}
    entries: dict[str, str] = {}
    current = None
    for line in lines[lines.index("Attributes:") + 1:]:
        if not line.strip():
            continue
        if not line.startswith(" "):
            break  # the next section
        match = ENTRY.match(line.strip())
        if match and len(line) - len(line.lstrip()) == 4:
            current = match["name"]
            entries[current] = match["text"]
        elif current is not None:
            entries[current] += " " + line.strip()
    return entries


def _default(field: dataclasses.Field) -> tuple[bool, object]:
    if field.default is not dataclasses.MISSING:
        return True, field.default
    if field.default_factory is not dataclasses.MISSING:
        return True, field.default_factory()
    return False, None


def _is_number(annotation: object) -> bool:
    return annotation in (int, float) or (typing.get_origin(annotation) is typing.Union
                                          and any(arg in (int, float) for arg in typing.get_args(annotation)))


def problems(cls: type) -> list[str]:
    """What the docstring of dataclass `cls` leaves out or gets wrong, one line per field."""
    docs = attribute_docs(cls)
    fields = dataclasses.fields(cls)
    found = [f"{cls.__name__}.{name}: documented but not a field" for name in docs.keys() - {f.name for f in fields}]
    for field in fields:
        where = f"{cls.__name__}.{field.name}"
        text = docs.get(field.name)
        if text is None:
            found.append(f"{where}: not documented (no `{field.name}: ...` entry under Attributes:)")
            continue
        has_default, value = _default(field)
        if has_default and f"Default: {value!r}" not in text:
            found.append(f"{where}: the entry does not state `Default: {value!r}`")
        if _is_number(field.type) and "Unit: " not in text:
            found.append(f"{where}: a number whose entry states no `Unit: ...`")
    return found


def component_dataclasses() -> list[type]:
    """Every public dataclass defined in a module of components/."""
    import components

    found = []
    for module_info in pkgutil.walk_packages(components.__path__, "components."):
        module = importlib.import_module(module_info.name)
        found += [obj for name, obj in vars(module).items()
                  if inspect.isclass(obj) and dataclasses.is_dataclass(obj) and obj.__module__ == module.__name__
                  and not name.startswith("_")]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--list", action="store_true", help="name each problem")
    options = parser.parse_args()
    classes = component_dataclasses()
    found = [line for cls in classes for line in problems(cls)]
    if options.list:
        print("\n".join(found))
    fields = sum(len(dataclasses.fields(cls)) for cls in classes)
    print(f"{len(found)} problems in the docs of {fields} fields of {len(classes)} component dataclasses")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
