"""The plain-language consent notice, generated from the policy. Pure.

:func:`notice_dict` builds the content once, as data (for a web page); :func:`render_notice`
lays it out as plain text wrapped at 88 columns (for ``demotrace consent --show``). Consent binds
to ``policy.version``, which the notice states.
"""

from __future__ import annotations

import textwrap
from typing import Any

from demotrace.privacy.policy import DAYS, Hours, Policy, Rule, parse_hotkey

WIDTH = 88

KEYSTROKES_IN_WORDS = {
    "text": (
        "what you type is kept as text, after secrets in it (card numbers, IBANs, keys and "
        "tokens, email addresses, phone numbers) are replaced on this computer"
    ),
    "masked": (
        'the shape of what you type is kept, not its content: every letter becomes "a", every '
        'digit "9" and every other sign "."; shortcuts and keys such as Enter or Tab are kept'
    ),
    "keys": (
        "only shortcuts and special keys (such as Ctrl+C, Enter, Tab or the arrows) are kept; "
        "the characters you type are not kept at all"
    ),
}
SCREENSHOTS_IN_WORDS = {
    "window": "screenshots of its window, with everything else on the screen blacked out",
    "off": "no screenshots",
}
_DAY_NAMES = dict(zip(DAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                              "Saturday", "Sunday"), strict=True))  # fmt: skip


def _number(x: float) -> str:
    return f"{x:g}"


def _plural(x: float, one: str, many: str) -> str:
    return f"{_number(x)} {one if x == 1 else many}"


def _days(hours: Hours) -> str:
    idx = [DAYS.index(d) for d in hours.days]
    if len(idx) == 7:
        return "every day"
    if len(idx) >= 3 and idx == list(range(idx[0], idx[-1] + 1)):
        return f"{_DAY_NAMES[DAYS[idx[0]]]} to {_DAY_NAMES[DAYS[idx[-1]]]}"
    names = [_DAY_NAMES[DAYS[i]] for i in idx]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _when(policy: Policy) -> str:
    if policy.hours is None:
        return (
            "No working hours are set: recording can happen at any time while the recorder "
            "runs, and only in the apps and sites listed above."
        )
    h = policy.hours
    return (
        f"Only during working hours: {_days(h)}, {h.start} to {h.end} (the local time of this "
        "computer). Outside these hours nothing is recorded."
    )


KEYSTROKES_SHORT = {
    "text": "typed text kept (secrets replaced)",
    "masked": "typing kept masked (letters become a, digits 9)",
    "keys": "only shortcuts and special keys kept",
}
SCREENSHOTS_SHORT = {"window": "screenshots of this window only", "off": "no screenshots"}


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text[-1:] in ".!?" else text + "."


def _rule_line(rule: Rule) -> dict[str, Any]:
    where = f" ({', '.join(rule.domains)})" if rule.kind == "site" and rule.domains else ""
    return {
        "name": rule.name,
        "kind": rule.kind,
        "domains": list(rule.domains),
        "keystrokes": rule.keystrokes,
        "screenshots": rule.screenshots,
        "text": (
            f"{rule.name}{where}: {KEYSTROKES_SHORT[rule.keystrokes]}; "
            f"{SCREENSHOTS_SHORT[rule.screenshots]}."
        ),
    }


