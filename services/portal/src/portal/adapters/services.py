"""The other services, called over HTTP with the signed-in person's access token (the only HTTP calls the portal
makes to them). Each answer is JSON, or one of three exceptions the pages translate:

- `Refused`: the service said no (4xx problem+json); `field_errors` names the fields at fault;
- `SignInAgain`: the service did not take the token (401), so the person signs in again;
- `Unavailable`: the service is unreachable, too slow or failed (5xx), so the page says so kindly.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from ..settings import PortalSettings


class Refused(Exception):
    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("detail") or problem.get("title") or str(status))
        self.status, self.problem = status, problem

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or self.problem.get("title") or self.status)

    @property
    def field_errors(self) -> dict[str, str]:
        """Field -> message, from `errors` (the kit's problems) or `invalid-params` (RFC 9457's example)."""
        found: dict[str, str] = {}
        for item in self.problem.get("errors") or []:
            if isinstance(item, dict) and item.get("field"):
                found.setdefault(str(item["field"]), str(item.get("message") or ""))
        for item in self.problem.get("invalid-params") or []:
            if isinstance(item, dict) and item.get("name"):
                found.setdefault(str(item["name"]), str(item.get("reason") or ""))
        return found


class SignInAgain(Exception):
    pass


class Unavailable(Exception):
    pass


class Services:
    def __init__(self, settings: PortalSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._bases = {
            "initiatives": settings.initiatives_url.rstrip("/"),
            "vouchers": settings.vouchers_url.rstrip("/"),
            "notifications": settings.notifications_url.rstrip("/"),
        }
        self._client = httpx.AsyncClient(timeout=settings.service_timeout_seconds, transport=transport)

    async def close(self) -> None:
        await self._client.aclose()

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        token: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        url = f"{self._bases[service]}/api/v1{path}"
        try:
            answer = await self._client.request(method, url, json=json, params=params, headers=headers)
        except httpx.HTTPError as error:
            raise Unavailable(f"{service}: {type(error).__name__}") from error
        if answer.status_code == 401:
            raise SignInAgain()
        if answer.status_code >= 500:
            raise Unavailable(f"{service} answered {answer.status_code}")
        if answer.status_code >= 400:
            try:
                problem = answer.json()
            except ValueError:
                problem = {}
            raise Refused(answer.status_code, problem if isinstance(problem, dict) else {})
        if answer.status_code == 204 or not answer.content:
            return None
        return answer.json()

    # initiatives
    async def initiative(self, token: str, initiative_id: uuid.UUID) -> dict[str, Any]:
        return await self.call("initiatives", "GET", f"/initiatives/{initiative_id}", token)

    async def initiatives(self, token: str, **params: Any) -> dict[str, Any]:
        return await self.call("initiatives", "GET", "/initiatives", token, params=params)

    async def propose(self, token: str, draft: dict[str, Any], key: str) -> dict[str, Any]:
        return await self.call("initiatives", "POST", "/initiatives", token, json=draft, idempotency_key=key)

    async def submit(self, token: str, initiative_id: uuid.UUID) -> dict[str, Any]:
        return await self.call("initiatives", "POST", f"/initiatives/{initiative_id}/submit", token)

    async def support(self, token: str, initiative_id: uuid.UUID, *, withdraw: bool = False) -> Any:
        method = "DELETE" if withdraw else "POST"
        return await self.call("initiatives", method, f"/initiatives/{initiative_id}/supports", token)

    async def start(self, token: str, initiative_id: uuid.UUID) -> dict[str, Any]:
        return await self.call("initiatives", "POST", f"/initiatives/{initiative_id}/start", token)

    async def report(self, token: str, initiative_id: uuid.UUID, report: dict[str, Any]) -> dict[str, Any]:
        return await self.call("initiatives", "POST", f"/initiatives/{initiative_id}/report", token, json=report)

    async def volunteer(self, token: str, initiative_id: uuid.UUID, offer: str) -> Any:
        path = f"/initiatives/{initiative_id}/volunteers"
        return await self.call("initiatives", "POST", path, token, json={"offer": offer})

    async def review(self, token: str, initiative_id: uuid.UUID, review: dict[str, Any]) -> Any:
        return await self.call("initiatives", "POST", f"/initiatives/{initiative_id}/review", token, json=review)

    # asking neighbours
    async def offer_tags(self, token: str) -> list[str]:
        return (await self.call("initiatives", "GET", "/offers/tags", token))["tags"]

    async def offer(self, token: str) -> dict[str, Any] | None:
        """My offer of help; None when I made none."""
        try:
            return await self.call("initiatives", "GET", "/offers/me", token)
        except Refused as refused:
            if refused.status == 404:
                return None
            raise

    async def put_offer(self, token: str, offer: dict[str, Any]) -> dict[str, Any]:
        return await self.call("initiatives", "PUT", "/offers/me", token, json=offer)

    async def withdraw_offer(self, token: str) -> None:
        await self.call("initiatives", "DELETE", "/offers/me", token)

    async def request_help(self, token: str, initiative_id: uuid.UUID, request: dict[str, Any]) -> dict[str, Any]:
        path = f"/initiatives/{initiative_id}/help-requests"
        return await self.call("initiatives", "POST", path, token, json=request)

    async def help_requests(self, token: str, initiative_id: uuid.UUID) -> list[dict[str, Any]]:
        return await self.call("initiatives", "GET", f"/initiatives/{initiative_id}/help-requests", token)

    async def ask(self, token: str, ask_id: uuid.UUID) -> dict[str, Any]:
        return await self.call("initiatives", "GET", f"/asks/{ask_id}", token)

    async def answer_ask(self, token: str, ask_id: uuid.UUID, answer: str) -> dict[str, Any]:
        return await self.call("initiatives", "POST", f"/asks/{ask_id}/answer", token, json={"answer": answer})

    # vouchers
    async def round(self, token: str, round_id: uuid.UUID) -> dict[str, Any]:
        return await self.call("vouchers", "GET", f"/rounds/{round_id}", token)

    async def round_initiatives(self, token: str, round_id: uuid.UUID) -> dict[str, Any]:
        params = {"limit": 100}
        return await self.call("vouchers", "GET", f"/rounds/{round_id}/initiatives", token, params=params)

    async def rounds(self, token: str, area_code: str) -> dict[str, Any]:
        params = {"area_code": area_code, "limit": 100}
        return await self.call("vouchers", "GET", "/rounds", token, params=params)

    async def close_round(self, token: str, round_id: uuid.UUID) -> dict[str, Any]:
        return await self.call("vouchers", "POST", f"/rounds/{round_id}/close", token)

    async def wallet(self, token: str, round_id: uuid.UUID) -> dict[str, Any] | None:
        """My wallet in the round; None when I have none (yet)."""
        try:
            return await self.call("vouchers", "GET", f"/rounds/{round_id}/wallets/me", token)
        except Refused as refused:
            if refused.status == 404:
                return None
            raise

    async def claim_wallet(self, token: str, round_id: uuid.UUID) -> dict[str, Any]:
        return await self.call("vouchers", "POST", f"/rounds/{round_id}/wallets/me", token)

    async def pledge(
        self, token: str, round_id: uuid.UUID, initiative_id: uuid.UUID, amount_cents: int, key: str
    ) -> dict[str, Any]:
        body = {"initiative_id": str(initiative_id), "amount_cents": amount_cents}
        return await self.call("vouchers", "POST", f"/rounds/{round_id}/pledges", token, json=body, idempotency_key=key)

    async def ballot(self, token: str, round_id: uuid.UUID) -> dict[str, Any] | None:
        """My ballot in an Equal Shares round; None when I have cast none."""
        try:
            return await self.call("vouchers", "GET", f"/rounds/{round_id}/ballots/me", token)
        except Refused as refused:
            if refused.status == 404:
                return None
            raise

    async def cast_ballot(self, token: str, round_id: uuid.UUID, initiative_ids: list[str]) -> dict[str, Any]:
        body = {"initiative_ids": initiative_ids}
        return await self.call("vouchers", "PUT", f"/rounds/{round_id}/ballots/me", token, json=body)

    async def outcome(self, token: str, round_id: uuid.UUID) -> dict[str, Any]:
        return await self.call("vouchers", "GET", f"/rounds/{round_id}/outcome", token)

    async def claims(self, token: str, **params: Any) -> dict[str, Any]:
        return await self.call("vouchers", "GET", "/expense-claims", token, params={"limit": 100, **params})

    async def budget(self, token: str, initiative_id: uuid.UUID) -> dict[str, Any]:
        return await self.call("vouchers", "GET", f"/initiative-budgets/{initiative_id}", token)

    async def claim_expense(self, token: str, claim: dict[str, Any], key: str) -> dict[str, Any]:
        return await self.call("vouchers", "POST", "/expense-claims", token, json=claim, idempotency_key=key)

    async def claim(self, token: str, claim_id: uuid.UUID) -> dict[str, Any]:
        return await self.call("vouchers", "GET", f"/expense-claims/{claim_id}", token)

    async def decide_claim(self, token: str, claim_id: uuid.UUID, decision: dict[str, Any], key: str) -> Any:
        path = f"/expense-claims/{claim_id}/decision"
        return await self.call("vouchers", "POST", path, token, json=decision, idempotency_key=key)

    async def awards(self, token: str, round_id: uuid.UUID) -> dict[str, Any]:
        return await self.call("vouchers", "GET", f"/rounds/{round_id}/awards", token, params={"limit": 100})

    async def propose_award(
        self, token: str, round_id: uuid.UUID, initiative_id: uuid.UUID, amount_cents: int, key: str
    ) -> Any:
        body = {"initiative_id": str(initiative_id), "amount_cents": amount_cents}
        return await self.call("vouchers", "POST", f"/rounds/{round_id}/awards", token, json=body, idempotency_key=key)

    async def vote(self, token: str, round_id: uuid.UUID, award_id: uuid.UUID, vote: str) -> Any:
        path = f"/rounds/{round_id}/awards/{award_id}/votes/me"
        return await self.call("vouchers", "PUT", path, token, json={"vote": vote})

    # notifications
    async def inbox(self, token: str) -> dict[str, Any]:
        return await self.call("notifications", "GET", "/inbox", token, params={"limit": 50})

    async def mark_read(self, token: str, notification_id: uuid.UUID) -> Any:
        return await self.call("notifications", "POST", f"/inbox/{notification_id}/read", token)

    async def mine(self, token: str, what: str) -> dict[str, Any] | None:
        """`contact-details`, `preferences` or `area-follows` of mine; None when not registered yet."""
        try:
            return await self.call("notifications", "GET", f"/{what}/me", token)
        except Refused as refused:
            if refused.status == 404:
                return None
            raise

    async def put_mine(self, token: str, what: str, body: dict[str, Any]) -> Any:
        return await self.call("notifications", "PUT", f"/{what}/me", token, json=body)
