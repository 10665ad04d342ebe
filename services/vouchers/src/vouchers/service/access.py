"""Who may do what: officials and the steering group act for the areas they are responsible for."""

from __future__ import annotations

from typing import TypeVar

from buurtkracht_contracts.refusals import NotAllowed, NotFound
from buurtkracht_kit.auth import Principal, Role

T = TypeVar("T")


def require(actor: Principal, roles: set[Role], area_code: str, action: str) -> None:
    if not (actor.roles & roles) or not actor.acts_for(area_code):
        names = " or ".join(sorted(role.value for role in roles))
        raise NotAllowed(f"only a {names} responsible for {area_code} can {action}")


def found(thing: T | None, what: str) -> T:
    if thing is None:
        raise NotFound(what)
    return thing
