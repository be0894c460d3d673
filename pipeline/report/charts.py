"""Small inline-SVG charts (no JavaScript, no fonts or files to fetch): horizontal bars, a
timeline, box plots with per-shard points, grouped bars."""

from __future__ import annotations

from datetime import datetime
from html import escape

import numpy as np

from pipeline.definition.svg import colour

BLUE, ORANGE, TEAL, PURPLE, RED, GREY = "#4c78a8", "#f58518", "#72b7b2", "#b279a2", "#e45756", "#c7ccd1"
SPLIT_COLOURS = {"train": BLUE, "valid": ORANGE, "test": PURPLE}
LABEL_W, ROW_H, CHART_W = 190, 22, 460


def _svg(width: float, height: float, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}" '
            f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
            f'font-family="sans-serif" font-size="11">' + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, anchor: str = "start", fill: str = "#1f2937") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}">{escape(text)}</text>'


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str | None = None) -> str:
    title = f"<title>{escape(tip)}</title>" if tip else ""
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{h:.1f}" fill="{fill}">{title}</rect>'


def stacked_bars(rows: list[tuple[str, list[tuple[float, str, str]]]], unit: str, label: str) -> str:
    """One bar per row, made of (value, colour, name) parts, scaled to the largest total."""
    top = max((sum(v for v, _, _ in parts) for _, parts in rows), default=0) or 1
    body = []
    for i, (name, parts) in enumerate(rows):
        y, x = 4 + i * ROW_H, LABEL_W
        body.append(_text(LABEL_W - 6, y + 14, name, "end"))
        for value, fill, part in parts:
            w = CHART_W * value / top
            body.append(_rect(x, y + 3, w, ROW_H - 6, fill, f"{name}: {part} {value:g}{unit}"))
            x += w
        total = sum(v for v, _, _ in parts)
        body.append(_text(x + 4, y + 14, f"{total:,.4g}{unit}"))
    return _svg(LABEL_W + CHART_W + 90, 8 + len(rows) * ROW_H, body, label)


def timeline(steps, t0: datetime | None) -> str:
    """Each step's bar from start to end (seconds after `t0`), in its state's colour; a cache hit
    is a diamond at the moment it was decided."""
    times = [t for s in steps for t in (s.start, s.end) if t is not None]
    if not times:
        return "<p>No step has started.</p>"
    t0 = min([t0] + times if t0 else times)
    span = max((max(times) - t0).total_seconds(), 1e-3)
    body = []
    for k in range(5):  # the time axis
        x = LABEL_W + CHART_W * k / 4
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="12" y2="{18 + len(steps) * ROW_H}" stroke="#e5e7eb"/>')
        body.append(_text(x, 10, f"{span * k / 4:.0f} s", "middle", "#6b7280"))
    for i, step in enumerate(steps):
        y = 18 + i * ROW_H
        body.append(_text(LABEL_W - 6, y + 14, step.name, "end"))
        if step.start is None:
            body.append(_text(LABEL_W, y + 14, step.state.lower(), fill="#6b7280"))
            continue
        x0 = LABEL_W + CHART_W * (step.start - t0).total_seconds() / span
        x1 = LABEL_W + CHART_W * ((step.end or step.start) - t0).total_seconds() / span
        seconds = ((step.end or step.start) - step.start).total_seconds()
        if step.cached:
            cx, cy = x0, y + ROW_H / 2
            body.append(f'<path d="M{cx - 7:.1f},{cy:.1f} L{cx:.1f},{cy - 7:.1f} L{cx + 7:.1f},{cy:.1f} '
                        f'L{cx:.1f},{cy + 7:.1f} z" fill="{colour(step.state)}"><title>{escape(step.name)}: '
                        f'{step.state} (cache hit)</title></path>')
            body.append(_text(cx + 10, y + 14, "cached"))
        else:
            body.append(_rect(x0, y + 3, max(x1 - x0, 2), ROW_H - 6, colour(step.state),
                              f"{step.name}: {step.state}, {seconds:.1f} s"))
            body.append(_text(max(x1, x0 + 2) + 4, y + 14, f"{seconds:.1f} s"))
    return _svg(LABEL_W + CHART_W + 90, 24 + len(steps) * ROW_H, body, "timeline of the steps")


