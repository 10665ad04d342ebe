"""Errors as RFC 9457 problem details (`application/problem+json`), naming the field at fault.

A refused request changes nothing: raise `Problem` before (or instead of) committing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from buurtkracht_contracts.refusals import Conflict, DomainError, InvalidInput, NotAllowed, NotFound

from . import inputs
from .db import UNAVAILABLE

logger = logging.getLogger(__name__)

# The database away for a moment (`db.UNAVAILABLE`): the same request (with the same Idempotency-Key, in case it was
# cut off in its commit) may succeed a moment later. Answered 503 with Retry-After, not 500: a 500 is a defect.
RETRY_AFTER_SECONDS = 2

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://buurtkracht.nl/problems/"


class Problem(Exception):
    """An HTTP error answer. `errors` lists `{"field": ..., "message": ...}` for input at fault."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        kind: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.kind = status, title, detail, kind
        self.errors, self.headers, self.extensions = errors, headers, extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.kind if self.kind else "about:blank",
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        return body | self.extensions

    @classmethod
    def invalid(cls, field: str, message: str, status: int = 422) -> Problem:
        return cls(
            status,
            "Invalid input",
            f"{field}: {message}",
            kind="invalid-input",
            errors=[{"field": field, "message": message}],
        )

    @classmethod
    def of_validation(cls, items: Iterable[Mapping[str, Any]], within: tuple[str, ...] = ()) -> Problem:
        """The answer to input that pydantic refused: 400 when the JSON does not parse, else 422; each error names
        its field and where it was (`within` goes before locations that start inside the body)."""
        errors = []
        malformed = False
        for item in items:
            where, field = _field(within + tuple(item.get("loc", ())))
            malformed |= item.get("type") == "json_invalid"
            message = inputs.MESSAGES.get((item.get("ctx") or {}).get("pattern"), item.get("msg", "invalid"))
            errors.append({"field": field, "in": where, "message": message, "code": item.get("type")})
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        if malformed:
            return cls(400, "Malformed request body", detail, kind="invalid-input", errors=errors)
        return cls(422, "Invalid input", detail, kind="invalid-input", errors=errors)

    @classmethod
    def not_found(cls, what: str) -> Problem:
        return cls(404, "Not found", f"{what} does not exist", kind="not-found")

    @classmethod
    def forbidden(cls, detail: str) -> Problem:
        return cls(403, "Forbidden", detail, kind="forbidden")

    @classmethod
    def conflict(cls, detail: str, kind: str = "conflict", **extensions: Any) -> Problem:
        return cls(409, "Conflict", detail, kind=kind, **extensions)


def refusal(error: DomainError) -> Problem:
    """The answer to a command the rules refused, by the kind of refusal (see `buurtkracht_contracts.refusals`)."""
    if isinstance(error, NotFound):
        return Problem.not_found(str(error))
    if isinstance(error, NotAllowed):
        return Problem.forbidden(str(error))
    if isinstance(error, InvalidInput):
        return Problem.invalid(error.field or "body", str(error))
    if isinstance(error, Conflict):
        extensions = {"current_status": error.current_status} if error.current_status else {}
        return Problem.conflict(str(error), kind=error.kind, **extensions)
    return Problem.conflict(str(error))


def _instance(request: Request) -> str:
    """The path requested, percent-encoded again, so it is a URI reference whatever bytes the client sent."""
    return quote(request.url.path, safe="/:@!$&'()*+,;=-._~")


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    return JSONResponse(
        problem.body(_instance(request) if request else None),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def _field(location: tuple[Any, ...]) -> tuple[str, str]:
    where = str(location[0]) if location else "body"
    path = ".".join(str(part) for part in location[1:]) or where
    return where, path


def answer(app: FastAPI, error_type: type[Exception], to_problem: Callable[[Any], Problem]) -> None:
    """Answer a service's own exception type as the problem `to_problem` makes of it."""

    async def handler(request: Request, error: Exception) -> JSONResponse:
        return problem_response(to_problem(error), request)

    app.add_exception_handler(error_type, handler)


def install(app: FastAPI) -> None:
    """Answer every error of `app` as problem+json."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, problem: Problem) -> JSONResponse:
        return problem_response(problem, request)

    answer(app, DomainError, refusal)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return problem_response(Problem.of_validation(error.errors()), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        detail = error.detail if isinstance(error.detail, str) else None
        title = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized", 413: "Request body too large"}.get(
            error.status_code, "HTTP error"
        )
        return problem_response(Problem(error.status_code, title, detail, headers=error.headers), request)

    async def _unavailable(request: Request, error: Exception) -> JSONResponse:
        logger.warning("database unavailable answering %s %s: %r", request.method, request.url.path, error)
        detail = "The service cannot reach its database just now. Try again, with the same Idempotency-Key if any."
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        problem = Problem(503, "Service unavailable", detail, kind="unavailable", headers=headers)
        return problem_response(problem, request)

    for error_type in UNAVAILABLE:  # the database away for a moment
        app.add_exception_handler(error_type, _unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error answering %s %s", request.method, request.url.path)
        return problem_response(Problem(500, "Internal server error", "The error was logged."), request)
