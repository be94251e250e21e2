"""The response envelope every list route shares, as in OpenAQ v3: `meta` plus `results`."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


class Meta(BaseModel):
    found: int = Field(
        description="Results in this response (this page); `total`, where a list gives it, "
        "counts every match."
    )


class Envelope(BaseModel, Generic[M, R]):
    meta: M
    results: list[R]
