"""Which fields of an event name a person, declared once, at the field: its type is `PersonId` (or a list of
them, or an optional one), in an event model or in a model nested in one.

A person is a pseudonymous id: a resident's, a steering-group member's, an official's or an admin's sign-in (the
OIDC subject). The published JSON Schemas mark such a field `"x-personal": true`. What the declaration is for:
- `pseudonymised` hands an event to someone who may not see who is who (a webhook subscription without the
  right to): every person replaced by a pseudonym, every field the contracts do not know left out (it might
  name a person, and nobody declared it);
- `people_in` finds every person an event names (to recognise a resident who asked to be forgotten);
- `undeclared` is the check that keeps the declaration complete: a string field named like a person's id
  (`*_id`, `*_ids`, `*_by`, or after a role such as `initiators`) that is not a `PersonId` is a mistake, unless
  it is listed in `NOT_A_PERSON` with the reason.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel


class _Personal:
    """The marker of a field that names a person; shown in JSON Schema as `"x-personal": true`."""

    def __repr__(self) -> str:
        return "PERSONAL"

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema = handler(core_schema)
        schema["x-personal"] = True
        return schema


PERSONAL = _Personal()
PersonId = Annotated[str, PERSONAL]

# Words of a field name that say it holds people (or their ids); `*_by` says who did something.
_PERSON_WORDS = (
    "resident|member|owner|supporter|actor|recipient|initiator|volunteer|official|admin|chair|voter|proposer|"
    "person|people|user|subject"
)
_NAMED_LIKE_A_PERSON = re.compile(rf"(_ids?|_by)$|(^|_)({_PERSON_WORDS})s?(_|$)")

# "Model.field" of string fields named like a person's id that hold no person, each with the reason.
NOT_A_PERSON: dict[str, str] = {}


def _parts(annotation: Any) -> tuple[bool, list[Any]]:
    """Whether `annotation` marks a person, and the types inside it (list items, union members)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        inner, *metadata = typing.get_args(annotation)
        personal, nested = _parts(inner)
        return personal or any(item is PERSONAL for item in metadata), nested
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset):
        personal, nested = False, []
        for argument in typing.get_args(annotation):
            inner_personal, inner_nested = _parts(argument)
            personal, nested = personal or inner_personal, nested + inner_nested
        return personal, nested
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return False, [annotation]
    return False, []


def _is_personal(model: type[BaseModel], name: str) -> bool:
    field = model.model_fields[name]
    return any(item is PERSONAL for item in field.metadata) or _parts(field.annotation)[0]


def _nested(model: type[BaseModel], name: str) -> list[type[BaseModel]]:
    return _parts(model.model_fields[name].annotation)[1]


def personal_fields(model: type[BaseModel]) -> list[str]:
    """The paths of every field of `model` that names a person, nested models included: `supporter_id`,
    `initiators[]`, `votes[].member_id`."""
    paths = []
    for name, field in model.model_fields.items():
        suffix = "[]" if typing.get_origin(field.annotation) is list else ""
        if _is_personal(model, name):
            paths.append(name + suffix)
        for inner in _nested(model, name):
            paths += [f"{name}{suffix}.{path}" for path in personal_fields(inner)]
    return paths


def names_people(model: type[BaseModel], name: str) -> bool:
    """Whether field `name` of `model` names a person, itself or in a model nested in it."""
    return _is_personal(model, name) or any(personal_fields(inner) for inner in _nested(model, name))


def _holds_strings(annotation: Any) -> bool:
    if annotation is str:
        return True
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _holds_strings(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset):
        return any(_holds_strings(argument) for argument in typing.get_args(annotation))
    return False


def undeclared(model: type[BaseModel]) -> list[str]:
    """The paths of string fields of `model` (nested models included) named like a person's id that are not
    declared `PersonId` nor listed in `NOT_A_PERSON`; empty when the declaration is complete."""
    found = []
    for name, field in model.model_fields.items():
        if (
            _NAMED_LIKE_A_PERSON.search(name)
            and _holds_strings(field.annotation)
            and not _is_personal(model, name)
            and f"{model.__name__}.{name}" not in NOT_A_PERSON
        ):
            found.append(name)
        for inner in _nested(model, name):
            found += [f"{name}.{path}" for path in undeclared(inner)]
    return found


def _walk(value: Any, model: type[BaseModel], person: Callable[[str], str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    kept: dict[str, Any] = {}
    for name, item in value.items():
        if name not in model.model_fields:
            continue  # unknown to these contracts: it might name a person
        if _is_personal(model, name):
            kept[name] = _replace_strings(item, person)
        elif nested := _nested(model, name):
            kept[name] = _each(item, lambda element: _walk(element, nested[0], person))
        else:
            kept[name] = item
    return kept


def _replace_strings(value: Any, person: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return person(value)
    if isinstance(value, list):
        return [_replace_strings(item, person) for item in value]
    return value


def _each(value: Any, apply: Callable[[Any], Any]) -> Any:
    if isinstance(value, list):
        return [apply(item) for item in value]
    if isinstance(value, dict):
        return apply(value)
    return value


def pseudonymised(data: dict[str, Any], model: type[BaseModel], pseudonym: Callable[[str], str]) -> dict[str, Any]:
    """An event's JSON `data` (as `model` describes it, not necessarily valid) with every person replaced by
    `pseudonym(person)` and every field `model` does not know left out."""
    return _walk(data, model, pseudonym)


def people_in(data: dict[str, Any], model: type[BaseModel]) -> set[str]:
    """Every person an event's JSON `data` names in a field declared `PersonId`."""
    found: set[str] = set()

    def collect(person: str) -> str:
        found.add(person)
        return person

    _walk(data, model, collect)
    return found
