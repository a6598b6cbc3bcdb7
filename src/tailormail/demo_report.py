"""The demo's report: one self-contained HTML file with its tables and charts.

plotly.js is embedded once, inline, so the file opens offline from any folder.
Every value is HTML-escaped: table cells can hold names taken from profiles.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tailormail.demo import Chart, Section, Table

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1rem 0; min-width: 20rem; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { padding: .25rem .8rem; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
p.note { color: #555; }
"""


def write_report(path: Path, sections: list[Section], *, generated: datetime) -> Path:
    """Write the sections as an HTML page at ``path``; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>tailormail demo</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>tailormail demo</h1>",
        f"<p class='note'>Generated {escape(generated.strftime('%Y-%m-%d %H:%M UTC'))}</p>",
    ]
    first_chart = True
    for section in sections:
        parts.append(f"<h2>{escape(section.title)}</h2>")
        parts.extend(f"<p class='note'>{escape(note)}</p>" for note in section.notes)
        parts.extend(_table(t) for t in section.tables)
        for chart in section.charts:
            parts.append(_chart(chart, include_js=first_chart))
            first_chart = False
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in table.rows)
    return f"<table><caption>{escape(table.title)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"<td>{escape('' if value is None else str(value))}</td>"
    text = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
    return f"<td class='num'>{text}</td>"


def _chart(chart: Chart, *, include_js: bool) -> str:
    import plotly.graph_objects as go

    trace = go.Scatter(x=chart.x, y=chart.y, mode="lines") if chart.kind == "line" else go.Bar(x=chart.x, y=chart.y)
    figure = go.Figure(trace)
    figure.update_layout(title=chart.title, yaxis_title=chart.y_label, height=380, margin={"t": 50, "b": 40})
    return str(figure.to_html(full_html=False, include_plotlyjs=include_js))
