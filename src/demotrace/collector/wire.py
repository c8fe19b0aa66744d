"""The bodies of the upload protocol, written and read the same way by client, server, tests and
benchmarks: event segments (Parquet, zstd), blob batches (an Arrow IPC stream of kind, key and
data) and the ``Content-Digest`` header (RFC 9530, SHA-256)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq


def events_parquet(table: pa.Table) -> bytes:
    """A segment's body: the events as one Parquet file, zstd."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def blob_batch(items: Sequence[tuple[str, str, bytes]]) -> bytes:
    """A blob batch's body from (kind, key, data) triples; kind is "tile" or "frame"."""
    table = pa.table(
        {
            "kind": [i[0] for i in items],
            "key": [i[1] for i in items],
            "data": pa.array([i[2] for i in items], type=pa.binary()),
        }
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def content_digest(body: bytes) -> str:
    """The ``Content-Digest`` header value of a body."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
