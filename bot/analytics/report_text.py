"""A report as text: for the terminal, and as a Markdown file with PNG plots (matplotlib, the `report` extra) for a
weekly e-mail (`run_bot.py report`)."""

from __future__ import annotations

from pathlib import Path


def check_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError("--markdown draws its plots with matplotlib, which is not installed: "
                         "pip install 'supportbot[report]'") from None


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def terminal(r) -> str:
    f = r.total
    lines = [f"{r.since} to {r.until} (UTC): {f.turns} turns, {f.conversations} conversations "
             f"({f.settled} settled, {f.pending} pending)", ""]
    for name, label in (("containment", "contained"), ("handoff", "handed off"), ("returned", "came back"),
                        ("abandonment", "abandoned after a fallback"), ("fallback_turns", "fallback answers"),
                        ("fallback_conversations", "conversations with a fallback"),
                        ("clarification", "clarifying questions"), ("thumbs_down", "thumbs down")):
        rate = f.rate(name)
        lines.append(f"  {label:<32} {_pct(rate.value):>8}   {rate.count} of {rate.total} {rate.per}")
    p50, p95 = f.percentile(0.5), f.percentile(0.95)
    lines.append(f"  {'answer latency':<32} {'–' if p50 is None else f'{p50:.0f} ms':>8}   p50; p95 "
                 f"{'–' if p95 is None else f'{p95:.0f} ms'}")
    lines += ["", "routes (of all turns): " + ", ".join(f"{k} {_pct(s.value)}" for k, s in f.route_shares().items())]
    for t in (tables := r.tables())["versions"], tables["weekly"], tables["intents"], tables["thumbs_down_intents"], \
            tables["thumbs_down_articles"], tables["promotions"], tables["unanswered"], tables["growing_clusters"]:
        if t.rows:
            lines += ["", t.title + ":", *_text_table(t)]
    return "\n".join(lines)


def _cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and 0 <= v <= 1:
        return _pct(v)
    return str(v)


def _text_table(t, limit: int = 15) -> list[str]:
    rows = [tuple(t.columns)] + [tuple(_cell(v) for v in row) for row in t.rows[:limit]]
    widths = [min(40, max(len(r[i]) for r in rows)) for i in range(len(t.columns))]
    return ["  " + "  ".join(c[:40].ljust(w) for c, w in zip(row, widths)) for row in rows]


def _md_table(t, limit: int = 20) -> list[str]:
    def esc(v) -> str:
        return _cell(v).replace("|", "\\|").replace("\n", " ")

    return [f"| {' | '.join(t.columns)} |", f"|{'---|' * len(t.columns)}",
            *(f"| {' | '.join(esc(v) for v in row)} |" for row in t.rows[:limit])]


def write_markdown(r, path: Path) -> list[Path]:
    """The report as Markdown with PNG plots (same figures as the analytics page); returns the plot files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.with_suffix("")
    plots = plot_pngs(r, stem)
    f = r.total
    tables = r.tables()
    lines = [f"# Support bot report, {r.since} to {r.until}", "",
             f"{f.turns} turns in {f.conversations} conversations ({f.settled} settled, {f.pending} still inside "
             "the return window). Every rate says what it counts and out of what.", "",
             "| figure | value | counts |", "|---|---|---|"]
    for name in ("containment", "handoff", "returned", "abandonment", "fallback_turns", "fallback_conversations",
                 "clarification", "thumbs_down"):
        rate = f.rate(name)
        lines.append(f"| {name} | {_pct(rate.value)} | {rate.count} of {rate.total} {rate.per} |")
    p50, p95 = f.percentile(0.5), f.percentile(0.95)
    lines.append(f"| latency | p50 {'–' if p50 is None else f'{p50:.0f} ms'}, p95 {'–' if p95 is None else f'{p95:.0f} ms'} | turns |")
    titles = {"outcomes": "Containment, handoff and fallback per day (▲ = a model promotion)",
              "routes": "Route shares per day", "latency": "Answer latency per day"}
    for key, file in plots.items():
        lines += ["", f"## {titles[key]}", "", f"![{titles[key]}]({file.name})"]
    for name in ("versions", "weekly", "intents", "thumbs_down_intents", "thumbs_down_articles", "promotions",
                 "unanswered", "growing_clusters"):
        t = tables[name]
        lines += ["", f"## {t.title}", ""] + (_md_table(t) if t.rows else ["None in this period."])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return list(plots.values())


def _nan(values: list) -> list[float]:
    return [float("nan") if v is None else v for v in values]


def plot_pngs(r, stem: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from bot.analytics.figures import day_of
    from bot.dialogue.router import ROUTES

    days = r.days
    x = list(range(len(days)))
    ticks = x[:: max(1, len(days) // 8)]
    promos = [(days.index(day_of(p.at)), p.version[:15]) for p in r.promotions if day_of(p.at) in days]
    out = {}

    def finish(ax, name: str, percent: bool = True) -> None:
        ax.set_xticks(ticks, [days[i][5:] for i in ticks])
        if percent:
            ax.set_ylim(0, 1)
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        for i, version in promos:
            ax.axvline(i, color="black", linestyle=":", linewidth=1)
            ax.annotate(f"▲ {version}", (i, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                        textcoords="offset points", fontsize=8)
        ax.legend(loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
        ax.figure.tight_layout()
        file = Path(f"{stem}-{name}.png")
        ax.figure.savefig(file, dpi=110)
        plt.close(ax.figure)
        out[name] = file

    fig, ax = plt.subplots(figsize=(9, 3.2))
    for (rate, label), style in zip((("containment", "containment"), ("handoff", "handoff"),
                                     ("fallback_turns", "fallback (turns)")), (("-", "o"), ("--", "s"), (":", "^"))):
        ax.plot(x, _nan([r.day(d).rate(rate).value for d in days]), linestyle=style[0], marker=style[1], markersize=3,
                label=label)
    finish(ax, "outcomes")
    fig, ax = plt.subplots(figsize=(9, 3.2))
    bottom = [0.0] * len(days)
    for k, (route, hatch) in enumerate(zip(ROUTES, ("", "//", "..", "||", "xx", "--"))):
        shares = [r.day(d).route_shares()[route].value or 0.0 for d in days]
        ax.bar(x, shares, bottom=bottom, label=route, hatch=hatch, edgecolor="white", linewidth=0.3)
        bottom = [b + s for b, s in zip(bottom, shares)]
    finish(ax, "routes")
    fig, ax = plt.subplots(figsize=(9, 3.2))
    for q, style in ((0.5, ("-", "o")), (0.95, ("--", "s"))):
        ax.plot(x, _nan([r.day(d).percentile(q) for d in days]), linestyle=style[0], marker=style[1], markersize=3,
                label=f"p{int(q * 100)}")
    ax.set_ylabel("ms")
    finish(ax, "latency", percent=False)
    return out
