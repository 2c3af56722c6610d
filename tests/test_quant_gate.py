"""The accuracy gate's search (`pipeline.quant.gate.run_gate`): which units it keeps in
float, and how many models it builds to find them (each build is a full quantization).

The model is a stand-in whose accuracy drop and output error are the summed harm of the
nodes it quantizes, so the most sensitive nodes are known.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import StageFailed
from pipeline.quant.gate import run_gate
from pipeline.quant.qdq import group_blocks

FP32 = 90.0


class Additive:
    """Quantizing node n costs `harm[n]` points of accuracy and as much output error."""

    def __init__(self, harm: dict[str, float]) -> None:
        self.harm, self.builds, self.evaluated = harm, 0, 0

    def build(self, dst: Path, exclude) -> Path:
        self.builds += 1
        dst.write_text(json.dumps(sorted(exclude)))
        return dst

    def drop(self, path: Path) -> float:
        kept = set(json.loads(path.read_text()))
        return sum(h for n, h in self.harm.items() if n not in kept)

    def evaluate(self, path: Path) -> dict:
        self.evaluated += 1
        return {"accuracy": (FP32 - self.drop(path)) / 100.0}

    def gate(self, tmp_path: Path, budget: float, grouped: bool = True, **kw):
        nodes = list(self.harm)
        return run_gate(
            "m", self.build, {n: [n] for n in nodes}, self.evaluate, self.drop, FP32,
            "accuracy", budget, tmp_path, groups=group_blocks(nodes) if grouped else None, **kw,
        )  # fmt: skip


def node(layer: int, i: int) -> str:
    return f"/bert/encoder/layer.{layer}/n{i}/MatMul"


def harm(**special: float) -> dict[str, float]:
    """3 layers of 4 nodes, each costing 0.1 unless `special` (`l1n2=3.0`) says otherwise."""
    return {node(l, i): special.get(f"l{l}n{i}", 0.1) for l in range(3) for i in range(4)}  # noqa: E741


def test_keeps_the_most_sensitive_nodes_measuring_only_the_worst_block(tmp_path):
    model = Additive(harm(l1n2=3.0, l1n0=1.0))  # drop 5.0 as built
    result = model.gate(tmp_path, budget=1.5)
    assert [a.excluded for a in result.attempts] == [[], [node(1, 2)], [node(1, 2), node(1, 0)]]
    assert model.drop(result.path) == pytest.approx(1.0)
    # the model as built, 3 blocks, the worst block's 4 nodes, 2 retries; not 12 nodes
    assert model.builds == 1 + 3 + 4 + 2
    assert set(result.sensitivity) == {"layer.0", "layer.1", "layer.2"} | {
        node(1, i) for i in range(4)
    }


def test_reaches_the_next_block_only_when_the_first_is_all_in_float(tmp_path):
    model = Additive(harm(**{f"l0n{i}": 1.0 for i in range(4)}, l2n1=1.5, l1n0=0.0))
    result = model.gate(tmp_path, budget=0.65)  # 0.6 left once those five are in float
    assert result.attempts[-1].excluded == [node(0, i) for i in range(4)] + [node(2, 1)]
    assert {n for n in result.sensitivity if n.startswith("/")} == {
        node(b, i) for b in (0, 2) for i in range(4)
    }


def test_without_groups_every_unit_is_measured(tmp_path):
    model = Additive(harm(l1n2=3.0, l1n0=1.0))
    result = model.gate(tmp_path, budget=1.5, grouped=False)
    assert result.attempts[-1].excluded == [node(1, 2), node(1, 0)]
    assert model.builds == 1 + 12 + 2


def test_a_model_the_caller_found_over_budget_is_not_evaluated_again(tmp_path):
    model = Additive(harm(l1n2=3.0, l1n0=1.0))
    result = model.gate(tmp_path, budget=1.5, failed_as_built=True)
    assert [a.excluded for a in result.attempts] == [[node(1, 2)], [node(1, 2), node(1, 0)]]
    assert model.evaluated == 2


def test_never_keeps_more_than_half_in_float(tmp_path):
    model = Additive(harm(**{f"l{l}n{i}": 1.0 for l in range(3) for i in range(4)}))  # noqa: E741
    attempts = []
    with pytest.raises(StageFailed, match="INT8 accuracy gate failed for m"):
        model.gate(tmp_path, budget=0.5, attempts=attempts)
    assert [len(a.excluded) for a in attempts] == [0, 1, 2, 3, 4, 5, 6]
