"""What the replay viewer draws over an observation: the action and the pointer path leading to it.

:func:`overlay` decides what to draw for a step and returns it as plain shapes in the
observation's pixels (a JSON-able dict). Two renderers draw those shapes: the player in the
browser (SVG over the raw screenshot, ``static/viewer.js``), and :func:`render_frame` here
(Pillow, a PNG with the shapes burnt in: the worker page's thumbnails and the viewer's
``/frame/...png`` download). What to draw lives here alone; the renderers only know shapes.

Shapes (``kind``), every coordinate in observation pixels:

- ``box``: ``box`` [x0, y0, x1, y1], outlined in ``colour`` with ``width`` (a DOM/AT-SPI target);
- ``line``: ``points`` [[x, y], ...], a polyline in ``colour`` with ``width`` and ``opacity``;
- ``circle``: ``at`` [x, y], radius ``r``, outlined in ``colour`` with ``width``; with ``dot``,
  the centre pixel filled too;
- ``polygon``: ``points``, filled with ``colour`` (arrow heads);
- ``label``: ``text`` (may hold newlines) in a dark box placed ``gap`` pixels below right of
  ``at``, flipped to the other side where it would leave the image;
- ``caption``: ``lines`` of text in a dark box along the bottom edge (typed text, keys, what has
  no position).
"""

from __future__ import annotations

import functools
import io
import math
import textwrap
from typing import Any

from PIL import Image, ImageDraw, ImageFont

CLICK = (255, 0, 0)  # the click ring; nothing else is drawn in pure red
DRAG = (255, 150, 0)
SCROLL = (230, 0, 230)
POINTER = (0, 200, 255)
TARGET = (0, 220, 90)
POINTER_OPACITY = 220 / 255
LABEL_BACKGROUND = (0, 0, 0, 190)
CAPTION_BACKGROUND = (0, 0, 0, 200)
CAPTION_LINES = 6
PAD = 4  # inside a label's box
CAPTION_PAD = 8


