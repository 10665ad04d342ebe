"""Each service's OpenAPI document, shaped to the Dutch API Design Rules (Logius) and true to what is sent.

- The one server is the versioned base, `/api/v<major>` (`/core/uri-version`), and every path is relative to it. A
  documented route outside the base could not be described, so building the document fails on one: probes,
  `/metrics` and `/asyncapi.json` stay out of the document (`include_in_schema=False`).
- The document itself is `GET <base>/openapi.json`, for anyone and any origin (`/core/publish-openapi`).
- Every response documents `API-Version`, the full version, which `http.ApiVersion` sends on every response
  (`/core/version-header`).
- Every error answer is RFC 9457 problem details (`problems.install` answers every error so): each 4xx and 5xx
  response, and `default` for the rest, is documented as `application/problem+json` with the `Problem` schema.
- Every tag an operation uses is defined, with a description; `info.contact` names the team.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Response

from .problems import PROBLEM_JSON

VERSION_HEADER = "API-Version"
CONTACT = {"name": "Team Buurtkracht", "url": "https://buurtkracht.nl", "email": "api@buurtkracht.nl"}
DOCUMENT_PATH = "/openapi.json"
DOCUMENT_TAG = {"name": "openapi", "description": "This document: the API as OpenAPI 3.1."}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
FASTAPI_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError")  # replaced by `Problem`

_PROBLEM_CONTENT = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
_VERSION_REF = {"$ref": f"#/components/headers/{VERSION_HEADER}"}

PROBLEM_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "title": "Problem",
        "description": "An error answer (RFC 9457 problem details). Some carry members of their own, named in the "
        "operation's description (such as `current_status` on a 409).",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {
                "type": "string",
                "format": "uri",
                "description": "What went wrong, as a URI: `https://buurtkracht.nl/problems/<kind>`, or `about:blank`",
            },
            "title": {"type": "string", "description": "A short summary of the kind of problem"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "The HTTP status code"},
            "detail": {"type": "string", "description": "What went wrong with this request"},
            "instance": {"type": "string", "description": "The path requested"},
            "errors": {
                "type": "array",
                "description": "Each field at fault, for invalid input",
                "items": {"$ref": "#/components/schemas/ProblemError"},
            },
        },
    },
    "ProblemError": {
        "type": "object",
        "title": "ProblemError",
        "description": "One field at fault",
        "required": ["field", "message"],
        "properties": {
            "field": {"type": "string", "description": "The field, dotted within its part (`budget_lines.0.amount`)"},
            "in": {"type": "string", "description": "Where the field is: `body`, `query`, `path`, `header`, ..."},
            "message": {"type": "string", "description": "What is wrong with it"},
            "code": {"type": "string", "description": "The kind of error, for programs (`missing`, `too_short`, ...)"},
        },
    },
}


def base_path(version: str) -> str:
    """The URL path every route of the API lies under: `/api/v` and the major version (`1.4.0` -> `/api/v1`)."""
    return f"/api/v{version.split('.', 1)[0]}"


def install(app: FastAPI) -> None:
    """`app.openapi()` returns the shaped document (built once, after every route is in), which is also served at
    `<base>/openapi.json` to any origin, without authentication."""
    generate = app.openapi  # FastAPI's own
    built: dict[str, Any] = {}

    def document() -> dict[str, Any]:
        if not built:
            built["document"] = shape(generate(), app.version)
            built["body"] = json.dumps(built["document"]).encode()
        return built["document"]

    app.openapi = document  # type: ignore[method-assign]

    async def published() -> Response:
        document()
        return Response(built["body"], media_type="application/json", headers={"Access-Control-Allow-Origin": "*"})

    app.add_api_route(base_path(app.version) + DOCUMENT_PATH, published, methods=["GET"], include_in_schema=False)


def shape(generated: dict[str, Any], version: str) -> dict[str, Any]:
    """The document FastAPI generated, shaped as the module docstring says; `generated` is left as it was."""
    base = base_path(version)
    document = {key: value for key, value in copy.deepcopy(generated).items() if key not in ("paths", "tags")}
    document["info"] = {**document["info"], "contact": dict(CONTACT)}
    document["servers"] = [{"url": base, "description": "This service; every path is relative to it"}]
    paths: dict[str, Any] = {}
    for path, item in copy.deepcopy(generated.get("paths", {})).items():
        if not path.startswith(base + "/"):
            raise ValueError(f"{path} is outside the API's base {base}: move it under {base}, or out of the document")
        paths[path.removeprefix(base)] = item
    paths[DOCUMENT_PATH] = _document_operation()
    for operation in _operations(paths):
        _shape_responses(operation)
    document["paths"] = paths
    components = document.setdefault("components", {})
    components.setdefault("headers", {})[VERSION_HEADER] = _version_header(version)
    schemas = components.setdefault("schemas", {})
    schemas.update(copy.deepcopy(PROBLEM_SCHEMAS))
    text = json.dumps(paths)
    for name in FASTAPI_ERROR_SCHEMAS:
        if f'"#/components/schemas/{name}"' not in text:
            schemas.pop(name, None)
    document["tags"] = _tags(paths, generated.get("tags", []))
    _integer_bounds(document)
    return document


BIGINT = 2**63 - 1  # what a PostgreSQL bigint holds: the upper bound of every amount in cents
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _integer_bounds(node: Any) -> None:
    """Integer bounds written as integers again. FastAPI's document model holds every bound as a float, which
    turns 2**63 - 1 into 2**63 (a float has 53 bits), so a client would believe one cent more than a bigint holds
    is valid; no bound of ours is a fraction, and none but the bigint's lies beyond 2**53."""
    if isinstance(node, list):
        for item in node:
            _integer_bounds(item)
    elif isinstance(node, dict):
        if node.get("type") == "integer":
            for bound in _BOUNDS:
                if isinstance(node.get(bound), float):
                    node[bound] = BIGINT if node[bound] >= 2**63 else int(node[bound])
        for value in node.values():
            _integer_bounds(value)


