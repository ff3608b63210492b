"""Charts as inline SVG, drawn on the server: no script, no library, readable without
JavaScript. Each chart is a list of bars with their labels; the page's CSS colours them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT, PAD = 640, 180, 28


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # the CSS class: loaded, rejected, speed
    label: str  # the tooltip (an SVG <title>)


@dataclass
class Chart:
    title: str
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (x, label) under the bars
    top: str  # the value of the chart's top line
    width: int = WIDTH
    height: int = HEIGHT


def rows_per_day(runs: Sequence[dict[str, Any]]) -> Chart:
    """Rows loaded and rejected per day (the day a run started), a pair of bars a day."""
    days: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in runs:
        day = str(r.get("started_at") or "")[:10]
        if day:
            days[day][0] += int(r.get("rows_loaded") or 0)
            days[day][1] += int(r.get("rows_rejected") or 0)
    order = sorted(days)[-30:]
    top = max((max(v) for v in days.values()), default=0) or 1
    slot = (WIDTH - 2 * PAD) / max(len(order), 1)
    bars: list[Bar] = []
    ticks: list[tuple[float, str]] = []
    for i, day in enumerate(order):
        loaded, rejected = days[day]
        x = PAD + i * slot
        w = max(slot / 2 - 2, 1)
        for j, (value, kind) in enumerate(((loaded, "loaded"), (rejected, "rejected"))):
            h = (HEIGHT - 2 * PAD) * value / top
            bars.append(
                Bar(x + j * (w + 1), HEIGHT - PAD - h, w, h, kind, f"{day}: {value:,} {kind}")
            )
        ticks.append((x + slot / 2, day[5:]))
    return Chart("Rows loaded and rejected per day", bars, ticks, f"{top:,}")


def speed_per_run(runs: Sequence[dict[str, Any]]) -> Chart:
    """Rows read a second by each run that took time, oldest first."""
    points = []
    for r in reversed(runs):
        duration = _duration(r)
        if duration and r.get("rows_read"):
            points.append((str(r.get("file") or ""), int(r["rows_read"]) / duration))
    points = points[-60:]
    top = max((p for _, p in points), default=0.0) or 1.0
    slot = (WIDTH - 2 * PAD) / max(len(points), 1)
    bars = [
        Bar(
            PAD + i * slot,
            HEIGHT - PAD - (HEIGHT - 2 * PAD) * speed / top,
            max(slot - 2, 1),
            (HEIGHT - 2 * PAD) * speed / top,
            "speed",
            f"{name}: {speed:,.0f} rows/s",
        )
        for i, (name, speed) in enumerate(points)
    ]
    return Chart("Rows a second, per run", bars, [], f"{top:,.0f}")


def _duration(run: dict[str, Any]) -> float | None:
    receipt = run.get("receipt") or {}
    value = receipt.get("duration_s") if isinstance(receipt, dict) else None
    return float(value) if value else None
