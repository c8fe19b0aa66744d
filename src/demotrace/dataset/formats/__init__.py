"""``demotrace export``: a built dataset in the formats agent builders read.

Each format is a module with ``to_dialect(step)`` (one canonical step -> the dialect's actions;
raises :class:`~demotrace.dataset.formats.common.Skip` when it cannot express the step),
``from_dialect(items, size)`` (those actions -> the canonical action; ``size`` is the
observation's pixel size) and ``export(dataset, out, progress)``. Each module's docstring says
what its format cannot express and what it writes instead; ``docs/exports.md`` shows the files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from demotrace.dataset.formats import (
    agentnet,
    anthropic,
    common,
    hf,
    mind2web,
    openai,
    pyautogui,
    qwen,
    uitars,
)
from demotrace.errors import DatasetError


class Format(Protocol):
    """What every format module provides."""

    def to_dialect(self, step: common.Step) -> list[Any]: ...

    def from_dialect(self, items: Sequence[Any], size: tuple[int, int]) -> common.Action: ...

    def export(
        self, dataset: common.Dataset, out: Path, progress: common.Progress | None = None
    ) -> common.Summary: ...


FORMATS: dict[str, Format] = {
    "hf": hf,
    "agentnet": agentnet,
    "pyautogui": pyautogui,
    "anthropic": anthropic,
    "openai": openai,
    "qwen": qwen,
    "uitars": uitars,
    "mind2web": mind2web,
}


def export_dataset(
    dataset: Path, fmt: str, out: Path, progress: common.Progress | None = None
) -> dict[str, Any]:
    """Export the dataset at ``dataset`` as ``fmt`` into the new folder ``out``.

    Returns the summary: ``format``, ``out``, ``episodes`` and ``steps`` written, ``files``
    written, and ``skipped`` (reason -> steps the format could not express). ``progress(done,
    total)`` is called as steps are read. Raises :class:`DatasetError` for an unknown format, a
    missing, damaged or newer dataset, or an output folder that exists or cannot be written.
    """
    if fmt not in FORMATS:
        raise DatasetError(
            f"Unknown export format {fmt!r}. Choose one of: {', '.join(FORMATS)} "
            "(see docs/exports.md)."
        )
    source = common.Dataset(dataset)
    common.prepare_out(out, dataset)
    return FORMATS[fmt].export(source, out, progress).as_dict()
