"""The HTTP face every service shares: problem+json errors, `/healthz`, `/readyz`, `/metrics`, request metrics, the
`API-Version` header on every response, and the OpenAPI document (`openapi`)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import openapi, problems
from .metrics import ServiceMetrics, metrics_registry

ReadinessCheck = Callable[[], Awaitable[None]]
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMEASURED = frozenset({"/metrics", "/healthz", "/readyz"})


def install(
    app: FastAPI,
    metrics: ServiceMetrics,
    readiness: dict[str, ReadinessCheck],
    consuming: Callable[[], Awaitable[bool]] | None = None,
    process: Callable[[], dict[str, object]] | None = None,
    max_body_bytes: int = 1 << 20,
    larger_bodies: Mapping[str, int] | None = None,
) -> None:
    """Problems, probes, `/metrics`, request metrics and body limits on `app`. `/readyz` speaks for the process
    that answers it (where several share a port, each checks what it runs itself; `process` names which one it
    is). A request body is at most `max_body_bytes`, or the limit of the first pattern of `larger_bodies` its
    path matches. Every response, a 500 included, carries `API-Version: <app.version>`."""
    problems.install(app)
    openapi.install(app)

    app.add_middleware(BodyLimit, default=max_body_bytes, larger=larger_bodies or {})
    app.add_middleware(RequestMetrics, metrics=metrics)
    build_stack = app.build_middleware_stack  # outside Starlette's error middleware, which answers a 500 itself
    app.build_middleware_stack = lambda: AnsweredErrors(ApiVersion(build_stack(), app.version))  # type: ignore[method-assign]

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers. Cheap on purpose; dependencies are `/readyz`'s business."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Readiness: the database and the broker answer within two seconds each."""
        results: dict[str, str] = {}
        for name, check in readiness.items():
            try:
                await asyncio.wait_for(check(), timeout=2.0)
                results[name] = "ok"
            except Exception as error:  # any failure means not ready; the reason is reported
                results[name] = f"failing: {type(error).__name__}"
        ready = all(value == "ok" for value in results.values())
        body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": results}
        if process is not None:
            body["process"] = process()
        if consuming is not None:  # informational: a replica without partitions is still ready to serve HTTP
            try:
                body["consuming"] = await asyncio.wait_for(consuming(), timeout=2.0)
            except Exception:
                body["consuming"] = False
        return JSONResponse(body, status_code=200 if ready else 503)

    exposed = metrics_registry(metrics)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(exposed), media_type=CONTENT_TYPE_LATEST)


class AnsweredErrors:
    """Pure ASGI middleware ending an unexpected error that was already answered. Starlette's error middleware
    answers it with the 500 problem (the kit's handler logs it) and then raises it again; the server would log it a
    second time and close the connection, so a client still sending its body, or reusing the connection, saw it
    reset. An error raised before the answer was complete still reaches the server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answered = False

        async def send_and_note(message: Message) -> None:
            nonlocal answered
            await send(message)
            answered |= message["type"] == "http.response.body" and not message.get("more_body", False)

        try:
            await self.app(scope, receive, send_and_note)
        except Exception:
            if not answered:
                raise


class ApiVersion:
    """Pure ASGI middleware adding `API-Version: <version>` (the full version) to every HTTP response, as the API
    Design Rules want (`/core/version-header`)."""

    def __init__(self, app: ASGIApp, version: str) -> None:
        self.app = app
        self.header = (b"api-version", version.encode("latin-1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = self.header

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_version)


class RequestMetrics:
    """Pure ASGI middleware counting and timing every HTTP request by method, route template and status.

    The status is the one the application started its response with (500 when it raised before that); the
    duration runs until the response body is sent. Probes and scrapes are not counted."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            if template not in UNMEASURED:
                method = scope["method"] if scope["method"] in METHODS else "OTHER"  # bounded label values
                self.metrics.http_requests.labels(method, template, str(status)).inc()
                self.metrics.http_duration.labels(method, template).observe(time.perf_counter() - started)


class BodyLimit:
    """Pure ASGI middleware refusing a request body beyond its path's limit with 413 problem+json, before the
    application has read it all: at once when its Content-Length says so, else as soon as the bytes received
    pass the limit (the application's read then fails with 413)."""

    def __init__(self, app: ASGIApp, default: int, larger: Mapping[str, int]) -> None:
        self.app, self.default = app, default
        self.larger = [(re.compile(pattern), limit) for pattern, limit in larger.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = next((n for pattern, n in self.larger if pattern.search(scope["path"])), self.default)
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            too_large = _too_large(limit)
            response = problems.problem_response(
                problems.Problem(too_large.status_code, "Request body too large", too_large.detail, kind="too-large"),
                None,
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        await self.app(scope, limited, send)


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the request body is larger than the {limit:,} bytes this endpoint takes")
