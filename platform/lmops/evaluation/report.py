"""The evaluation report: one self-contained HTML page of metrics, tables and plots.

Reviewers open it from the run's artifacts, so it carries its own CSS and embeds its
figures as base64 PNG. It draws whatever ``eval/*``, ``safety/*`` and ``bias/*``
metrics are present; a plot without data is replaced by a one-line note.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel

MAX_TABLE_ROWS = 20  # rows shown per result table; the page says how many were cut
_BLUE, _GREEN, _ORANGE, _GREY = "#3b7dd8", "#2a9d8f", "#e76f51", "#8d99ae"


class Incumbent(BaseModel):
    name: str
    version: str
    alias: str


class MetricPair(BaseModel):
    candidate: float
    incumbent: float


class Comparison(BaseModel):
    """The candidate against the model holding the alias, both scored on ``eval_set``."""

    incumbent: Incumbent
    eval_set: str
    metrics: dict[str, MetricPair]

    def shared(self) -> dict[str, MetricPair]:
        """Metrics where both values are finite: the only ones that can be compared."""
        return {
            k: p
            for k, p in sorted(self.metrics.items())
            if math.isfinite(p.candidate) and math.isfinite(p.incumbent)
        }


def by_suffix(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """``{suffix: value}`` of the finite metrics named ``prefix<suffix>``."""
    return {
        k[len(prefix) :]: v
        for k, v in sorted(metrics.items())
        if k.startswith(prefix) and len(k) > len(prefix) and math.isfinite(v)
    }


def render_report(
    metrics: dict[str, float],
    tables: dict[str, list[dict]],
    comparison: dict | None,
    title: str,
) -> str:
    """The report page as one HTML string."""
    cmp = Comparison.model_validate(comparison) if comparison is not None else None
    parts = [f"<h1>{_e(title)}</h1>", _summary(metrics, cmp), "<h2>Plots</h2>"]
    parts.append("<div class=plots>" + "".join(_plots(metrics, cmp)) + "</div>")
    parts.append("<h2>Metrics</h2>")
    for family in ("eval", "safety", "bias"):
        rows = [(k, v) for k, v in sorted(metrics.items()) if k.startswith(f"{family}/")]
        if rows:
            parts.append(f"<h3>{family}/*</h3>" + _table(["metric", "value"], rows))
    other = [(k, v) for k, v in sorted(metrics.items()) if k.split("/")[0] not in _FAMILIES]
    if other:
        parts.append("<h3>other</h3>" + _table(["metric", "value"], other))
    if cmp is not None:
        parts.append("<h2>Comparison with the incumbent</h2>" + _comparison_table(cmp))
    for name, rows in sorted(tables.items()):
        parts.append(f"<h2>Table: {_e(name)}</h2>" + _rows_table(rows))
    return _PAGE.format(title=_e(title), css=_CSS, body="\n".join(parts))


def write_report(
    path: Path,
    metrics: dict[str, float],
    tables: dict[str, list[dict]],
    comparison: dict | None,
    title: str,
) -> Path:
    """Render and write the page atomically: a reader sees the old file or the new one."""
    page = render_report(metrics, tables, comparison, title)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a report is for anyone to read
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # same folder, so the rename is atomic
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


_FAMILIES = ("eval", "safety", "bias")


def _summary(metrics: dict[str, float], cmp: Comparison | None) -> str:
    counts = ", ".join(f"{sum(k.startswith(f'{f}/') for k in metrics)} {f}/*" for f in _FAMILIES)
    if cmp is None:
        who = "There is no incumbent: no model holds the alias, so nothing is compared."
    else:
        inc = cmp.incumbent
        who = (
            f"Compared with the incumbent <b>{_e(inc.name)} v{_e(inc.version)}</b> "
            f"(@{_e(inc.alias)}), re-scored on eval set <code>{_e(cmp.eval_set)}</code>."
        )
    return f"<p class=summary>{len(metrics)} metrics ({counts}). {who}</p>"


def _plots(metrics: dict[str, float], cmp: Comparison | None) -> list[str]:
    ppl = by_suffix(metrics, "eval/perplexity_")
    flagged = {k: v * 100 for k, v in by_suffix(metrics, "safety/flagged_rate_").items()}
    gaps = by_suffix(metrics, "bias/mean_abs_gap_")
    out = [
        _bar_figure("Perplexity per language", ppl, "perplexity (lower is better)", _BLUE),
        _bar_figure("Red-team flagged rate per category", flagged, "% of completions", _ORANGE),
        _bar_figure("Bias: mean absolute gap per category", gaps, "mean |gap|", _GREEN),
    ]
    if cmp is None:
        out.append(_note("Comparison with the incumbent", "no incumbent to compare with"))
    else:
        out.append(_comparison_figure(cmp))
    return out


def _bar_figure(title: str, values: dict[str, float], ylabel: str, color: str) -> str:
    if not values:
        return _note(title, "no metrics of this kind were recorded")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bars = ax.bar(list(values), list(values.values()), color=color)
    ax.bar_label(bars, fmt="%.3g", fontsize=8)
    if sum(len(k) for k in values) > 40:  # long category names would run together
        ax.tick_params(axis="x", labelrotation=25)
        plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    ax.set(title=title, ylabel=ylabel)
    ax.margins(y=0.15)
    return _figure(fig, title)


def _comparison_figure(cmp: Comparison) -> str:
    title = "Candidate vs incumbent"
    shared = cmp.shared()
    if not shared:
        return _note(title, "the incumbent shares no finite metric with the candidate")
    plt = _pyplot()
    # One panel per metric: perplexity and rates differ by orders of magnitude.
    ncols = min(4, len(shared))
    nrows = math.ceil(len(shared) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 2.6 * nrows), squeeze=False)
    inc = f"v{cmp.incumbent.version}"
    for ax, (name, pair) in zip(axes.flat, shared.items(), strict=False):
        bars = ax.bar(["candidate", inc], [pair.candidate, pair.incumbent], color=[_BLUE, _GREY])
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.margins(y=0.2)
    for ax in list(axes.flat)[len(shared) :]:
        ax.axis("off")
    fig.suptitle(
        f"Candidate vs incumbent {cmp.incumbent.name} {inc} (@{cmp.incumbent.alias}) "
        f"on {cmp.eval_set}",
        fontsize=10,
    )
    return _figure(fig, title)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(fig, alt: str) -> str:
    plt = _pyplot()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    wide = " class=wide" if fig.get_figwidth() > 6 else ""
    return f'<figure{wide}><img alt="{_e(alt)}" src="data:image/png;base64,{data}"></figure>'


def _note(title: str, why: str) -> str:
    return f"<p class=note><b>{_e(title)}</b>: not drawn, {_e(why)}.</p>"


def _comparison_table(cmp: Comparison) -> str:
    inc = f"incumbent v{cmp.incumbent.version}"
    rows = []
    for name, p in sorted(cmp.metrics.items()):
        delta = p.candidate - p.incumbent
        rows.append((name, p.candidate, p.incumbent, delta if math.isfinite(delta) else None))
    return _table(["metric", "candidate", inc, "candidate − incumbent"], rows)


def _rows_table(rows: list[dict]) -> str:
    if not rows:
        return "<p class=note>No rows.</p>"
    columns = list(dict.fromkeys(k for r in rows for k in r))
    shown = [tuple(r.get(c) for c in columns) for r in rows[:MAX_TABLE_ROWS]]
    cut = len(rows) - len(shown)
    more = f"<p class=note>Showing {len(shown)} of {len(rows)} rows.</p>" if cut else ""
    return _table(columns, shown) + more


def _table(header: list[str], rows: list[tuple]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(v) -> str:
    if isinstance(v, float) and math.isfinite(v) and v == int(v) and abs(v) >= 1:
        return f"<td class=num>{int(v):,}</td>"  # counts such as eval/parameters
    if isinstance(v, float):
        return f"<td class=num>{v:.4g}</td>"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"<td class=num>{v:,}</td>"
    return f"<td>{'' if v is None else _e(str(v))}</td>"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","PingFang SC",
"Microsoft YaHei",sans-serif;color:#222;
max-width:1100px;margin:24px auto;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;margin-top:28px;
border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin-bottom:6px}
.summary{color:#444}.note{color:#777;font-style:italic}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots .note{flex-basis:100%;margin:0}
figure{margin:0;flex:0 1 calc(50% - 6px)}figure.wide{flex:1 1 100%}
img{width:100%;border:1px solid #eee}
table{border-collapse:collapse;margin:6px 0 14px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top;
max-width:480px;overflow-wrap:anywhere}th{background:#f4f6f8}td.num{text-align:right;
font-variant-numeric:tabular-nums}
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{css}</style></head>
<body>
{body}
</body></html>
"""
