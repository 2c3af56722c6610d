"""The accuracy gate: an INT8 model may cost at most the recipe's budget of its metric.

A model over budget is not given up at once: we measure which units (blocks or nodes)
hurt most by quantizing with one unit left in float at a time and comparing outputs with
FP32 on calibration samples, then keep the 1, 2, ... most sensitive units in float until
the model passes (at most half of them: beyond that it is no longer an INT8 model).
Every attempt goes into a table; if none passes, the stage fails with that table.

Units that fall into groups (nodes into blocks) are ranked in two steps, each measured
only when the retries reach it: the groups by the error with the whole group in float,
then the units of a group by their own. A build per group plus one per unit of the groups
reached, instead of one per unit: each is a full quantization of the model.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import StageFailed


@dataclass
class Attempt:
    model: str
    excluded: list[str]
    metric: float
    """Points, 0-100."""
    drop: float
    passed: bool

    def row(self) -> dict:
        return {
            "model": self.model,
            "excluded": self.excluded,
            "metric": round(self.metric, 3),
            "drop": round(self.drop, 3),
            "passed": self.passed,
        }


@dataclass
class GateResult:
    path: Path
    metrics: dict
    attempts: list[Attempt] = field(default_factory=list)
    sensitivity: dict[str, float] = field(default_factory=dict)


def attempts_table(attempts: Sequence[Attempt], metric: str, budget: float) -> str:
    """A plain-text table of what was tried, for the failure message and the log."""
    lines = [f"{'model':<20} {'kept in float':<40} {metric:>9} {'drop':>7}  (budget {budget})"]
    for a in attempts:
        kept = ", ".join(a.excluded) or "-"
        kept = kept if len(kept) <= 40 else kept[:37] + "..."
        verdict = "pass" if a.passed else "FAIL"
        lines.append(f"{a.model:<20} {kept:<40} {a.metric:>9.2f} {a.drop:>7.2f}  {verdict}")
    return "\n".join(lines)


def run_gate(
    name: str,
    build: Callable[[Path, Sequence[str]], Path],
    units: dict[str, list[str]],
    evaluate: Callable[[Path], dict],
    output_error: Callable[[Path], float],
    fp32_points: float,
    metric: str,
    budget: float,
    work: Path,
    progress: Callable[[str], None] = lambda _m: None,
    attempts: list[Attempt] | None = None,
    groups: dict[str, list[str]] | None = None,
    failed_as_built: bool = False,
) -> GateResult:
    """Build `name` (with nothing, then with the most sensitive units kept in float) until its
    metric is within `budget` points of FP32; raise StageFailed with the table otherwise.

    `groups` maps a group name to unit names (ranked in two steps, see the module);
    `failed_as_built`: the caller has evaluated the model as built, over budget.
    `attempts` collects every attempt, also when this raises.
    """
    attempts = attempts if attempts is not None else []

    def attempt(excluded: list[str], tag: str) -> GateResult | None:
        nodes = [n for u in excluded for n in units[u]]
        path = build(work / f"{name}-{tag}.onnx", nodes)
        scores = evaluate(path)
        points = 100.0 * scores[metric]
        drop = fp32_points - points
        attempts.append(Attempt(name, excluded, points, drop, drop <= budget))
        return GateResult(path, scores, attempts) if drop <= budget else None

    if not failed_as_built:
        progress(f"{name}: evaluating")
        if result := attempt([], "full"):
            return result
    if len(units) < 2:
        raise StageFailed("quantize", _failure(name, attempts, metric, budget))
    progress(f"{name}: over budget, measuring sensitivity of {len(units)} units")
    built = itertools.count()
    sensitivity: dict[str, float] = {}

    def error(label: str, nodes: list[str]) -> float:
        sensitivity[label] = output_error(build(work / f"{name}-sens-{next(built)}.onnx", nodes))
        return sensitivity[label]

    ranked = _most_sensitive_first(units, groups or {u: [u] for u in units}, error)
    kept: list[str] = []
    for k, unit in enumerate(itertools.islice(ranked, len(units) // 2), start=1):
        kept.append(unit)
        progress(f"{name}: retry with {k} unit(s) in float")
        if result := attempt(list(kept), f"excl{k}"):
            result.sensitivity = sensitivity
            return result
    raise StageFailed("quantize", _failure(name, attempts, metric, budget))


def _most_sensitive_first(
    units: dict[str, list[str]],
    groups: dict[str, list[str]],
    error: Callable[[str, list[str]], float],
) -> Iterator[str]:
    """Units by sensitivity (lowest error with it in float first), groups before their
    members, each group's members measured only once the ranking reaches that group."""
    by_group = {g: error(g, [n for u in ms for n in units[u]]) for g, ms in groups.items()}
    for group in sorted(by_group, key=by_group.__getitem__):
        members = groups[group]
        if len(members) == 1:
            yield members[0]
            continue
        by_unit = {u: error(u, units[u]) for u in members}
        yield from sorted(by_unit, key=by_unit.__getitem__)


def _failure(name: str, attempts: Sequence[Attempt], metric: str, budget: float) -> str:
    return (
        f"INT8 accuracy gate failed for {name}: {metric} drop over the recipe's "
        f"eval.int8_budget of {budget} points in every attempt\n"
        + attempts_table([a for a in attempts if a.model == name], metric, budget)
    )


MAX_BATCH_DELTA = 0.02
"""Largest change of a prompt's P(positive) allowed between scoring it alone and in a batch."""


@dataclass(frozen=True)
class Invariance:
    """A model's scores alone vs inside shuffled, padded batches, on the same texts.

    The router micro-batches requests (and Triton batches dynamically), so a model whose
    score depends on its neighbours routes the same prompt differently from one request to
    the next; dynamic INT8 does this (activation scales from the whole batch tensor).
    """

    rows: int
    max_delta: float
    flips: int
    """Rows whose decision at the threshold differs between alone and batched."""
    threshold: float

    @property
    def passed(self) -> bool:
        return self.max_delta <= MAX_BATCH_DELTA and self.flips == 0

    def row(self) -> dict:
        return {
            "rows": self.rows,
            "max_delta": round(self.max_delta, 6),
            "flips": self.flips,
            "threshold": round(self.threshold, 6),
            "passed": self.passed,
        }


def compare_scores(
    alone: Sequence[float], batched: Sequence[Sequence[float]], threshold: float
) -> Invariance:
    """`alone[i]` vs every batched run's score of row i (each run a different batching)."""
    delta, flipped = 0.0, set()
    for run in batched:
        for i, (a, b) in enumerate(zip(alone, run, strict=True)):
            delta = max(delta, abs(a - b))
            if (a >= threshold) != (b >= threshold):
                flipped.add(i)
    return Invariance(len(alone), delta, len(flipped), threshold)
