"""The events the extension sends (docs/browser.md), as strict pydantic models.

Strict types (an int is not a string, a bool not an int), unknown fields refused, every string
and list bounded. Names (and option texts) may arrive with up to 1,000 characters and are cut to
200; ids likewise.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

MAX_URL = 4096
MAX_TEXT = 1000  # titles, names, option texts and values, ids: refused above this
NAME_CHARS = 200  # names, option texts and ids are cut to this
MAX_COORD = 10_000_000
MAX_SENSITIVE = 100
MAX_ID = 2**53  # tab and window ids (-1: none)


def _cut(text: str) -> str:
    return text[:NAME_CHARS]


Coord = Annotated[int, Field(ge=-MAX_COORD, le=MAX_COORD)]
Box = Annotated[list[Coord], Field(min_length=4, max_length=4)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Name = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_cut)]
Short = Annotated[str, Field(max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Target(_Strict):
    tag: Annotated[str, Field(min_length=1, max_length=64)]
    role: Short | None = None
    name: Name | None = None
    id: Name | None = None
    type: Annotated[str, Field(max_length=32)] | None = None
    autocomplete: Annotated[str, Field(max_length=200)] | None = None
    bbox: Box | None  # None: an element the page cannot place on the screen
    secret: bool


class Option(_Strict):
    text: Name
    value: Text
    index: Annotated[int, Field(ge=-1, le=1_000_000)]


class _Event(_Strict):
    t: Annotated[float, Field(gt=0, lt=1e14, allow_inf_nan=False)]
    tab: Annotated[int, Field(ge=-1, le=MAX_ID)]
    win: Annotated[int, Field(ge=-1, le=MAX_ID)]
    handler_us: Annotated[int, Field(ge=0, le=60_000_000)] | None = None


class Active(_Event):
    type: Literal["active"]
    url: Annotated[str, Field(max_length=MAX_URL)] | None = None
    title: Text | None = None


class Page(_Event):
    type: Literal["page"]
    url: Annotated[str, Field(max_length=MAX_URL)]
    title: Text
    viewport: Box
    dpr: Annotated[float, Field(gt=0, le=16, allow_inf_nan=False)]
    sensitive: Annotated[list[Box], Field(max_length=MAX_SENSITIVE)]


class Pointer(_Event):
    type: Literal["pointer"]
    x: Coord
    y: Coord
    button: Annotated[int, Field(ge=0, le=4)]
    target: Target


class Focus(_Event):
    type: Literal["focus"]
    target: Target


class Keys(_Event):
    type: Literal["keys"]
    target: Target


class Scroll(_Event):
    type: Literal["scroll"]
    x: Coord
    y: Coord
    target: Target


class Change(_Event):
    type: Literal["change"]
    target: Target
    option: Option | None = None


Event = Annotated[
    Active | Page | Pointer | Focus | Keys | Scroll | Change, Field(discriminator="type")
]
EVENT_TYPES = ("active", "page", "pointer", "focus", "keys", "scroll", "change")

_events: TypeAdapter[list[Any]] = TypeAdapter(list[Event])


def validate_events(raw: Any) -> list[dict[str, Any]]:
    """The events as plain dicts (every field of their type, ``None`` where absent), or
    :class:`pydantic.ValidationError`."""
    return [e.model_dump() for e in _events.validate_python(raw, strict=True)]
