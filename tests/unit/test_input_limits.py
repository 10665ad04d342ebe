"""Every value a client can send is bounded in the published OpenAPI documents (and so in the models they are made
from): strings have a length cap and a pattern that refuses NUL, the other control characters and the line and
paragraph separators (or are an enum, a UUID, a date-time); integers have a minimum and a maximum that a PostgreSQL
bigint holds. A field added without its limits fails here, before a fuzzer or a resident finds the 500."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parents[2]
DOCUMENTS = sorted(ROOT.glob("services/*/docs/openapi.json"))
BIGINT = 2**63 - 1
FORBIDDEN = ["\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"]
SAFE_FORMATS = {"uuid", "date-time", "binary"}


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def leaves(document: dict[str, Any], schema: dict[str, Any], where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every string and integer schema inside `schema`, with the path that leads to it."""
    schema = resolve(document, schema)
    for combined in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(combined, []):
            yield from leaves(document, option, where)
    kind = schema.get("type")
    if kind in ("string", "integer"):
        yield where, schema
    elif kind == "array":
        yield from leaves(document, schema.get("items", {}), where + "[]")
    elif kind == "object":
        for name, property_schema in schema.get("properties", {}).items():
            yield from leaves(document, property_schema, f"{where}.{name}")
        if isinstance(schema.get("additionalProperties"), dict):
            yield from leaves(document, schema["additionalProperties"], where + ".*")


def inputs(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            at = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                yield from leaves(document, parameter["schema"], f"{at} {parameter['in']}:{parameter['name']}")
            for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
                if "json" in media_type:
                    yield from leaves(document, content["schema"], f"{at} body")


def refusals(schema: dict[str, Any]) -> list[str]:
    """What is wrong with one input schema's limits (empty when it is bounded)."""
    if schema.get("type") == "integer":
        low, high = schema.get("minimum", schema.get("exclusiveMinimum")), schema.get("maximum")
        if low is None or high is None or high > BIGINT or low < -BIGINT:
            return [f"integer without bounds a bigint holds (minimum {low}, maximum {high})"]
        return []
    if "enum" in schema or "const" in schema or schema.get("format") in SAFE_FORMATS:
        return []
    problems = []
    if "maxLength" not in schema:
        problems.append("string without maxLength")
    pattern = schema.get("pattern")
    let_through = [c for c in FORBIDDEN if pattern is None or re.search(pattern, f"a{c}b")]
    if let_through:
        problems.append(f"string pattern {pattern!r} lets {[hex(ord(c)) for c in let_through]} through")
    return problems


@pytest.mark.parametrize("document_path", DOCUMENTS, ids=lambda path: path.parts[-3])
def test_every_input_is_bounded_in_the_published_document(document_path: Path) -> None:
    document = json.loads(document_path.read_text())
    found = list(inputs(document))
    assert found, "the document describes no input at all"
    unbounded = [f"{where}: {problem}" for where, schema in found for problem in refusals(schema)]
    assert not unbounded, "\n".join(unbounded)


def test_the_check_itself_finds_an_unbounded_string_and_integer() -> None:
    assert refusals({"type": "string"}) == [
        "string without maxLength",
        "string pattern None lets ['0x0', '0x1b', '0x7f', '0x85', '0x2028', '0x2029'] through",
    ]
    assert refusals({"type": "string", "maxLength": 9, "pattern": r"^[^@\s]+$"})  # \s lets NUL through
    assert refusals({"type": "integer", "minimum": 0})
    assert refusals({"type": "integer", "minimum": 0, "maximum": 10**20})
    assert not refusals({"type": "integer", "minimum": 0, "maximum": BIGINT})
