"""report.html: one self-contained page (inline SVG plots, no scripts, no network) with
accuracy, latency and size per variant (FP32 vs INT8 vs Q/DQ)."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence

from pipeline.packaging.variants import Variant

COLORS = {"fp32": "#4c72b0", "int8": "#55a868", "qdq": "#c44e52"}


def _bar_svg(title: str, unit: str, variants: Sequence[Variant], values: list[float]) -> str:
    """A small bar chart as an inline <svg> element (deterministic: fixed hash salt, no date)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    with matplotlib.rc_context({"svg.hashsalt": "edgepack", "svg.fonttype": "path"}):
        fig, ax = plt.subplots(figsize=(4.2, 3.0), dpi=100)
        names = [v.name.upper() for v in variants]
        bars = ax.bar(names, values, color=[COLORS.get(v.name, "#888") for v in variants])
        ax.bar_label(bars, labels=[f"{x:.3g}" for x in values], padding=2, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit, fontsize=9)
        ax.margins(y=0.15)
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
        plt.close(fig)
    svg = buffer.getvalue()
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.S)  # RDF boilerplate
    return svg[svg.index("<svg") :]


def plots(variants: Sequence[Variant], metric: str) -> dict[str, str]:
    """id → inline SVG for each plot that has data for every variant."""
    found = {}
    scored = [v for v in variants if metric in v.metrics]
    if scored:
        found["plot-accuracy"] = _bar_svg(
            f"{metric} on the eval split", metric, scored, [v.metrics[metric] for v in scored]
        )
    timed = [v for v in variants if v.latency_ms is not None]
    if timed:
        found["plot-latency"] = _bar_svg(
            "CPU latency (ONNX Runtime, 1 thread, median)",
            "ms",
            timed,
            [v.latency_ms for v in timed],
        )
    found["plot-size"] = _bar_svg(
        "model size", "MiB", variants, [v.size_bytes / 2**20 for v in variants]
    )
    return found


def render(
    *,
    title: str,
    summary: list[tuple[str, str]],
    variants: Sequence[Variant],
    metric: str,
    notes: list[str],
) -> str:
    """The whole page as a string."""
    esc = html.escape
    figures = "\n".join(
        f'<figure id="{pid}" class="plot">{svg}</figure>'
        for pid, svg in plots(variants, metric).items()
    )
    keys = sorted({k for v in variants for k in v.metrics})
    head = "".join(f"<th>{esc(k)}</th>" for k in keys)
    rows = "\n".join(
        f"<tr><td>{esc(v.name.upper())}</td><td>{esc(v.description)}</td><td>{esc(v.file)}</td>"
        f"<td>{v.size_bytes / 2**20:.2f}</td>"
        f"<td>{'' if v.latency_ms is None else f'{v.latency_ms:.2f}'}</td>"
        + "".join(f"<td>{v.metrics[k]:.4g}</td>" if k in v.metrics else "<td></td>" for k in keys)
        + "</tr>"
        for v in variants
    )
    facts = "\n".join(f"<tr><th>{esc(k)}</th><td>{esc(val)}</td></tr>" for k, val in summary)
    note_items = "\n".join(f"<li>{esc(n)}</li>" for n in notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 72rem; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
figure.plot {{ margin: 0; }}
</style></head>
<body>
<h1>{esc(title)}</h1>
<table>{facts}</table>
<h2>Variants: FP32 vs INT8</h2>
<div class="plots">
{figures}
</div>
<table><tr><th>variant</th><th>what</th><th>file</th><th>MiB</th><th>CPU ms</th>{head}</tr>
{rows}
</table>
<h2>Notes</h2>
<ul>{note_items}</ul>
</body></html>
"""
