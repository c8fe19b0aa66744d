"""`demotrace export`: each format against a hand-checked file, round trips, and bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from dataset_fixture import BROWSER, DESKTOP, STEP_NAMES, make_tiny_dataset
from demotrace.dataset.formats import FORMATS, agentnet, anthropic, export_dataset
from demotrace.dataset.formats.common import Action, Dataset, Skip, Step, size_of
from demotrace.errors import DatasetError

EXPECTED = Path(__file__).parent / "data" / "exports"
LAUNCHER = "switch_app via launcher (nothing recorded to replay)"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "dataset")


@pytest.fixture(scope="module")
def steps(tiny: Path) -> list[Step]:
    return list(Dataset(tiny).steps())


# -- every format against its expected file ---------------------------------------------------
#: format -> (steps written, episodes written, skipped reasons).
SUMMARIES: dict[str, tuple[int, int, dict[str, int]]] = {
    "agentnet": (21, 2, {LAUNCHER: 1}),
    "pyautogui": (21, 2, {LAUNCHER: 1}),
    "anthropic": (21, 2, {LAUNCHER: 1}),
    "openai": (21, 2, {LAUNCHER: 1}),
    "qwen": (19, 2, {LAUNCHER: 1, "click with modifiers held": 1, "scroll with modifiers held": 1}),
    "uitars": (
        17,
        2,
        {
            LAUNCHER: 1,
            "click with modifiers held": 1,
            "left click of count 3": 1,
            "middle click of count 1": 1,
            "scroll with modifiers held": 1,
        },
    ),
    "mind2web": (4, 1, {"not a web step (no DOM target and URL)": 18}),
}


def _main_file(fmt: str) -> str:
    return "mind2web.json" if fmt == "mind2web" else f"{fmt}.jsonl"


def _images_named(text: str) -> set[str]:
    """Every ``images/...png`` (or AgentNet's bare ``...png``) the export refers to."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "image" and value is not None:
                    found.add(value.removeprefix("images/"))
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(text) if text.startswith("[") else [json.loads(x) for x in text.splitlines()])
    return found


