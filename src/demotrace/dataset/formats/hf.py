"""The dataset as built (Hugging Face Parquet), copied to OUT.

Writes ``OUT/data/*.parquet``, ``OUT/meta/`` (``info.json``, ``episodes.parquet``),
``OUT/README.md`` (the dataset card) and ``OUT/plots/``, byte for byte. Every Parquet file keeps
its ``huggingface`` schema metadata, so
``datasets.load_dataset("parquet", data_files="OUT/data/*.parquet")`` decodes ``observation`` as
a PIL image, and the folder can be pushed to the Hub as it is.

The dialect is the canonical action itself: nothing is lost, nothing is skipped.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from demotrace.dataset.formats import common
from demotrace.dataset.formats.common import Action, Step

#: What a built dataset holds, as files or folders under its root.
PARTS = ("meta", "README.md", "plots")


def to_dialect(step: Step) -> list[Action]:
    """The canonical action, unchanged."""
    return [step["action"]]


def from_dialect(items: Sequence[Action], size: tuple[int, int]) -> Action:
    """The canonical action, unchanged (``size`` is not needed: coordinates are already 0-1)."""
    return items[0]


def export(
    dataset: common.Dataset, out: Path, progress: common.Progress | None = None
) -> common.Summary:
    summary = common.Summary("hf", out)
    root = dataset.root
    try:
        (out / "data").mkdir(parents=True, exist_ok=True)
        for path in dataset.data_files:
            shutil.copy2(path, out / "data" / path.name)
            summary.files += 1
            summary.steps += pq.ParquetFile(path).metadata.num_rows
            if progress is not None:
                progress(summary.steps, dataset.total_steps)
        for part in PARTS:
            source = root / part
            if source.is_dir():
                shutil.copytree(source, out / part)
                summary.files += sum(1 for f in (out / part).rglob("*") if f.is_file())
            elif source.is_file():
                shutil.copy2(source, out / part)
                summary.files += 1
    except OSError as exc:
        raise common.unwritable(out, exc) from exc
    summary.episodes = len(dataset.episodes)
    return summary
