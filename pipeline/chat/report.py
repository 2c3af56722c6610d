"""MODEL_CARD.md and report.html for a chat build: the loss curve, and per variant (FP32,
INT8, INT4) eval perplexity, greedy-token agreement with FP32, size and CPU decode speed.

The page is self-contained (inline SVG, no scripts, no network) and deterministic.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.chat.recipe import ChatRecipe
from pipeline.target import Target

COLORS = {"fp32": "#4c72b0", "int8": "#55a868", "int4": "#dd8452"}


@dataclass(frozen=True)
class Row:
    name: str
    perplexity: float
    agreement: float
    size_bytes: int
    tokens_per_s: float | None


def rows(quantize: dict, speed: dict[str, float]) -> list[Row]:
    fp32 = quantize["fp32"]
    out = [Row("fp32", fp32["perplexity"], 1.0, fp32["size_bytes"], speed.get("fp32"))]
    for name, m in quantize["variants"].items():
        out.append(Row(name, m["perplexity"], m["token_agreement"], m["size_bytes"],
                       speed.get(name)))  # fmt: skip
    return out


def _svg(draw) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    with matplotlib.rc_context({"svg.hashsalt": "edgepack", "svg.fonttype": "path"}):
        fig, ax = plt.subplots(figsize=(4.2, 3.0), dpi=100)
        draw(ax)
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
        plt.close(fig)
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", buffer.getvalue(), flags=re.S)
    return svg[svg.index("<svg") :]


def _bars(title: str, unit: str, table: Sequence[Row], values: list[float]) -> str:
    def draw(ax) -> None:
        bars = ax.bar([r.name.upper() for r in table], values,
                      color=[COLORS.get(r.name, "#888") for r in table])  # fmt: skip
        ax.bar_label(bars, labels=[f"{v:.4g}" for v in values], padding=2, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit, fontsize=9)
        ax.margins(y=0.15)

    return _svg(draw)


def _curve(losses: list[float]) -> str:
    def draw(ax) -> None:
        ax.plot(range(1, len(losses) + 1), losses, color=COLORS["fp32"])
        ax.set_title("training loss (assistant tokens)", fontsize=10)
        ax.set_xlabel("step", fontsize=9)
        ax.set_ylabel("loss", fontsize=9)

    return _svg(draw)


def plots(table: Sequence[Row], losses: list[float]) -> list[str]:
    out = [
        _curve(losses),
        _bars("eval perplexity", "lower is better", table, [r.perplexity for r in table]),
        _bars("greedy-token agreement", "share of FP32 tokens", table,
              [r.agreement for r in table]),
        _bars("model size", "MB", table, [r.size_bytes / 1e6 for r in table]),
    ]  # fmt: skip
    if all(r.tokens_per_s for r in table):
        out.append(_bars("CPU decode speed", "tokens/s", table, [r.tokens_per_s for r in table]))
    return out


def _table_md(table: Sequence[Row]) -> str:
    lines = [
        "| variant | eval perplexity | token agreement | size (MB) | CPU decode tokens/s |",
        "|---|---|---|---|---|",
    ]
    for r in table:
        speed = f"{r.tokens_per_s:.1f}" if r.tokens_per_s else "n/a"
        lines.append(f"| {r.name.upper()} | {r.perplexity:.4g} | {r.agreement:.2%} | "
                     f"{r.size_bytes / 1e6:.2f} | {speed} |")  # fmt: skip
    return "\n".join(lines)


def model_card(
    recipe: ChatRecipe, target: Target, table: Sequence[Row], finetune: dict, packages: dict
) -> str:
    ev, base = finetune["eval"], finetune["base_eval"]
    listed = "\n".join(f"- `{p}`: {what}" for p, what in packages.items())
    return f"""# {recipe.name} for {target.name}

A chat model (`task: text-generation`) fine-tuned with LoRA from `{recipe.model}`.
When the base is a tiny random model (pipeline/chat/tiny.py) this build demonstrates the
pipeline, not a useful chat model: its replies mean nothing.

## Training
- {finetune["train"]["steps"]} steps over {finetune["train"]["conversations"]} conversations,
  loss on assistant turns only; LoRA r={recipe.lora.r}, alpha={recipe.lora.alpha}.
- Eval loss {ev["loss"]:.4f} (perplexity {ev["perplexity"]:.4g}) over {ev["tokens"]} assistant
  tokens; the base model: {base["loss"]:.4f} ({base["perplexity"]:.4g}).

## Variants
{_table_md(table)}

Agreement: the share of FP32's greedy tokens (eval prompts, {recipe.eval.new_tokens} new
tokens each) the variant predicts alike. INT8/INT4 are weight-only (ONNX Runtime
MatMulNBits, block {recipe.quantize.block_size}); budgets: INT8 perplexity
+{recipe.eval.int8.max_perplexity_increase:.0%} / agreement
{recipe.eval.int8.min_token_agreement:.0%}, INT4 +{recipe.eval.int4.max_perplexity_increase:.0%}
/ {recipe.eval.int4.min_token_agreement:.0%}.

## Packages
{listed}
"""


def report_html(recipe: ChatRecipe, target: Target, table: Sequence[Row], losses: list[float]):
    figures = "\n".join(f"<figure>{svg}</figure>" for svg in plots(table, losses))
    columns = ("variant", "eval perplexity", "token agreement", "size (MB)", "tokens/s")
    head = "".join(f"<th>{h}</th>" for h in columns)
    body = "".join(
        f"<tr><td>{r.name.upper()}</td><td>{r.perplexity:.4g}</td><td>{r.agreement:.2%}</td>"
        f"<td>{r.size_bytes / 1e6:.2f}</td>"
        f"<td>{f'{r.tokens_per_s:.1f}' if r.tokens_per_s else 'n/a'}</td></tr>"
        for r in table
    )
    title = html.escape(f"{recipe.name} for {target.name}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}}figure{{display:inline-block;margin:0 1em 1em 0}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em}}</style></head>
<body><h1>{title}</h1>
<p>Chat model fine-tuned with LoRA from {html.escape(recipe.model)}; weight-only INT8/INT4
against FP32 on the eval split. Decode speed: ONNX Runtime on the build host's CPU, 1
thread, batch 1, interleaved rounds; compare ratios, not absolute figures.</p>
<table><tr>{head}</tr>{body}</table>
{figures}
</body></html>
"""
