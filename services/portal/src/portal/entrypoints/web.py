"""The portal's pages: server-rendered HTML (Jinja2, NL Design System classes), sign-in with OpenID Connect, and
forms that call the services with the signed-in person's access token. Routes only translate: forms to calls,
answers and problems to pages. None of them is in the OpenAPI document (that holds the JSON API only).

Every POST form carries the session's CSRF token (or, before signing in, the token of the visitor's `bk_csrf`
cookie) and is refused with a 403 page without it; every HTML answer carries the security headers (`install`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
import tomllib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from buurtkracht_contracts.areas import is_area_code
from buurtkracht_kit.db import UNAVAILABLE

from ..adapters.identity_provider import IdentityProvider, OAuthError
from ..adapters.services import Refused, Services, SignInAgain, Unavailable
from ..adapters.unit_of_work import PortalUnitOfWork
from ..adapters.web_sessions import WebSession
from ..domain.model import Status
from ..domain.web import (
    OFFICIAL,
    RESIDENT,
    STEERING_GROUP,
    Visitor,
    cents_from_euros,
    euro_input,
    euros,
    local_path,
    signed,
)
from ..domain.web import unsigned as unsigned_token
from ..service import pages, web_sessions
from ..settings import PortalSettings

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parents[1]
LANGUAGES = ("nl", "en")
SESSION_COOKIE, CSRF_COOKIE, LANGUAGE_COOKIE = "bk_session", "bk_csrf", "bk_taal"
OPEN_FOR_VOLUNTEERS = ("gathering_support", "in_review", "approved", "funded", "in_progress")  # as the service says
CATEGORIES = ("green", "play", "safety", "social", "culture", "sport", "sustainability", "other")
BUDGET_ROWS = 5
# the files under /static/: only these, from the npm packages (in `assets_dir`) and the portal's own
STATIC: dict[str, tuple[str, str]] = {
    "utrecht.css": ("@utrecht/component-library-css/dist/index.css", "text/css"),
    "tokens.css": ("@utrecht/design-tokens/dist/index.css", "text/css"),
    "htmx.min.js": ("htmx.org/dist/htmx.min.js", "text/javascript"),
}
OWN_STATIC: dict[str, tuple[Path, str]] = {"portal.css": (HERE / "static/portal.css", "text/css")}
DOCUMENTATION_PAGES = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})  # FastAPI's, with scripts of their own
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
        b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


# ---------------------------------------------------------------------------------------------------- messages


@cache
def catalogue(language: str) -> dict[str, str]:
    """The language's messages, flattened (`[buurt] title` is `buurt.title`)."""
    flat: dict[str, str] = {}

    def walk(prefix: str, table: dict[str, Any]) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                walk(f"{prefix}{key}.", value)
            else:
                flat[f"{prefix}{key}"] = str(value)

    walk("", tomllib.loads((HERE / "messages" / f"{language}.toml").read_text(encoding="utf-8")))
    return flat


def translate(language: str, key: str, **params: Any) -> str:
    text = catalogue(language).get(key) or catalogue("nl").get(key) or key
    return text.format(**params) if params else text


_templates = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]), enable_async=False
)
_templates.globals["euros"] = euros


def _date(value: Any) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%d-%m-%Y") if value else ""


_templates.filters["date"] = _date


# ---------------------------------------------------------------------------------------------------- context


class PageError(Exception):
    """An answer that is a page of its own: 403, 404, 503..., with a message from the catalogue."""

    def __init__(self, status: int, key: str, detail: str | None = None) -> None:
        super().__init__(key)
        self.status, self.key, self.detail = status, key, detail


class NeedsSignIn(Exception):
    pass


@dataclass
class Context:
    request: Request
    settings: PortalSettings
    language: str
    session: WebSession | None
    csrf_token: str
    new_csrf_cookie: bool = False
    cookies: list[tuple[str, str, int | None]] = field(default_factory=list)
    area_names: dict[str, str] = field(default_factory=dict)

    def area(self, code: str) -> str:
        """The area's name as the registry tells it; its code while the registry has not told of it."""
        return self.area_names.get(code, code)

    @property
    def visitor(self) -> Visitor:
        if self.session is None or not self.session.signed_in:
            return Visitor()
        return Visitor(True, self.session.display_name, frozenset(self.session.roles), frozenset(self.session.areas))

    @property
    def token(self) -> str:
        if self.session is None or self.session.access_token is None:
            raise NeedsSignIn()
        return self.session.access_token

    def t(self, key: str, **params: Any) -> str:
        return translate(self.language, key, **params)

    def label(self, group: str, value: Any) -> str:
        """The catalogue's word for a service's value (a status), or the value itself if it has none."""
        return self.t(f"{group}.{value}") if f"{group}.{value}" in catalogue(self.language) else str(value)


def _settings(request: Request) -> PortalSettings:
    return request.app.state.service.settings


def _unit_of_work(request: Request) -> PortalUnitOfWork:
    return request.app.state.service.unit_of_work()


def _services(request: Request) -> Services:
    service = request.app.state.service
    if getattr(service, "web_services", None) is None:
        service.web_services = Services(service.settings, getattr(service, "web_transport", None))
    return service.web_services


def _identity_provider(request: Request) -> IdentityProvider | None:
    service = request.app.state.service
    if not service.settings.oidc_issuer:
        return None
    if getattr(service, "identity_provider", None) is None:
        service.identity_provider = IdentityProvider(service.settings, getattr(service, "web_transport", None))
    return service.identity_provider


async def _area_names(request: Request) -> dict[str, str]:
    """The registry's names, read once per `area_names_seconds` per process (areas are renamed a few times a year,
    and a page then costs no round trip for them)."""
    service = request.app.state.service
    read_at, names = getattr(service, "area_names", (float("-inf"), {}))
    if time.monotonic() - read_at >= service.settings.area_names_seconds:
        async with _unit_of_work(request) as uow:
            names = await pages.area_names(uow)
        service.area_names = (time.monotonic(), names)
    return names


async def context(request: Request) -> Context:
    ctx = await _context(request)
    ctx.area_names = await _area_names(request)
    return ctx