def _operations(paths: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for item in paths.values():
        yield from (item[method] for method in METHODS if method in item)


def _shape_responses(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    if "requestBody" in operation:
        responses.setdefault("400", {"description": "Malformed request body: it does not parse"})
    if "422" in responses:
        responses["422"]["description"] = "Invalid input: `errors` names each field at fault"
    other = "Any other error, such as 401 without a valid bearer token, 404, 405 or 413 (a body too large)"
    responses.setdefault("default", {"description": other})
    for status, response in responses.items():
        if status == "default" or status[0] in "45":
            response["content"] = copy.deepcopy(_PROBLEM_CONTENT)
        response.setdefault("headers", {})[VERSION_HEADER] = dict(_VERSION_REF)


def _document_operation() -> dict[str, Any]:
    return {
        "get": {
            "tags": [DOCUMENT_TAG["name"]],
            "summary": "This document",
            "description": "Readable by anyone, from any origin.",
            "operationId": "get_openapi_document",
            "responses": {
                "200": {
                    "description": "The OpenAPI document",
                    "headers": {
                        "Access-Control-Allow-Origin": {
                            "description": "Any origin may read the document",
                            "required": True,
                            "schema": {"type": "string", "const": "*"},
                        }
                    },
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }


def _version_header(version: str) -> dict[str, Any]:
    return {
        "description": "The full version of the API that answered (semantic versioning; its major version is in the "
        "URL)",
        "required": True,
        "schema": {"type": "string", "examples": [version]},
    }


def _tags(paths: dict[str, Any], declared: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every tag used, in the order of first use: as the service declared it (FastAPI's `openapi_tags`), else
    described by the resources it covers."""
    known = {tag["name"]: tag for tag in declared} | {DOCUMENT_TAG["name"]: DOCUMENT_TAG}
    used: dict[str, list[str]] = {}
    for path, item in paths.items():
        for method in METHODS:
            for name in item.get(method, {}).get("tags", ()):
                used.setdefault(name, [])
                if path not in used[name]:
                    used[name].append(path)
    return [
        dict(known[name]) if known.get(name, {}).get("description") else _described(name, tagged)
        for name, tagged in used.items()
    ]


def _described(name: str, tagged: list[str]) -> dict[str, Any]:
    roots = [f"`{path}`" for path in tagged if not any(path.startswith(other + "/") for other in tagged)]
    if len(tagged) == 1:
        return {"name": name, "description": f"The resource {roots[0]}."}
    listed = roots[0] if len(roots) == 1 else ", ".join(roots[:-1]) + " and " + roots[-1]
    under = "" if len(roots) == len(tagged) else " and those under it" if len(roots) == 1 else " and those under them"
    return {"name": name, "description": f"The resources {listed}{under}."}
