"""Acceptance of the dataset pipeline on the real virtual desktop.

The shipped scenarios are run by the scripted worker on Xvfb with the real recorder (exactly what
`make demo` does, task markers included); the dataset is built from the recording and its steps
are scored against the worker's own ground truth.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from rich.console import Console

from conftest import _missing
from demotrace.demo import found_step, run_demo
from demotrace.privacy.redact import redact
from demotrace.store.db import Store
from demotrace.testbench.scenarios import load_scenarios
from demotrace.testbench.truth import expected_actions, read_truth, score

pytestmark = pytest.mark.desktop

CANARY = "Canary-Pw-7319!"  # the password typed in form_fill
EMAIL = "ada@example.org"  # typed in form_fill and named in its instruction


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    missing = _missing()
    if missing:
        pytest.skip(f"virtual desktop tools not installed: {', '.join(missing)}")
    home = tmp_path_factory.mktemp("demo")
    return run_demo(home=home, console=Console(file=io.StringIO()))


def _steps(demo: dict[str, Any]) -> list[dict[str, Any]]:
    return pq.read_table(Path(demo["dataset"]) / "data").to_pylist()


def _scored(demo: dict[str, Any]) -> Any:
    home = Path(demo["home"])
    with Store(home / "store", create=False) as store:
        session = store.session(demo["session"])
    assert session is not None
    lines = [
        line
        for line in read_truth(demo["truth"])
        if session["started_mono_ns"] <= line["t_end_ns"] <= session["ended_mono_ns"]
    ]
    expected = expected_actions(lines, redact)
    found = [found_step(r, session) for r in _steps(demo)]
    return expected, score(expected, found)


def test_steps_match_what_the_worker_did(demo: dict[str, Any]) -> None:
    expected, result = _scored(demo)
    assert result.expected >= 50
    assert result.precision >= 0.99 and result.recall >= 0.99, result.report()
    kinds = {e.type for e in expected}
    assert {"click", "type", "key", "drag", "scroll", "switch_app", "move", "wait"} <= kinds
    # every dropdown and menu choice is tagged, every app switch is found
    missed = {id(e) for e in result.missed}
    tagged = [e for e in expected if {"dropdown", "menu"} & set(e.tags)]
    switches = [e for e in expected if e.type == "switch_app"]
    assert len(tagged) >= 12 and len(switches) >= 3
    assert not [e for e in tagged + switches if id(e) in missed], result.report()
    vias = {e.fields["via"] for e in switches}
    assert vias == {"keys", "click", "launcher"}


def test_dropdown_choices_show_the_popup_open(demo: dict[str, Any]) -> None:
    steps = _steps(demo)
    choices = [
        (i, s)
        for i, s in enumerate(steps)
        if "dropdown" in s["skills"] and "target" in json.loads(s["action"])
    ]
    assert len(choices) >= 1
    for i, step in choices:
        opener = steps[i - 1]
        assert "dropdown" in opener["skills"] and "target" not in json.loads(opener["action"])
        w, h = step["screen_w"], step["screen_h"]
        x0, y0, x1, y1 = json.loads(step["action"])["target"]["bbox"]
        box = (round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h))
        shown = np.asarray(Image.open(io.BytesIO(step["observation"]["bytes"])).crop(box))
        before = np.asarray(Image.open(io.BytesIO(opener["observation"]["bytes"])).crop(box))
        assert shown.any(), "the chosen item is blacked out"
        # the list is open over what was there when the dropdown was clicked
        assert np.abs(shown.astype(int) - before.astype(int)).mean() > 10


def test_episodes_are_the_marked_tasks(demo: dict[str, Any]) -> None:
    episodes = pq.read_table(Path(demo["dataset"]) / "meta" / "episodes.parquet").to_pylist()
    scenarios = load_scenarios()
    assert len(episodes) == len(scenarios)
    for ep, sc in zip(episodes, scenarios, strict=True):
        assert ep["instruction"] == redact(sc.instruction)
        assert (ep["start_reason"], ep["end_reason"]) == ("marker", "marker")
        assert ep["n_steps"] > 3
    assert set().union(*(set(e["apps"]) for e in episodes)) == {"Workbench", "XTerm"}


def test_exports_of_the_recording(demo: dict[str, Any], tmp_path: Path) -> None:
    from demotrace.dataset.formats import FORMATS, export_dataset

    dataset = Path(demo["dataset"])
    steps = len(_steps(demo))
    for fmt in FORMATS:
        summary = export_dataset(dataset, fmt, tmp_path / fmt)
        written = summary["steps"] + sum(summary["skipped"].values())
        assert summary["steps"] > 0 or fmt == "mind2web", summary
        assert written <= steps, summary
    # nothing typed as a secret, and no e-mail address, reaches any byte of any output
    for path in [*dataset.rglob("*"), *tmp_path.rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            assert CANARY.encode() not in data, path
            assert EMAIL.encode() not in data, path


def test_viewer_draws_the_click_where_the_worker_clicked(demo: dict[str, Any]) -> None:
    """The replay viewer, in the real Chromium, over the recorded demo: the click marker on the
    screenshot is where the scripted worker's ground truth says it clicked."""
    from browser import CHROMIUM, chromium_page, running

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (run `make setup`)")
    pytest.importorskip("playwright.sync_api")
    from demotrace.web.viewer import ViewerServer
    from test_viewer import red_centroid

    # the worker's first plain click, and the dataset step it became
    click = next(
        line
        for line in read_truth(demo["truth"])
        if line["action"] == "click" and line.get("scenario") == "editing"
    )
    steps = _steps(demo)
    hit = next(
        s
        for s in steps
        if json.loads(s["action"])["type"] == "click"
        and abs(json.loads(s["action"])["x"] * s["screen_w"] - click["x"]) <= 3
        and abs(json.loads(s["action"])["y"] * s["screen_h"] - click["y"]) <= 3
    )
    with running(ViewerServer(Path(demo["dataset"])), "the viewer") as url, chromium_page() as page:
        index = hit["step_index"]
        page.goto(f"{url}episode/{hit['episode_id']}?step={index}")
        page.wait_for_selector(f'#obs[data-loaded="{index}"]', timeout=10_000)
        natural = page.eval_on_selector("#obs", "i => [i.naturalWidth, i.naturalHeight]")
        shot = Image.open(io.BytesIO(page.locator("#obs").screenshot()))
    sx, sy = shot.width / natural[0], shot.height / natural[1]
    want = ((click["x"] + 0.5) * sx - 0.5, (click["y"] + 0.5) * sy - 0.5)
    x, y = red_centroid(shot, want, radius=20)
    assert abs(x - want[0]) <= 3 and abs(y - want[1]) <= 3