def box_plot(values_by_shard: dict[str, np.ndarray], flagged: set[str], label: str, width: float = 220) -> str:
    """All records' values as a box (quartiles, 5-95 % whiskers), each shard's median as a
    point; flagged shards as red rings."""
    every = np.concatenate([v for v in values_by_shard.values() if len(v)]) if values_by_shard else np.array([])
    every = every[np.isfinite(every)]
    if every.size == 0:
        return _svg(width, 30, [_text(4, 18, "no values", fill="#6b7280")], label)
    lo, hi = float(np.min(every)), float(np.max(every))
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad

    def x(v: float) -> float:
        return 6 + (width - 12) * (v - lo) / (hi - lo)

    p05, q1, med, q3, p95 = np.percentile(every, [5, 25, 50, 75, 95])
    body = [f'<line x1="{x(p05):.1f}" x2="{x(p95):.1f}" y1="14" y2="14" stroke="{BLUE}"/>',
            f'<rect x="{x(q1):.1f}" y="6" width="{max(x(q3) - x(q1), 1):.1f}" height="16" fill="#9ecae9" '
            f'stroke="{BLUE}"><title>{escape(label)}: quartiles {q1:.4g} .. {q3:.4g}, median {med:.4g}</title></rect>',
            f'<line x1="{x(med):.1f}" x2="{x(med):.1f}" y1="6" y2="22" stroke="#1f2937" stroke-width="2"/>']
    for shard, values in sorted(values_by_shard.items()):
        values = values[np.isfinite(values)]
        if not values.size:
            continue
        m = float(np.median(values))
        ring = shard in flagged
        style = f'r="5" fill="{RED}" stroke="#7f1d1d" stroke-width="2"' if ring else 'r="3" fill="#374151"'
        note = " (outlying)" if ring else ""
        body.append(f'<circle cx="{x(m):.1f}" cy="30" {style}><title>{escape(shard)}: median {m:.4g}{note}'
                    '</title></circle>')
    body.append(_text(6, 48, f"{lo + pad:.3g}", fill="#6b7280"))
    body.append(_text(width - 6, 48, f"{hi - pad:.3g}", "end", "#6b7280"))
    return _svg(width, 52, body, label)


def grouped_bars(groups: dict[str, dict[str, int]], label: str) -> str:
    """Per group (label) one bar per series (split), series coloured by SPLIT_COLOURS."""
    series = [s for s in SPLIT_COLOURS if any(s in g for g in groups.values())]
    top = max((v for g in groups.values() for v in g.values()), default=0) or 1
    bar, gap, height = 16, 26, 150
    body = []
    for i, (group, counts) in enumerate(groups.items()):
        x0 = 40 + i * (len(series) * bar + gap)
        for j, name in enumerate(series):
            h = height * counts.get(name, 0) / top
            body.append(_rect(x0 + j * bar, 10 + height - h, bar - 2, h, SPLIT_COLOURS[name],
                              f"{group} / {name}: {counts.get(name, 0)}"))
            body.append(_text(x0 + j * bar + bar / 2 - 1, 6 + height - h, str(counts.get(name, 0)), "middle"))
        body.append(_text(x0 + len(series) * bar / 2, height + 26, group, "middle"))
    legend_y = height + 44
    for j, name in enumerate(series):
        body.append(_rect(40 + j * 80, legend_y - 9, 10, 10, SPLIT_COLOURS[name]))
        body.append(_text(54 + j * 80, legend_y, name))
    width = 60 + len(groups) * (len(series) * bar + gap)
    return _svg(max(width, 300), legend_y + 8, body, label)
