# -*- test-case-name: nutshim.test.test_web -*-
"""
The status page: one card per UPS, for a person at a desk or on a phone.

Rendered here, on the server, as plain HTML with inline SVG charts: the
page needs no script library and no external asset (the daemon serves its
own stylesheet and a 40-line script), works with scripts off (it then
reloads itself every 30 s), and the same renderer serves the C{cards}
fragment the script fetches every few seconds to update the cards in
place.  Everything that comes from a driver or a configuration file is
escaped: a UPS description is not markup.

The Content-Security-Policy the resource sends (C{default-src 'self'})
forbids inline scripts and styles, so nothing here uses C{style=}; sizes
are SVG attributes.
"""

from __future__ import annotations

import math
from html import escape
from typing import Dict, List, Optional, Protocol, Sequence, Tuple

from nutshim import __version__
from nutshim.upsd.registry import Registry, UpsEntry
from nutshim.web.history import Point
from nutshim.web.snapshot import available, data_age, number, status_flags
from nutshim.web.status import Severity, describe, severity

__all__ = ["render_page", "CardRenderer", "format_runtime", "chart_svg", "charts_html", "downsample",
           "REFRESH_SECONDS"]

#: How often the script fetches the cards.
REFRESH_SECONDS = 5
#: Points per chart at most (the chart is 300 units wide).
MAX_CHART_POINTS = 120
#: Charts rebuilt in one render at most; the others show their previous
#: version until the next refresh, so a hundred UPSes sampled at the same
#: moment never hold the reactor for long.
CHART_REBUILDS = 4
#: Without scripts, the whole page reloads this often.
NOSCRIPT_REFRESH_SECONDS = 30
_W, _H = 300, 60
#: (series index in a Point, caption, unit, fixed range or None for auto).
_CHARTS: Tuple[Tuple[int, str, str, Optional[Tuple[float, float]]], ...] = (
    (1, "Charge", "%", (0.0, 100.0)),
    (2, "Load", "%", (0.0, 100.0)),
    (3, "Input voltage", "V", None),
)



class _History(Protocol):
    def points(self, name: str) -> List[Point]: ...

    def version(self, name: str) -> object: ...


def format_runtime(seconds: Optional[float]) -> str:
    """
    C{battery.runtime} for people: C{"45 s"}, C{"12 min"}, C{"1 h 05 min"}.
    """
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    minutes = s // 60
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _fmt(value: Optional[float], unit: str) -> str:
    if value is None:
        return "–"
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{text} {unit}" if unit else text


def _num(entry: UpsEntry, name: str) -> Optional[float]:
    var = entry.driver.state.get(name)
    if var is None:
        return None
    value = number(var.value)
    return None if value is None else float(value)


def _segments(points: Sequence[Point], index: int) -> List[List[Tuple[float, float]]]:
    runs: List[List[Tuple[float, float]]] = [[]]
    for p in points:
        v = p[index]
        if isinstance(v, float) and math.isnan(v):
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((p[0], float(v)))
    return [r for r in runs if r]


def downsample(points: Sequence[Point], most: int = MAX_CHART_POINTS) -> List[Point]:
    """
    At most C{most} points: consecutive samples averaged in buckets (a gap
    only where a whole bucket is one), on battery if any of them was.
    """
    n = len(points)
    if n <= most:
        return list(points)
    nan = math.nan
    out: List[Point] = []
    for b in range(most):
        lo, hi = b * n // most, (b + 1) * n // most
        s1 = s2 = s3 = 0.0
        c1 = c2 = c3 = 0
        ob = False
        for k in range(lo, hi):
            p = points[k]
            v = p[1]
            if v == v:
                s1 += v
                c1 += 1
            v = p[2]
            if v == v:
                s2 += v
                c2 += 1
            v = p[3]
            if v == v:
                s3 += v
                c3 += 1
            ob = ob or p[4]
        out.append((points[hi - 1][0], s1 / c1 if c1 else nan, s2 / c2 if c2 else nan,
                    s3 / c3 if c3 else nan, ob))
    return out


