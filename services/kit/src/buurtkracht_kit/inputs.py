"""What a client may send, the same in every API: bodies with no unknown fields, strings that hold only what a
person can type and PostgreSQL can store, and times with their zone.

Every string a client sends is one of these types, so its limits are in the OpenAPI documents too:
- `Line` (a title, a name, a resident's pseudonymous id as `ResidentId`): no control characters at all, no line or
  paragraph separators;
- `Text` (a description, a report): line breaks and tabs allowed, no other control characters.
Both refuse NUL (PostgreSQL cannot store it), the C1 controls, U+2028/U+2029 (they break an e-mail subject and a
log line) and lone surrogates (pydantic refuses those as not a string). A refusal is a 422 naming the field, with
the message of `MESSAGES`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, StringConstraints

_CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029"
LINE_PATTERN = rf"^[^\t\n\r{_CONTROLS}]*$"
TEXT_PATTERN = rf"^[^{_CONTROLS}]*$"

MESSAGES = {
    LINE_PATTERN: "must be one line without control characters (such as NUL, tabs or line breaks)",
    TEXT_PATTERN: "must not contain control characters (such as NUL) other than line breaks and tabs",
}

Line = Annotated[str, StringConstraints(pattern=LINE_PATTERN)]
Text = Annotated[str, StringConstraints(pattern=TEXT_PATTERN)]
ResidentId = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=LINE_PATTERN)]


EARLIEST, LATEST = 1900, 2200  # years a time of ours lies between; beyond them PostgreSQL's driver cannot convert


def _written_out(value: object) -> object:
    if isinstance(value, datetime | str):
        return value
    raise ValueError("must be a date and time written out (ISO 8601) with its zone, e.g. 2026-12-01T09:00:00+01:00")


def _plausible(value: datetime) -> datetime:
    if not EARLIEST <= value.year <= LATEST:  # so converting it to UTC, as the driver does, cannot overflow
        raise ValueError(f"must lie between the years {EARLIEST} and {LATEST}")
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_written_out), AfterValidator(_plausible)]
"""A point in time as the documents describe it: an ISO 8601 string with its zone (a number of seconds is refused),
between the years 1900 and 2200."""


class Strict(BaseModel):
    """A request body: a field the API does not know is refused, not ignored."""

    model_config = ConfigDict(extra="forbid")