async def _context(request: Request) -> Context:
    settings = _settings(request)
    token = unsigned_token(request.cookies.get(SESSION_COOKIE), settings.session_secret)
    session = None
    if token:  # a visitor without a session cookie costs no database round trip
        async with _unit_of_work(request) as uow:
            session = await web_sessions.find(uow, token)
    language = request.cookies.get(LANGUAGE_COOKIE, "nl")
    language = language if language in LANGUAGES else "nl"
    if session is not None:
        return Context(request, settings, language, session, session.csrf_token)
    anonymous = request.cookies.get(CSRF_COOKIE)
    if anonymous and len(anonymous) >= 32:
        return Context(request, settings, language, None, anonymous)
    return Context(request, settings, language, None, secrets.token_urlsafe(32), new_csrf_cookie=True)


def signed_in(ctx: Context, *roles: str) -> Visitor:
    """The visitor, who must be signed in (else to sign-in) and have one of `roles` if any are named (else 403)."""
    visitor = ctx.visitor
    if not visitor.signed_in:
        raise NeedsSignIn()
    if roles and not any(visitor.has(role) for role in roles):
        raise PageError(403, "error.forbidden")
    return visitor


async def form_of(request: Request, ctx: Context) -> dict[str, str]:
    """The posted form, once its CSRF token is the visitor's; PageError 403 otherwise."""
    async with request.form() as form:
        values = {key: value for key, value in form.items() if isinstance(value, str)}
    if not hmac.compare_digest(values.get("csrf_token", "").encode(), ctx.csrf_token.encode()):
        raise PageError(403, "error.csrf")
    return values


def _set_cookie(response: Response, settings: PortalSettings, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, samesite="lax", secure=settings.cookie_secure, path="/"
    )


def _finish(ctx: Context, response: Response) -> Response:
    if ctx.new_csrf_cookie:
        _set_cookie(response, ctx.settings, CSRF_COOKIE, ctx.csrf_token, None)
    for name, value, max_age in ctx.cookies:
        if value:
            _set_cookie(response, ctx.settings, name, value, max_age)
        else:
            response.delete_cookie(name, path="/")
    return response


