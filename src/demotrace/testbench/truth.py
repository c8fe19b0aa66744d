"""Ground truth of the scripted worker -> the canonical actions it should reduce to, and a scorer.

The worker writes one JSON line per action it performed (``worker.py``). :func:`expected_actions`
turns those lines into the actions of ``docs/dataset.md`` a perfect reducer would produce, in
screen pixels, with these conventions:

- ``type`` text is split at newlines and tabs into ``type`` + ``key enter`` / ``key tab``, and
  passed through the same redactor as the recorder (the stored text is the redacted one); typing
  corrected with BackSpace right after it (a ``key backspace`` line, then more ``type``, each
  within the recorder's 2 s sequence pause) is one ``type`` of the corrected text;
  a password (``secret``) is not scored: a ``type`` step there (the redactor's ``<SECRET>``, or
  nothing when the field was known to be secret) counts neither as found nor as wrong. That no
  byte of a secret is stored is proven by the privacy tests.
- ``hotkey`` is a ``key`` chord; ``key`` keeps its count.
- ``select_option`` and ``menu`` expect their clicks, tagged ``dropdown`` (a combobox) or
  ``dropdown``/``menu`` (a Tk option menu is an X ``POPUP_MENU``), and ``menu``; hovering a
  cascade entry (a worker move with a target) expects a ``move``; the slide into the submenu
  does not.
- ``switch_app`` by alt+tab expects ``switch_app`` via ``keys``; by a click, via ``click`` at the
  click; an app the scenario launched that took the focus from another app expects
  ``switch_app`` via ``launcher``.
- a silence of :data:`WAIT_SURE_S` or more between two actions of one scenario (from the last
  event of one to the first of the next, pointer motion included) expects a ``wait`` of that
  length (within :data:`WAIT_TOLERANCE_S`); a reduced ``wait`` shorter than ``WAIT_SURE_S`` that
  matches nothing is not counted either way (the reducer's threshold is 3 s: near it, the two
  clocks may disagree by a few milliseconds).

:func:`score` matches expected and reduced actions of the same type greedily in time order
(position within 3 px, text, keys and counts exact, tags required) and reports precision, recall
and every miss.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: How far apart (s) the truth's first event and the reduced action's start may be, per type.
_WINDOW_S = {"switch_app:launcher": 20.0}
_DEFAULT_WINDOW_S = 1.0
PIXELS = 3
WAIT_SURE_S = 3.3
WAIT_TOLERANCE_S = 0.5
#: The recorder closes a typed sequence after this long without a key (privacy/gate.py).
SEQUENCE_IDLE_S = 2.0


@dataclass
class Expected:
    type: str
    t_ns: int
    fields: dict[str, Any]
    tags: tuple[str, ...] = ()  # one of these must be among the action's skills
    truth_seq: int = 0
    secret: bool = False


@dataclass
class Found:
    """A reduced action in the scorer's terms (from the reducer or read back from a dataset)."""

    type: str
    t_ns: int
    fields: dict[str, Any]
    skills: list[str] = field(default_factory=list)


@dataclass
class Score:
    expected: int
    found: int
    matched: int
    missed: list[Expected]
    extra: list[Found]
    by_type: dict[str, tuple[int, int]]  # type -> (matched, expected)

    @property
    def precision(self) -> float:
        return self.matched / self.found if self.found else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.expected if self.expected else 1.0

    def report(self) -> str:
        lines = [
            f"precision {self.precision:.4f} ({self.matched}/{self.found}), "
            f"recall {self.recall:.4f} ({self.matched}/{self.expected})"
        ]
        lines += [f"  missed: {e.type} {e.fields} tags={e.tags} t={e.t_ns}" for e in self.missed]
        lines += [f"  extra:  {f.type} {f.fields} {f.skills} t={f.t_ns}" for f in self.extra]
        return "\n".join(lines)


