"""A list's audience as an SVG chart, drawn on the server: no script, no analytics service.

Above, active members at each week's end as a line; below, sign-ups, unsubscribes and bounces
per week as bars; at the foot, the share of each status now. Every mark carries its number in
a <title> (read aloud, shown on hover) and in data- attributes, so that what is drawn can be
checked against what was counted.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from markupsafe import escape

from mailer.core.audience import ListAudience
from mailer.core.lifecycle import Status

WIDTH, HEIGHT = 640, 300
_LEFT, _RIGHT = 48, 12
_LINE_TOP, _LINE_BOTTOM = 28, 140
_BARS_TOP, _BARS_BOTTOM = 160, 240
_SHARE_TOP, _SHARE_HEIGHT = 262, 14
KINDS = {"signups": "#2e7d32", "unsubscribes": "#f9a825", "bounces": "#c62828"}
STATUS_COLOURS = {
    Status.ACTIVE.value: "#2e7d32",
    Status.PENDING.value: "#90a4ae",
    Status.UNSUBSCRIBED.value: "#f9a825",
    Status.BOUNCED.value: "#c62828",
    Status.COMPLAINED.value: "#6a1b9a",
}


def chart(audience: ListAudience) -> str:
    """The SVG document (UTF-8 text) of one list's audience."""
    weeks = audience.weeks
    slot = (WIDTH - _LEFT - _RIGHT) / max(len(weeks), 1)
    top_active = max([w.active for w in weeks] + [1])
    top_weekly = max([max(w.signups, w.unsubscribes, w.bounces) for w in weeks] + [1])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" font-family="sans-serif" font-size="11">',
        f"<title>{escape(audience.name)}: active members, and sign-ups, unsubscribes and "
        "bounces per week</title>",
        f'<text x="{_LEFT}" y="16">Active members (up to {top_active:,})</text>',
    ]
    points = []
    for index, week in enumerate(weeks):
        x = _LEFT + slot * (index + 0.5)
        y = _LINE_BOTTOM - (_LINE_BOTTOM - _LINE_TOP) * week.active / top_active
        points.append(f"{x:.1f},{y:.1f}")
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#1565c0" data-kind="active" '
            f'data-week="{week.starts.isoformat()}" data-value="{week.active}">'
            f"<title>week of {week.starts:%Y-%m-%d}: {week.active:,} active</title></circle>"
        )
        bar = slot / (len(KINDS) + 1)
        for offset, (kind, colour) in enumerate(KINDS.items()):
            value: int = getattr(week, kind)
            height = (_BARS_BOTTOM - _BARS_TOP) * value / top_weekly
            parts.append(
                f'<rect x="{x - slot / 2 + bar * (offset + 0.5):.1f}" '
                f'y="{_BARS_BOTTOM - height:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                f'fill="{colour}" data-kind="{kind}" data-week="{week.starts.isoformat()}" '
                f'data-value="{value}"><title>week of {week.starts:%Y-%m-%d}: {value:,} '
                f"{kind}</title></rect>"
            )
    if points:
        parts.insert(3, f'<polyline points="{" ".join(points)}" fill="none" stroke="#1565c0"/>')
    parts.append(
        f'<text x="{_LEFT}" y="{_BARS_TOP - 4}">Per week (up to {top_weekly:,}): '
        + ", ".join(f'<tspan fill="{colour}">{kind}</tspan>' for kind, colour in KINDS.items())
        + "</text>"
    )
    parts += _shares(audience)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _shares(audience: ListAudience) -> list[str]:
    """A bar across the chart split by the share of each status now, with a legend below."""
    parts, x, span = [], float(_LEFT), WIDTH - _LEFT - _RIGHT
    legend = []
    for status, colour in STATUS_COLOURS.items():
        share = audience.share(status)
        width = span * share
        parts.append(
            f'<rect x="{x:.1f}" y="{_SHARE_TOP}" width="{width:.1f}" height="{_SHARE_HEIGHT}" '
            f'fill="{colour}" data-kind="share" data-status={quoteattr(status)} '
            f'data-value="{share:.4f}"><title>{status}: {share:.1%} '
            f"({audience.statuses.get(status, 0):,})</title></rect>"
        )
        legend.append(f'<tspan fill="{colour}">{status} {share:.0%}</tspan>')
        x += width
    parts.append(
        f'<text x="{_LEFT}" y="{_SHARE_TOP + _SHARE_HEIGHT + 14}">{" · ".join(legend)}</text>'
    )
    return parts
