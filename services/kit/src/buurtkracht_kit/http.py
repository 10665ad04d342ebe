"""The HTTP face every service shares: problem+json errors, `/healthz`, `/readyz`, `/metrics`, request metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import problems
from .metrics import ServiceMetrics

ReadinessCheck = Callable[[], Awaitable[None]]
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def install(
    app: FastAPI,
    metrics: ServiceMetrics,
    readiness: dict[str, ReadinessCheck],
    consuming: Callable[[], Awaitable[bool]] | None = None,
) -> None:
    problems.install(app)

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", "unmatched")
            if template not in {"/metrics", "/healthz", "/readyz"}:
                method = request.method if request.method in METHODS else "OTHER"  # bounded label values
                metrics.http_requests.labels(method, template, str(status)).inc()
                metrics.http_duration.labels(method, template).observe(time.perf_counter() - started)

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
        if consuming is not None:  # informational: a replica without partitions is still ready to serve HTTP
            try:
                body["consuming"] = await asyncio.wait_for(consuming(), timeout=2.0)
            except Exception:
                body["consuming"] = False
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
