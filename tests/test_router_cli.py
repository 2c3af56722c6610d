"""`edgepack classify` and `edgepack router` as a user runs them: JSON out, one-line errors
with exit 2 for a bad config, the sidecar serving on a free port in a subprocess."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from router.config import load_config
from tests.fixtures.keyword_model import make_keyword_model

ROOT = Path(__file__).resolve().parents[1]
EDGEPACK = [sys.executable, "-c", "from pipeline.cli import main; main()"]


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGEPACK, *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, timeout=120)  # fmt: skip


def _config(tmp_path: Path, **extra) -> Path:
    data = {"onprem": {"upstreams": [{"name": "gpu-a", "url": "http://127.0.0.1:9"}]}, **extra}
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_classify_prints_the_decision(tmp_path):
    result = _run(
        "classify", "--config", str(_config(tmp_path)), "my IBAN is GB82WEST12345698765432"
    )
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["sensitivity"] == "confidential" and decision["reasons"] == ["iban"]
    assert "GB82" not in result.stdout


def test_classify_jsonl_keeps_order(tmp_path):
    lines = [
        {"text": "hello there", "id": 1},
        {"text": "内部机密文件"},
        {"text": "SSN 219-09-9998"},
    ]
    stdin = "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n"
    result = _run("classify", "--config", str(_config(tmp_path)), "--jsonl", stdin=stdin)
    assert result.returncode == 0, result.stderr
    out = [json.loads(x) for x in result.stdout.splitlines()]
    assert [d["sensitivity"] for d in out] == ["public", "confidential", "confidential"]
    assert [d["reasons"] for d in out] == [[], ["marker"], ["ssn"]]


def test_classify_jsonl_bad_line_is_one_line_error(tmp_path):
    result = _run("classify", "--config", str(_config(tmp_path)), "--jsonl", stdin='{"txt": 1}\n')
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: stdin: line 1: text: missing or not a string"
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"listen": {"prot": 1}}, "listen.prot: unknown key"),
        ({"listen": {"workers": 0}}, "listen.workers"),
        ({"sagemaker": {"endpoint_name": "bad name!"}}, "sagemaker.endpoint_name"),
        ({"limits": {"max_body_bytes": 7_000_000}}, "limits.max_body_bytes"),
        (
            {"classifier": {"detectors": ["card", "dna"]}},
            "classifier.detectors: unknown detector(s): dna",
        ),
    ],
)
def test_bad_config_is_one_line_exit_2(tmp_path, extra, message):
    path = _config(tmp_path, **extra)
    for command in (["router", "--config", str(path)], ["classify", "--config", str(path), "x"]):
        result = _run(*command)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}: ") and message in lines[0]
        assert "Traceback" not in result.stderr


def test_duplicate_upstream_names_rejected(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "onprem": {
                    "upstreams": [
                        {"name": "a", "url": "http://127.0.0.1:9"},
                        {"name": "a", "url": "http://127.0.0.1:10"},
                    ]
                }
            }
        )
    )
    result = _run("classify", "--config", str(path), "x")
    assert result.returncode == 2 and "upstream names must be unique" in result.stderr


def test_example_config_loads_and_resolves_the_model_path():
    config = load_config(ROOT / "router" / "router.example.yaml")
    assert (
        config.classifier.model.path.resolve()
        == (ROOT / "dist/sensitivity-minilm-cpu/onnx/model.int8.onnx").resolve()
    )


def test_router_command_serves_until_terminated(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([*EDGEPACK, "router", "--config", str(_config(tmp_path)), "--port",
                             str(port)], cwd=ROOT, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        end = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < end, "router did not start"
                time.sleep(0.2)
        assert r.json() == {"status": "ok"}
        r = httpx.post(f"http://127.0.0.1:{port}/v1/classify", json={"text": "CONFIDENTIAL memo"})
        assert r.json()["reasons"] == ["marker"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    for line in err.strip().splitlines():
        json.loads(line)  # every log line is a JSON object, never text


def test_demo_routes_both_prompts():
    result = subprocess.run([sys.executable, "-m", "router.demo", "--check", "--port", "0"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "200 X-Route: onprem X-Sensitivity: confidential" in result.stdout
    assert "200 X-Route: sagemaker X-Sensitivity: public" in result.stdout
    assert result.stdout.count("curl -si") == 2


def test_classify_with_a_missing_model_is_a_one_line_error(tmp_path):
    path = _config(tmp_path, classifier={"model": {"path": "nowhere/model.int8.onnx"}})
    result = _run("classify", "--config", str(path), "hello")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "classifier.model: classifier model not found" in lines[0]


def test_classify_eval_reports_per_label_and_reason_with_the_misses(tmp_path):
    policy = {"terms": [{"name": "codenames", "words": ["Osprey"]}],
              "hosts": [{"name": "corp", "domains": ["corp.example.com"]}]}  # fmt: skip
    config = _config(tmp_path, classifier={"sensitivity": policy})
    rows = [
        ("Osprey ships in May", "confidential"),  # term
        ("card 4111 1111 1111 1111 and wiki.corp.example.com", "confidential"),  # rule + host
        ("the Q3 numbers look weak", "confidential"),  # missed: no rule, no model
        ("ospreys nest by the sea", "public"),
        ("see git.corp.example.com for the docs", "public"),  # a false alarm of host:corp
    ]
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text(
        "".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows)
    )
    result = _run("classify", "--config", str(config), "--eval", str(labelled), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["rows"], report["recall"], report["false_alarm_rate"]) == (5, 0.6667, 0.5)
    assert report["labels"]["confidential"] == {"rows": 3, "flagged": 2, "flagged_share": 0.6667}
    assert set(report["kinds"]) == {"rule", "term", "host"}
    assert report["entries"]["host:corp"]["confidential_rows"] == 1
    assert report["entries"]["host:corp"]["other_rows"] == 1
    assert report["entries"]["host:corp"]["precision"] == 0.5
    assert report["entries"]["term:codenames"]["recall_share"] == 0.3333
    assert [m["line"] for m in report["misses"]] == [3]
    assert [(a["line"], a["reasons"]) for a in report["false_alarms"]] == [(5, ["host:corp"])]
    text = _run("classify", "--config", str(config), "--eval", str(labelled))
    assert "recall 66.7%" in text.stdout and "line 3: the Q3 numbers look weak" in text.stdout


def test_classify_eval_names_the_bad_line(tmp_path):
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text('{"text": "a", "label": "public"}\n{"text": "b"}\n')
    result = _run("classify", "--config", str(_config(tmp_path)), "--eval", str(labelled))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{labelled}: line 2: label: missing or not a string" in result.stderr


def test_classify_eval_reports_the_models_decisions_however_slow_it_runs(tmp_path):
    """A time limit the sidecar would fail closed on (a microsecond) is not applied offline:
    every row gets the model's own decision, never `classifier_error`."""
    model = make_keyword_model(tmp_path / "onnx", ["merger"])
    config = _config(tmp_path, classifier={"model": {"path": str(model), "timeout_ms": 0.001}})
    rows = [("the merger closes friday", "confidential")] * 40 + [("lunch at noon", "public")] * 40
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({"text": t, "label": x}) + "\n" for t, x in rows))
    result = _run("classify", "--config", str(config), "--eval", str(labelled), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["recall"], report["false_alarm_rate"]) == (1.0, 0.0)
    assert set(report["kinds"]) == {"model"}
