"""`edgepack router` and `edgepack classify`: thin commands over router.app / the classifier.

Registered into pipeline/cli.py's typer app by `register(app)`, which imports this module
for every `edgepack` command. So this module is the router's one entry point that imports
the router inside its commands: the server, the app and the classifier cost a second or
more to import (uvicorn, starlette, prometheus_client, numpy), and `edgepack --help` or a
build must not pay that. Nothing imports this module, so it closes no cycle.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from router.errors import UserError

if TYPE_CHECKING:
    from router.config import ClassifierConfig


def register(app: typer.Typer) -> None:
    app.command("router")(router)
    app.command("classify")(classify)


def router(
    config: Annotated[Path, typer.Option(help="router.yaml")],
    host: Annotated[str | None, typer.Option(help="override listen.host")] = None,
    port: Annotated[int | None, typer.Option(help="override listen.port")] = None,
) -> None:
    """Run the sensitivity-aware router sidecar."""
    from router.config import load_config
    from router.server import serve

    cfg = load_config(config)
    serve(cfg, host=host, port=port, config_path=config)


def classify(
    config: Annotated[Path, typer.Option(help="router.yaml (its classifier section)")],
    text: Annotated[str | None, typer.Argument(help="text to classify")] = None,
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="read JSON lines ({'text': ...}) on stdin")
    ] = False,
    eval_file: Annotated[
        Path | None,
        typer.Option(
            "--eval",
            help="labelled JSON lines ({'text': ..., 'label': ...}): recall, precision and "
            "false alarms per label and per reason, and the misses",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="--eval: the report as JSON")] = False,
    show: Annotated[int, typer.Option(help="--eval: misses and false alarms listed")] = 20,
) -> None:
    """Print the sensitivity decision as JSON (one line per input with --jsonl), or with
    --eval a report of the config's policy on labelled prompts."""
    import asyncio
    import logging

    from router.config import load_config
    from router.metrics import RouterMetrics
    from router.sensitivity import evaluate
    from router.sensitivity.classifier import build_classifier

    cfg = load_config(config)
    if not jsonl and text is None and eval_file is None:
        raise UserError("classify: give TEXT, --jsonl or --eval FILE")
    rows = evaluate.read_rows(eval_file) if eval_file is not None else []
    logging.getLogger("edgepack.router").setLevel(logging.CRITICAL)  # errors come as UserError
    classifier = build_classifier(_offline(cfg.classifier), RouterMetrics())
    if classifier.model_error is not None:  # the sidecar fails closed; the CLI says why
        raise UserError(f"{config}: classifier.model: {classifier.model_error}")

    async def run() -> None:
        if eval_file is not None:
            model = cfg.classifier.model
            positive = model.positive_label if model is not None else "confidential"
            report = (await evaluate.evaluate(rows, classifier.classify, positive)).as_json()
            print(
                json.dumps(report, ensure_ascii=False) if as_json else evaluate.render(report, show)
            )
            return
        if not jsonl:
            print(json.dumps((await classifier.classify([text or ""])).as_json()))
            return
        for n, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            value = _text_of(line, n)
            print(json.dumps((await classifier.classify([value])).as_json()), flush=True)

    try:
        asyncio.run(run())
    finally:
        if classifier.batcher is not None:
            classifier.batcher.close()


OFFLINE_TIMEOUT_MS = 600_000.0


def _offline(section: ClassifierConfig) -> ClassifierConfig:
    """The section with the model's time limit lifted. The sidecar fails closed when the
    model answers late, because a caller is waiting; here nobody is, and a report of the
    policy must show the model's decisions, not how busy this machine was (an --eval run
    queues 64 rows at once)."""
    if section.model is None:
        return section
    model = section.model.model_copy(update={"timeout_ms": OFFLINE_TIMEOUT_MS})
    return section.model_copy(update={"model": model})


def _text_of(line: str, n: int) -> str:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        raise UserError(f"stdin: line {n}: malformed JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        raise UserError(f"stdin: line {n}: text: missing or not a string")
    return obj["text"]
