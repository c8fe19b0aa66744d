"""The virtual-desktop test bench: desktop lifecycle, workbench layout, scripted input, scenarios.

Desktop tests run on a real Xvfb + jwm and are skipped only when Xvfb is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from demotrace.errors import ScenarioError
from demotrace.testbench import spec
from demotrace.testbench.scenarios import load_scenarios

needs_xvfb = pytest.mark.skipif(
    shutil.which("Xvfb") is None,
    reason="Xvfb is not installed (apt-get install xvfb jwm xterm python3-tk xdotool x11-utils)",
)
desktop_test = [pytest.mark.desktop, needs_xvfb]
FAST = 8.0  # worker speed for tests: human-shaped input, 8x quicker


def _truth(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    from demotrace.testbench.apps import start_workbench
    from demotrace.testbench.desktop import VirtualDesktop
    from demotrace.testbench.worker import ScriptedWorker

    truth = tmp_path_factory.mktemp("truth") / "truth.jsonl"
    with VirtualDesktop() as desk:
        app = start_workbench(desk)
        with ScriptedWorker(desk.display, truth, seed=11, speed=FAST) as worker:
            yield desk, app.layout, worker, truth


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.desktop
@needs_xvfb
def test_desktop_starts_and_stops_cleanly() -> None:
    from Xlib import display as xdisplay

    from demotrace.testbench.desktop import VirtualDesktop

    desk = VirtualDesktop(width=1024, height=768)
    try:
        assert desk.env["DISPLAY"] == desk.display and "WAYLAND_DISPLAY" not in desk.env
        conn = xdisplay.Display(desk.display)
        screen = conn.screen()
        assert (screen.width_in_pixels, screen.height_in_pixels) == (1024, 768)
        assert {"RECORD", "XTEST", "MIT-SHM", "DAMAGE"} <= set(conn.list_extensions())
        conn.close()
        desk.launch(["xterm", "-geometry", "40x10+10+10"], "xterm")
        wid = desk.wait_for_window("XTerm")
        assert desk.window_box(wid)[2] > desk.window_box(wid)[0]
        pids, tmpdir, number = desk.pids, desk.tmpdir, desk.number
        assert len(pids) == 3 and all(_alive(p) for p in pids)
    finally:
        desk.close()
    desk.close()  # idempotent
    assert not any(_alive(p) for p in pids)
    assert not tmpdir.exists()
    assert not Path(f"/tmp/.X{number}-lock").exists()
    assert not Path(f"/tmp/.X11-unix/X{number}").exists()


@pytest.mark.desktop
@needs_xvfb
def test_layout_lists_every_named_widget(bench: tuple) -> None:
    _desk, layout, _worker, _truth_path = bench
    lay = layout.read()
    assert lay["window"]["title"] == "Workbench"
    win = lay["window"]["bbox"]
    for name, kind in spec.WIDGETS.items():
        info = lay["widgets"][name]
        assert info["kind"] == kind
        x0, y0, x1, y1 = info["bbox"]
        assert win[0] <= x0 < x1 <= win[2] and win[1] <= y0 < y1 <= win[3], name
    assert [e["label"] for e in lay["widgets"]["menubar"]["entries"]] == ["File", "Edit"]
    items = lay["widgets"]["files"]["items"]
    assert items and items[0]["text"] == spec.FILES[0] and len(items) < len(spec.FILES)
    assert set(lay["state"]) == set(spec.STATE_KEYS)


@pytest.mark.desktop
@needs_xvfb
def test_click_toggles_checkbox(bench: tuple) -> None:
    _desk, layout, worker, truth = bench
    before = layout.read()["state"]["agree"]
    worker.click_widget(layout, "agree")
    layout.wait_state("agree", not before, timeout=3)
    line = _truth(truth)[-1]
    assert line["action"] == "click" and line["target"] == "agree"
    assert line["n_button"] == 2 and line["n_motion"] > 0
    assert line["t_start_ns"] < line["first_event_ns"] < line["t_end_ns"]
    box = layout.read()["widgets"]["agree"]["bbox"]
    assert box[0] <= line["x"] < box[2] and box[1] <= line["y"] < box[3]


@pytest.mark.desktop
@needs_xvfb
def test_select_dropdown_sets_country(bench: tuple) -> None:
    _desk, layout, worker, truth = bench
    worker.select_dropdown(layout, "country", "Japan")
    layout.wait_state("country", "Japan", timeout=3)
    line = _truth(truth)[-1]
    assert line["action"] == "select_option" and line["option"] == "Japan"
    assert line["popup"]["kind"] == "combo" and len(line["steps"]) == 2
    assert line["n_button"] == 4
    worker.select_dropdown(layout, "priority", "Urgent")
    layout.wait_state("priority", "Urgent", timeout=3)
    assert _truth(truth)[-1]["popup"]["kind"] == "menu"


@pytest.mark.desktop
@needs_xvfb
def test_typing_reaches_the_app_exactly(bench: tuple) -> None:
    _desk, layout, worker, truth = bench
    text = "Grace Hopper <grace@navy.mil> #42 (A&B) ~ok?"
    worker.click_widget(layout, "name")
    worker.hotkey("ctrl", "a")
    worker.type_text(text, target="name")
    layout.wait_state("name", text, timeout=3)
    line = _truth(truth)[-1]
    shifted = sum(c.isupper() or c in '<>@#()&~?!"' for c in text)
    assert line["text"] == text and line["n_key"] == 2 * (len(text) + shifted)

    sent = dict(worker.sent)
    with pytest.raises(ScenarioError, match="Cannot type"):
        worker.type_text("caf\u00e9")  # no key makes it on the US map: refused before sending
    assert worker.sent == sent

    canary = "Canary-7f3a9c-Pw"
    worker.click_widget(layout, "password")
    worker.type_text(canary, target="password", secret=True)
    layout.wait_state("password_set", True, timeout=3)
    time.sleep(0.6)  # let the periodic rewrite run as well
    assert canary not in layout.path.read_text()
    assert canary not in truth.read_text()


@pytest.mark.desktop
@needs_xvfb
def test_sent_counts_match_ground_truth(bench: tuple) -> None:
    _desk, _layout, worker, truth = bench
    worker.motion_storm(200)
    worker.scroll(300, 340, dy=-2)
    lines = _truth(truth)
    assert lines[-2]["n_motion"] == 200
    assert lines[-1]["n_button"] == 4
    totals = {k: sum(line[f"n_{k}"] for line in lines) for k in ("motion", "button", "key")}
    assert totals == worker.sent


def test_scenarios_load_without_a_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    scenarios = load_scenarios()
    names = {s.name for s in scenarios}
    assert {"form_fill", "menus", "editing", "multi_app"} <= names
    for scenario in scenarios:
        assert scenario.title and scenario.instruction and scenario.steps
    assert load_scenarios(["menus"])[0].name == "menus"


def test_malformed_scenario_names_file_and_step(tmp_path: Path) -> None:
    bad = tmp_path / "broken.toml"
    bad.write_text(
        'title = "t"\ninstruction = "i"\napps = ["workbench"]\n'
        'steps = [{do = "click", target = "workbench:name"}, {do = "fly"}]\n'
    )
    with pytest.raises(ScenarioError, match=r"broken\.toml, step 2 \(fly\)"):
        load_scenarios([str(bad)])
    bad.write_text(
        'title = "t"\ninstruction = "i"\napps = ["workbench"]\n'
        'steps = [{do = "select", target = "workbench:country", option = "Atlantis"}]\n'
    )
    with pytest.raises(ScenarioError, match=r"broken\.toml, step 1 .*Atlantis"):
        load_scenarios([str(bad)])
    with pytest.raises(ScenarioError, match="No scenario named"):
        load_scenarios(["no_such_scenario"])


@pytest.mark.desktop
@needs_xvfb
@pytest.mark.parametrize("name", ["form_fill", "menus", "editing", "multi_app"])
def test_scenario_runs_to_its_expected_state(name: str, tmp_path: Path) -> None:
    from demotrace.testbench.desktop import VirtualDesktop
    from demotrace.testbench.scenarios import run_scenario
    from demotrace.testbench.worker import ScriptedWorker

    scenario = load_scenarios([name])[0]
    truth = tmp_path / "truth.jsonl"
    with VirtualDesktop() as desk, ScriptedWorker(desk.display, truth, seed=3, speed=20) as w:
        run = run_scenario(scenario, desk, w)
    assert run.state is not None
    lines = _truth(truth)
    launches = [line for line in lines if line["action"] == "launch"]
    lines = [line for line in lines if line["action"] != "launch"]
    assert {line["step"] for line in lines} == {s.index for s in scenario.steps if s.do != "check"}
    assert all(line["scenario"] == name for line in lines + launches)
    # every app the scenario needed was started by it, and its ground truth says so
    assert sorted(line["app"] for line in launches) == sorted(
        {"workbench": "Workbench", "xterm": "XTerm"}[a] for a in scenario.apps
    )