def _hex(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def font_size(height: int) -> int:
    """Pixel size of label and caption text on an observation ``height`` pixels high."""
    return max(12, round(height / 50))


def overlay(
    step: dict[str, Any], size: tuple[int, int] | None = None, missing: bool = False
) -> dict[str, Any]:
    """The shapes to draw over ``step``'s observation: ``{"w", "h", "font", "shapes"}``.
    ``size`` is the observation's (width, height) when known; else the step's ``screen_w`` and
    ``screen_h`` (which the dataset keeps equal to it). ``missing``: no frame was recorded (a
    caption says so)."""
    w, h = size or (int(step.get("screen_w") or 1), int(step.get("screen_h") or 1))
    return _Builder(step, max(w, 1), max(h, 1)).build(missing)


class _Builder:
    def __init__(self, step: dict[str, Any], w: int, h: int) -> None:
        self.w, self.h = w, h
        self.step = step
        self.action: dict[str, Any] = step.get("action") or {}
        self.r = max(8, round(min(w, h) / 45))
        self.width = max(2, self.r // 6)
        self.font = font_size(h)
        self.shapes: list[dict[str, Any]] = []

    def px(self, x: float, y: float) -> list[int]:
        return [round(x * self.w), round(y * self.h)]

    def build(self, missing: bool) -> dict[str, Any]:
        self.pointer_path()
        a, kind = self.action, self.action.get("type")
        target = a.get("target") or {}
        bbox = target.get("bbox") if isinstance(target, dict) else None
        if isinstance(bbox, list) and len(bbox) == 4:
            box = [*self.px(bbox[0], bbox[1]), *self.px(bbox[2], bbox[3])]
            self.shapes.append({"kind": "box", "box": box, "colour": _hex(TARGET), "width": 2})
        captions = []
        if "invalid" in a:
            captions.append(f"{kind}: the action is not valid JSON")
        elif kind == "click":
            label = " ".join([*a.get("modifiers", []), a.get("button", "left")])
            self.ring(a["x"], a["y"], f"{label} x{a.get('count', 1)}")
        elif kind == "select_option":
            self.ring(a["x"], a["y"], f"select {a.get('value')!r}")
        elif kind == "switch_app":
            via = a.get("via")
            if via == "click" and "x" in a:
                self.ring(a["x"], a["y"], f"{a.get('button', 'left')} -> {a.get('app')}")
            keys = f" ({'+'.join(a['keys'])})" if a.get("keys") else ""
            captions.append(f"switch to {a.get('app')} via {via}{keys}")
        elif kind == "drag":
            self.drag(a.get("path") or [], a)
        elif kind == "scroll":
            self.scroll(a)
        elif kind == "type":
            masked = " (masked)" if a.get("masked") else ""
            captions.append(f"type{masked}: {a.get('text', '')}")
        elif kind == "key":
            count = f" x{a['count']}" if a.get("count", 1) > 1 else ""
            captions.append(f"key {'+'.join(a.get('keys', []))}{count}")
        elif kind == "wait":
            captions.append(f"wait {a.get('seconds', 0):.1f} s")
        elif kind == "move":
            self.circle(self.px(a["x"], a["y"]), self.r // 2, POINTER)
            captions.append("move (hover)")
        else:
            captions.append(f"{kind}")
        if missing:
            captions.append("no frame was recorded for this step")
        if captions:
            self.caption("\n".join(captions))
        return {"w": self.w, "h": self.h, "font": self.font, "shapes": self.shapes}

    # -- shapes
    def line(self, points: list[list[int]], colour: tuple[int, int, int], width: int,
             opacity: float = 1.0) -> None:  # fmt: skip
        self.shapes.append(
            {"kind": "line", "points": points, "colour": _hex(colour), "width": width,
             "opacity": round(opacity, 3)}
        )  # fmt: skip

    def circle(self, at: list[int], r: int, colour: tuple[int, int, int], dot: bool = False,
               width: int | None = None) -> None:  # fmt: skip
        self.shapes.append(
            {"kind": "circle", "at": at, "r": r, "colour": _hex(colour),
             "width": self.width if width is None else width, "dot": dot}
        )  # fmt: skip

    def label(self, at: list[int] | list[float], text: str, gap: int) -> None:
        self.shapes.append({"kind": "label", "at": [round(at[0]), round(at[1])], "gap": gap,
                            "text": text})  # fmt: skip

    def arrow_head(self, tip: tuple[float, float], angle: float, colour: tuple[int, ...]) -> None:
        size = self.r
        left = (tip[0] - size * math.cos(angle - 0.45), tip[1] - size * math.sin(angle - 0.45))
        right = (tip[0] - size * math.cos(angle + 0.45), tip[1] - size * math.sin(angle + 0.45))
        points = [[round(p[0], 1), round(p[1], 1)] for p in (tip, left, right)]
        self.shapes.append({"kind": "polygon", "points": points, "colour": _hex(colour[:3])})

    # -- what an action is drawn as
    def pointer_path(self) -> None:
        w, h = self.w, self.h  # the longest list of a step: no call per point
        path = self.step.get("pointer_path") or []
        points = [[round(p[0] * w), round(p[1] * h)] for p in path if len(p) >= 2]
        if len(points) >= 2:
            self.line(points, POINTER, 2, POINTER_OPACITY)

    def ring(self, x: float, y: float, label: str) -> None:
        """A red ring centred exactly on the pixel ``round(x * w), round(y * h)``, labelled."""
        centre = self.px(x, y)
        self.circle(centre, self.r, CLICK, dot=True)
        self.label(centre, label, self.r + 6)

    def caption(self, text: str) -> None:
        chars = max(20, self.w // max(1, round(self.font * 0.6)))
        lines = [ln for part in text.splitlines() for ln in textwrap.wrap(part, chars) or [""]]
        lines = lines[:CAPTION_LINES] + (["..."] if len(lines) > CAPTION_LINES else [])
        self.shapes.append({"kind": "caption", "lines": lines})

    def drag(self, path: list[list[float]], a: dict[str, Any]) -> None:
        points = [self.px(p[0], p[1]) for p in path if len(p) >= 2]
        if not points:
            return
        start, end = points[0], points[-1]
        self.circle(start, self.r // 2, DRAG, width=1)
        if len(points) >= 2:
            self.line(points, DRAG, self.width + 1)
            before = next((p for p in reversed(points) if p != end), start)
            angle = math.atan2(end[1] - before[1], end[0] - before[0])
            self.arrow_head((end[0], end[1]), angle, DRAG)
        label = " ".join([*a.get("modifiers", []), f"drag {a.get('button', 'left')}"])
        self.label(end, label, self.r + 6)

    def scroll(self, a: dict[str, Any]) -> None:
        """An arrow from the scroll point the way the content moves under the wheel (``dy`` > 0
        up, ``dx`` > 0 right), one tick per notch."""
        cx, cy = self.px(a["x"], a["y"])
        dx, dy = a.get("dx", 0), a.get("dy", 0)
        notches = max(abs(dx), abs(dy), 1)
        angle = math.atan2(-dy, dx)
        length = min(self.r * (2 + notches), max(self.w, self.h) / 3)
        tip = (cx + length * math.cos(angle), cy + length * math.sin(angle))
        r = self.r // 2
        self.circle([cx, cy], r, SCROLL)
        self.line([[cx, cy], [round(tip[0], 1), round(tip[1], 1)]], SCROLL, self.width + 1)
        self.arrow_head(tip, angle, SCROLL)
        normal = (-math.sin(angle) * r, math.cos(angle) * r)
        for i in range(1, notches + 1):
            at = (cx + (tip[0] - cx) * i / (notches + 1), cy + (tip[1] - cy) * i / (notches + 1))
            ends = [
                [round(at[0] - normal[0], 1), round(at[1] - normal[1], 1)],
                [round(at[0] + normal[0], 1), round(at[1] + normal[1], 1)],
            ]
            self.line(ends, SCROLL, self.width)
        label = " ".join([*a.get("modifiers", []), f"scroll dx={dx} dy={dy}"])
        self.label([cx, cy], label, self.r + 6)


# -- Pillow ------------------------------------------------------------------------------------
@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def render_frame(
    image_bytes: bytes | None, step: dict[str, Any], max_width: int | None = None
) -> bytes:
    """The observation as a PNG with the step's :func:`overlay` drawn on it (a grey image of the
    step's screen size, captioned, when there is no observation); drawn at full size, then made
    at most ``max_width`` pixels wide when given (a thumbnail: one small encode)."""
    if image_bytes:
        image = Image.open(io.BytesIO(image_bytes)).convert("RGBA")
        shapes = overlay(step, image.size)
    else:
        shapes = overlay(step, missing=True)
        image = Image.new("RGBA", (shapes["w"], shapes["h"]), (60, 60, 60, 255))
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    paint(layer, shapes)
    drawn = Image.alpha_composite(image, layer).convert("RGB")
    if max_width is not None and drawn.width > max_width:
        height = max(1, round(drawn.height * max_width / drawn.width))
        drawn = drawn.resize((max_width, height), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    drawn.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def paint(layer: Image.Image, drawing: dict[str, Any]) -> None:
    """Draw an :func:`overlay` on a transparent RGBA ``layer`` of the observation's size."""
    d = ImageDraw.Draw(layer)
    font = _font(drawing["font"])
    w, h = layer.size
    for s in drawing["shapes"]:
        kind = s["kind"]
        if kind == "box":
            d.rectangle(s["box"], outline=_rgb(s["colour"]), width=s["width"])
        elif kind == "line":
            alpha = round(s["opacity"] * 255)
            points = [tuple(p) for p in s["points"]]
            d.line(points, fill=(*_rgb(s["colour"]), alpha), width=s["width"], joint="curve")
        elif kind == "circle":
            (x, y), r = s["at"], s["r"]
            d.ellipse((x - r, y - r, x + r, y + r), outline=_rgb(s["colour"]), width=s["width"])
            if s["dot"]:
                d.point([(x, y)], fill=_rgb(s["colour"]))
        elif kind == "polygon":
            d.polygon([tuple(p) for p in s["points"]], fill=_rgb(s["colour"]))
        elif kind == "label":
            x0, y0, x1, y1 = d.multiline_textbbox((0, 0), s["text"], font=font)
            tw, th = x1 - x0, y1 - y0
            (ax, ay), gap = s["at"], s["gap"]
            x = ax + gap if ax + gap + tw + 2 * PAD < w else ax - gap - tw - 2 * PAD
            y = ay + gap if ay + gap + th + 2 * PAD < h else ay - gap - th - 2 * PAD
            d.rectangle((x, y, x + tw + 2 * PAD, y + th + 2 * PAD), fill=LABEL_BACKGROUND)
            d.multiline_text((x + PAD - x0, y + PAD - y0), s["text"], font=font, fill="white")
        elif kind == "caption":
            text = "\n".join(s["lines"])
            x0, y0, x1, y1 = d.multiline_textbbox((0, 0), text, font=font)
            top = h - (y1 - y0) - 3 * CAPTION_PAD
            box = (CAPTION_PAD, top, x1 - x0 + 3 * CAPTION_PAD, h - CAPTION_PAD)
            d.rectangle(box, fill=CAPTION_BACKGROUND)
            at = (2 * CAPTION_PAD - x0, top + CAPTION_PAD - y0)
            d.multiline_text(at, text, font=font, fill="white")
