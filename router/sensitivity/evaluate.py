"""`edgepack classify --eval`: a policy tested on labelled prompts before it is deployed.

Each row (`{"text": ..., "label": ...}`) is classified as the router would, and counted per
label (how many of its rows were flagged: recall for the confidential label, false-alarm
rate for the others) and per reason: per kind (rule: the built-in detectors; term, pattern,
host, topic, model; other: header, too_long, classifier_error) and per entry, how many
confidential and other rows it fired on, its precision, and the share of all confidential
rows it caught. A request's reasons are every rule that fired, or else the model (it reads
only what no rule decided), so a kind's counts are the rows it decided. The misses
(confidential rows nothing flagged) and false alarms (other rows flagged, with the reasons)
are listed with their text: the file is the team's own, read on its own machine.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from router.errors import UserError
from router.schema_io import jsonl_objects
from router.sensitivity.decision import Decision

CHUNK = 64  # rows classified at once (the model's micro-batches fill up)
BUILT_IN_OTHER = {"header", "opaque", "too_long", "classifier_error"}


@dataclass(frozen=True)
class Row:
    text: str
    label: str
    line: int


@dataclass
class Tally:
    confidential: int = 0
    other: int = 0

    def add(self, positive: bool) -> None:
        if positive:
            self.confidential += 1
        else:
            self.other += 1


@dataclass
class Report:
    positive: str
    labels: Counter = field(default_factory=Counter)
    flagged: Counter = field(default_factory=Counter)
    kinds: dict[str, Tally] = field(default_factory=dict)
    entries: dict[str, Tally] = field(default_factory=dict)
    misses: list[Row] = field(default_factory=list)
    false_alarms: list[tuple[Row, tuple[str, ...]]] = field(default_factory=list)

    def add(self, row: Row, decision: Decision) -> None:
        positive = row.label == self.positive
        self.labels[row.label] += 1
        if decision.confidential:
            self.flagged[row.label] += 1
        elif positive:
            self.misses.append(row)
        if decision.confidential and not positive:
            self.false_alarms.append((row, decision.reasons))
        for kind in {kind_of(reason) for reason in decision.reasons}:
            self.kinds.setdefault(kind, Tally()).add(positive)
        for reason in decision.reasons:
            self.entries.setdefault(reason, Tally()).add(positive)

    def _label(self, label: str) -> dict:
        n, flagged = self.labels[label], self.flagged[label]
        return {"rows": n, "flagged": flagged, "flagged_share": _share(flagged, n)}

    def as_json(self) -> dict:
        positives = self.labels[self.positive]
        others = sum(self.labels.values()) - positives
        caught = self.flagged[self.positive]
        alarms = sum(self.flagged.values()) - caught
        return {
            "rows": sum(self.labels.values()),
            "positive_label": self.positive,
            "recall": _share(caught, positives),
            "precision": _share(caught, caught + alarms),
            "false_alarm_rate": _share(alarms, others),
            "labels": {label: self._label(label) for label in sorted(self.labels)},
            "kinds": {k: _tally(t, positives, others) for k, t in sorted(self.kinds.items())},
            "entries": {e: _tally(t, positives, others) for e, t in sorted(self.entries.items())},
            "misses": [{"line": r.line, "label": r.label, "text": r.text} for r in self.misses],
            "false_alarms": [
                {"line": r.line, "label": r.label, "reasons": list(reasons), "text": r.text}
                for r, reasons in self.false_alarms
            ],
        }


def kind_of(reason: str) -> str:
    """`term:codenames` → term; a built-in detector → rule; model; other."""
    if ":" in reason:
        return reason.split(":", 1)[0]
    if reason == "model":
        return "model"
    return "other" if reason in BUILT_IN_OTHER else "rule"


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _tally(t: Tally, positives: int, others: int) -> dict:
    return {
        "confidential_rows": t.confidential,
        "other_rows": t.other,
        "precision": _share(t.confidential, t.confidential + t.other),
        "recall_share": _share(t.confidential, positives),
        "false_alarm_rate": _share(t.other, others),
    }


def read_rows(path: Path) -> list[Row]:
    """The labelled JSONL file; a bad line is a one-line error naming the file and line."""
    rows = []
    for n, obj in jsonl_objects(path, lambda n: f"{path}: line {n}"):
        for key in ("text", "label"):
            if not isinstance(obj.get(key), str):
                raise UserError(f"{path}: line {n}: {key}: missing or not a string")
        rows.append(Row(obj["text"], obj["label"], n))
    if not rows:
        raise UserError(f"{path}: no rows")
    return rows


async def evaluate(
    rows: Iterable[Row], classify: Callable[[list[str]], Awaitable[Decision]], positive: str
) -> Report:
    report = Report(positive)
    pending = list(rows)
    for start in range(0, len(pending), CHUNK):
        chunk = pending[start : start + CHUNK]
        decisions = await asyncio.gather(*(classify([row.text]) for row in chunk))
        for row, decision in zip(chunk, decisions, strict=True):
            report.add(row, decision)
    return report


def render(report: dict, show: int = 20) -> str:
    """The report as text: totals, per label, per kind, per entry, then misses and false
    alarms (the first `show` of each)."""
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    out = [
        f"{report['rows']} rows; {report['positive_label']}: recall {pct(report['recall'])}, "
        f"precision {pct(report['precision'])}; false alarms {pct(report['false_alarm_rate'])} "
        "of the other rows",
        "",
        f"{'label':<24}{'rows':>7}{'flagged':>9}{'share':>9}",
    ]
    for label, row in report["labels"].items():
        out.append(f"{label:<24}{row['rows']:>7}{row['flagged']:>9}{pct(row['flagged_share']):>9}")
    for title, key in (("kind", "kinds"), ("reason", "entries")):
        out += ["", f"{title:<32}{'conf.':>7}{'other':>7}{'precision':>11}{'recall':>9}"
                f"{'false alarms':>14}"]  # fmt: skip
        for name, t in report[key].items():
            out.append(
                f"{name:<32}{t['confidential_rows']:>7}{t['other_rows']:>7}"
                f"{pct(t['precision']):>11}{pct(t['recall_share']):>9}"
                f"{pct(t['false_alarm_rate']):>14}"
            )
    for title, key in (("misses", "misses"), ("false alarms", "false_alarms")):
        items = report[key]
        out += ["", f"{title}: {len(items)}" + (f" (first {show})" if len(items) > show else "")]
        for item in items[:show]:
            why = f" [{', '.join(item['reasons'])}]" if "reasons" in item else ""
            out.append(f"  line {item['line']}{why}: {_one_line(item['text'])}")
    return "\n".join(out)


def _one_line(text: str, width: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
