"""`demotrace build` on hand-written stores: the layout, readers, both engines, and bad input."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from demotrace.cli import main
from demotrace.dataset.build import build
from demotrace.dataset.schema import EPISODE_SCHEMA, FORMAT_VERSION, STEP_SCHEMA
from demotrace.errors import DatasetError
from demotrace.model import MOD_CONTROL
from demotrace.store.db import Store
from events_builder import Events
from store_builder import put_frame, screen_image, write_session

POPUP = (100, 110, 160, 200)


def _session(root: Path, session: int = 1) -> tuple[Events, dict[str, str]]:
    """A small session of real-looking work, with real frames in the store."""
    store = Store(root)
    ev = Events(800, 600)
    frames = {
        "plain": put_frame(store, session, screen_image(800, 600, 1), ev.t),
        "popup": put_frame(store, session, screen_image(800, 600, 1, POPUP), ev.t),
        "typed": put_frame(store, session, screen_image(800, 600, 2), ev.t),
    }
    store.close()
    ev.focus("Workbench", 1, "Form")
    ev.marker("task_start", "Pick Germany and save")
    ev.move(120, 100)
    p = ev.press(window=1, app="Workbench")
    ev.frame(frames["plain"], p)
    ev.release()
    ev.popup(True, "COMBO", list(POPUP))
    ev.glide(150, 160)  # the item at rows 150-169 of the popup is highlighted
    p = ev.press(after=300, window=77, app="Workbench", popup="COMBO")
    ev.frame(frames["popup"], p)
    ev.release()
    ev.popup(False, "COMBO", list(POPUP))
    ev.text("Germany")
    ev.frame(frames["typed"], None, after=400)
    ev.chord("Control_L", "s", state_bits=(MOD_CONTROL,))
    ev.marker("task_end")
    write_session(root, ev)
    return ev, frames


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    _session(root, 1)
    return root


def test_build_writes_the_layout(store_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    info = build(store_root, out)
    assert info["format"] == "demotrace-dataset" and info["version"] == FORMAT_VERSION
    assert info["counts"]["steps"] == 4 and info["counts"]["episodes"] == 1
    assert info["screens"] == [[800, 600]] and info["skipped"] == []
    # the store's path (it names its owner's home) is not written into the dataset
    assert info["sources"] == ["a local store"]
    for name in ("README.md", "meta/info.json"):
        assert str(store_root) not in (out / name).read_text()
    steps = pq.read_table(out / "data" / "steps-00000.parquet")
    assert steps.schema.names == STEP_SCHEMA.names
    assert steps.schema.metadata[b"huggingface"] == STEP_SCHEMA.metadata[b"huggingface"]
    rows = steps.to_pylist()
    actions = [json.loads(r["action"]) for r in rows]
    assert [a["type"] for a in actions] == ["click", "click", "type", "key"]
    assert [r["skills"] for r in rows] == [["dropdown"], ["dropdown"], ["typing"], ["shortcut"]]
    assert actions[0]["x"] == pytest.approx(120 / 800) and actions[2]["text"] == "Germany"
    assert actions[3]["keys"] == ["ctrl", "s"]
    # the choice carries the highlighted item's box, found in the observation's pixels
    target = actions[1]["target"]
    assert target["source"] == "pixels"
    box = [round(v * s) for v, s in zip(target["bbox"], (800, 600, 800, 600), strict=True)]
    assert box == [100, 150, 260, 170]
    # the observation is the frame paired with the press, pixel for pixel
    img = Image.open(io.BytesIO(rows[1]["observation"]["bytes"]))
    assert np.array_equal(np.asarray(img), np.asarray(screen_image(800, 600, 1, POPUP)))
    assert rows[1]["frame_id"] is not None and rows[2]["observation"] is not None
    episodes = pq.read_table(out / "meta" / "episodes.parquet")
    assert episodes.schema.names == EPISODE_SCHEMA.names
    ep = episodes.to_pylist()[0]
    assert ep["instruction"] == "Pick Germany and save" and ep["n_steps"] == 4
    assert ep["apps"] == ["Workbench"] and ep["start_reason"] == "marker"
    assert (out / "README.md").exists() and len(list((out / "plots").glob("*.png"))) == 4


def test_dataset_loads_in_datasets_pyarrow_polars_duckdb(store_root: Path, tmp_path: Path) -> None:
    import datasets
    import duckdb
    import polars as pl

    out = tmp_path / "ds"
    build(store_root, out)
    files = str(out / "data" / "*.parquet")
    hf = datasets.load_dataset("parquet", data_files=files, split="train")
    assert len(hf) == 4 and isinstance(hf[1]["observation"], Image.Image)
    assert hf[1]["observation"].size == (800, 600)
    assert pl.read_parquet(files).height == 4
    con = duckdb.connect()
    n = con.execute(f"SELECT count(*) FROM read_parquet('{files}')").fetchone()
    assert n is not None and n[0] == 4
    assert pq.read_table(out / "data").num_rows == 4


def test_ray_engine_writes_the_same_bytes(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _session(root, 1)
    _session(root, 2)
    local, ray = tmp_path / "local", tmp_path / "ray"
    build(root, local)
    info = build(root, ray, engine="ray")
    assert info["counts"]["sessions"] == 2 and info["engine"] == "ray"
    names = sorted(p.relative_to(local) for p in local.rglob("*.parquet"))
    assert names == sorted(p.relative_to(ray) for p in ray.rglob("*.parquet"))
    for name in names:
        assert (local / name).read_bytes() == (ray / name).read_bytes(), name


# -- bad input ------------------------------------------------------------------------------
def test_store_of_a_newer_schema_is_refused(store_root: Path, tmp_path: Path) -> None:
    db = sqlite3.connect(store_root / "demotrace.db")
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(DatasetError, match="newer demotrace"):
        build(store_root, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_session_of_a_newer_event_model_is_skipped(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _session(root, 1)
    ev = Events()
    ev.move(1, 1)
    ev.click()
    write_session(root, ev, event_model=99)
    info = build(root, tmp_path / "ds")
    assert info["counts"]["sessions"] == 1 and info["counts"]["steps"] == 4
    assert info["skipped"][0]["session"] == 2 and "event model 99" in info["skipped"][0]["reason"]
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "event model 99" in card


def test_missing_frames_skip_the_session_with_a_reason(store_root: Path, tmp_path: Path) -> None:
    with Store(store_root) as store, store.db:
        store.db.execute("DELETE FROM tiles WHERE hash IN (SELECT hash FROM tiles LIMIT 1)")
    info = build(store_root, tmp_path / "ds")
    assert info["counts"]["steps"] == 0
    assert "screenshots are missing" in info["skipped"][0]["reason"]


def test_truncated_session_is_built_and_reported_partial(tmp_path: Path) -> None:
    root = tmp_path / "store"
    ev = Events()
    ev.move(10, 10)
    ev.click()
    ev.move(50, 50)
    ev.press()  # the recorder died before the release
    write_session(root, ev, status="recording")
    info = build(root, tmp_path / "ds")
    assert info["counts"]["steps"] == 2
    assert info["partial"] == [{"device": "local", "session": 1}]


def test_cli_errors_are_one_paragraph(store_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ds"
    assert main(["build", str(store_root), "--out", str(out), "--json"]) == 0
    capsys.readouterr()
    assert main(["build", str(store_root), "--out", str(out)]) == DatasetError.exit_code
    assert "--overwrite" in capsys.readouterr().err
    assert main(["build", str(store_root), "--out", str(out), "--overwrite", "--json"]) == 0
    capsys.readouterr()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("mine")
    assert main(["build", str(store_root), "--out", str(other)]) == DatasetError.exit_code
    assert (other / "todo.txt").read_text() == "mine"
    assert main(["build", str(tmp_path / "nothing"), "--out", str(out)]) == 12
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nothing" in err
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "demotrace.db").write_bytes(b"not a database" * 100)
    assert main(["build", str(garbage), "--out", str(tmp_path / "g")]) != 0
    assert "Traceback" not in capsys.readouterr().err


def test_interrupted_build_leaves_nothing(store_root: Path, tmp_path: Path, monkeypatch) -> None:
    import demotrace.dataset.build as b

    def boom(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(b.DatasetWriter, "close", boom)
    with pytest.raises(KeyboardInterrupt):
        build(store_root, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    assert not list(tmp_path.glob(".ds.building-*"))
    shutil.rmtree(tmp_path / "store")


def test_damaged_event_details_skip_the_session(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _session(root, 1)
    with Store(root) as store, store.db:
        store.db.execute("UPDATE events SET data = '{not json' WHERE kind = 5")  # FOCUS rows
    info = build(root, tmp_path / "ds")
    assert info["counts"]["sessions"] == 0
    assert "damaged" in info["skipped"][0]["reason"]
