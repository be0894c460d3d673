"""The DAG as an SVG image, optionally coloured by step state (`deploy.py graph --format svg`,
and the report's first figure). Plain SVG, no fonts or scripts to load: it opens anywhere."""

from __future__ import annotations

from html import escape

from pipeline.definition.model import step_dependencies

# Step state (local runner's and SageMaker's words) -> fill colour.
STATE_COLOURS = {
    "Succeeded": "#2e9e44", "Completed": "#2e9e44",
    "Cached": "#3b7dd8",
    "Reused": "#8e6cd0",
    "Failed": "#d93b3b",
    "Stopped": "#e8892f", "Stopping": "#e8892f",
    "Running": "#f2c230", "Executing": "#f2c230", "Starting": "#f2c230",
    "Skipped": "#a3a8ad", "NotSelected": "#d5d8db", "Pending": "#d5d8db",
}
NO_STATE = "#ffffff"
# Past this many steps in one column, the rest are drawn as one "N more" box.
COLUMN_MAX = 10
BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 190, 30, 70, 12, 16
SEVERITY = ["Failed", "Stopped", "Stopping", "Running", "Executing", "Starting", "Skipped",
            "Pending", "NotSelected", "Reused", "Cached", "Succeeded", "Completed"]


def colour(state: str | None) -> str:
    return STATE_COLOURS.get(state or "", NO_STATE)


def layers(definition: dict) -> tuple[list[list[str]], dict[str, set[str]]]:
    """Steps by longest path from a source (Reconcile | Featurize-* | Combine | Encode), and each
    step's upstream steps."""
    upstream = {s["Name"]: set(step_dependencies(s)) for s in definition["Steps"]}
    depth: dict[str, int] = {}

    def level(name: str) -> int:
        if name not in depth:
            depth[name] = 1 + max((level(u) for u in upstream[name] if u in upstream), default=-1)
        return depth[name]

    columns: list[list[str]] = []
    for step in definition["Steps"]:
        d = level(step["Name"])
        columns.extend([] for _ in range(d + 1 - len(columns)))
        columns[d].append(step["Name"])
    return columns, upstream


def _folded(column: list[str], states: dict[str, str]) -> list[tuple[str, list[str]]]:
    """(label, steps it stands for) per box; a long column ends in one box for the rest."""
    if len(column) <= COLUMN_MAX:
        return [(name, [name]) for name in column]
    shown, rest = column[:COLUMN_MAX - 1], column[COLUMN_MAX - 1:]
    return [(name, [name]) for name in shown] + [(f"… {len(rest)} more", rest)]


def _worst(names: list[str], states: dict[str, str]) -> str | None:
    found = [states[n] for n in names if n in states]
    return min(found, key=lambda s: SEVERITY.index(s) if s in SEVERITY else len(SEVERITY)) if found else None


def svg(definition: dict, states: dict[str, str] | None = None, title: str | None = None) -> str:
    """The DAG left to right; with `states` ({step: state}), each box filled with its state's colour."""
    states = states or {}
    columns, upstream = layers(definition)
    boxes: dict[str, tuple[float, float]] = {}  # step -> (x, y) of its box
    drawn: list[tuple[float, float, str, str | None, int]] = []
    height = max(len(_folded(c, states)) for c in columns) * (BOX_H + GAP_Y) - GAP_Y
    for i, column in enumerate(columns):
        folded = _folded(column, states)
        top = PAD + (height - (len(folded) * (BOX_H + GAP_Y) - GAP_Y)) / 2
        for j, (label, names) in enumerate(folded):
            x, y = PAD + i * (BOX_W + GAP_X), top + j * (BOX_H + GAP_Y)
            for name in names:
                boxes[name] = (x, y)
            drawn.append((x, y, label, _worst(names, states), len(names)))
    width = 2 * PAD + len(columns) * BOX_W + (len(columns) - 1) * GAP_X
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height + 2 * PAD:.0f}" '
           f'viewBox="0 0 {width:.0f} {height + 2 * PAD:.0f}" font-family="sans-serif" font-size="12">']
    if title:
        out.append(f"<title>{escape(title)}</title>")
    out.append('<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
               'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>')
    edges = sorted({(boxes[u], boxes[d]) for d, ups in upstream.items() for u in ups if u in boxes})
    for (ux, uy), (dx, dy) in edges:
        x1, y1, x2, y2 = ux + BOX_W, uy + BOX_H / 2, dx, dy + BOX_H / 2
        mid = (x1 + x2) / 2
        out.append(f'<path d="M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}" '
                   'fill="none" stroke="#9ca3af" stroke-width="1.2" marker-end="url(#arrow)"/>')
    for x, y, label, state, count in drawn:
        fill = colour(state)
        dark = fill in (NO_STATE, "#d5d8db", "#f2c230")
        tip = f"{label}: {state}" if state else label
        out.append(f'<g><title>{escape(tip)}{f" (worst of {count})" if count > 1 else ""}</title>'
                   f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" '
                   f'stroke="#374151" stroke-width="1"/>'
                   f'<text x="{x + BOX_W / 2:.0f}" y="{y + BOX_H / 2 + 4:.0f}" text-anchor="middle" '
                   f'fill="{"#111827" if dark else "#ffffff"}">{escape(label)}</text></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
