"""The shared HTTP face: problem+json naming the field at fault, health, metrics by route template."""

import threading

import asyncpg
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from buurtkracht_kit import http
from buurtkracht_kit.auth import Role, TokenVerifier, mint, require
from buurtkracht_kit.metrics import ServiceMetrics
from buurtkracht_kit.problems import Problem

from .test_auth import AUDIENCE, ISSUER, PRIVATE, PUBLIC

pytestmark = pytest.mark.unit


class Draft(BaseModel):
    title: str = Field(min_length=3)
    requested_amount_cents: int = Field(ge=0, strict=True)


router = APIRouter()


@router.get("/api/v1/failing/{thing_id}")
async def failing(thing_id: int):
    raise RuntimeError("a bug")


DATABASE_AWAY = {
    "admin-shutdown": asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    "cannot-connect-now": asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    "connection-lost": asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
    "refused": ConnectionRefusedError(111, "Connect call failed"),
    "pool-timeout": TimeoutError(),
    "too-many-connections": asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    "shut-down-mid-operation": asyncpg.InternalClientError("cannot switch to state 15; another operation (2)"),
}


@router.get("/api/v1/database/{away}")
async def database_away(away: str):
    raise DATABASE_AWAY[away]


@router.get("/api/v1/whoami")
async def whoami(caller=Depends(require(Role.RESIDENT))):
    return {"subject": caller.subject, "thread": threading.get_ident()}


@router.post("/api/v1/things/{thing_id}")
async def create(thing_id: int, draft: Draft, caller=Depends(require(Role.RESIDENT))):
    if draft.title == "taken":
        raise Problem.conflict("a thing with this title exists", current_state="taken")
    return {"id": thing_id, "by": caller.subject}


async def healthy():
    return None


async def broken():
    raise ConnectionError("down")


def client(checks):
    metrics = ServiceMetrics("test")
    app = FastAPI()
    http.install(app, metrics, checks)
    app.include_router(router)
    return TestClient(app, raise_server_exceptions=False), metrics


@pytest.fixture
def api(tmp_path):
    key = tmp_path / "pub.pem"
    key.write_text(PUBLIC)
    test_client, metrics = client({"database": healthy})
    test_client.app.state.token_verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_key_file=key)
    return test_client, metrics


def bearer(roles=("resident",)):
    return {
        "Authorization": "Bearer "
        + mint(PRIVATE, issuer=ISSUER, audience=AUDIENCE, subject="r-1", roles=list(roles), areas=[])
    }


def test_invalid_field_is_a_422_problem_naming_the_field(api):
    test_client, _ = api
    answer = test_client.post("/api/v1/things/1", json={"title": "ab", "requested_amount_cents": 10}, headers=bearer())
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == 422 and body["errors"][0]["field"] == "title"


def test_a_float_amount_is_refused(api):
    test_client, _ = api
    answer = test_client.post(
        "/api/v1/things/1", json={"title": "abc", "requested_amount_cents": 10.5}, headers=bearer()
    )
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "requested_amount_cents"


def test_malformed_json_is_a_400_problem(api):
    test_client, _ = api
    answer = test_client.post(
        "/api/v1/things/1", content=b"{not json", headers=bearer() | {"content-type": "application/json"}
    )
    assert answer.status_code == 400 and answer.headers["content-type"] == "application/problem+json"


def test_missing_token_is_401_and_wrong_role_is_403(api):
    test_client, _ = api
    assert test_client.post("/api/v1/things/1", json={"title": "abc", "requested_amount_cents": 1}).status_code == 401
    answer = test_client.post(
        "/api/v1/things/1", json={"title": "abc", "requested_amount_cents": 1}, headers=bearer(["official"])
    )
    assert answer.status_code == 403 and answer.json()["type"].endswith("/forbidden")


def test_domain_conflict_is_a_409_problem_with_extensions(api):
    test_client, _ = api
    answer = test_client.post(
        "/api/v1/things/1", json={"title": "taken", "requested_amount_cents": 1}, headers=bearer()
    )
    assert answer.status_code == 409 and answer.json()["current_state"] == "taken"


def test_unknown_path_is_a_404_problem(api):
    test_client, _ = api
    answer = test_client.get("/api/v1/nothing")
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json"


