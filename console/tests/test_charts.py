"""Chart geometry: round axis tops and ticks, bars as tall as their share of the axis."""

from __future__ import annotations

import pytest

from console.charts import axis_ticks, bar_chart, nice_ceiling


@pytest.mark.parametrize(("value", "top"), [(0, 1), (1, 1), (3, 5), (5, 5), (6, 10), (11, 20), (180, 200), (501, 1000)])
def test_axis_top_is_a_round_number_at_least_the_largest_bar(value, top):
    assert nice_ceiling(value) == top


@pytest.mark.parametrize(("top", "ticks"), [(1, [0, 1]), (5, [0, 1, 2, 3, 4, 5]), (10, [0, 5, 10]),
                                            (20, [0, 10, 20]), (50, [0, 10, 20, 30, 40, 50])])
def test_axis_ticks_are_round(top, ticks):
    assert axis_ticks(top) == ticks


def test_stacked_bar_heights_add_up_and_each_bar_says_its_numbers():
    chart = bar_chart(columns=[
        ("09:00", [("succeeded", 3, "green"), ("failed", 2, "red")], "Mon 09:00"),
        ("10:00", [("succeeded", 0, "green"), ("failed", 0, "red")], "Mon 10:00"),
    ])

    heights = {rect.title: rect.height for rect in chart.rects}
    assert set(heights) == {"Mon 09:00: 3 succeeded", "Mon 09:00: 2 failed"}
    assert heights["Mon 09:00: 3 succeeded"] == pytest.approx(1.5 * heights["Mon 09:00: 2 failed"], abs=0.02)
    assert [label.text for label in chart.x_labels] == ["09:00", "10:00"]
