"""Geometry of the dashboard's charts, drawn as inline SVG by the templates.

Server-side SVG rather than a JavaScript chart library: the numbers are in the page itself (a
test and a screen reader can read them, every bar has a tooltip), nothing has to be fetched or
pinned, and the page needs no script to show a chart. Pure code: no Django, no database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WIDTH = 720
HEIGHT = 180
LEFT = 36  # room for the y-axis labels
BOTTOM = 22  # room for the x-axis labels
TOP = 8


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str
    css_class: str = ""


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    rects: list[Rect]
    x_labels: list[Label]
    y_labels: list[Label]
    grid: list[float]  # y of the horizontal grid lines
    plot_left: int
    plot_right: int


def nice_ceiling(value: int) -> int:
    """The axis top: 1, 2, 5 × a power of ten, at least `value` (and at least 1)."""
    if value <= 1:
        return 1
    magnitude = 10 ** int(math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def axis_ticks(top: int) -> list[int]:
    """Round tick values from 0 to `top` (a nice_ceiling): 0-5 by 1, 0-10 by 5, 0-20 by 10, 0-50 by 10…"""
    leading = int(str(top)[0])
    step = max(top // 5 if leading == 5 else top // 2, 1)
    return list(range(0, top + 1, step))


def bar_chart(
    *, columns: list[tuple[str, list[tuple[str, int, str]], str]], label_every: int = 1
) -> Chart:
    """Stacked bars. `columns`: (x label, [(series name, value, colour)], tooltip prefix) each."""
    top_value = nice_ceiling(max((sum(value for _, value, _ in stack) for _, stack, _ in columns), default=0))
    plot_width = WIDTH - LEFT - 4
    plot_height = HEIGHT - TOP - BOTTOM
    slot = plot_width / max(len(columns), 1)
    bar_width = max(slot * 0.8, 1)
    rects: list[Rect] = []
    x_labels: list[Label] = []
    for index, (label, stack, prefix) in enumerate(columns):
        x = LEFT + index * slot + (slot - bar_width) / 2
        base = HEIGHT - BOTTOM
        for name, value, colour in stack:
            if value <= 0:
                continue
            height = plot_height * value / top_value
            base -= height
            rects.append(Rect(round(x, 2), round(base, 2), round(bar_width, 2), round(height, 2), colour,
                              f"{prefix}: {value} {name}", css_class=f"series-{name.lower().replace(' ', '-')}"))
        if index % label_every == 0:
            x_labels.append(Label(round(x + bar_width / 2, 2), HEIGHT - 6, label))
    ticks = axis_ticks(top_value)
    y_labels = [Label(LEFT - 6, round(HEIGHT - BOTTOM - plot_height * tick / top_value + 4, 2), str(tick))
                for tick in ticks]
    grid = [round(HEIGHT - BOTTOM - plot_height * tick / top_value, 2) for tick in ticks]
    return Chart(WIDTH, HEIGHT, rects, x_labels, y_labels, grid, LEFT, WIDTH - 4)
