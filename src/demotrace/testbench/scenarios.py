"""Loading the shipped scenarios and running them on a virtual desktop.

``load_scenarios()`` needs no display. ``run_scenario(scenario, desktop, worker)`` starts the
scenario's apps (or reuses those already running on the desktop), resolves each step's target
from the workbench layout file or the xterm window, and performs the steps with the worker.
Each worker ground-truth line then carries ``scenario`` and ``step`` fields.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demotrace.errors import ScenarioError
from demotrace.testbench import spec
from demotrace.testbench.scenario_schema import APPS, Scenario, Step, parse_scenario

if TYPE_CHECKING:
    from demotrace.testbench.apps import App
    from demotrace.testbench.desktop import VirtualDesktop
    from demotrace.testbench.worker import ScriptedWorker

__all__ = ["Scenario", "ScenarioRun", "Step", "load_scenarios", "run_scenario"]


def _shipped() -> dict[str, Path]:
    folder = resources.files("demotrace.scenarios")
    return {
        Path(e.name).stem: Path(str(e))
        for e in folder.iterdir()
        if e.name.endswith(".toml") and e.is_file()
    }


def load_scenarios(names: list[str] | None = None) -> list[Scenario]:
    """The shipped scenarios (all, sorted by name, or those named); a name may be a path."""
    shipped = _shipped()
    if names is None:
        return [parse_scenario(shipped[n]) for n in sorted(shipped)]
    out = []
    for name in names:
        if name in shipped:
            out.append(parse_scenario(shipped[name]))
        elif name.endswith(".toml") and Path(name).is_file():
            out.append(parse_scenario(Path(name)))
        else:
            raise ScenarioError(
                f"No scenario named {name!r}; the shipped ones are {sorted(shipped)} "
                "(or give the path of a .toml file)."
            )
    return out


@dataclass
class ScenarioRun:
    scenario: Scenario
    apps: dict[str, App]
    duration_s: float
    state: dict[str, Any] | None  # the workbench state after the last step, if it ran


def run_scenario(
    scenario: Scenario, desktop: VirtualDesktop, worker: ScriptedWorker
) -> ScenarioRun:
    from demotrace.testbench.apps import ensure_app

    apps = {}
    started = time.monotonic()
    try:
        worker.tags = {"scenario": scenario.name}
        for name in scenario.apps:
            running = desktop.apps.get(name)
            apps[name] = ensure_app(desktop, name)
            if running is None or running.poll() is not None:
                worker.launched(apps[name].wm_class)
        runner = _Runner(scenario, desktop, worker, apps)
        for step in scenario.steps:
            worker.tags = {"scenario": scenario.name, "step": step.index}
            try:
                runner.run(step)
            except ScenarioError as exc:
                raise ScenarioError(
                    f"Scenario {scenario.name}, step {step.index} ({step.do}): {exc}"
                ) from exc
        state = runner.check_expect()
    finally:
        worker.tags = {}
    return ScenarioRun(scenario, apps, time.monotonic() - started, state)


class _Runner:
    def __init__(
        self,
        scenario: Scenario,
        desktop: VirtualDesktop,
        worker: ScriptedWorker,
        apps: dict[str, App],
    ) -> None:
        self.scenario = scenario
        self.desktop = desktop
        self.worker = worker
        self.apps = apps
        bench = apps.get("workbench")
        self.layout = bench.layout if bench else None

    def _box(self, step: Step, key: str = "target") -> tuple[list[int], str]:
        """The screen box a step points at, and a name for the ground truth."""
        from demotrace.testbench.layout import widget

        app, _, name = step.get(key).partition(":")
        if app == "xterm":
            return self.desktop.window_box(self.apps["xterm"].window), "xterm"
        assert self.layout is not None
        info = widget(self.worker.look(self.layout), name)
        if step.get("item"):
            for item in info.get("items", []):
                if item["text"] == step.get("item"):
                    return item["bbox"], f"{name}:{item['text']}"
            raise ScenarioError(f"{step.get('item')!r} is not visible in {name}; scroll first.")
        if step.get("word"):
            return self._word(info, name, step.get("word")), f"{name}:{step.get('word')}"
        return info["bbox"], name

    @staticmethod
    def _word(info: dict[str, Any], name: str, word: str) -> list[int]:
        for found in info.get("words", []):
            if found["text"].strip(".,;:!?") == word:
                return found["bbox"]
        raise ScenarioError(f"The word {word!r} is not visible in {name}.")

    def _point(self, step: Step) -> tuple[int, int, str]:
        from demotrace.testbench.layout import aim

        box, target = self._box(step)
        x, y = aim(self.worker.rng, box, 0.2 if step.get("word") or step.get("item") else 0.3)
        return x, y, target

    def run(self, step: Step) -> None:
        w, do = self.worker, step.do
        counts = {"click": 1, "double_click": 2, "triple_click": 3, "right_click": 1}
        if do in counts:
            x, y, target = self._point(step)
            button = "right" if do == "right_click" else step.get("button", "left")
            mods = step.get("modifiers", [])
            w.click(x, y, button=button, count=counts[do], modifiers=mods, target=target)
        elif do == "move":
            x, y, target = self._point(step)
            w.move(x, y, target=target)
        elif do == "type":
            target = None
            if step.get("target"):
                x, y, target = self._point(step)
                w.click(x, y, target=target)
            secret = step.get("secret", False) or target in spec.SECRET_WIDGETS
            w.type_text(step.get("text"), target=target, secret=secret)
        elif do == "select":
            w.select_dropdown(
                self._layout(), step.get("target").partition(":")[2], step.get("option")
            )
        elif do == "menu":
            w.choose_menu(self._layout(), step.get("path"))
        elif do == "context_menu":
            w.context_menu(self._layout(), step.get("target").partition(":")[2], step.get("item"))
        elif do == "hotkey":
            w.hotkey(*step.get("keys"))
        elif do == "key":
            w.key(step.get("key"), repeat=step.get("repeat", 1))
        elif do == "scroll":
            x, y, target = self._point(step)
            w.scroll(x, y, dy=step.get("dy", 0), dx=step.get("dx", 0), target=target)
        elif do == "drag":
            self._drag(step)
        elif do == "switch_app":
            w.switch_app(step.get("via"), APPS[step.get("to")])
        elif do == "wait":
            w.wait(float(step.get("seconds")))
        elif do == "check":
            self._check(step.get("state"), "check")

    def _layout(self) -> Any:
        if self.layout is None:
            raise ScenarioError("this step needs the workbench in 'apps'.")
        return self.layout

    def _drag(self, step: Step) -> None:
        from demotrace.testbench.layout import widget

        info = widget(self.worker.look(self._layout()), "notes")
        first = self._word(info, "notes", step.get("from_word"))
        last = self._word(info, "notes", step.get("to_word"))
        y0, y1 = (first[1] + first[3]) // 2, (last[1] + last[3]) // 2
        self.worker.drag(first[0] + 1, y0, last[2] - 1, y1, target="notes")

    def _check(self, expected: dict[str, Any], what: str) -> dict[str, Any]:
        def matches(layout: dict[str, Any]) -> bool:
            state = layout["state"]
            for key, want in expected.items():
                have = state.get(key)
                if isinstance(want, list) and isinstance(have, list):
                    if not all(item in have for item in want):
                        return False
                elif have != want:
                    return False
            return True

        layout = self._layout()
        try:
            return layout.wait(matches, 5.0, f"{what} {expected}")["state"]
        except ScenarioError:
            state = layout.read()["state"]
            got = {k: state.get(k) for k in expected}
            raise ScenarioError(f"{what} failed: expected {expected}, the app has {got}.") from None

    def check_expect(self) -> dict[str, Any] | None:
        if self.layout is None:
            return None
        if not self.scenario.expect:
            return self.layout.read()["state"]
        return self._check(self.scenario.expect, "expect")