def chart_svg(points: Sequence[Point], index: int, caption: str, unit: str,
              fixed: Optional[Tuple[float, float]]) -> str:
    """
    One small chart: a line per unbroken run of samples, on-battery
    periods shaded; a single sample is a flat line.  Empty string when
    there is nothing to draw.  Draws every point given: see L{downsample}.
    """
    runs = _segments(points, index)
    values = [v for run in runs for _, v in run]
    if not values:
        return ""
    t0, t1 = points[0][0], points[-1][0]
    if t1 <= t0:
        # One sample: a flat line across.
        runs = [[(t0, v), (t0 + 1.0, v)] for run in runs for _, v in run[:1]]
        t1 = t0 + 1.0
    span = t1 - t0
    if fixed is not None:
        low, high = fixed
    else:
        low, high = min(values), max(values)
        pad = max((high - low) * 0.1, 1.0)
        low, high = low - pad, high + pad
    height = max(high - low, 1e-9)

    def x(t: float) -> float:
        return (t - t0) / span * _W

    def y(v: float) -> float:
        # 2 px of margin: a full battery's line is not cut by the edge.
        return _H - 2 - (min(max(v, low), high) - low) / height * (_H - 4)

    parts = [f'<svg class="spark" viewBox="0 0 {_W} {_H}" preserveAspectRatio="none" role="img"'
             f' aria-label="{escape(caption)}">']
    # On-battery periods.
    start: Optional[float] = None
    for p in list(points) + [(t1, math.nan, math.nan, math.nan, False)]:
        if p[4] and start is None:
            start = p[0]
        elif not p[4] and start is not None:
            parts.append(f'<rect class="ob" x="{x(start):.1f}" y="0" width="{max(x(p[0]) - x(start), 1):.1f}"'
                         f' height="{_H}"/>')
            start = None
    for run in runs:
        if len(run) == 1:
            t, v = run[0]
            parts.append(f'<circle class="dot" cx="{x(t):.1f}" cy="{y(v):.1f}" r="2"/>')
            continue
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in run)
        parts.append(f'<polyline class="line" points="{coords}"/>')
    parts.append("</svg>")
    lo, hi = min(values), max(values)
    rng = _fmt(lo, unit) if lo == hi else f"{_fmt(lo, '')}–{_fmt(hi, unit)}"
    return (f'<figure class="chart" data-series="{escape(caption)}">'
            f'<figcaption><span>{escape(caption)}</span><span>{escape(rng)}</span></figcaption>'
            + "".join(parts) + "</figure>")