@pytest.mark.parametrize("fmt", sorted(SUMMARIES))
def test_export_matches_expected_file(tiny: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / fmt
    summary = export_dataset(tiny, fmt, out)
    text = (out / _main_file(fmt)).read_text(encoding="utf-8")
    assert text == (EXPECTED / _main_file(fmt)).read_text(encoding="utf-8")
    written, episodes, skipped = SUMMARIES[fmt]
    images = {p.name for p in (out / "images").iterdir()}
    assert summary == {
        "format": fmt,
        "out": str(out),
        "episodes": episodes,
        "steps": written,
        "files": 1 + len(images),
        "skipped": skipped,
    }
    # Each frame is written once, and exactly the frames the written steps show.
    assert images == _images_named(text)


def test_anthropic_images_are_scaled_to_xga(tiny: Path, tmp_path: Path) -> None:
    export_dataset(tiny, "anthropic", tmp_path / "a")
    export_dataset(tiny, "openai", tmp_path / "o")
    sizes = {Image.open(p).size for p in (tmp_path / "a" / "images").iterdir()}
    assert sizes == {(1024, 640), BROWSER}  # 1280x800 scaled by 0.8; 1024x768 already fits
    assert {Image.open(p).size for p in (tmp_path / "o" / "images").iterdir()} == {
        DESKTOP,
        BROWSER,
    }


def test_hf_export_copies_the_dataset_and_loads_with_datasets(tiny: Path, tmp_path: Path) -> None:
    import datasets

    out = tmp_path / "hf"
    calls: list[tuple[int, int]] = []
    summary = export_dataset(
        tiny, "hf", out, progress=lambda done, total: calls.append((done, total))
    )
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == (EXPECTED / "hf.txt").read_text().split()
    for name in files:
        assert (out / name).read_bytes() == (tiny / name).read_bytes()
    assert summary["steps"] == 22 and summary["episodes"] == 2 and summary["skipped"] == {}
    assert calls[-1] == (22, 22)

    loaded = datasets.load_dataset(
        "parquet",
        data_files=str(out / "data" / "*.parquet"),
        split="train",
        cache_dir=str(tmp_path / "hf-cache"),
    )
    assert len(loaded) == 22
    row = loaded[0]
    assert isinstance(row["observation"], Image.Image)
    assert row["observation"].size == (row["screen_w"], row["screen_h"]) == DESKTOP
    assert json.loads(row["action"])["type"] == "click"


def test_progress_reports_every_step(tiny: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    export_dataset(tiny, "qwen", tmp_path / "q", progress=lambda d, t: calls.append((d, t)))
    assert calls == [(8, 22), (22, 22)]  # one row group per file in the tiny dataset


# -- round trips ------------------------------------------------------------------------------
# A dialect reads back the canonical action wherever it can express it. What it cannot is listed
# here, per format, as the action it reads back instead (or the reason it skips the step).


def _same(a: Action) -> Action:
    return a


def _no_target(a: Action) -> Action:
    return {k: v for k, v in a.items() if k != "target"}


def _as_click(a: Action) -> Action:
    x, y, button = a["x"], a["y"], a.get("button", "left")
    return {"type": "click", "x": x, "y": y, "button": button, "count": 1, "modifiers": []}


def _as_chord(a: Action) -> Action:
    return {"type": "key", "keys": a["keys"]}


def _endpoints(a: Action) -> Action:
    return {**a, "path": [a["path"][0], a["path"][-1]]}


def _unmasked(a: Action) -> Action:
    return {"type": "type", "text": a["text"]}


def _alt_left(a: Action) -> Action:
    return {"type": "key", "keys": ["alt", "left"]}


def _skip(reason: str) -> Callable[[Action], str]:
    return lambda a: reason


Expect = Callable[[Action], Action | str]

#: What every pointer-and-keys dialect does with the types it lacks.
_PLAIN: dict[str, Expect] = {
    "ctrl_double_click": _no_target,  # a target (role, name, box) is only in the image
    "web_click": _no_target,
    "web_submit": _no_target,
    "web_select": _as_click,
    "switch_keys": _as_chord,
    "switch_click": _as_click,
    "switch_launcher": _skip(LAUNCHER),
    "masked_type": _unmasked,
    "back_click": _alt_left,
    "drag": _endpoints,
}
_NO_MODIFIERS = {
    "ctrl_double_click": _skip("click with modifiers held"),
    "ctrl_scroll": _skip("scroll with modifiers held"),
}
_NOT_WEB = _skip("not a web step (no DOM target and URL)")

LOSSY: dict[str, dict[str, Expect]] = {
    "hf": {},
    "pyautogui": _PLAIN,
    "agentnet": _PLAIN,
    "anthropic": _PLAIN,
    "openai": {
        **_PLAIN,
        "back_click": _same,  # buttons back/forward exist
        "drag": _same,  # the whole path is kept
        "wait": lambda a: {"type": "wait", "seconds": 3.0},  # no duration
    },
    "qwen": {**_PLAIN, **_NO_MODIFIERS},
    "uitars": {
        **_PLAIN,
        **_NO_MODIFIERS,
        "triple_click": _skip("left click of count 3"),
        "middle_click": _skip("middle click of count 1"),
        "scroll_xy": lambda a: {**a, "dx": 1, "dy": -1},  # a direction only
        "wait": lambda a: {"type": "wait", "seconds": 5.0},  # wait() is 5 s
    },
    "mind2web": {
        **{name: _NOT_WEB for name in STEP_NAMES.values() if not name.startswith("web_")},
        "web_type": _no_target,  # typed into the clicked field; canonical type has no target
        "web_enter": _NOT_WEB,
    },
}

#: Dialects whose coordinates are coarser than the observation's pixels: they read back within
#: a grid cell (0-1000 grid) or a scaled pixel (1280x800 scaled by 0.8), never further.
TOLERANCE = {"qwen": 1e-3, "uitars": 1e-3, "anthropic": 1e-3}


def _close(got: Any, want: Any, tolerance: float) -> bool:
    if isinstance(want, dict):
        return (
            isinstance(got, dict)
            and got.keys() == want.keys()
            and all(_close(got[k], want[k], tolerance) for k in want)
        )
    if isinstance(want, list):
        pairs = zip(got, want, strict=False)
        return len(got) == len(want) and all(_close(g, w, tolerance) for g, w in pairs)
    if isinstance(want, float) and isinstance(got, float):
        return abs(got - want) <= tolerance
    return bool(got == want)


def _named(steps: list[Step], name: str) -> Step:
    (step,) = (s for s in steps if STEP_NAMES[s["episode_id"], s["step_index"]] == name)
    return step


def _round_trip(fmt: str, step: Step) -> Action | str:
    module = FORMATS[fmt]
    try:
        items = module.to_dialect(step)
    except Skip as skip:
        return skip.reason
    return module.from_dialect(items, size_of(step))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_round_trip(fmt: str, steps: list[Step]) -> None:
    field = _named(steps, "web_click")["action"]["target"]
    for step in steps:
        name = STEP_NAMES[step["episode_id"], step["step_index"]]
        if fmt == "mind2web" and name == "web_type":  # the exporter lends it the clicked field
            step = {**step, "action": {**step["action"], "target": field}}
        want = LOSSY[fmt].get(name, _same)(step["action"])
        got = _round_trip(fmt, step)
        unscaled = fmt == "anthropic" and anthropic.scale(size_of(step)) == 1.0
        if fmt not in TOLERANCE or unscaled:
            assert got == want, name
        else:
            assert _close(got, want, TOLERANCE[fmt]), (name, got, want)


def test_coarse_coordinates_read_back_one_pixel_off(steps: list[Step]) -> None:
    """The move at x = 313 px of 1280 is 244.5 on the 0-1000 grid (written 245, read back as
    314 px) and 250.4 px scaled by 0.8 (written 250, read back as 312 px). y = 80 of 800 keeps."""
    move = _named(steps, "move")
    assert round(move["action"]["x"] * 1280) == 313
    for fmt, pixel in (("qwen", 314), ("uitars", 314), ("anthropic", 312)):
        back = _round_trip(fmt, move)
        assert isinstance(back, dict)
        assert round(back["x"] * 1280) == pixel, fmt
        assert back["y"] == move["action"]["y"], fmt
    for fmt in ("pyautogui", "agentnet", "openai"):
        assert _round_trip(fmt, move) == move["action"], fmt


@given(
    width=st.integers(1, 7680),
    height=st.integers(1, 4320),
    fx=st.floats(0, 1),
    fy=st.floats(0, 1),
)
def test_agentnet_four_decimals_come_back_to_the_same_pixel(
    width: int, height: int, fx: float, fy: float
) -> None:
    """AgentNet's 4-decimal coordinates read back exactly on screens up to 8K."""
    x, y = round(round(fx * width) / width, 6), round(round(fy * height) / height, 6)
    step = {"action": {"type": "move", "x": x, "y": y}, "screen_w": width, "screen_h": height}
    assert agentnet.from_dialect(agentnet.to_dialect(step), (width, height)) == step["action"]


def test_anthropic_scaling_fits_xga_and_never_scales_up() -> None:
    assert anthropic.scaled_size((1280, 800)) == (1024, 640)
    assert anthropic.scaled_size((1920, 1080)) == (1024, 576)
    assert anthropic.scaled_size((1024, 1536)) == (512, 768)
    assert anthropic.scaled_size((800, 600)) == (800, 600)
    assert anthropic.scale((1280, 800)) == 0.8


def test_key_names_per_dialect(steps: list[Step]) -> None:
    chord = {**steps[0], "action": {"type": "key", "keys": ["ctrl", "shift", "pagedown"]}}
    assert FORMATS["anthropic"].to_dialect(chord) == [
        {"action": "key", "text": "ctrl+shift+Page_Down"}
    ]
    assert FORMATS["openai"].to_dialect(chord) == [
        {"type": "keypress", "keys": ["CTRL", "SHIFT", "PAGEDOWN"]}
    ]
    assert FORMATS["pyautogui"].to_dialect(chord) == [
        "pyautogui.hotkey('ctrl', 'shift', 'pagedown')"
    ]
    assert FORMATS["uitars"].to_dialect(chord) == ["hotkey(key='ctrl shift pagedown')"]


def test_quotes_in_typed_text_survive(steps: list[Step]) -> None:
    text = 'it\'s "done"\\n\nnext'
    step = {**steps[4], "action": {"type": "type", "text": text}}
    for fmt in ("pyautogui", "agentnet", "uitars", "anthropic", "openai", "qwen"):
        assert _round_trip(fmt, step) == {"type": "type", "text": text}, fmt
    assert FORMATS["uitars"].to_dialect(step) == ["type(content='it\\'s \"done\"\\\\n\\nnext')"]


# -- bad input --------------------------------------------------------------------------------
def _error(call: Callable[[], object]) -> str:
    with pytest.raises(DatasetError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message  # one paragraph
    return message


def test_missing_dataset(tmp_path: Path) -> None:
    message = _error(lambda: export_dataset(tmp_path / "nope", "hf", tmp_path / "out"))
    assert "does not exist" in message and "demotrace build" in message
    assert not (tmp_path / "out").exists()


def test_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    message = _error(lambda: export_dataset(tmp_path / "empty", "hf", tmp_path / "out"))
    assert "not a demotrace dataset" in message and "meta/info.json" in message


def test_unknown_format(tiny: Path, tmp_path: Path) -> None:
    message = _error(lambda: export_dataset(tiny, "parquet2", tmp_path / "out"))
    assert "Unknown export format 'parquet2'" in message
    assert all(name in message for name in FORMATS)
    assert not (tmp_path / "out").exists()


def test_newer_format_version(tiny: Path, tmp_path: Path) -> None:
    newer = make_tiny_dataset(tmp_path / "newer")
    info = json.loads((newer / "meta" / "info.json").read_text())
    (newer / "meta" / "info.json").write_text(json.dumps({**info, "version": 2}))
    message = _error(lambda: export_dataset(newer, "agentnet", tmp_path / "out"))
    assert "format version 2" in message and "Upgrade demotrace" in message


def test_output_that_exists_or_cannot_be_written(tiny: Path, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    message = _error(lambda: export_dataset(tiny, "openai", tmp_path / "full"))
    assert "already exists" in message and "nothing was written" in message
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]

    (tmp_path / "a-file").write_text("")
    message = _error(lambda: export_dataset(tiny, "openai", tmp_path / "a-file" / "out"))
    assert "Cannot write the export" in message

    message = _error(lambda: export_dataset(tiny, "hf", tiny / "copy"))
    assert "inside the dataset" in message
