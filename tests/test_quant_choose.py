"""Which INT8 candidate becomes onnx/model.int8.onnx (`cpu_int8.choose`): the order in
which candidates are tried decides whether users get an INT8 model slower than FP32."""

from __future__ import annotations

import pytest

from pipeline.errors import StageFailed
from pipeline.quant.cpu_int8 import choose

# speed = time relative to FP32 on this CPU (lower is faster); static-qdq is slower than FP32
SPEED = {"fused-dynamic": 0.63, "static-fused": 0.78, "static-qdq": 1.4}


class Judge:
    """Records what was tried; `passing` pass as built, `gateable` pass with nodes in float."""

    def __init__(self, passing=(), gateable=()):
        self.passing, self.gateable, self.tried = set(passing), set(gateable), []

    def outright(self, name):
        self.tried.append(("outright", name))
        return f"{name} as built" if name in self.passing else None

    def gate(self, name):
        self.tried.append(("gate", name))
        if name in self.gateable:
            return f"{name} with nodes in float"
        raise StageFailed("quantize", f"INT8 accuracy gate failed for {name}")


def test_fastest_passing_candidate_as_built_wins():
    judge = Judge(passing={"static-fused", "static-qdq"})
    assert choose(SPEED, judge.outright, judge.gate) == (
        "static-fused",
        "static-fused as built",
    )
    assert judge.tried == [("outright", "fused-dynamic"), ("outright", "static-fused")]


def test_a_candidate_slower_than_fp32_waits_for_the_gate_of_the_fastest():
    """The case found in a jetson-orin build: only static-qdq (1.4x FP32's time) passed as
    built, and it was shipped, though fused-dynamic passes with a few nodes in float."""
    judge = Judge(passing={"static-qdq"}, gateable={"fused-dynamic"})
    assert choose(SPEED, judge.outright, judge.gate) == (
        "fused-dynamic",
        "fused-dynamic with nodes in float",
    )
    assert ("outright", "static-qdq") not in judge.tried


def test_slower_candidate_only_when_the_gate_fails():
    judge = Judge(passing={"static-qdq"})
    assert choose(SPEED, judge.outright, judge.gate) == ("static-qdq", "static-qdq as built")
    assert judge.tried[-2:] == [("gate", "fused-dynamic"), ("outright", "static-qdq")]


def test_nothing_passes_raises_the_gate_failure_of_the_fastest():
    judge = Judge()
    with pytest.raises(StageFailed, match="gate failed for fused-dynamic"):
        choose(SPEED, judge.outright, judge.gate)
    assert [kind for kind, _ in judge.tried].count("gate") == 1


def test_no_candidate_faster_than_fp32_gates_the_fastest_last():
    speed = {"static-fused": 1.1, "static-qdq": 1.4}
    judge = Judge(gateable={"static-fused"})
    assert choose(speed, judge.outright, judge.gate)[0] == "static-fused"
    assert judge.tried == [
        ("outright", "static-fused"),
        ("outright", "static-qdq"),
        ("gate", "static-fused"),
    ]
