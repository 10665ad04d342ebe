"""The API rules still catch each mistake they are there for: a copy of a published document with one mistake made
fails with the rule that names it, as an error. Run by `make api-lint`, with Python's standard library only.

    python3 deploy/api-rules/must_fail.py SPECTRAL RULESET DOCUMENT
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

Document = dict[str, Any]


def _operations(document: Document) -> list[Document]:
    return [operation for item in document["paths"].values() for operation in item.values() if "responses" in operation]


def _first(document: Document, status: Callable[[str], bool]) -> Document:
    return next(
        response
        for operation in _operations(document)
        for code, response in operation["responses"].items()
        if status(code)
    )


def _success(document: Document) -> Document:
    return _first(document, lambda code: code.startswith("2") and code != "204")


def _invalid(document: Document) -> Document:
    return _first(document, lambda code: code == "422")


MISTAKES: dict[str, tuple[Callable[[Document], object], str]] = {
    "no servers": (lambda d: d.pop("servers"), "oas3-api-servers"),
    "a server without the major version": (
        lambda d: d["servers"][0].update(url="/api"),
        "nlgov:include-major-version-in-uri",
    ),
    "no /openapi.json": (lambda d: d["paths"].pop("/openapi.json"), "nlgov:openapi-json-resource-exists"),
    "/openapi.json without CORS": (
        lambda d: d["paths"]["/openapi.json"]["get"]["responses"]["200"]["headers"].pop("Access-Control-Allow-Origin"),
        "nlgov:openapi-json-cors-header",
    ),
    "a 2xx without API-Version": (lambda d: _success(d)["headers"].pop("API-Version"), "nlgov:missing-version-header"),
    "a 2xx without headers": (lambda d: _success(d).pop("headers"), "nlgov:missing-header"),
    "a 422 without API-Version": (
        lambda d: _invalid(d)["headers"].pop("API-Version"),
        "buurtkracht:version-header-on-every-response",
    ),
    "a 422 as application/json": (
        lambda d: _invalid(d).update(content={"application/json": {"schema": {"type": "object"}}}),
        "nlgov:use-problem-schema",
    ),
    "a default answer as application/json": (
        lambda d: _first(d, lambda code: code == "default").update(content={"application/json": {}}),
        "buurtkracht:every-error-is-a-problem",
    ),
    "a problem without detail": (
        lambda d: d["components"]["schemas"]["Problem"]["properties"].pop("detail"),
        "nlgov:problem-schema-members",
    ),
    "no info.contact": (lambda d: d["info"].pop("contact"), "info-contact"),
    "a contact without email": (lambda d: d["info"]["contact"].pop("email"), "nlgov:info-contact-fields-exist"),
    "no tags defined": (lambda d: d.pop("tags"), "operation-tag-defined"),
    "a tag without description": (lambda d: d["tags"][0].pop("description"), "tag-description"),
    "a trailing slash": (
        lambda d: d["paths"].update({"/things/": copy.deepcopy(d["paths"]["/openapi.json"])}),
        "nlgov:paths-no-trailing-slash",
    ),
    "a version that is not semver": (lambda d: d["info"].update(version="1.0"), "nlgov:semver"),
}


def main(spectral: str, ruleset: str, published: str) -> int:
    original = json.loads(Path(published).read_text())
    with tempfile.TemporaryDirectory() as folder:
        expected: dict[str, tuple[str, str]] = {}
        for number, (mistake, (make, rule)) in enumerate(MISTAKES.items()):
            document = copy.deepcopy(original)
            make(document)
            path = Path(folder) / f"mistake-{number}.json"
            path.write_text(json.dumps(document))
            expected[str(path)] = (mistake, rule)
        run = subprocess.run(
            [spectral, "lint", "--ruleset", ruleset, "--format", "json", "--quiet", *expected],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            results = json.loads(run.stdout)
        except json.JSONDecodeError:
            print(run.stdout, run.stderr, sep="\n")
            return 2
    errors = {(Path(result["source"]).resolve(), result["code"]) for result in results if result["severity"] == 0}
    failed = 0
    for path, (mistake, rule) in expected.items():
        caught = (Path(path).resolve(), rule) in errors
        failed += not caught
        print(f"{'rejected' if caught else 'ACCEPTED, but must fail:'} {mistake} ({rule})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