def notice_dict(policy: Policy) -> dict[str, Any]:
    """The notice as data: a title, the policy's identity and numbers, and sections. Each
    section has an ``id``, a ``heading``, ``paragraphs``, bullet ``items`` and closing
    ``after`` paragraphs (all plain strings); the "where" section also lists its ``rules``
    with their fields."""
    hotkey = parse_hotkey(policy.hotkey).label()
    task_hotkey = parse_hotkey(policy.task_hotkey).label()
    all_rules = (*policy.apps, *policy.sites)
    rules = [_rule_line(r) for r in all_rules]
    keystroke_modes = [m for m in KEYSTROKES_IN_WORDS if any(r.keystrokes == m for r in all_rules)]
    shots = any(r.screenshots == "window" for r in all_rules)
    if rules:
        where_intro = "Recording happens only in these apps and websites:"
    else:
        where_intro = (
            "This policy lists no apps and no websites, so nothing is recorded: every window "
            "is out of scope."
        )
    hours = _plural(policy.review_hours, "hour", "hours")
    review = (
        f"Nothing leaves this computer until you have had {hours} to look through a "
        "recording and delete any part of it."
        if policy.review_hours > 0
        else "There is no review period: a finished recording may be uploaded at once. You can "
        "still look through and delete recordings; deletion also reaches uploaded copies."
    )
    what = ["Pointer movements, clicks and scrolls."]
    what += [
        f'Keystrokes where the mode is "{m}": {KEYSTROKES_IN_WORDS[m]}.' for m in keystroke_modes
    ]
    what.append(
        "The names and titles of the windows you work in, and the address of the website "
        "where the browser reports it."
    )
    if shots:
        some = (
            " (where the list below says so)"
            if any(r.screenshots == "off" for r in all_rules)
            else ""
        )
        what.append(
            f"Screenshots{some} of the in-scope window as it was just before each action: "
            "everything else on the screen is blacked out and password fields are masked."
        )
    what.append("The task descriptions you choose to give (`demotrace task start`).")
    sections: list[dict[str, Any]] = [
        {
            "id": "who",
            "heading": "Who records and why",
            "paragraphs": [
                "demotrace can record how you work on this computer, in the work apps and "
                "websites named below, and only with your agreement.",
                f"Who asks: {_sentence(policy.organisation)}",
                f"Why: {_sentence(policy.purpose)}",
            ],
            "items": [],
        },
        {
            "id": "what",
            "heading": "What is recorded",
            "paragraphs": ["Inside the apps and websites listed below, and only there:"],
            "items": what,
        },
        {
            "id": "where",
            "heading": "Where and when",
            "paragraphs": [where_intro],
            "items": [r["text"] for r in rules],
            "rules": rules,
            "after": [_when(policy)],
        },
        {
            "id": "never",
            "heading": "What is never recorded",
            "paragraphs": [],
            "items": [
                "Other apps and websites: while you use them, only a gap marker is kept, saying "
                "why (out of scope, paused, idle) and for how long, never what was in it.",
                "Passwords, password fields, secure prompts and password managers.",
                "Secrets in what you type, in window titles and in addresses (card numbers, "
                "IBANs, keys and tokens, email addresses, phone numbers): they are replaced on "
                "this computer, before anything is stored.",
                "Anything outside in-scope windows: it is blacked out in screenshots before "
                "they are stored.",
                "Anything while recording is paused or outside the working hours.",
            ],
        },
        {
            "id": "control",
            "heading": "You can always see it and pause it",
            "paragraphs": [
                "An indicator is always visible while recording is on. Press "
                f"{hotkey} to pause or resume at once. For private time, run "
                "`demotrace pause --for 15m` (any duration); `demotrace resume` ends it early.",
                f"Optionally, {task_hotkey} marks where a task starts and ends; `demotrace task "
                'start "..."` adds your own words for it.',
            ],
            "items": [],
        },
        {
            "id": "keep",
            "heading": "How long it is kept, and who sees it",
            "paragraphs": [
                f"Recordings on this computer are deleted after "
                f"{_plural(policy.retention_days, 'day', 'days')}, and the oldest are deleted "
                f"first once they take more than {_number(policy.retention_gb)} GB.",
                review,
                f"Who sees the recordings: {_sentence(policy.who_sees)}",
            ],
            "items": [],
        },
        {
            "id": "rights",
            "heading": "Your rights",
            "paragraphs": [],
            "items": [
                "See what was recorded: `demotrace sessions` lists it, `demotrace show ID` "
                "shows one session.",
                "Delete it: `demotrace forget --last 10m` deletes the last ten minutes (any "
                "duration), `demotrace forget --session ID` a whole session; once uploaded, "
                "the collector is asked to delete it too.",
                "Withdraw your consent at any time with `demotrace consent --withdraw`: "
                "recording stops and does not start again without your new agreement.",
                f"Questions, and every other request about your data: {_sentence(policy.contact)}",
            ],
        },
        {
            "id": "consent",
            "heading": "Your agreement",
            "paragraphs": [
                f'This notice describes the policy "{policy.name}", revision {policy.revision}, '
                f"version {policy.version}. Your agreement applies to this version only: when "
                "the policy changes, recording stops until you have read the new notice and "
                "agreed again.",
                "To agree, run `demotrace consent --accept`. Nothing is recorded until you do.",
            ],
            "items": [],
        },
    ]
    return {
        "title": f"Recording notice: {policy.name}",
        "policy": {
            "name": policy.name,
            "revision": policy.revision,
            "version": policy.version,
            "organisation": policy.organisation,
            "contact": policy.contact,
            "hotkey": policy.hotkey,
            "hotkey_label": hotkey,
            "task_hotkey": policy.task_hotkey,
            "task_hotkey_label": task_hotkey,
            "retention_days": policy.retention_days,
            "retention_gb": policy.retention_gb,
            "review_hours": policy.review_hours,
            "hours": policy.hours.summary() if policy.hours else None,
        },
        "sections": sections,
    }


def _wrap(text: str, first: str = "", rest: str = "") -> list[str]:
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first.rstrip()]


def render_notice(policy: Policy) -> str:
    """The notice as plain text, wrapped at 88 columns, ending with a newline."""
    notice = notice_dict(policy)
    lines = [notice["title"], "=" * min(WIDTH, len(notice["title"]))]
    for section in notice["sections"]:
        lines += ["", section["heading"], "-" * len(section["heading"])]
        for i, paragraph in enumerate(section["paragraphs"]):
            lines += [""] * (i > 0) + _wrap(paragraph)
        for item in section["items"]:
            lines += _wrap(item, "  - ", "    ")
        for paragraph in section.get("after", []):
            lines += ["", *_wrap(paragraph)]
    return "\n".join(lines) + "\n"