def render(ctx: Context, template: str, status: int = 200, **values: Any) -> Response:
    html = _templates.get_template(template).render(
        t=ctx.t,
        label=ctx.label,
        area=ctx.area,
        asset=lambda name: asset_url(ctx.settings.assets_dir, name),
        lang=ctx.language,
        visitor=ctx.visitor,
        csrf_token=ctx.csrf_token,
        municipality=ctx.settings.municipality_name,
        sign_in_on=bool(ctx.settings.oidc_issuer),
        path=ctx.request.url.path,
        notice=_notice(ctx),
        **({"errors": {}, "form": {}} | values),
    )
    # a page holds the visitor's CSRF token, and signed in their own data: never kept by a shared cache
    return _finish(ctx, HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"}))


def _notice(ctx: Context) -> str | None:
    key = ctx.request.query_params.get("melding", "")
    return ctx.t(f"notice.{key}") if f"notice.{key}" in catalogue(ctx.language) else None


def redirect(ctx: Context, to: str, notice: str | None = None) -> Response:
    target = local_path(to) + (("&" if "?" in to else "?") + f"melding={notice}" if notice else "")
    return _finish(ctx, RedirectResponse(target, status_code=303))


def sign_in_url(path: str) -> str:
    return f"/auth/login?next={quote(path, safe='/')}"


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as error:
        raise PageError(404, "error.not_found") from error


def field_errors(ctx: Context, refused: Refused) -> dict[str, str]:
    """The service's problems by field, or under `_` when it named no field (shown at the top of the form)."""
    found = refused.field_errors
    return found or {"_": refused.detail}


# ---------------------------------------------------------------------------------------------------- wiring


class SecurityHeaders:
    """Pure ASGI middleware: every HTML answer carries the CSP (no inline script or style), nosniff, the
    referrer policy and frame-ancestors 'none'."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        documentation = scope["path"] in DOCUMENTATION_PAGES

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and documentation:
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS[1:]]
            elif message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html") or 300 <= message["status"] < 400:
                    names = {k.lower() for k, _ in headers}
                    headers += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    """The pages' error answers and security headers on `app`."""
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(PageError)
    async def _page_error(request: Request, error: PageError) -> Response:
        ctx = await context(request)
        return render(ctx, "error.html", error.status, message=ctx.t(error.key), detail=error.detail)

    @app.exception_handler(NeedsSignIn)
    async def _needs_sign_in(request: Request, error: NeedsSignIn) -> Response:
        path = request.url.path if request.method == "GET" else request.headers.get("referer", "/")
        if path.startswith(("http://", "https://")):
            path = "/" + path.split("/", 3)[-1] if path.count("/") >= 3 else "/"
        return RedirectResponse(sign_in_url(local_path(path)), status_code=303)

    @app.exception_handler(SignInAgain)
    async def _sign_in_again(request: Request, error: SignInAgain) -> Response:
        ctx = await context(request)
        if ctx.session is not None:
            async with _unit_of_work(request) as uow:
                await web_sessions.sign_out(uow, ctx.session)
                await uow.commit()
        response = RedirectResponse(sign_in_url(request.url.path if request.method == "GET" else "/"), 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.exception_handler(Unavailable)
    async def _unavailable(request: Request, error: Unavailable) -> Response:
        ctx = await context(request)
        return render(ctx, "error.html", 503, message=ctx.t("error.unavailable"))

    @app.exception_handler(Refused)
    async def _refused(request: Request, refused: Refused) -> Response:
        ctx = await context(request)
        key = {403: "error.forbidden", 404: "error.not_found"}.get(refused.status, "error.refused")
        return render(ctx, "error.html", refused.status, message=ctx.t(key), detail=refused.detail)


class PageRoute(APIRoute):
    """A page's route: an error nobody expected is logged and answered with the error page (503 when the database
    is away), never with a traceback or a JSON problem; the expected ones go to the handlers `install` adds."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handle = super().get_route_handler()

        async def handle_page(request: Request) -> Response:
            try:
                return await handle(request)
            except (PageError, NeedsSignIn, SignInAgain, Unavailable, Refused, HTTPException):
                raise
            except Exception as error:
                if isinstance(error, (*UNAVAILABLE, OSError)):
                    logger.warning("page %s: %s", request.url.path, type(error).__name__)
                    status, key = 503, "error.unavailable"
                else:
                    logger.exception("page %s failed", request.url.path)
                    status, key = 500, "error.unexpected"
                try:
                    ctx = await context(request)
                    return render(ctx, "error.html", status, message=ctx.t(key))
                except Exception:  # the database away too: a page without the visitor's session
                    html = f"<!DOCTYPE html><html lang=nl><title>Buurtkracht</title><h1>{translate('nl', key)}</h1>"
                    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

        return handle_page


router = APIRouter(include_in_schema=False, route_class=PageRoute)


# ---------------------------------------------------------------------------------------------------- static


def _asset(assets_dir: Path, name: str) -> tuple[Path, str] | None:
    """The file and media type of the asset `name`; None for a name that is no asset."""
    if name in OWN_STATIC:
        return OWN_STATIC[name]
    if name in STATIC:
        relative, media_type = STATIC[name]
        return assets_dir / relative, media_type
    return None


@cache
def asset_url(assets_dir: Path, name: str) -> str:
    """The asset's URL, naming its content: browsers keep an asset a year, and a changed one is a new URL."""
    found = _asset(assets_dir, name)
    if found is None:
        raise KeyError(name)
    return f"/static/{name}?v={hashlib.sha256(found[0].read_bytes()).hexdigest()[:12]}"


@router.get("/static/{name}")
async def static(name: str, request: Request) -> Response:
    found = _asset(_settings(request).assets_dir, name)
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain")
    path, media_type = found
    return FileResponse(
        path,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"},
    )


# ---------------------------------------------------------------------------------------------------- public


@router.get("/")
async def home(request: Request) -> Response:
    ctx = await context(request)
    async with _unit_of_work(request) as uow:
        areas = await pages.areas(uow)
    return render(ctx, "home.html", areas=areas, my_areas=sorted(ctx.visitor.areas))


@router.post("/taal")
async def switch_language(request: Request) -> Response:
    ctx = await context(request)
    form = await form_of(request, ctx)
    language = form.get("taal") if form.get("taal") in LANGUAGES else "nl"
    ctx.cookies.append((LANGUAGE_COOKIE, language, 365 * 24 * 3600))
    return redirect(ctx, local_path(form.get("next")))


@router.get("/buurten/{area_code}")
async def area(area_code: str, request: Request) -> Response:
    ctx = await context(request)
    if not is_area_code(area_code):
        raise PageError(404, "error.not_found")
    async with _unit_of_work(request) as uow:
        page = await pages.area_page(uow, area_code)
    return render(ctx, "area.html", page=page, sections=pages.SECTIONS)


@router.get("/initiatieven/nieuw")
async def new_initiative(request: Request) -> Response:
    ctx = await context(request)
    visitor = signed_in(ctx, RESIDENT)
    form = {"area_code": next(iter(sorted(visitor.areas)), ""), "key": str(uuid.uuid4())}
    return render(ctx, "new_initiative.html", form=form, categories=CATEGORIES, rows=range(BUDGET_ROWS))


@router.post("/initiatieven/nieuw")
async def propose_initiative(request: Request) -> Response:
    ctx = await context(request)
    signed_in(ctx, RESIDENT)
    form = await form_of(request, ctx)
    errors: dict[str, str] = {}
    lines = []
    for row in range(BUDGET_ROWS):
        description = form.get(f"budget_lines.{row}.description", "").strip()
        amount = form.get(f"budget_lines.{row}.amount_cents", "").strip()
        if not description and not amount:
            continue
        try:
            lines.append({"description": description, "amount_cents": cents_from_euros(amount)})
        except ValueError:
            errors[f"budget_lines.{row}.amount_cents"] = ctx.t("form.amount_invalid")
    draft = {
        "title": form.get("title", ""),
        "summary": form.get("summary", ""),
        "description": form.get("description", ""),
        "area_code": form.get("area_code", ""),
        "category": form.get("category", ""),
        "budget_lines": lines,
    }
    if not errors:
        services = _services(request)
        try:
            made = await services.propose(ctx.token, draft, form.get("key") or str(uuid.uuid4()))
            if form.get("action") == "submit":
                await services.submit(ctx.token, uuid.UUID(made["id"]))
            return redirect(
                ctx, f"/initiatieven/{made['id']}", "submitted" if form.get("action") == "submit" else "saved"
            )
        except Refused as refused:
            errors = field_errors(ctx, refused)
    return render(
        ctx,
        "new_initiative.html",
        422,
        form=form | {"key": str(uuid.uuid4())},  # the refused request's key is spent: a new one for the next try
        errors=errors,
        categories=CATEGORIES,
        rows=range(BUDGET_ROWS),
    )


async def _initiative_page(ctx: Context, initiative_id: uuid.UUID, status: int = 200, **values: Any) -> Response:
    async with _unit_of_work(ctx.request) as uow:
        listed = await pages.initiative(uow, initiative_id)
        rounds = await pages.open_rounds_for(uow, listed.initiative.area_code) if listed else []
    full = None
    if ctx.visitor.signed_in:  # the initiators' draft, and what the public page leaves out (description)
        try:
            full = await _services(ctx.request).initiative(ctx.token, initiative_id)
        except Refused as refused:
            if listed is None or refused.status not in (403, 404):
                raise
        except Unavailable:  # the public page still shows what the read model has
            if listed is None:
                raise
    if listed is None and full is None:
        raise PageError(404, "error.not_found")
    visitor = ctx.visitor
    area_code = listed.initiative.area_code if listed else full["area_code"]
    # the service's status when it answered (the read model follows it through Kafka, a moment later)
    status_now = full["status"] if full else listed.initiative.status.value
    initiator = _is_initiator(ctx, full)
    may_ask_help = initiator and status_now in OPEN_FOR_VOLUNTEERS
    help_requests, help_tags = [], []
    if may_ask_help:
        try:
            help_requests = await _services(ctx.request).help_requests(ctx.token, initiative_id)
            help_tags = await _services(ctx.request).offer_tags(ctx.token)
        except (Refused, Unavailable):  # the rest of the page does without them
            may_ask_help = False
    return render(
        ctx,
        "initiative.html",
        status,
        listed=listed,
        full=full,
        rounds=rounds,
        report=_report(listed, full),
        may_support=visitor.lives_in(area_code) and status_now == Status.GATHERING_SUPPORT.value and not initiator,
        may_volunteer=visitor.lives_in(area_code)
        and status_now not in ("completed", "cancelled", "rejected")
        and not initiator,
        may_review=visitor.has(OFFICIAL) and visitor.acts_for(area_code) and status_now == "in_review",
        may_submit=full is not None and full.get("status") in ("draft", "changes_requested"),
        may_start=initiator and status_now == Status.FUNDED.value,
        may_claim=initiator and status_now in (Status.FUNDED.value, Status.IN_PROGRESS.value),
        may_report=initiator and status_now == Status.IN_PROGRESS.value,
        may_ask_help=may_ask_help,
        help_requests=help_requests,
        help_tags=help_tags,
        initiative_id=initiative_id,
        status_now=status_now,
        **values,
    )


def _is_initiator(ctx: Context, full: dict[str, Any] | None) -> bool:
    """The signed-in person is the initiative's owner or an accepted co-initiator (as the service says)."""
    subject = ctx.session.subject if ctx.session is not None and ctx.visitor.signed_in else None
    return bool(full and subject and (subject == full.get("owner_id") or subject in full.get("co_initiators", [])))


def _report(listed: Any, full: dict[str, Any] | None) -> Any:
    """The public report: the read model's, or the service's at once after reporting (with each line's budget)."""
    if listed is not None and (found := listed.initiative.public_report()) is not None:
        return found
    if full is None or not full.get("report") or full.get("status") != Status.COMPLETED.value:
        return None
    budgeted = {line["description"]: line["amount_cents"] for line in full.get("budget_lines", [])}
    spending = [
        {"description": line["description"], "budgeted_cents": budgeted.get(line["description"]), **line}
        for line in full["report"]["spending"]
    ]
    return {
        "what_was_done": full["report"]["what_was_done"],
        "spending": spending,
        "spent_amount_cents": sum(line["spent_cents"] for line in spending),
    }


PageOf = Callable[..., Awaitable[Response]]


async def _one_request(
    request: Request,
    object_id: str,
    role: str,
    ask: Callable[[Services, str, uuid.UUID, dict[str, str]], Awaitable[object]],
    page: PageOf,
    notice: str | Callable[[dict[str, str]], str],
    *,
    back: str,
    status: Callable[[Refused], int] = lambda refused: 422,
    keep_form: bool = False,
) -> Response:
    """A form that asks one service for one thing about one object: the visitor signed in with `role`, the form's
    CSRF token checked, then `ask`; back to `back` (`{id}` the object's) with `notice`, or, refused, the object's
    `page` again with the service's problem next to its field (and what was typed, when `keep_form`)."""
    ctx = await context(request)
    the_id = _uuid(object_id)
    signed_in(ctx, role)
    form = await form_of(request, ctx)
    try:
        await ask(_services(request), ctx.token, the_id, form)
    except Refused as refused:
        kept = {"form": form} if keep_form else {}
        return await page(ctx, the_id, status(refused), errors=field_errors(ctx, refused), **kept)
    return redirect(ctx, back.format(id=the_id), notice if isinstance(notice, str) else notice(form))


def _conflict_or_invalid(refused: Refused) -> int:
    return 409 if refused.status == 409 else 422


@router.get("/initiatieven/{initiative_id}")
async def initiative(initiative_id: str, request: Request) -> Response:
    return await _initiative_page(await context(request), _uuid(initiative_id))


def _withdraws(form: dict[str, str]) -> bool:
    return form.get("action") == "withdraw"


def _support_notice(form: dict[str, str]) -> str:
    return "support_withdrawn" if _withdraws(form) else "supported"


@router.post("/initiatieven/{initiative_id}/steun")
async def support(initiative_id: str, request: Request) -> Response:
    async def ask(services: Services, token: str, the_id: uuid.UUID, form: dict[str, str]) -> object:
        return await services.support(token, the_id, withdraw=_withdraws(form))

    return await _one_request(
        request,
        initiative_id,
        RESIDENT,
        ask,
        _initiative_page,
        _support_notice,
        back="/initiatieven/{id}",
        status=_conflict_or_invalid,
    )


@router.post("/initiatieven/{initiative_id}/indienen")
async def submit(initiative_id: str, request: Request) -> Response:
    async def ask(services: Services, token: str, the_id: uuid.UUID, form: dict[str, str]) -> object:
        return await services.submit(token, the_id)

    return await _one_request(
        request, initiative_id, RESIDENT, ask, _initiative_page, "submitted", back="/initiatieven/{id}"
    )


@router.post("/initiatieven/{initiative_id}/meedoen")
async def volunteer(initiative_id: str, request: Request) -> Response:
    async def ask(services: Services, token: str, the_id: uuid.UUID, form: dict[str, str]) -> object:
        return await services.volunteer(token, the_id, form.get("offer", ""))

    return await _one_request(
        request,
        initiative_id,
        RESIDENT,
        ask,
        _initiative_page,
        "volunteered",
        back="/initiatieven/{id}",
        keep_form=True,
    )


def _chosen_tags(form: dict[str, str]) -> list[str]:
    """The tags ticked in a form (one checkbox `tag_<name>` per tag)."""
    return sorted(name.removeprefix("tag_") for name, value in form.items() if name.startswith("tag_") and value)


def _whole_number(form: dict[str, str], name: str) -> int | str:
    """A whole number typed in a form; the text as typed when it is none (the service names the field)."""
    typed = form.get(name, "").strip()
    return int(typed) if typed.isdigit() else typed


@router.post("/initiatieven/{initiative_id}/hulpvraag")
async def request_help(initiative_id: str, request: Request) -> Response:
    async def ask(services: Services, token: str, the_id: uuid.UUID, form: dict[str, str]) -> object:
        body = {
            "tags": _chosen_tags(form),
            "description": form.get("description", "").strip(),
            "hours_per_person": _whole_number(form, "hours_per_person"),
            "people_needed": _whole_number(form, "people_needed"),
        }
        return await services.request_help(token, the_id, body)

    return await _one_request(
        request,
        initiative_id,
        RESIDENT,
        ask,
        _initiative_page,
        "help_requested",
        back="/initiatieven/{id}",
        status=_conflict_or_invalid,
        keep_form=True,
    )


@router.post("/initiatieven/{initiative_id}/beginnen")
async def start(initiative_id: str, request: Request) -> Response:
    async def ask(services: Services, token: str, the_id: uuid.UUID, form: dict[str, str]) -> object:
        return await services.start(token, the_id)

    status = _conflict_or_invalid
    return await _one_request(
        request, initiative_id, RESIDENT, ask, _initiative_page, "started", back="/initiatieven/{id}", status=status
    )


async def _initiators_initiative(ctx: Context, initiative_id: uuid.UUID) -> dict[str, Any]:
    """The initiative as its service shows it to the signed-in initiator; 403 for anyone else."""
    signed_in(ctx, RESIDENT)
    full = await _services(ctx.request).initiative(ctx.token, initiative_id)
    if not _is_initiator(ctx, full):
        raise PageError(403, "error.forbidden")
    return full


async def _declare_page(ctx: Context, full: dict[str, Any], status: int = 200, **values: Any) -> Response:
    try:
        budget = await _services(ctx.request).budget(ctx.token, uuid.UUID(full["id"]))
    except Refused as refused:  # no budget known to the vouchers service (yet): the form says nothing of it
        if refused.status not in (403, 404):
            raise
        budget = None
    form = values.pop("form", {}) | {"key": str(uuid.uuid4())}  # a new key for each form shown, after a refusal too
    return render(ctx, "declare.html", status, full=full, budget=budget, form=form, **values)


@router.get("/initiatieven/{initiative_id}/declareren")
async def declare_page(initiative_id: str, request: Request) -> Response:
    ctx = await context(request)
    return await _declare_page(ctx, await _initiators_initiative(ctx, _uuid(initiative_id)))


@router.post("/initiatieven/{initiative_id}/declareren")
async def declare(initiative_id: str, request: Request) -> Response:
    """An expense claimed on the initiative's budget; the form's key makes a second send of it the same claim."""
    ctx = await context(request)
    the_id = _uuid(initiative_id)
    signed_in(ctx, RESIDENT)
    form = await form_of(request, ctx)
    errors: dict[str, str] = {}
    claim: dict[str, Any] = {
        "initiative_id": str(the_id),
        "supplier": form.get("supplier", "").strip(),
        "invoice_reference": form.get("invoice_reference", "").strip(),
    }
    try:
        claim["amount_cents"] = cents_from_euros(form.get("amount_cents", ""))
    except ValueError:
        errors["amount_cents"] = ctx.t("form.amount_invalid")
    for name in ("supplier", "invoice_reference"):
        if not claim[name]:
            errors[name] = ctx.t("form.required")
    if not errors:
        try:
            made = await _services(request).claim_expense(ctx.token, claim, form.get("key") or str(uuid.uuid4()))
            return redirect(ctx, f"/declaraties/{made['id']}", "claimed")
        except Refused as refused:
            if refused.status == 403:
                raise
            errors = field_errors(ctx, refused)
    return await _declare_page(ctx, await _initiators_initiative(ctx, the_id), 422, errors=errors, form=form)


def _report_form(full: dict[str, Any], form: dict[str, str]) -> dict[str, str]:
    return {f"spending.{n}.spent_cents": "" for n, _ in enumerate(full.get("budget_lines", []))} | form


@router.get("/initiatieven/{initiative_id}/verslag")
async def report_page(initiative_id: str, request: Request) -> Response:
    ctx = await context(request)
    full = await _initiators_initiative(ctx, _uuid(initiative_id))
    return render(ctx, "report.html", full=full, form=_report_form(full, {}))


@router.post("/initiatieven/{initiative_id}/verslag")
async def report(initiative_id: str, request: Request) -> Response:
    """The initiators' account of what was done and spent per budget line; it completes the initiative."""
    ctx = await context(request)
    the_id = _uuid(initiative_id)
    full = await _initiators_initiative(ctx, the_id)
    form = await form_of(request, ctx)
    errors: dict[str, str] = {}
    spending = []
    for n, line in enumerate(full.get("budget_lines", [])):
        name = f"spending.{n}.spent_cents"
        try:
            spending.append({"description": line["description"], "spent_cents": cents_from_euros(form.get(name, ""))})
        except ValueError:
            errors[name] = ctx.t("form.amount_invalid")
    if not form.get("what_was_done", "").strip():
        errors["what_was_done"] = ctx.t("form.required")
    if not errors:
        try:
            await _services(request).report(
                ctx.token, the_id, {"what_was_done": form["what_was_done"], "spending": spending}
            )
            return redirect(ctx, f"/initiatieven/{the_id}", "reported")
        except Refused as refused:
            errors = field_errors(ctx, refused)
    return render(ctx, "report.html", 422, full=full, form=_report_form(full, form), errors=errors)


# ---------------------------------------------------------------------------------------------------- rounds


async def _round_page(ctx: Context, round_id: uuid.UUID, status: int = 200, **values: Any) -> Response:
    async with _unit_of_work(ctx.request) as uow:
        public_round, totals = await pages.round_totals(uow, round_id)
    visitor = ctx.visitor
    the_round = wallet = ballot = outcome = None
    initiatives: list[dict[str, Any]] = []
    if visitor.signed_in:
        services = _services(ctx.request)
        the_round = await services.round(ctx.token, round_id)
        equal_shares = the_round.get("mechanism") == "equal_shares"
        if visitor.has(RESIDENT) or visitor.has(OFFICIAL):
            try:
                initiatives = (await services.round_initiatives(ctx.token, round_id))["items"]
            except Refused as refused:
                if refused.status != 403:
                    raise
        if equal_shares and the_round.get("status") == "closed":
            outcome = await services.outcome(ctx.token, round_id)
        elif equal_shares and visitor.lives_in(the_round["area_code"]):
            ballot = await services.ballot(ctx.token, round_id)
        elif visitor.has(RESIDENT) and not equal_shares:
            wallet = await services.wallet(ctx.token, round_id)
    elif public_round is None:
        raise NeedsSignIn()
    form = values.pop("form", {}) | {"key": str(uuid.uuid4())}  # a new key for each form shown, after a refusal too
    return render(
        ctx,
        "round.html",
        status,
        round_id=round_id,
        public_round=public_round,
        totals=totals,
        the_round=the_round,
        wallet=wallet,
        ballot=ballot,
        outcome=outcome,
        initiatives=initiatives,
        pledgeable=[i for i in initiatives if i.get("status") == "open"],
        form=form,
        **values,
    )


@router.get("/rondes/{round_id}")
async def round_page(round_id: str, request: Request) -> Response:
    return await _round_page(await context(request), _uuid(round_id))


def _as_answered(refused: Refused) -> int:
    return refused.status


@router.post("/rondes/{round_id}/portemonnee")
async def claim_wallet(round_id: str, request: Request) -> Response:
    async def ask(services: Services, token: str, the_id: uuid.UUID, form: dict[str, str]) -> object:
        return await services.claim_wallet(token, the_id)

    return await _one_request(
        request, round_id, RESIDENT, ask, _round_page, "wallet_claimed", back="/rondes/{id}", status=_as_answered
    )


@router.post("/rondes/{round_id}/toezeggingen")
async def pledge(round_id: str, request: Request) -> Response:
    ctx = await context(request)
    the_id = _uuid(round_id)
    signed_in(ctx, RESIDENT)
    form = await form_of(request, ctx)
    errors: dict[str, str] = {}
    try:
        amount = cents_from_euros(form.get("amount_cents", ""))
    except ValueError:
        errors["amount_cents"] = ctx.t("form.amount_invalid")
    try:
        initiative_id = uuid.UUID(form.get("initiative_id", ""))
    except ValueError:
        errors["initiative_id"] = ctx.t("form.choose")
    if not errors:
        try:
            await _services(request).pledge(ctx.token, the_id, initiative_id, amount, form.get("key") or "")
            return redirect(ctx, f"/rondes/{the_id}", "pledged")
        except Refused as refused:
            errors = field_errors(ctx, refused)
    return await _round_page(ctx, the_id, 422, errors=errors, form=form)


@router.post("/rondes/{round_id}/stembiljet")
async def cast_ballot(round_id: str, request: Request) -> Response:
    """An Equal Shares ballot: the initiatives ticked (none withdraws every approval)."""

    async def ask(services: Services, token: str, the_id: uuid.UUID, form: dict[str, str]) -> object:
        ticked = [str(value) for value in (await request.form()).getlist("initiative_ids")]
        return await services.cast_ballot(token, the_id, ticked)

    return await _one_request(
        request, round_id, RESIDENT, ask, _round_page, "ballot_cast", back="/rondes/{id}", status=_conflict_or_invalid
    )


@router.post("/rondes/{round_id}/sluiten")
async def close_round(round_id: str, request: Request) -> Response:
    async def ask(services: Services, token: str, the_id: uuid.UUID, form: dict[str, str]) -> object:
        return await services.close_round(token, the_id)

    return await _one_request(
        request, round_id, OFFICIAL, ask, _round_page, "closed", back="/rondes/{id}", status=_as_answered
    )


@router.get("/portemonnee")
async def wallets(request: Request) -> Response:
    ctx = await context(request)
    visitor = signed_in(ctx, RESIDENT)
    rounds = []
    async with _unit_of_work(request) as uow:
        for area_code in sorted(visitor.areas):
            rounds += await pages.open_rounds_for(uow, area_code)
    found = []
    for totals in rounds:
        if totals.round.mechanism == "equal_shares":  # a vote, without wallets: its page holds the ballot
            continue
        found.append((totals, await _services(request).wallet(ctx.token, totals.round.id)))
    return render(ctx, "wallets.html", found=found)


# ---------------------------------------------------------------------------------------------------- officials


@router.get("/beoordelen")
async def review_queue(request: Request) -> Response:
    ctx = await context(request)
    visitor = signed_in(ctx, OFFICIAL)
    items: list[dict[str, Any]] = []
    for area_code in sorted(visitor.areas):
        items += (await _services(request).initiatives(ctx.token, area_code=area_code, status="in_review"))["items"]
    return render(ctx, "review_queue.html", items=items)


async def _review_page(ctx: Context, initiative_id: uuid.UUID, status: int = 200, **values: Any) -> Response:
    full = await _services(ctx.request).initiative(ctx.token, initiative_id)
    form = {"approved_amount_cents": euro_input(full.get("requested_amount_cents"))} | values.pop("form", {})
    return render(ctx, "review.html", status, full=full, form=form, **values)


@router.get("/beoordelen/{initiative_id}")
async def review_page(initiative_id: str, request: Request) -> Response:
    ctx = await context(request)
    signed_in(ctx, OFFICIAL)
    return await _review_page(ctx, _uuid(initiative_id))


@router.post("/beoordelen/{initiative_id}")
async def review(initiative_id: str, request: Request) -> Response:
    ctx = await context(request)
    the_id = _uuid(initiative_id)
    signed_in(ctx, OFFICIAL)
    form = await form_of(request, ctx)
    errors: dict[str, str] = {}
    body: dict[str, Any] = {"decision": form.get("decision", "")}
    for text in ("reason", "comment"):
        if form.get(text, "").strip():
            body[text] = form[text]
    if form.get("approved_amount_cents", "").strip():
        try:
            body["approved_amount_cents"] = cents_from_euros(form["approved_amount_cents"])
        except ValueError:
            errors["approved_amount_cents"] = ctx.t("form.amount_invalid")
    if not errors:
        try:
            await _services(request).review(ctx.token, the_id, body)
            return redirect(ctx, "/beoordelen", "reviewed")
        except Refused as refused:
            errors = field_errors(ctx, refused)
    return await _review_page(ctx, the_id, 422, errors=errors, form=form)


@router.get("/declaraties")
async def claims(request: Request) -> Response:
    ctx = await context(request)
    signed_in(ctx, OFFICIAL, STEERING_GROUP)
    status = request.query_params.get("status")
    status = status if status in ("held", "approved", "declined") else "held"  # held: waiting for a decision
    found = await _services(request).claims(ctx.token, status=status)
    return render(ctx, "claims.html", items=found["items"])


async def _claim_page(ctx: Context, claim_id: uuid.UUID, status: int = 200, **values: Any) -> Response:
    claim = await _services(ctx.request).claim(ctx.token, claim_id)
    async with _unit_of_work(ctx.request) as uow:
        listed = await pages.initiative(uow, uuid.UUID(claim["initiative_id"]))
    title = listed.initiative.title if listed else None
    if title is None:  # not public (yet): the service's own answer, for whoever may see it
        try:
            title = (await _services(ctx.request).initiative(ctx.token, uuid.UUID(claim["initiative_id"])))["title"]
        except (Refused, Unavailable):
            title = None
    form = values.pop("form", {}) | {"key": str(uuid.uuid4())}  # a new key for each form shown, after a refusal too
    visitor = ctx.visitor
    may_decide = claim["status"] == "held" and (visitor.has(OFFICIAL) or visitor.has(STEERING_GROUP))
    return render(ctx, "claim.html", status, claim=claim, title=title, may_decide=may_decide, form=form, **values)


@router.get("/declaraties/{claim_id}")
async def claim_page(claim_id: str, request: Request) -> Response:
    """A claim, to whom the vouchers service shows it: its deciders, and the initiators who made it."""
    ctx = await context(request)
    signed_in(ctx)
    return await _claim_page(ctx, _uuid(claim_id))


@router.post("/declaraties/{claim_id}")
async def decide_claim(claim_id: str, request: Request) -> Response:
    ctx = await context(request)
    the_id = _uuid(claim_id)
    signed_in(ctx, OFFICIAL, STEERING_GROUP)
    form = await form_of(request, ctx)
    body = {"decision": form.get("decision", "")}
    if form.get("reason", "").strip():
        body["reason"] = form["reason"]
    try:
        await _services(request).decide_claim(ctx.token, the_id, body, form.get("key") or str(uuid.uuid4()))
    except Refused as refused:
        return await _claim_page(ctx, the_id, 422, errors=field_errors(ctx, refused), form=form)
    return redirect(ctx, "/declaraties", "decided")


async def _awards_page(ctx: Context, round_id: uuid.UUID, status: int = 200, **values: Any) -> Response:
    services = _services(ctx.request)
    awards = (await services.awards(ctx.token, round_id))["items"]
    try:
        initiatives = (await services.round_initiatives(ctx.token, round_id))["items"]
    except Refused as refused:  # a steering group member who is no resident there: the public list of the area
        if refused.status != 403:
            raise
        area_code = (await services.round(ctx.token, round_id))["area_code"]
        async with _unit_of_work(ctx.request) as uow:
            approved = (await pages.area_page(uow, area_code)).sections["approved"]
        initiatives = [{"initiative_id": str(one.initiative.id), "title": one.initiative.title} for one in approved]
    form = values.pop("form", {}) | {"key": str(uuid.uuid4())}  # a new key for each form shown, after a refusal too
    return render(
        ctx, "awards.html", status, round_id=round_id, awards=awards, initiatives=initiatives, form=form, **values
    )


@router.get("/rondes/{round_id}/toekenningen")
async def awards(round_id: str, request: Request) -> Response:
    ctx = await context(request)
    signed_in(ctx, STEERING_GROUP, OFFICIAL)
    return await _awards_page(ctx, _uuid(round_id))


@router.post("/rondes/{round_id}/toekenningen")
async def propose_or_vote(round_id: str, request: Request) -> Response:
    ctx = await context(request)
    the_id = _uuid(round_id)
    signed_in(ctx, STEERING_GROUP)
    form = await form_of(request, ctx)
    services = _services(request)
    try:
        if form.get("award_id"):
            await services.vote(ctx.token, the_id, _uuid(form["award_id"]), form.get("vote", ""))
            return redirect(ctx, f"/rondes/{the_id}/toekenningen", "voted")
        try:
            amount = cents_from_euros(form.get("amount_cents", ""))
        except ValueError:
            return await _awards_page(
                ctx, the_id, 422, errors={"amount_cents": ctx.t("form.amount_invalid")}, form=form
            )
        initiative_id = _uuid(form.get("initiative_id", ""))
        await services.propose_award(ctx.token, the_id, initiative_id, amount, form.get("key") or str(uuid.uuid4()))
        return redirect(ctx, f"/rondes/{the_id}/toekenningen", "proposed")
    except Refused as refused:
        return await _awards_page(ctx, the_id, 422, errors=field_errors(ctx, refused), form=form)


# ---------------------------------------------------------------------------------------------------- my things


async def _ask_page(ctx: Context, ask_id: uuid.UUID, status: int = 200, **values: Any) -> Response:
    ask = await _services(ctx.request).ask(ctx.token, ask_id)
    return render(ctx, "ask.html", status, ask=ask, ask_id=ask_id, **values)


@router.get("/vragen/{ask_id}")
async def ask_page(ask_id: str, request: Request) -> Response:
    """A personal ask to help (the ask message links here): what is asked, and the two answers."""
    ctx = await context(request)
    signed_in(ctx, RESIDENT)
    return await _ask_page(ctx, _uuid(ask_id))


@router.post("/vragen/{ask_id}")
async def answer_ask(ask_id: str, request: Request) -> Response:
    async def ask(services: Services, token: str, the_id: uuid.UUID, form: dict[str, str]) -> object:
        return await services.answer_ask(token, the_id, form.get("answer", ""))

    def notice(form: dict[str, str]) -> str:
        return "help_accepted" if form.get("answer") == "yes" else "help_declined"

    return await _one_request(
        request, ask_id, RESIDENT, ask, _ask_page, notice, back="/vragen/{id}", status=_conflict_or_invalid
    )


@router.get("/inbox")
async def inbox(request: Request) -> Response:
    ctx = await context(request)
    signed_in(ctx)
    found = await _services(request).inbox(ctx.token)
    return render(ctx, "inbox.html", page=found)


@router.post("/inbox/{notification_id}/gelezen")
async def mark_read(notification_id: str, request: Request) -> Response:
    ctx = await context(request)
    signed_in(ctx)
    await form_of(request, ctx)
    await _services(request).mark_read(ctx.token, _uuid(notification_id))
    return redirect(ctx, "/inbox")


async def _settings_page(ctx: Context, status: int = 200, **values: Any) -> Response:
    services = _services(ctx.request)
    contact = await services.mine(ctx.token, "contact-details") or {}
    preferences = await services.mine(ctx.token, "preferences") or {}
    follows = await services.mine(ctx.token, "area-follows") or {}
    form = {
        "email": contact.get("email", ""),
        "language": contact.get("language", ctx.language),
        "frequency": preferences.get("frequency", "immediate"),
        "email_enabled": "on" if preferences.get("email_enabled", True) else "",
        "area_codes": " ".join(follows.get("area_codes", [])),
    } | values.pop("form", {})
    offer, tags = None, []
    if ctx.visitor.has(RESIDENT):
        offer = await services.offer(ctx.token)
        tags = await services.offer_tags(ctx.token)
    offer_form = {
        "hours_per_month": str(offer["hours_per_month"]) if offer else "4",
        "reach": offer["reach"] if offer else "buurt",
        "max_asks_per_month": str(offer["max_asks_per_month"]) if offer else "2",
        "introduction": offer["introduction"] if offer else "",
        **{f"tag_{tag}": "on" for tag in (offer["tags"] if offer else [])},
    } | values.pop("offer_form", {})
    return render(
        ctx, "settings.html", status, form=form, offer=offer, offer_tags=tags, offer_form=offer_form, **values
    )


@router.get("/instellingen")
async def settings_page(request: Request) -> Response:
    ctx = await context(request)
    signed_in(ctx)
    return await _settings_page(ctx)


@router.post("/instellingen")
async def save_settings(request: Request) -> Response:
    ctx = await context(request)
    signed_in(ctx)
    form = await form_of(request, ctx)
    services = _services(request)
    errors: dict[str, str] = {}
    puts: list[tuple[str, dict[str, Any]]] = [
        ("preferences", {"email_enabled": form.get("email_enabled") == "on", "frequency": form.get("frequency", "")}),
        ("area-follows", {"area_codes": form.get("area_codes", "").replace(",", " ").split()}),
    ]
    if form.get("email", "").strip():
        puts.insert(0, ("contact-details", {"email": form["email"].strip(), "language": form.get("language", "nl")}))
    for what, body in puts:
        try:
            await services.put_mine(ctx.token, what, body)
        except Refused as refused:
            errors |= field_errors(ctx, refused)
    if errors:
        return await _settings_page(ctx, 422, errors=errors, form=form)
    return redirect(ctx, "/instellingen", "saved")


@router.post("/instellingen/hulp")
async def save_offer(request: Request) -> Response:
    """A resident's offer of help: put, or withdrawn (`action=withdraw`)."""
    ctx = await context(request)
    signed_in(ctx, RESIDENT)
    form = await form_of(request, ctx)
    services = _services(request)
    if form.get("action") == "withdraw":
        await services.withdraw_offer(ctx.token)
        return redirect(ctx, "/instellingen", "offer_withdrawn")
    body = {
        "tags": _chosen_tags(form),
        "hours_per_month": _whole_number(form, "hours_per_month"),
        "reach": form.get("reach", ""),
        "max_asks_per_month": _whole_number(form, "max_asks_per_month"),
        "introduction": form.get("introduction", "").strip(),
    }
    try:
        await services.put_offer(ctx.token, body)
    except Refused as refused:
        return await _settings_page(ctx, 422, errors=field_errors(ctx, refused), offer_form=form)
    return redirect(ctx, "/instellingen", "offer_saved")


# ---------------------------------------------------------------------------------------------------- sign-in


@router.get("/auth/login")
async def login(request: Request) -> Response:
    ctx = await context(request)
    provider = _identity_provider(request)
    if provider is None:
        raise PageError(503, "error.sign_in_off")
    state: dict[str, Any] = {"next": local_path(request.query_params.get("next"))}
    try:
        response = await provider.redirect_to_sign_in(request, state)
    except (OAuthError, OSError, ValueError) as error:
        raise PageError(503, "error.sign_in_unavailable") from error
    except Exception as error:  # the provider unreachable (httpx) or its metadata unusable
        if type(error).__module__.startswith(("httpx", "authlib")):
            raise PageError(503, "error.sign_in_unavailable") from error
        raise
    async with _unit_of_work(request) as uow:
        token, _ = await web_sessions.begin_sign_in(uow, ctx.session, state)
        await uow.commit()
    if token is not None:
        ctx.cookies.append((SESSION_COOKIE, signed(token, ctx.settings.session_secret), None))
    return _finish(ctx, response)


@router.get("/auth/callback")
async def callback(request: Request) -> Response:
    ctx = await context(request)
    provider = _identity_provider(request)
    if provider is None:
        raise PageError(503, "error.sign_in_off")
    if ctx.session is None:
        raise PageError(400, "error.sign_in_failed")
    state = dict(ctx.session.sign_in_state)
    next_path = local_path(state.get("next"))
    try:
        answer = await provider.finish_sign_in(request, state)
    except OAuthError as error:
        raise PageError(400, "error.sign_in_failed", str(error)) from error
    except Exception as error:
        if type(error).__module__.startswith(("httpx", "authlib", "joserfc")):
            raise PageError(400, "error.sign_in_failed") from error
        raise
    access_token = answer["access_token"]
    try:
        principal = await request.app.state.token_verifier.verify_without_blocking(access_token)
    except Exception as error:  # a token the services would not take either
        raise PageError(400, "error.sign_in_failed") from error
    claims = answer["userinfo"]
    expires_at = answer.get("expires_at")
    async with _unit_of_work(request) as uow:
        token, _ = await web_sessions.signed_in(
            uow,
            ctx.session,
            subject=principal.subject,
            display_name=claims.get("name") or claims.get("email"),
            roles=[str(role) for role in principal.roles],
            areas=list(principal.areas),
            access_token=access_token,
            id_token=answer.get("id_token"),
            hours=ctx.settings.session_hours,
            access_expires_at=datetime.fromtimestamp(expires_at, UTC) if expires_at else None,
        )
        await uow.commit()
    ctx.cookies.append((SESSION_COOKIE, signed(token, ctx.settings.session_secret), None))
    return redirect(ctx, next_path)


@router.get("/auth/logout")
async def logout_page(request: Request) -> Response:
    ctx = await context(request)
    return render(ctx, "logout.html")


@router.post("/auth/logout")
async def logout(request: Request) -> Response:
    ctx = await context(request)
    await form_of(request, ctx)
    id_token = None
    if ctx.session is not None:
        async with _unit_of_work(request) as uow:
            id_token = await web_sessions.sign_out(uow, ctx.session)
            await uow.commit()
    ctx.cookies.append((SESSION_COOKIE, "", None))
    provider = _identity_provider(request)
    target = "/"
    if provider is not None and id_token:
        try:
            target = await provider.sign_out_url(id_token)
        except Exception:  # the provider away: signed out here all the same
            target = "/"
    return _finish(ctx, RedirectResponse(target, status_code=303))
