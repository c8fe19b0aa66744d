"""Episodes: a session's actions cut into tasks, with ``wait`` steps for pauses inside them.

Cuts, in order of strength:

- the worker's task markers (``demotrace task start "..."`` / ``task end``): a marked task is one
  episode, whatever pauses it holds, and carries the worker's instruction;
- outside marked tasks: an input silence of ``idle_split_s`` (default 60 s), a pause, private
  time or working-hours gap, or an out-of-scope gap of ``scope_gap_split_s`` (default 10 s; short
  ones are the pointer crossing the desktop between two apps).

Inside an episode, a silence of ``wait_s`` (default 3 s) or more between two actions becomes a
``wait`` step (in a marked task, whatever its length).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from demotrace.dataset.reduce import Action, Reduction

#: Gap reasons that always cut an episode (outside marked tasks).
_CUTTING_GAPS = frozenset({"paused", "private", "hours"})


@dataclass(frozen=True)
class EpisodeConfig:
    idle_split_s: float = 60.0
    scope_gap_split_s: float = 10.0
    wait_s: float = 3.0


@dataclass
class Episode:
    index: int
    actions: list[Action] = field(default_factory=list)
    instruction: str | None = None
    start_reason: str = "session"
    end_reason: str = "session"


def split_episodes(red: Reduction, cfg: EpisodeConfig | None = None) -> list[Episode]:
    """Cut the reduction's actions into episodes and add ``wait`` steps inside them."""
    cfg = cfg or EpisodeConfig()
    idle_ns = int(cfg.idle_split_s * 1e9)
    wait_ns = int(cfg.wait_s * 1e9)
    scope_ns = int(cfg.scope_gap_split_s * 1e9)
    # boundaries: (t, order, what, text); markers sort before cuts at the same time
    bounds: list[tuple[int, int, str, str | None]] = []
    for t, _seq, what, text in red.markers:
        if what in ("task_start", "task_end"):
            bounds.append((t, 0, what, text))
    for t, _seq, reason, duration in red.gaps:
        if reason in _CUTTING_GAPS or (reason == "out_of_scope" and duration >= scope_ns):
            bounds.append((t, 1, "gap", None))
    for t_from, t_to in red.idle:
        if t_to - t_from >= idle_ns:
            # the cut is where input resumed: the action that ended the input stays before it
            bounds.append((t_to, 1, "idle", None))
    bounds.sort(key=lambda b: (b[0], b[1]))
    # a silence that holds a gap is not a wait: private time, or a password being typed
    gap_spans = sorted((t, t + max(duration, 1)) for t, _s, _r, duration in red.gaps)
    idle = [(t0, t1) for t0, t1 in sorted(red.idle) if not _overlaps(gap_spans, t0, t1)]

    episodes: list[Episode] = []
    current: Episode | None = None
    marked = False
    pending_start = "session"
    pending_text: str | None = None
    bi = 0
    ii = 0
    prev: Action | None = None
    for a in red.actions:
        # boundaries that happened before this action began
        cut: str | None = None
        while bi < len(bounds) and bounds[bi][0] <= a.t_start:
            _t, _o, what, text = bounds[bi]
            bi += 1
            if what == "task_start":
                cut, marked, pending_start, pending_text = "marker", True, "marker", text
            elif what == "task_end":
                if marked:
                    cut, marked, pending_start, pending_text = "marker", False, "marker", None
            elif not marked and cut is None:
                cut, pending_start = what, what
        if cut is not None and current is not None and current.actions:
            current.end_reason = cut
            current = None
        if current is None:
            current = Episode(len(episodes), instruction=pending_text, start_reason=pending_start)
            episodes.append(current)
            pending_text = None
            prev = None
        # silences between the previous action of this episode and this one
        if prev is not None:
            while ii < len(idle) and idle[ii][1] <= prev.t_end:
                ii += 1
            j = ii
            while j < len(idle) and idle[j][1] <= a.t_start:
                t_from, t_to = idle[j]
                j += 1
                length = t_to - t_from
                if t_from >= prev.t_end and length >= wait_ns and (marked or length < idle_ns):
                    current.actions.append(_wait(t_from, t_to, prev, red))
            ii = j
        current.actions.append(a)
        prev = a
    # what ended the last episode: the first boundary after its last action, else the session
    rest = [b[2] for b in bounds[bi:]]
    if current is not None and rest:
        ended_by_marker = marked and any(w.startswith("task_") for w in rest)
        first = rest[0]
        current.end_reason = "marker" if ended_by_marker or first.startswith("task_") else first
    episodes = [e for e in episodes if e.actions]
    for i, e in enumerate(episodes):
        e.index = i
    return episodes


def _overlaps(spans: list[tuple[int, int]], t0: int, t1: int) -> bool:
    """True if any of the sorted ``spans`` meets the interval [t0, t1]."""
    i = bisect_right(spans, (t1, 1 << 62))  # spans starting after t1 cannot meet it
    return any(s1 >= t0 for _s0, s1 in spans[:i])


def _wait(t_from: int, t_to: int, prev: Action, red: Reduction) -> Action:
    seconds = round((t_to - t_from) / 1e9, 2)
    a = Action("wait", t_from, t_to, prev.seq_end, prev.seq_end, {"seconds": seconds})
    a.app, a.title, a.url, a.window = prev.app, prev.title, prev.url, prev.window
    a.pointer = prev.pointer
    # the screen as it was while nothing happened
    a.frame, a.frame_t = red.frame_before(t_to) or (prev.frame, prev.frame_t)
    return a
