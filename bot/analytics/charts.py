"""Plots as geometry for server-rendered SVG: numbers in, coordinates out; the Jinja2 macros in
bot/pages/templates/charts.html draw them (so every label is escaped by the template engine).

Readable without colour: each line has its own dash pattern and marker shape and is labelled at its end; each
bar segment has its own hatching; model promotions are dashed verticals with the version written beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

WIDTH, HEIGHT = 760, 270
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 26, 34
SHAPES = ("circle", "square", "triangle", "diamond")


@dataclass(frozen=True)
class Series:
    name: str
    style: int  # 0..3: dash pattern, marker shape and colour together
    points: str  # "x,y x,y ..." for <polyline>; a gap (no value) starts a new polyline
    segments: tuple[str, ...]
    markers: tuple[tuple[float, float, str], ...]  # x, y, tooltip
    label_y: float | None
    shape: str


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    left: int
    top: int
    plot_w: float
    plot_h: float
    x_ticks: tuple[tuple[float, str], ...]
    y_ticks: tuple[tuple[float, str], ...]
    series: tuple[Series, ...] = ()
    bars: tuple[tuple[float, float, float, float, int, str], ...] = ()  # x, y, w, h, style, tooltip
    legend: tuple[tuple[str, int], ...] = ()
    verticals: tuple[tuple[float, str], ...] = ()  # x, label (promotions)
    empty: bool = False


def _frame(days: Sequence[str]) -> tuple[float, float, list[tuple[float, str]]]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = max(1, len(days) // 8)
    ticks = [(x_of(i, len(days), plot_w), d[5:]) for i, d in enumerate(days) if i % step == 0]
    return plot_w, plot_h, ticks


def x_of(i: float, n: int, plot_w: float) -> float:
    return round(LEFT + (plot_w * (i + 0.5) / n if n else 0), 1)


def _y(value: float, top_value: float, plot_h: float) -> float:
    return round(TOP + plot_h * (1 - value / top_value if top_value else 1), 1)


def line_chart(title: str, days: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
               percent: bool = True, promotions: Sequence[tuple[str, str]] = (), unit: str = "") -> Chart:
    """Lines over days; `promotions` are (day, version) marked as verticals."""
    plot_w, plot_h, x_ticks = _frame(days)
    values = [v for _, vs in series for v in vs if v is not None]
    top_value = 1.0 if percent else _nice(max(values, default=1.0))
    y_ticks = tuple((_y(top_value * k / 4, top_value, plot_h),
                     f"{100 * top_value * k / 4:.0f} %" if percent else f"{top_value * k / 4:.3g}{unit}") for k in range(5))
    out = []
    for style, (name, vs) in enumerate(series):
        segments, current, markers = [], [], []
        for i, v in enumerate(vs):
            if v is None:
                if current:
                    segments.append(" ".join(current))
                current = []
                continue
            x, y = x_of(i, len(days), plot_w), _y(v, top_value, plot_h)
            current.append(f"{x},{y}")
            shown = f"{100 * v:.1f} %" if percent else f"{v:g}{unit}"
            markers.append((x, y, f"{name} on {days[i]}: {shown}"))
        if current:
            segments.append(" ".join(current))
        last = markers[-1][1] if markers else None
        out.append(Series(name, style % 4, " ".join(segments), tuple(segments), tuple(markers), last,
                          SHAPES[style % 4]))
    out = _spread_labels(out)
    index = {d: i for i, d in enumerate(days)}
    verticals = tuple((x_of(index[d], len(days), plot_w), version) for d, version in promotions if d in index)
    return Chart(title, WIDTH, HEIGHT, LEFT, TOP, plot_w, plot_h, tuple(x_ticks), y_ticks, series=tuple(out),
                 verticals=verticals, empty=not values)


def _spread_labels(series: list[Series], gap: float = 13.0) -> list[Series]:
    """End labels at least `gap` apart (lines that end at the same value would print over each other)."""
    labelled = sorted((s for s in series if s.label_y is not None), key=lambda s: s.label_y)
    placed: dict[str, float] = {}
    previous = None
    for s in labelled:
        y = s.label_y if previous is None else max(s.label_y, previous + gap)
        placed[s.name] = previous = y
    overflow = (previous or 0) - (TOP + HEIGHT - BOTTOM)
    if overflow > 0:  # pushed below the plot: shift them all up
        placed = {k: v - overflow for k, v in placed.items()}
    from dataclasses import replace

    return [replace(s, label_y=round(placed[s.name], 1)) if s.name in placed else s for s in series]


def stacked_shares(title: str, days: Sequence[str], names: Sequence[str],
                   shares: Sequence[Sequence[float | None]], promotions: Sequence[tuple[str, str]] = ()) -> Chart:
    """One 100 % bar per day; `shares[d][k]` is series k's share of day d (None: no data that day)."""
    plot_w, plot_h, x_ticks = _frame(days)
    bar_w = max(2.0, plot_w / max(1, len(days)) * 0.8)
    bars = []
    for i, day in enumerate(days):
        if not shares[i] or shares[i][0] is None:
            continue
        x, bottom = x_of(i, len(days), plot_w) - bar_w / 2, 0.0
        for k, share in enumerate(shares[i]):
            if not share:
                continue
            y_top = _y(bottom + share, 1.0, plot_h)
            bars.append((round(x, 1), y_top, round(bar_w, 1), round(_y(bottom, 1.0, plot_h) - y_top, 1), k,
                         f"{names[k]} on {day}: {100 * share:.1f} %"))
            bottom += share
    index = {d: i for i, d in enumerate(days)}
    y_ticks = tuple((_y(k / 4, 1.0, plot_h), f"{25 * k} %") for k in range(5))
    return Chart(title, WIDTH, HEIGHT, LEFT, TOP, plot_w, plot_h, tuple(x_ticks), y_ticks, bars=tuple(bars),
                 legend=tuple((n, k) for k, n in enumerate(names)),
                 verticals=tuple((x_of(index[d], len(days), plot_w), v) for d, v in promotions if d in index),
                 empty=not bars)


