"""The Ray engine of ``demotrace build``: :func:`build_session` on Ray Data, one session a task.

Each session reference becomes one row of a Ray dataset; ``map_batches`` opens the source in the
worker, builds the session, and returns its steps and episodes as Arrow IPC bytes. Ray Data is told
to keep the order of the rows, and the driver feeds the results to the same
:class:`~demotrace.dataset.build.DatasetWriter` as the local engine, in the same order, so the two
engines write the same Parquet bytes.

Without ``address`` a local Ray runtime is started on this machine's CPUs (``RAY_ADDRESS`` or
``--ray-address`` joins a running cluster; the sources must then be readable from every node).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from demotrace.dataset.build import BuildConfig, SessionOutput, build_session
from demotrace.errors import DatasetError, DemotraceError


def _to_ipc(table: pa.Table | None) -> bytes:
    if table is None:
        return b""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> pa.Table | None:
    if not data:
        return None
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def _build_batch(batch: pa.Table, cfg: BuildConfig) -> pa.Table:
    from demotrace.dataset.sources import open_source

    out: dict[str, list[Any]] = {"ref": [], "steps": [], "episodes": [], "meta": []}
    sources: dict[str, Any] = {}
    try:
        for ref_json in batch.column("ref").to_pylist():
            ref = json.loads(ref_json)
            try:
                source = sources.get(ref["source"])
                if source is None:
                    source = sources[ref["source"]] = open_source(ref["source"])
                result = build_session(source, ref, cfg)
                error = None
            except DemotraceError as exc:  # its one-paragraph message, not a RayTaskError
                result, error = SessionOutput(ref), str(exc)
            out["ref"].append(ref_json)
            out["steps"].append(_to_ipc(result.steps))
            out["episodes"].append(_to_ipc(result.episodes))
            meta = {
                "skipped": result.skipped,
                "partial": result.partial,
                "events": result.events,
                "frames": result.frames,
                "screens": result.screens,
                "error": error,
            }
            out["meta"].append(json.dumps(meta))
    finally:
        for source in sources.values():
            source.close()
    schema = pa.schema(
        [
            ("ref", pa.string()),
            ("steps", pa.large_binary()),
            ("episodes", pa.large_binary()),
            ("meta", pa.string()),
        ]
    )
    return pa.Table.from_pydict(out, schema=schema)


def run_sessions(
    refs: list[dict[str, Any]], cfg: BuildConfig, address: str | None = None
) -> Iterator[SessionOutput]:
    """Build ``refs`` on Ray Data; yields their outputs in the order of ``refs``."""
    if not refs:
        return
    try:
        import ray
        import ray.data
    except ImportError:
        raise DatasetError(
            "The Ray engine needs Ray: install demotrace with the `ray` extra "
            "(pip install 'demotrace[ray]'), or build with --engine local."
        ) from None
    started = False
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        except Exception as exc:  # Ray raises many kinds; all mean the same to the person
            raise DatasetError(
                f"Cannot start or reach Ray ({address or 'a local runtime'}): {exc}. Check "
                "RAY_ADDRESS / --ray-address, or build with --engine local."
            ) from None
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False
        items = [{"ref": json.dumps(r, sort_keys=True)} for r in refs]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(
            _build_batch,
            batch_size=1,
            batch_format="pyarrow",
            fn_kwargs={"cfg": cfg},
            num_cpus=1,
        )
        for batch in ds.iter_batches(batch_size=1, batch_format="pyarrow"):
            for row in batch.to_pylist():
                meta = json.loads(row["meta"])
                if meta.get("error"):
                    raise DatasetError(meta["error"])
                yield SessionOutput(
                    ref=json.loads(row["ref"]),
                    steps=_from_ipc(row["steps"]),
                    episodes=_from_ipc(row["episodes"]),
                    skipped=meta["skipped"],
                    partial=meta["partial"],
                    events=meta["events"],
                    frames=meta["frames"],
                    screens=meta["screens"],
                )
    finally:
        if started:
            ray.shutdown()