def read_truth(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _t(line: dict[str, Any]) -> int:
    return int(line.get("first_event_ns") or line.get("t_start_ns") or 0)


def _click(step: dict[str, Any], tags: tuple[str, ...] = ()) -> Expected:
    fields = {
        "x": step["x"],
        "y": step["y"],
        "button": step.get("button", "left"),
        "count": step.get("count", 1),
        "modifiers": sorted(step.get("modifiers") or []),
    }
    return Expected("click", _t(step), fields, tags)


def expected_actions(
    lines: Iterable[dict[str, Any]], shown: Callable[[str], str] = lambda s: s
) -> list[Expected]:
    """The canonical actions (pixels) the worker's ground truth should reduce to."""
    out: list[Expected] = []
    app: str | None = None
    last: dict[str, Any] | None = None  # the previous line with input events
    typed: Expected | None = None  # an open typed text that a BackSpace may still correct
    for line in lines:
        if line.get("error"):
            continue
        kind = line["action"]
        seq = int(line.get("seq") or 0)
        start = len(out)
        events = sum(int(line.get(k) or 0) for k in ("n_motion", "n_button", "n_key"))
        if events and last is not None and last.get("scenario") == line.get("scenario"):
            gap = (int(line["t_start_ns"]) - int(last["t_end_ns"])) / 1e9
            if gap >= WAIT_SURE_S:
                out.append(Expected("wait", int(last["t_end_ns"]), {"seconds": gap}))
        if events:
            last = line
        if typed is not None and _corrects(line, typed):
            rest = _correct(typed, line, shown)
            if rest:  # Enter or Tab ended the corrected text: the rest as usual
                typed = None
                _typed(out, {**line, "text": rest}, shown)
            continue
        typed = None
        if kind == "click":
            out.append(_click(line))
        elif kind == "drag":
            fields = {"start": [line["x"], line["y"]], "end": [line["x1"], line["y1"]]}
            out.append(Expected("drag", _t(line), fields | {"button": line["button"]}, ("drag",)))
        elif kind == "scroll":
            fields = {"x": line["x"], "y": line["y"], "dx": line["dx"], "dy": line["dy"]}
            out.append(Expected("scroll", _t(line), fields, ("scroll",)))
        elif kind == "type":
            if line.get("secret"):
                out.append(Expected("type", _t(line), {"text_len": line["text_len"]}, secret=True))
            else:
                _typed(out, line, shown)
                if out and out[-1].type == "type" and not line["text"].endswith(("\n", "\t")):
                    typed = out[-1]
                    typed.fields["raw"] = line["text"].rsplit("\n", 1)[-1].rsplit("\t", 1)[-1]
                    typed.fields["t_end"] = int(line["t_end_ns"])
        elif kind in ("key", "hotkey"):
            keys = [k.lower() for k in line["keys"]]
            fields: dict[str, Any] = {"keys": keys, "count": int(line.get("count") or 1)}
            tags = ("shortcut",) if kind == "hotkey" and len(keys) > 1 else ()
            out.append(Expected("key", _t(line), fields, tags))
        elif kind == "select_option":
            kind_of = (line.get("popup") or {}).get("kind")
            tags = ("dropdown",) if kind_of == "combo" else ("dropdown", "menu")
            clicks = [s for s in line.get("steps", []) if s["action"] == "click"]
            for i, step in enumerate(clicks):
                e = _click(step, tags)
                if i == len(clicks) - 1:  # the choice: a click, or a select_option of the value
                    e.fields["option"] = line.get("option")
                out.append(e)
        elif kind == "menu":
            for step in line.get("steps", []):
                if step["action"] == "click":
                    out.append(_click(step, ("menu",)))
                elif step["action"] == "move" and step.get("target"):
                    fields = {"x": step["x"], "y": step["y"]}
                    out.append(Expected("move", _t(step) or step["t_end_ns"], fields, ("menu",)))
        elif kind == "switch_app":
            to = line.get("to_class") or line.get("target_class")
            if line.get("method") == "click":
                fields = {"app": to, "via": "click", "x": line["x"], "y": line["y"]}
            else:
                fields = {"app": to, "via": "keys", "keys": ["alt", "tab"]}
            out.append(Expected("switch_app", _t(line), fields, ("app_switch",)))
            app = to
        elif kind == "launch":
            if app is not None and line["app"] != app:
                fields = {"app": line["app"], "via": "launcher"}
                out.append(Expected("switch_app", int(line["t_end_ns"]), fields, ("app_switch",)))
            app = line["app"]
        for e in out[start:]:
            e.truth_seq = seq
    return out


def _corrects(line: dict[str, Any], typed: Expected) -> bool:
    """True when ``line`` continues the open typed text: BackSpace presses, or more typing
    without a target, soon enough for the recorder to keep one sequence."""
    soon = int(line["t_start_ns"]) - typed.fields["t_end"] < SEQUENCE_IDLE_S * 1e9
    if line["action"] == "key":
        return soon and [k.lower() for k in line["keys"]] == ["backspace"]
    if line["action"] == "type":
        return soon and not line.get("target") and not line.get("secret")
    return False


def _correct(typed: Expected, line: dict[str, Any], shown: Callable[[str], str]) -> str:
    """Apply ``line`` to the open typed text; returns what follows an Enter or Tab in it."""
    raw: str = typed.fields["raw"]
    rest = ""
    if line["action"] == "key":
        raw = raw[: max(0, len(raw) - int(line.get("count") or 1))]
    else:
        text: str = line["text"]
        cut = min((i for i in (text.find("\n"), text.find("\t")) if i >= 0), default=len(text))
        raw, rest = raw + text[:cut], text[cut:]
    typed.fields["raw"] = raw
    typed.fields["text"] = shown(raw)
    typed.fields["t_end"] = int(line["t_end_ns"])
    return rest


def _typed(out: list[Expected], line: dict[str, Any], shown: Callable[[str], str]) -> None:
    text: str = line["text"]
    part = ""
    t = _t(line)
    for char in text:
        if char in "\n\t":
            if part:
                out.append(Expected("type", t, {"text": shown(part)}, ("typing",)))
                part = ""
            keys = ["enter"] if char == "\n" else ["tab"]
            out.append(Expected("key", int(line["t_end_ns"]), {"keys": keys, "count": 1}))
        else:
            part += char
    if part:
        out.append(Expected("type", t, {"text": shown(part)}, ("typing",)))


def _close(a: list[int], b: list[int]) -> bool:
    return abs(a[0] - b[0]) <= PIXELS and abs(a[1] - b[1]) <= PIXELS


def _fits(e: Expected, f: Found) -> bool:
    if e.type == "click" and f.type == "select_option" and e.fields.get("option"):
        # the app named the chosen item (accessibility): the value must be the option chosen
        return (
            f.fields.get("value") == e.fields["option"]
            and bool(set(e.tags) & set(f.skills))
            and _close([e.fields["x"], e.fields["y"]], [f.fields["x"], f.fields["y"]])
        )
    if e.type != f.type:
        return False
    if e.tags and not set(e.tags) & set(f.skills):
        return False
    ef, ff = e.fields, f.fields
    if e.type == "click":
        return (
            _close([ef["x"], ef["y"]], [ff["x"], ff["y"]])
            and ef["button"] == ff["button"]
            and ef["count"] == ff["count"]
            and ef["modifiers"] == sorted(ff.get("modifiers") or [])
        )
    if e.type == "drag":
        path = ff["path"]
        return (_close(ef["start"], path[0]) and _close(ef["end"], path[-1])) and ef[
            "button"
        ] == ff["button"]
    if e.type == "scroll":
        return _close([ef["x"], ef["y"]], [ff["x"], ff["y"]]) and (ef["dx"], ef["dy"]) == (
            ff["dx"],
            ff["dy"],
        )
    if e.type == "type":
        if e.secret:
            return True
        return ef["text"] == ff["text"]
    if e.type == "key":
        return ef["keys"] == ff["keys"] and ef["count"] == int(ff.get("count") or 1)
    if e.type == "switch_app":
        if (ef["app"], ef["via"]) != (ff["app"], ff["via"]):
            return False
        if ef["via"] == "click":
            return _close([ef["x"], ef["y"]], [ff["x"], ff["y"]])
        if ef["via"] == "keys":
            return ef["keys"] == ff["keys"]
        return True
    if e.type == "move":
        return _close([ef["x"], ef["y"]], [ff["x"], ff["y"]])
    if e.type == "wait":
        return abs(ef["seconds"] - ff["seconds"]) <= WAIT_TOLERANCE_S
    return False


def score(expected: list[Expected], found: list[Found]) -> Score:
    """Greedy one-to-one matching in time order."""
    free = sorted(range(len(found)), key=lambda i: found[i].t_ns)
    used: set[int] = set()
    matched = 0
    secret_hits = 0
    missed: list[Expected] = []
    by_type: dict[str, list[int]] = {}
    for e in sorted(expected, key=lambda e: e.t_ns):
        key = f"{e.type}:{e.fields.get('via')}" if e.type == "switch_app" else e.type
        window = int(_WINDOW_S.get(key, _DEFAULT_WINDOW_S) * 1e9)
        best: int | None = None
        for i in free:
            if i in used:
                continue
            f = found[i]
            if abs(f.t_ns - e.t_ns) > window:
                continue
            if _fits(e, f) and (
                best is None or abs(f.t_ns - e.t_ns) < abs(found[best].t_ns - e.t_ns)
            ):
                best = i
        counts = by_type.setdefault(e.type, [0, 0])
        if e.secret:
            if best is not None:
                used.add(best)
                secret_hits += 1
            continue
        counts[1] += 1
        if best is None:
            missed.append(e)
        else:
            used.add(best)
            matched += 1
            counts[0] += 1
    # a short wait that matched nothing is in the band where the two clocks may disagree
    unsure = {
        i
        for i, f in enumerate(found)
        if i not in used and f.type == "wait" and f.fields["seconds"] < WAIT_SURE_S
    }
    extra = [found[i] for i in range(len(found)) if i not in used and i not in unsure]
    n_expected = sum(1 for e in expected if not e.secret)
    return Score(
        expected=n_expected,
        found=len(found) - secret_hits - len(unsure),
        matched=matched,
        missed=missed,
        extra=extra,
        by_type={k: (v[0], v[1]) for k, v in by_type.items()},
    )


def found_from_actions(actions: Iterable[Any]) -> list[Found]:
    """Reducer :class:`~demotrace.dataset.reduce.Action` objects -> scorer terms."""
    return [Found(a.type, a.t_start, dict(a.fields), list(a.skills)) for a in actions]
