"""Buurtkracht's event contracts, shared by every service and usable by integrations.

Importing the package registers every event model (one module per producing context).
"""

from . import initiatives, notifications, vouchers
from .event import Envelope, Event, source_urn
from .money import Cents
from .registry import UnknownEventType, event_types, model_for, parse, register

__all__ = [
    "Cents",
    "Envelope",
    "Event",
    "UnknownEventType",
    "event_types",
    "initiatives",
    "model_for",
    "notifications",
    "parse",
    "register",
    "source_urn",
    "vouchers",
]
