"""The scorer of reductions against ground truth: it must find misses, extras and wrong fields."""

from __future__ import annotations

from demotrace.testbench.truth import Found, expected_actions, score

S = 1_000_000_000


def _line(seq: int, action: str, t: float, end: float, **fields: object) -> dict:
    return {
        "seq": seq,
        "scenario": "s",
        "action": action,
        "t_start_ns": int(t * S),
        "t_end_ns": int(end * S),
        "first_event_ns": int(t * S),
        "n_motion": 1,
        "n_button": 0,
        "n_key": 1,
        **fields,
    }


TRUTH = [
    _line(1, "click", 1, 1.2, x=100, y=50, button="left", count=2, modifiers=[]),
    _line(2, "type", 1.3, 2.0, text="helo"),
    _line(3, "key", 2.1, 2.2, keys=["backspace"], count=1),
    _line(4, "type", 2.3, 2.6, text="lo\n"),
    _line(5, "hotkey", 7.0, 7.2, keys=["ctrl", "s"]),
]


def test_expected_actions_normalise_the_truth() -> None:
    exp = expected_actions(TRUTH, lambda s: s)
    got = [(e.type, {k: v for k, v in e.fields.items() if k not in ("raw", "t_end")}) for e in exp]
    assert got == [
        ("click", {"x": 100, "y": 50, "button": "left", "count": 2, "modifiers": []}),
        ("type", {"text": "hello"}),  # corrections applied, as the recorder stores typing
        ("key", {"keys": ["enter"], "count": 1}),
        ("wait", {"seconds": 4.4}),  # 2.6 s -> 7.0 s without input
        ("key", {"keys": ["ctrl", "s"], "count": 1}),
    ]


def _found() -> list[Found]:
    return [
        Found("click", int(1.0 * S), {"x": 102, "y": 49, "button": "left", "count": 2}),
        Found("type", int(1.3 * S), {"text": "hello"}, ["typing"]),
        Found("key", int(2.6 * S), {"keys": ["enter"]}),
        Found("wait", int(2.6 * S), {"seconds": 4.3}),
        Found("key", int(7.0 * S), {"keys": ["ctrl", "s"]}, ["shortcut"]),
    ]


def test_a_perfect_reduction_scores_one() -> None:
    result = score(expected_actions(TRUTH), _found())
    assert (result.precision, result.recall) == (1.0, 1.0), result.report()


def test_wrong_fields_misses_and_extras_are_counted() -> None:
    found = _found()
    found[0].fields["x"] = 104  # 4 px off
    found[1].fields["text"] = "helo"  # correction lost
    del found[3]  # the wait is missing
    found.append(Found("scroll", int(3 * S), {"x": 1, "y": 1, "dx": 0, "dy": -1}))
    found.append(Found("wait", int(8 * S), {"seconds": 3.1}))  # near the threshold: not counted
    result = score(expected_actions(TRUTH), found)
    assert result.expected == 5 and result.matched == 2
    assert {e.type for e in result.missed} == {"click", "type", "wait"}
    assert sorted(f.type for f in result.extra) == ["click", "scroll", "type"]
    assert result.precision == 2 / 5 and result.recall == 2 / 5


def test_a_named_choice_scores_as_the_option_chosen() -> None:
    line = _line(1, "select_option", 1, 2, option="Germany", popup={"kind": "combo"})
    line["steps"] = [
        _line(0, "click", 1, 1.2, x=10, y=10, button="left", count=1, modifiers=[]),
        _line(0, "click", 1.6, 1.8, x=12, y=40, button="left", count=1, modifiers=[]),
    ]
    expected = expected_actions([line])
    opener = Found("click", int(1 * S), {"x": 10, "y": 10, "button": "left", "count": 1})
    opener.skills = ["dropdown"]
    right = Found("select_option", int(1.6 * S), {"x": 12, "y": 41, "value": "Germany"})
    right.skills = ["dropdown"]
    assert score(expected, [opener, right]).recall == 1.0
    wrong = Found("select_option", int(1.6 * S), {"x": 12, "y": 41, "value": "Japan"})
    wrong.skills = ["dropdown"]
    assert score(expected, [opener, wrong]).recall == 0.5