def _span_text(points: Sequence[Point]) -> str:
    if len(points) < 2:
        return ""
    minutes = int((points[-1][0] - points[0][0]) // 60)
    if minutes < 1:
        return "last minute"
    if minutes < 120:
        return f"last {minutes} min"
    return f"last {minutes // 60} h"


def charts_html(points: Sequence[Point]) -> str:
    """
    The three charts of a card, or nothing without samples.
    """
    span = _span_text(points)
    points = downsample(points)
    charts = [chart_svg(points, i, caption, unit, fixed) for i, caption, unit, fixed in _CHARTS]
    charts = [c for c in charts if c]
    if not charts:
        return ""
    return f'<div class="charts"><p class="span">{escape(span)}</p>' + "".join(charts) + "</div>"


def _card(entry: UpsEntry, clients: int, charts: str, now: float) -> str:
    ok = available(entry)
    flags = status_flags(entry) if ok else ()
    sev = severity(flags, ok)
    if ok:
        words = describe(flags)
    else:
        words = "Driver not connected" if not entry.driver.connected else "Data stale"
    name = escape(entry.name)
    out = [f'<article class="card sev-{sev.value}" data-ups="{name}" data-severity="{sev.value}"'
           f' data-status="{escape(" ".join(flags))}">',
           f'<header><h2>{name}</h2>']
    if entry.desc:
        out.append(f'<p class="desc">{escape(entry.desc)}</p>')
    out.append(f'</header><p class="status"><span class="badge">{escape(words)}</span></p>')
    charge = _num(entry, "battery.charge") if ok else None
    if charge is not None:
        width = max(0.0, min(100.0, charge))
        out.append(f'<div class="charge"><span class="big">{_fmt(charge, "")}</span><span class="unit">%</span>'
                   f'<svg class="bar" viewBox="0 0 100 6" preserveAspectRatio="none" aria-hidden="true">'
                   f'<rect class="track" x="0" y="0" width="100" height="6"/>'
                   f'<rect class="fill" x="0" y="0" width="{width:.1f}" height="6"/></svg></div>')
    figures = [
        ("Runtime", format_runtime(_num(entry, "battery.runtime")) if ok else "–", "runtime"),
        ("Load", _fmt(_num(entry, "ups.load"), "%") if ok else "–", "load"),
        ("Input", _fmt(_num(entry, "input.voltage"), "V") if ok else "–", "input"),
        ("Output", _fmt(_num(entry, "output.voltage"), "V") if ok else "–", "output"),
    ]
    # Numbers and dashes only: nothing to escape.
    out.append('<dl class="figures">' + "".join(
        f'<div><dt>{label}</dt><dd data-field="{key}">{value}</dd></div>'
        for label, value, key in figures) + "</dl>")
    out.append(charts)
    foot: List[str] = []
    var = entry.driver.state.get("device.model") or entry.driver.state.get("ups.model")
    if ok and var is not None:
        mfr = entry.driver.state.get("device.mfr") or entry.driver.state.get("ups.mfr")
        foot.append(escape((mfr.value + " " if mfr is not None else "") + var.value))
    foot.append(f"{clients} client{'s' if clients != 1 else ''}")
    age = data_age(entry, now)
    if age is not None and age >= 1:
        foot.append(f"data {int(age)} s old")
    foot.append(escape(entry.driver_name))
    out.append(f'<footer>{" · ".join(foot)}</footer></article>')
    return "".join(out)


def _summary(entries: Sequence[UpsEntry], registry: Registry) -> str:
    counts = {s: 0 for s in Severity}
    on_battery = 0
    for e in entries:
        flags = status_flags(e) if available(e) else ()
        counts[severity(flags, available(e))] += 1
        on_battery += "OB" in flags
    parts = [f"{len(entries)} UPS"]
    if on_battery:
        parts.append(f"{on_battery} on battery")
    if counts[Severity.CRITICAL]:
        parts.append(f"{counts[Severity.CRITICAL]} critical")
    if counts[Severity.UNKNOWN]:
        parts.append(f"{counts[Severity.UNKNOWN]} without data")
    parts.append(f"{registry.session_count} client{'s' if registry.session_count != 1 else ''}")
    return " · ".join(parts)


class CardRenderer:
    """
    Renders the cards, remembering each UPS's charts until its history
    gets a new sample (every 30 s by default): the charts are most of the
    work, the rest is a few lines per card.

    @param history: provides C{points(name)} and C{version(name)}.
    """

    def __init__(self, registry: Registry, history: "_History") -> None:
        self.registry = registry
        self.history = history
        self._charts: Dict[str, Tuple[object, str]] = {}
        self._cards: Dict[str, Tuple[object, str]] = {}
        self._budget = 0

    def _charts_of(self, entry: UpsEntry) -> str:
        key = entry.name.lower()
        version = self.history.version(entry.name)
        known = self._charts.get(key)
        if known is not None and known[0] == version:
            return known[1]
        if self._budget <= 0:
            return known[1] if known is not None else ""
        self._budget -= 1
        html = charts_html(self.history.points(entry.name)) if version is not None else ""
        self._charts[key] = (version, html)
        return html

    def _card_of(self, entry: UpsEntry, now: float, clients: int) -> str:
        charts = self._charts_of(entry)
        state = entry.driver.state
        age = data_age(entry, now)
        stamp = (state, state.generation, entry.fsd, entry.desc, entry.driver_name,
                 entry.driver.connected, entry.driver.stale, charts, clients,
                 None if age is None else int(age))
        key = entry.name
        known = self._cards.get(key)
        if known is not None and known[0] == stamp:
            return known[1]
        html = _card(entry, clients, charts, now)
        self._cards[key] = (stamp, html)
        return html

    def render(self, now: float) -> str:
        """
        The C{cards} fragment: the summary line and one card per UPS.
        """
        entries = list(self.registry)
        names = {e.name.lower() for e in entries}
        for key in [k for k in self._charts if k not in names]:
            del self._charts[key]
        for name in [k for k in self._cards if k.lower() not in names]:
            del self._cards[name]
        self._budget = CHART_REBUILDS
        logins: Dict[int, int] = {}
        for session in self.registry.sessions():
            if session.login is not None:
                logins[id(session.login)] = logins.get(id(session.login), 0) + 1
        cards = [self._card_of(e, now, logins.get(id(e), 0)) for e in entries]
        if not cards:
            cards = ['<p class="empty">No UPS is configured.</p>']
        return (f'<p id="summary" class="summary">{_summary(entries, self.registry)}</p>'
                f'<div class="grid">{"".join(cards)}</div>')


def render_page(cards: str, host: str) -> str:
    """
    The whole page around the C{cards} fragment.
    """
    title = f"UPS status · {escape(host)}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title>"
        '<link rel="stylesheet" href="status.css">'
        f'<noscript><meta http-equiv="refresh" content="{NOSCRIPT_REFRESH_SECONDS}"></noscript>'
        f'<script src="status.js" defer></script></head>'
        f'<body data-refresh="{REFRESH_SECONDS}" data-refreshes="0">'
        f'<header class="top"><h1>{title}</h1><p id="updated" class="updated"></p></header>'
        f'<main id="cards">{cards}</main>'
        f'<footer class="bottom">nutshim upsd {escape(__version__)} · '
        '<a href="metrics">metrics</a> · <a href="api/v1/ups">JSON</a></footer>'
        "</body></html>\n"
    )
