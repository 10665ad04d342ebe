"""Published JSON Schemas of the event models, and the rule for changing them.

Each registered event type has a committed schema `contracts/schemas/<type>.json`. A model may
change only compatibly: it may add an optional field, and change titles or descriptions. Removing
or renaming a field, changing a field's type, or making a field required is a breaking change and
needs a new event type version (`...v2`) with an upcaster.

`python -m buurtkracht_contracts.schemas write` writes the schemas; `... check` exits non-zero when a
committed schema is missing, stale, or would change incompatibly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .registry import event_types

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
_ANNOTATIONS = {"title", "description", "examples", "x-personal"}  # x-personal: see `personal`


def published_types() -> dict[str, type]:
    """The event types this package publishes (models defined in it, not ones registered by others)."""
    return {t: model for t, model in event_types().items() if model.__module__.startswith(__package__ + ".")}


def schema_of(event_type: str) -> dict[str, Any]:
    model = published_types()[event_type]
    schema = model.model_json_schema()
    schema["$id"] = f"https://schemas.buurtkracht.nl/events/{event_type}.json"
    schema["x-cloudevents-type"] = event_type
    schema["x-aggregate-type"] = model.aggregate_type
    return schema


def _strip(node: Any) -> Any:
    """The schema without annotations; the keys of `properties` and `$defs` are names, never annotations."""
    if isinstance(node, list):
        return [_strip(value) for value in node]
    if not isinstance(node, dict):
        return node
    stripped = {}
    for key, value in node.items():
        if key in {"properties", "$defs"} and isinstance(value, dict):
            stripped[key] = {name: _strip(schema) for name, schema in value.items()}
        elif key not in _ANNOTATIONS:
            stripped[key] = _strip(value)
    return stripped


def breaking_changes(old: dict[str, Any], new: dict[str, Any], path: str = "$") -> list[str]:
    """What makes `new` incompatible with `old`; empty when every old reader can read new data."""
    old, new = _strip(old), _strip(new)
    problems: list[str] = []
    for name, old_def in old.get("$defs", {}).items():
        new_def = new.get("$defs", {}).get(name)
        if new_def is None:
            problems.append(f"{path}.$defs.{name}: removed")
        else:
            problems += breaking_changes(old_def, new_def, f"{path}.$defs.{name}")
    old_body = {key: value for key, value in old.items() if key != "$defs"}
    new_body = {key: value for key, value in new.items() if key != "$defs"}
    old_props, new_props = old_body.pop("properties", None), new_body.pop("properties", None)
    if old_props is None or new_props is None:
        if old_body != new_body or old_props != new_props:
            problems.append(f"{path}: type or constraints changed")
        return problems
    for name, old_field in old_props.items():
        if name in new_props:
            problems += breaking_changes(old_field, new_props[name], f"{path}.{name}")
        else:
            problems.append(f"{path}.{name}: removed")
    old_required, new_required = set(old_body.pop("required", [])), set(new_body.pop("required", []))
    for name in sorted(new_required - old_required):
        problems.append(f"{path}.{name}: " + ("became required" if name in old_props else "added as required"))
    for name in sorted(old_required - new_required):
        problems.append(f"{path}.{name}: no longer required")
    if old_body != new_body:
        problems.append(f"{path}: object constraints changed")
    return problems


def _file(event_type: str, directory: Path) -> Path:
    return directory / f"{event_type}.json"


def write(directory: Path = SCHEMA_DIR, allow_breaking: bool = False) -> list[Path]:
    """Write every schema; refuses (ValueError) to overwrite a committed schema with a breaking change."""
    directory.mkdir(parents=True, exist_ok=True)
    breaking = [
        problem
        for problem in check(directory)
        if "compatible change not yet committed" not in problem and "no committed schema" not in problem
    ]
    if breaking and not allow_breaking:
        raise ValueError("breaking changes need a new event version:\n" + "\n".join(breaking))
    written = []
    for event_type in sorted(published_types()):
        path = _file(event_type, directory)
        path.write_text(json.dumps(schema_of(event_type), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def check(directory: Path = SCHEMA_DIR) -> list[str]:
    """Every problem with the committed schemas: missing, incompatible, or not regenerated."""
    problems = []
    for event_type in sorted(published_types()):
        path = _file(event_type, directory)
        if not path.exists():
            problems.append(f"{event_type}: no committed schema (run `make schemas`)")
            continue
        committed = json.loads(path.read_text())
        current = schema_of(event_type)
        breaking = breaking_changes(committed, current)
        problems += [f"{event_type}: {problem}" for problem in breaking]
        if not breaking and committed != current:
            problems.append(f"{event_type}: compatible change not yet committed (run `make schemas`)")
    known = {_file(t, directory).name for t in published_types()}
    for path in sorted(directory.glob("*.json")):
        if path.name not in known:
            problems.append(f"{path.name}: committed schema without a registered model (an event type was removed)")
    return problems


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "write":
        try:
            paths = write(allow_breaking="--allow-breaking" in argv)
        except ValueError as refused:
            print(refused, file=sys.stderr)
            return 1
        for path in paths:
            print(path)
        return 0
    problems = check()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
