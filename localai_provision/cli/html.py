"""`localai status FILE --html OUT.html`: the fleet as one self-contained page.

No server and no network fetch: the CSS and the chart (SVG) are inline, and the page's own
Content-Security-Policy forbids loading anything else, so it opens the same from a file, a
mail attachment or a CI artifact, and a host's text can never make it fetch or run anything.
Every host text passes `clean` then html.escape. On a narrow screen (a phone) each host's
row becomes a card of labelled lines instead of a table wider than the screen.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence

from localai_provision import __version__
from localai_provision.cli.fleetview import HostView
from localai_provision.cli.render import clean

COLUMNS = ("Host", "State", "Drift", "Server", "Models", "/v1/models", "Memory", "Last apply")

# Colours by what the operator does next: green nothing, amber look, red act.
_CSS = """
:root{--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--mute:#57606a;--line:#d0d7de}
*{box-sizing:border-box}
body{font:15px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;padding:16px;
color:#1f2328;background:#f6f8fa}
h1{font-size:1.3em;margin:0 0 4px}
.meta{color:var(--mute);margin:0 0 12px}
.summary{display:flex;flex-wrap:wrap;gap:8px;margin:0 0 16px;padding:0;list-style:none}
.summary li{background:#fff;border:1px solid var(--line);border-radius:6px;padding:6px 10px}
.summary b{font-size:1.2em}
figure{margin:0 0 16px;background:#fff;border:1px solid var(--line);border-radius:6px;
padding:8px;overflow-x:auto}
figcaption{color:var(--mute);font-size:.9em}
svg{max-width:100%;height:auto}
svg text{font:12px system-ui,sans-serif;fill:#1f2328}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#eaeef2}
td:first-child{white-space:nowrap}
.state{font-weight:600;border-radius:10px;padding:1px 8px;color:#fff;white-space:nowrap}
.s-ok{background:var(--ok)}.s-warn{background:var(--warn)}.s-bad{background:var(--bad)}
.drift{color:var(--warn)}.sync{color:var(--ok)}.none{color:var(--mute)}
@media (max-width:640px){
 table,thead,tbody,tr,td{display:block;border:0}
 thead{display:none}
 tr{background:#fff;border:1px solid var(--line);border-radius:6px;margin:0 0 10px;padding:4px}
 td{border:0;padding:3px 6px}
 td::before{content:attr(data-label) ": ";color:var(--mute)}
 td:first-child{font-weight:600;font-size:1.1em}
 td:first-child::before{content:""}
}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _text(value: str) -> str:
    return html.escape(clean(value, one_line=True))


def state_class(view: HostView) -> str:
    """The badge's colour: running and in sync is ok; drift or a stopped server wants a
    look; a host that did not answer wants action."""
    if not view.up:
        return "s-bad"
    return "s-ok" if view.running and view.in_sync else "s-warn"


def memory_text(n: int | None, available: int | None = None) -> str:
    """ "7 of 16 GiB free", or the total alone when what is free is not known."""
    if n is None:
        return "-"
    total = f"{n / 1024**3:.0f} GiB"
    return total if available is None else f"{available / 1024**3:.0f} of {total} free"


def latency_text(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.0f} ms"


def drift_cell(view: HostView) -> str:
    if not view.up:
        return '<span class="none">-</span>'
    if not view.drift:
        return '<span class="sync">in sync</span>'
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(view.drift.items()))
    return f'<span class="drift">{_text(kinds)}</span>'


def set_text(view: HostView) -> str:
    """The package set and, once applied, the site's generation (its hash, shortened)."""
    gen = f", site {view.generation[:8]}" if view.generation else ""
    return f"set {view.package_set}{gen}"


def models_text(view: HostView) -> str:
    listed = ", ".join(view.models_listed) or "-"
    if view.models_loaded is None:
        return listed
    return f"{listed} (loaded: {', '.join(view.models_loaded) or 'none'})"


def row(view: HostView) -> str:
    state = view.status.value
    server = f"mlx-omni-server {view.server_version}" if view.server_version else "-"
    if view.up and not view.server_version:
        server = "not installed"
    cells = (
        _text(view.name),
        f'<span class="state {state_class(view)}">{_text(state)}</span>'
        + (f"<br><small>{_text(view.error)}</small>" if view.error else ""),
        drift_cell(view),
        _text(server) + (f"<br><small>{_text(set_text(view))}</small>" if view.up else ""),
        _text(models_text(view)) if view.up else "-",
        latency_text(view.latency_ms),
        memory_text(view.memory_bytes, view.memory_available_bytes),
        _text(view.last_apply or "-"),
    )
    tds = "".join(
        f'<td data-label="{html.escape(label)}">{cell}</td>'
        for label, cell in zip(COLUMNS, cells, strict=True)
    )
    return f'<tr id="host-{_text(view.name)}">{tds}</tr>'


def latency_chart(views: Sequence[HostView]) -> str:
    """A bar per host of its /v1/models latency, coloured as its state; a host without a
    figure gets no bar and a "-"."""
    bar_h, gap, label_w, width = 16, 4, 140, 460
    top = max((v.latency_ms or 0.0 for v in views), default=0.0) or 1.0
    height = len(views) * (bar_h + gap) + gap
    colours = {"s-ok": "#1a7f37", "s-warn": "#9a6700", "s-bad": "#cf222e"}
    parts = []
    for i, v in enumerate(views):
        y = gap + i * (bar_h + gap)
        length = 0.0 if v.latency_ms is None else (width - label_w - 70) * v.latency_ms / top
        parts.append(
            f'<text x="0" y="{y + 12}">{_text(v.name[:20])}</text>'
            f'<rect class="bar" x="{label_w}" y="{y}" width="{length:.1f}" height="{bar_h}" '
            f'fill="{colours[state_class(v)]}"/>'
            f'<text x="{label_w + length + 4:.1f}" y="{y + 12}">{latency_text(v.latency_ms)}</text>'
        )
    return (
        f'<figure><svg id="latency-chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>/v1/models latency by host</title>{''.join(parts)}</svg>"
        "<figcaption>GET /v1/models latency, measured on each host</figcaption></figure>"
    )


def summary(views: Sequence[HostView]) -> str:
    counts = (
        ("hosts", len(views)),
        ("running", sum(v.running for v in views)),
        ("in sync", sum(v.in_sync for v in views)),
        ("drifted", sum(v.up and bool(v.drift) for v in views)),
        ("unreachable", sum(not v.up for v in views)),
    )
    items = "".join(f'<li id="count-{n.replace(" ", "-")}"><b>{c}</b> {n}</li>' for n, c in counts)
    return f'<ul class="summary">{items}</ul>'


def status_page(site_file: str, views: Sequence[HostView], now: dt.datetime) -> str:
    """The whole page, one string: write it anywhere and open it."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    rows = "\n".join(row(v) for v in views)
    when = now.strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<title>localai status: {_text(site_file)}</title>
<style>{_CSS}</style></head>
<body><h1>localai status</h1>
<p class="meta">{_text(site_file)} &middot; {when} &middot; localai {__version__}</p>
{summary(views)}
{latency_chart(views)}
<table id="hosts"><thead><tr>{head}</tr></thead><tbody>
{rows}
</tbody></table></body></html>
"""
