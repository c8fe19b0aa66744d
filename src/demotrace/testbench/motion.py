"""Human-like pointer paths: curved (cubic Bezier), minimum-jerk timing, Fitts-like duration.

Pure math on a ``random.Random``; nothing here touches X.
"""

from __future__ import annotations

import math
import random

Point = tuple[float, float]
#: (seconds from the start of the move, x, y) in integer screen pixels.
Sample = tuple[float, int, int]


def min_jerk(tau: float) -> float:
    """Position fraction at time fraction ``tau`` of a minimum-jerk reach (slow-fast-slow)."""
    return tau**3 * (10.0 - 15.0 * tau + 6.0 * tau * tau)


def travel_time(rng: random.Random, distance: float) -> float:
    """Fitts-like duration of a reach, 0.25-0.9 s at human speed."""
    if distance <= 0:
        return 0.0
    base = 0.25 + 0.10 * math.log2(1.0 + distance / 12.0)
    return min(0.9, max(0.25, base + rng.gauss(0.0, 0.03)))


def _bezier(p0: Point, p1: Point, p2: Point, p3: Point, s: float) -> Point:
    u = 1.0 - s
    a, b, c, d = u * u * u, 3 * u * u * s, 3 * u * s * s, s * s * s
    return (
        a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0],
        a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1],
    )


def _segment(
    rng: random.Random,
    start: Point,
    end: Point,
    duration: float,
    rate_hz: float,
    curve: float,
    t0: float,
) -> list[Sample]:
    dx, dy = end[0] - start[0], end[1] - start[1]
    dist = math.hypot(dx, dy)
    if dist < 0.5:
        return []
    nx, ny = -dy / dist, dx / dist  # unit normal
    bow = max(-0.3, min(0.3, rng.gauss(0.0, 0.12))) * curve
    limit = 120.0
    k1 = max(-limit, min(limit, dist * (bow + rng.gauss(0.0, 0.03) * curve)))
    k2 = max(-limit, min(limit, dist * (bow + rng.gauss(0.0, 0.03) * curve)))
    u1, u2 = rng.uniform(0.2, 0.4), rng.uniform(0.6, 0.8)
    c1 = (start[0] + dx * u1 + nx * k1, start[1] + dy * u1 + ny * k1)
    c2 = (start[0] + dx * u2 + nx * k2, start[1] + dy * u2 + ny * k2)
    steps = max(2, round(duration * rate_hz))
    out: list[Sample] = []
    for i in range(1, steps + 1):
        tau = i / steps
        x, y = _bezier(start, c1, c2, end, min_jerk(tau))
        out.append((t0 + tau * duration, round(x), round(y)))
    return out


def human_path(
    rng: random.Random,
    start: Point,
    end: Point,
    *,
    speed: float = 1.0,
    curve: float = 1.0,
    overshoot: bool = True,
    slow: float = 1.0,
) -> list[Sample]:
    """Samples of a reach from ``start`` to ``end`` (which is always the last sample).

    ``curve`` scales how far the path bows (0 = straight); ``slow`` stretches the duration
    (drags are slower than free reaches); ``speed`` divides all durations.
    Consecutive samples at the same pixel are dropped.
    """
    dist = math.hypot(end[0] - start[0], end[1] - start[1])
    if dist < 0.5:
        return []
    rate = rng.uniform(100.0, 125.0)
    duration = travel_time(rng, dist) * slow / speed
    samples: list[Sample]
    if overshoot and dist > 80 and rng.random() < 0.35:
        ux, uy = (end[0] - start[0]) / dist, (end[1] - start[1]) / dist
        extra = min(25.0, dist * rng.uniform(0.03, 0.08))
        side = rng.gauss(0.0, 3.0)
        over = (end[0] + ux * extra - uy * side, end[1] + uy * extra + ux * side)
        samples = _segment(rng, start, over, duration, rate, curve, 0.0)
        fix = rng.uniform(0.12, 0.22) / speed
        samples += _segment(rng, over, end, fix, rate, 0.2 * curve, duration)
    else:
        samples = _segment(rng, start, end, duration, rate, curve, 0.0)
    out: list[Sample] = []
    last: tuple[int, int] | None = (round(start[0]), round(start[1]))
    for t, x, y in samples:
        if (x, y) != last:
            out.append((t, x, y))
            last = (x, y)
    target = (round(end[0]), round(end[1]))
    if not out or out[-1][1:] != target:
        out.append((samples[-1][0] if samples else 0.0, *target))
    return out
