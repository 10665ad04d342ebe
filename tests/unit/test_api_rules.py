"""The Dutch API Design Rules (Logius) the services keep: `API-Version` on every response, and published documents
with a versioned server, a contact, every tag defined, the document itself as a resource, and every error as
problem+json. `make api-lint` checks the documents with Spectral and that the rules reject each of these mistakes."""

import importlib
import json
import re
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from buurtkracht_kit import http, openapi
from buurtkracht_kit.metrics import ServiceMetrics

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parents[2]
SERVICES = sorted(path.parent.name for path in ROOT.glob("services/*/src/*/app.py"))
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


class Thing(BaseModel):
    name: str


router = APIRouter(prefix="/api/v1/things", tags=["things"])


@router.get("/{thing_id}")
async def read(thing_id: int) -> Thing:
    return Thing(name=f"thing {thing_id}")


@router.post("", status_code=201)
async def create(thing: Thing) -> Thing:
    if thing.name == "bug":
        raise RuntimeError("a bug")
    return thing


def service(version="1.4.0", routes=router):
    app = FastAPI(title="Things", version=version)
    http.install(app, ServiceMetrics("test"), {})
    app.include_router(routes)
    return app


@pytest.fixture
def api():
    return TestClient(service(), raise_server_exceptions=False)


def test_api_version_is_sent_on_a_2xx_a_4xx_a_404_and_a_500(api):
    answers = {
        200: api.get("/api/v1/things/7"),
        201: api.post("/api/v1/things", json={"name": "bench"}),
        422: api.post("/api/v1/things", json={}),
        404: api.get("/api/v1/nothing-here"),
        405: api.delete("/api/v1/things/7"),
        500: api.post("/api/v1/things", json={"name": "bug"}),
    }
    for status, answer in answers.items():
        assert answer.status_code == status
        assert answer.headers["API-Version"] == "1.4.0", status
    assert answers[404].headers["content-type"] == "application/problem+json"


def test_probes_and_metrics_carry_the_version_too(api):
    assert api.get("/healthz").headers["API-Version"] == "1.4.0"
    assert api.get("/metrics").headers["API-Version"] == "1.4.0"


def test_the_document_is_served_under_the_versioned_base_to_any_origin_without_a_token(api):
    answer = api.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.headers["API-Version"] == "1.4.0"
    document = answer.json()
    assert document == api.app.openapi() == api.get("/openapi.json").json()
    assert document["servers"] == [{"url": "/api/v1", "description": "This service; every path is relative to it"}]
    assert set(document["paths"]) == {"/things/{thing_id}", "/things", "/openapi.json"}


def test_the_document_says_what_is_sent(api):
    document = api.app.openapi()
    invalid = api.post("/api/v1/things", json={})
    documented = document["paths"]["/things"]["post"]["responses"]
    assert documented["422"]["content"] == PROBLEM
    assert invalid.headers["content-type"] in documented["422"]["content"]
    assert set(invalid.json()) <= set(document["components"]["schemas"]["Problem"]["properties"])
    assert documented["default"]["content"] == PROBLEM
    assert documented["400"]["content"] == PROBLEM  # a body that does not parse
    assert "400" not in document["paths"]["/things/{thing_id}"]["get"]["responses"]  # nothing to parse there
    assert {"HTTPValidationError", "ValidationError"}.isdisjoint(document["components"]["schemas"])
    header = document["components"]["headers"]["API-Version"]
    assert header["required"] is True and header["schema"]["examples"] == ["1.4.0"]


def test_tags_are_defined_with_a_description_of_their_resources(api):
    assert api.app.openapi()["tags"] == [
        {"name": "things", "description": "The resources `/things` and those under it."},
        openapi.DOCUMENT_TAG,
    ]


def test_a_documented_route_outside_the_versioned_base_is_refused_rather_than_described_wrongly():
    outside = APIRouter()

    @outside.get("/status")
    async def status() -> dict[str, str]:
        return {"status": "ok"}

    with pytest.raises(ValueError, match="/status is outside the API's base /api/v1"):
        service(routes=outside).openapi()


def test_the_base_carries_the_major_version_only():
    assert openapi.base_path("1.4.0") == "/api/v1"
    assert openapi.base_path("2.0.0-rc.1") == "/api/v2"


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_sends_its_version_on_success_refusal_and_unknown_paths(name, monkeypatch):
    monkeypatch.setenv("BK_DATABASE_URL", "postgresql://docs@localhost/docs")
    built = importlib.import_module(f"{name}.app").create()
    version = built.spec.version
    base = openapi.base_path(version)
    api = TestClient(built.app, raise_server_exceptions=False)  # no lifespan: nothing here reaches the database
    document = api.get(f"{base}/openapi.json")
    path, refusal = _refused_get(document.json())
    refused = api.get(base + path)
    unknown = api.get("/api/v1/nothing-here")
    assert (document.status_code, refused.status_code, unknown.status_code) == (200, refusal, 404)
    for answer in (document, refused, unknown):
        assert answer.headers["API-Version"] == version
    assert refused.headers["content-type"] == unknown.headers["content-type"] == "application/problem+json"


def _refused_get(document):
    """A GET the service refuses, with the status it refuses it with: a path without parameters, whose GET needs a
    token (every one but the document, 401); in an API without such a path (the portal's public one, which anyone
    may read), a path with each of its parameters invalid (422)."""
    paths = [path for path, item in document["paths"].items() if "get" in item and path != "/openapi.json"]
    if plain := [path for path in paths if "{" not in path]:
        return plain[0], 401
    return re.sub(r"\{[^}]+\}", "not-valid", paths[0]), 422


@pytest.mark.parametrize("name", SERVICES)
def test_each_published_document_keeps_the_api_rules(name):
    document = json.loads((ROOT / "services" / name / "docs" / "openapi.json").read_text())
    major = document["info"]["version"].split(".")[0]
    assert [server["url"] for server in document["servers"]] == [f"/api/v{major}"]
    assert set(document["info"]["contact"]) == {"name", "url", "email"}
    assert document["paths"]["/openapi.json"]["get"]["responses"]["200"]["headers"]["Access-Control-Allow-Origin"]
    assert not any(path.startswith("/api/") for path in document["paths"])
    defined = {tag["name"]: tag.get("description") for tag in document["tags"]}
    assert all(defined.values())
    invalid_inputs = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert set(operation["tags"]) <= set(defined), (path, method)
            for status, response in operation["responses"].items():
                assert response["headers"]["API-Version"] == {"$ref": "#/components/headers/API-Version"}
                if status == "default" or status[0] in "45":
                    assert response["content"] == PROBLEM, (path, method, status)
                invalid_inputs += status == "422"
    assert invalid_inputs > 0
