"""The dataset layout: Parquet schemas of steps and episodes, and their Hugging Face features.

Everything a built dataset contains is declared here, so that the builder, the exporters, the
viewer and the tests agree. See ``docs/dataset.md`` for the meaning of each column.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

#: Name and version of the on-disk layout (``meta/info.json``). Bump on any breaking change.
FORMAT_NAME = "demotrace-dataset"
FORMAT_VERSION = 1

#: Steps per ``data/steps-NNNNN.parquet`` file (and rows per row group inside it).
STEPS_PER_FILE = 2000
ROW_GROUP = 200

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
_TS = pa.timestamp("ns", tz="UTC")

STEP_SCHEMA = pa.schema(
    [
        ("episode_id", pa.string()),
        ("step_index", pa.int32()),
        ("action_type", pa.string()),
        ("action", pa.string()),  # canonical JSON, see docs/dataset.md
        ("skills", pa.list_(pa.string())),
        ("app", pa.string()),
        ("title", pa.string()),
        ("url", pa.string()),
        ("screen_w", pa.int32()),  # observation size in pixels
        ("screen_h", pa.int32()),
        ("scale", pa.float32()),  # screen pixels per observation pixel (1.0: full size)
        ("pointer_x", pa.float64()),  # pointer at the action's start, 0-1 of the observation
        ("pointer_y", pa.float64()),
        ("pointer_path", pa.list_(pa.list_(pa.float64()))),  # [x, y, seconds before start]
        ("t_start", _TS),
        ("t_end", _TS),
        ("device", pa.string()),
        ("session", pa.int64()),
        ("seq_start", pa.int64()),  # raw event span the action was reduced from
        ("seq_end", pa.int64()),
        ("frame_id", pa.string()),  # content hash of the observation (hex), null if none
        ("frame_age_ms", pa.float64()),  # how long before the action's start it was grabbed
        ("observation", IMAGE),
    ]
)

EPISODE_SCHEMA = pa.schema(
    [
        ("episode_id", pa.string()),
        ("device", pa.string()),
        ("session", pa.int64()),
        ("episode_index", pa.int32()),
        ("instruction", pa.string()),
        ("apps", pa.list_(pa.string())),
        ("skills", pa.list_(pa.string())),
        ("action_types", pa.list_(pa.string())),
        ("t_start", _TS),
        ("t_end", _TS),
        ("duration_s", pa.float64()),
        ("n_steps", pa.int32()),
        ("n_events", pa.int64()),
        ("start_reason", pa.string()),  # session, marker, idle, gap
        ("end_reason", pa.string()),  # session, marker, idle, gap
        ("screen_w", pa.int32()),
        ("screen_h", pa.int32()),
    ]
)


def _hf_feature(field: pa.Field) -> dict[str, Any]:
    t = field.type
    if field.name == "observation":
        return {"_type": "Image"}
    if pa.types.is_list(t):
        inner = pa.field("item", t.value_type)
        return {"_type": "Sequence", "feature": _hf_feature(inner)}
    names = {
        pa.string(): "string",
        pa.int32(): "int32",
        pa.int64(): "int64",
        pa.float32(): "float32",
        pa.float64(): "float64",
    }
    if pa.types.is_timestamp(t):
        return {"_type": "Value", "dtype": "timestamp[ns, tz=UTC]"}
    return {"_type": "Value", "dtype": names[t]}


def with_hf_features(schema: pa.Schema) -> pa.Schema:
    """The schema with the ``huggingface`` metadata that makes ``datasets`` decode the
    observation column as an Image."""
    features = {f.name: _hf_feature(f) for f in schema}
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    return schema.with_metadata(meta)


STEP_SCHEMA = with_hf_features(STEP_SCHEMA)
EPISODE_SCHEMA = with_hf_features(EPISODE_SCHEMA)

#: Action types, in the order the card lists them.
ACTION_TYPES: tuple[str, ...] = (
    "click",
    "drag",
    "scroll",
    "type",
    "key",
    "select_option",
    "switch_app",
    "wait",
    "move",
)
#: Skill tags a step can carry.
SKILLS: tuple[str, ...] = ("dropdown", "menu", "app_switch", "shortcut", "drag", "scroll", "typing")


def dumps_action(action: dict[str, Any]) -> str:
    """Canonical JSON of an action: compact, keys in insertion order (type first)."""
    return json.dumps(action, separators=(",", ":"), ensure_ascii=False)


#: Raw events as the reducer reads them: one session's rows in ``seq`` order, the local store's
#: columns (see :class:`demotrace.model.Kind` for which columns each kind uses). The collector's
#: lake stores the same columns plus ``device`` and ``session``.
EVENT_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("t_ns", pa.int64()),
        ("kind", pa.int8()),
        ("x", pa.int32()),
        ("y", pa.int32()),
        ("code", pa.int32()),
        ("state", pa.int32()),
        ("value", pa.int32()),
        ("name", pa.string()),
        ("data", pa.string()),
    ]
)