def test_requests_are_counted_by_route_template(api):
    test_client, _ = api
    test_client.post("/api/v1/things/7", json={"title": "abc", "requested_amount_cents": 1}, headers=bearer())
    text = test_client.get("/metrics").text
    assert 'buurtkracht_http_requests_total{method="POST",route="/api/v1/things/{thing_id}",status="200"} 1.0' in text
    assert "/api/v1/things/7" not in text


def test_readiness_reports_each_dependency():
    test_client, _ = client({"database": healthy, "kafka": broken})
    answer = test_client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"] == {"database": "ok", "kafka": "failing: ConnectionError"}
    assert test_client.get("/healthz").status_code == 200


def test_a_request_that_raises_is_counted_as_a_500_and_probes_are_not_counted(api):
    test_client, _ = api
    assert test_client.get("/api/v1/failing/3").status_code == 500
    test_client.get("/healthz")
    test_client.get("/readyz")
    text = test_client.get("/metrics").text
    assert 'buurtkracht_http_requests_total{method="GET",route="/api/v1/failing/{thing_id}",status="500"} 1.0' in text
    duration = 'buurtkracht_http_request_duration_seconds_count{method="GET",route="/api/v1/failing/{thing_id}"} 1.0'
    assert duration in text
    assert 'route="/healthz"' not in text and 'route="/readyz"' not in text


def test_an_unknown_route_is_counted_as_unmatched(api):
    test_client, _ = api
    test_client.get("/api/v1/nothing/here")
    assert 'route="unmatched",status="404"} 1.0' in test_client.get("/metrics").text


def test_the_token_is_checked_on_the_event_loop_not_in_a_worker_thread(api):
    test_client, _ = api
    verifier = test_client.app.state.token_verifier
    verify, checked_in = verifier.verify, []

    def recording(raw):
        checked_in.append(threading.get_ident())
        return verify(raw)

    verifier.verify = recording
    answer = test_client.get("/api/v1/whoami", headers=bearer())
    assert answer.status_code == 200 and answer.json()["subject"] == "r-1"
    assert checked_in == [answer.json()["thread"]]


def test_request_metrics_are_pure_asgi_middleware(api):
    from starlette.middleware.base import BaseHTTPMiddleware

    test_client, _ = api
    # request metrics outermost (a refused body is counted too), then the body limit: both pure ASGI
    assert [m.cls for m in test_client.app.user_middleware] == [http.RequestMetrics, http.BodyLimit]
    assert not any(m.cls is BaseHTTPMiddleware for m in test_client.app.user_middleware)


@router.post("/api/v1/uploads")
async def upload(request: Request):
    return {"bytes": len(await request.body())}


@router.post("/api/v1/bulk/uploads")
async def bulk_upload(request: Request):
    return {"bytes": len(await request.body())}


def test_a_body_beyond_its_limit_is_a_413_problem_whether_declared_or_streamed():
    app = FastAPI()
    http.install(app, ServiceMetrics("limits"), {}, max_body_bytes=1024, larger_bodies={r"^/api/v1/bulk/": 4096})
    app.include_router(router)
    api = TestClient(app, raise_server_exceptions=False)

    def chunks(size: int):
        for _ in range(size // 256):
            yield b"x" * 256

    assert api.post("/api/v1/uploads", content=b"x" * 1024).json() == {"bytes": 1024}
    for body in (b"x" * 1025, chunks(2048)):  # declared by its Content-Length, or streamed without one
        answer = api.post("/api/v1/uploads", content=body)
        assert answer.status_code == 413, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert "1,024 bytes" in answer.json()["detail"]
    assert api.post("/api/v1/bulk/uploads", content=b"x" * 4096).json() == {"bytes": 4096}  # a route that takes more
    assert api.post("/api/v1/bulk/uploads", content=chunks(8192)).status_code == 413


@pytest.mark.parametrize("away", sorted(DATABASE_AWAY))
def test_a_database_away_for_a_moment_is_a_503_problem_with_retry_after(api, away):
    answer = api[0].get(f"/api/v1/database/{away}")
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["Retry-After"] == "2"
    assert answer.json()["type"].endswith("/unavailable")


def test_a_bug_is_still_a_500(api):
    assert api[0].get("/api/v1/failing/1").status_code == 500
