"""The one map from CloudEvents `type` to event model, and from an envelope to a typed event.

A type is registered once; registering a second model under the same type is a programming error.
When a breaking change gives an event a new version, the old type stays registered with an
upcaster that turns its data into the new model, so consumers only ever handle the newest model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .event import Envelope, Event

E = TypeVar("E", bound=type[Event])

_MODELS: dict[str, type[Event]] = {}
_UPCASTERS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {}


class UnknownEventType(LookupError):
    """No model is registered for a CloudEvents type."""


def register(model: E) -> E:
    """Class decorator: make `model` the model of its `event_type`."""
    event_type = model.event_type
    if event_type in _MODELS and _MODELS[event_type] is not model:
        raise ValueError(f"event type {event_type} is registered twice")
    _MODELS[event_type] = model
    return model


def register_upcaster(old_type: str, new_type: str, upcast: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Read events of `old_type` as `new_type`, converting their data with the pure function `upcast`."""
    _UPCASTERS[old_type] = (new_type, upcast)


def current_type(event_type: str) -> str:
    """The type an event of `event_type` is read as, after its upcasters."""
    while event_type in _UPCASTERS:
        event_type = _UPCASTERS[event_type][0]
    return event_type


def event_types() -> dict[str, type[Event]]:
    """Every registered type with its model (a copy)."""
    return dict(_MODELS)


def models_on(topic: str) -> list[type[Event]]:
    """The models of the events published on `topic`, in registration order; not the old versions of an event
    (read through their upcasters, never published)."""
    return [model for t, model in _MODELS.items() if model.topic == topic and t not in _UPCASTERS]


def model_for(event_type: str) -> type[Event]:
    try:
        return _MODELS[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def parse(envelope: Envelope) -> Event:
    """The typed event in an envelope, upcast to the newest version; raises on unknown types or bad data."""
    event_type, data = envelope.type, envelope.data
    while event_type in _UPCASTERS:
        event_type, upcast = _UPCASTERS[event_type]
        data = upcast(data)
    return model_for(event_type).model_validate(data)
