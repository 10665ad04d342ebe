"""Money is integer euro cents, never a float: `Cents` refuses anything else at the boundary."""

from typing import Annotated

from pydantic import Field, StrictInt

Cents = Annotated[StrictInt, Field(ge=0, description="An amount in euro cents (integer, never negative).")]
