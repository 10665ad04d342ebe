"""Why a command is refused, the same in every service: a domain raises one of these before it changes
anything, and every HTTP API answers each kind with the same problem type (the kit maps them).

- `NotFound` → 404: what the command names does not exist (or the caller may not know it does);
- `NotAllowed` → 403: the caller may not do this, and `detail` says why;
- `InvalidInput` → 422: the input breaks a rule; `field` names the field at fault;
- `Conflict` → 409: valid, but the current state does not allow it; `current_status` says that state and
  `kind` the problem type (`conflict`, `illegal-transition`, `insufficient-funds`, ...).
"""

from __future__ import annotations


class DomainError(Exception):
    """A command the rules refuse; `field` names the input at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(DomainError):
    pass


class NotAllowed(DomainError):
    pass


class InvalidInput(DomainError):
    pass


class Conflict(DomainError):
    kind = "conflict"

    def __init__(self, message: str, current_status: str | None = None) -> None:
        super().__init__(message)
        self.current_status = current_status
