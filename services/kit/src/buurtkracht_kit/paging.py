"""Paged lists, the same in every API: `offset` and `limit` query parameters bounded where they come in, so a
huge value is invalid input (422 naming the parameter), never a server error from the database."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

MAX_INTEGER = 2**31 - 1  # the most a PostgreSQL integer holds; more than any list has items to skip
MAX_CENTS = 2**63 - 1  # the most a PostgreSQL bigint holds

Offset = Annotated[int, Query(ge=0, le=MAX_INTEGER, description="How many items to skip")]
Limit = Annotated[int, Query(ge=1, le=100, description="How many items at most")]