def _nice(v: float) -> float:
    """The round number at or above v that an axis ends at."""
    if v <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(v))) / 10
    for m in (1, 1.2, 2, 4, 6, 8, 10):  # a quarter of each is a short number
        if v <= m * magnitude:
            return m * magnitude
    return 10 * magnitude


@dataclass
class Charts:
    """The analytics page's plots, built from a Report."""

    outcomes: Chart
    routes: Chart
    latency: Chart


def with_data(report) -> list[str]:
    """The period's days from the first that has turns (all of them when none has): a bot's first day is one
    bar across the plot, not one squeezed into the last slot of an empty month."""
    first = next((i for i, d in enumerate(report.days) if report.day(d).turns), 0)
    return report.days[first:]


def for_report(report) -> Charts:
    from bot.analytics.figures import day_of
    from bot.dialogue.router import ROUTES

    days = with_data(report)
    promos = [(day_of(p.at), p.version[:15]) for p in report.promotions]
    rates = [("containment", "containment"), ("handoff", "handoff"), ("fallback_turns", "fallback (turns)")]
    outcomes = line_chart("Containment, handoff and fallback per day", days,
                          [(label, [report.day(d).rate(r).value for d in days]) for r, label in rates],
                          promotions=promos)
    routes = stacked_shares("Route shares per day (of the day's turns)", days, ROUTES,
                            [[s.value for s in report.day(d).route_shares().values()] for d in days], promos)
    latency = line_chart("Answer latency per day", days,
                         [("p50", [report.day(d).percentile(0.5) for d in days]),
                          ("p95", [report.day(d).percentile(0.95) for d in days])],
                         percent=False, promotions=promos, unit=" ms")
    return Charts(outcomes, routes, latency)
