"""Kubernetes manifests: the app with the router as a native sidecar (Kubernetes ≥ 1.29).

A native sidecar is an init container with `restartPolicy: Always`: it starts before the
app (its startup probe gates the app), and on shutdown it stops after the app, so the
app's last calls to 127.0.0.1 still find the router. Files are numbered so that
`kubectl apply -f k8s/` creates the namespace first.
"""

from __future__ import annotations

import hashlib

import yaml

from pipeline.deploy import forecast
from pipeline.deploy.spec import DeployConfig, Resources

MIN_KUBERNETES = "1.29"
MIN_KEDA = "2.17"
"""The ScaledObject's `fallback.behavior` first appears in KEDA 2.17."""
CONFIG_DIR = "/app/deploy"
"""Where the ConfigMap is mounted; the image keeps its model in /app/onnx beside it."""
UID = 10001


def _labels(deploy: DeployConfig, recipe: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": deploy.app.name,
        "app.kubernetes.io/part-of": "edgepack",
        "edgepack.dev/recipe": recipe,
    }


def _meta(deploy: DeployConfig, name: str, recipe: str) -> dict:
    return {"name": name, "namespace": deploy.namespace, "labels": _labels(deploy, recipe)}


def _resources(res: Resources) -> dict:
    return {"requests": res.requests.model_dump(), "limits": res.limits.model_dump()}


def _probe(path: str, port: int, period: int, failures: int, loopback: bool) -> dict:
    """An HTTP probe; for a router on the pod's loopback, the same GET from inside its
    container (the kubelet's httpGet goes to the pod IP, where nothing listens then)."""
    if loopback:
        code = f"import urllib.request as u; u.urlopen('http://127.0.0.1:{port}{path}', timeout=2)"
        how: dict = {"exec": {"command": ["python", "-c", code]}}
    else:
        how = {"httpGet": {"path": path, "port": port}}
    return {
        **how,
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def router_container(deploy: DeployConfig) -> dict:
    """The sidecar: probes on /livez and /readyz, a preStop wait, locked-down user."""
    port = deploy.listen_port
    loopback = not deploy.service
    return {
        "name": deploy.name,
        "image": deploy.image,
        "restartPolicy": "Always",
        "args": ["--config", f"{CONFIG_DIR}/router.yaml"],
        "ports": [{"name": "router", "containerPort": port, "protocol": "TCP"}],
        "env": [{"name": "AWS_REGION", "value": deploy.sagemaker.region}],
        # The classifier loads before the app container starts; up to 2 minutes.
        "startupProbe": _probe("/livez", port, period=2, failures=60, loopback=loopback),
        "livenessProbe": _probe("/livez", port, period=10, failures=3, loopback=loopback),
        "readinessProbe": _probe("/readyz", port, period=5, failures=2, loopback=loopback),
        "lifecycle": {"preStop": {"exec": {"command": ["/bin/sleep", str(deploy.pre_stop_s)]}}},
        "resources": _resources(deploy.resources),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "router-config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def app_container(deploy: DeployConfig) -> dict:
    base = f"http://127.0.0.1:{deploy.listen_port}"
    return {
        "name": deploy.app.name,
        "image": deploy.app.image,
        "env": [
            {"name": "OPENAI_BASE_URL", "value": f"{base}/v1"},
            {"name": "EDGEPACK_ROUTER_URL", "value": base},
        ],
        "resources": _resources(deploy.app.resources),
    }


def deployment(deploy: DeployConfig, recipe: str, config_text: str) -> dict:
    checksum = hashlib.sha256(config_text.encode()).hexdigest()
    pod_labels = {"app.kubernetes.io/name": deploy.app.name, "edgepack.dev/recipe": recipe}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(deploy, deploy.app.name, recipe),
        "spec": {
            "replicas": deploy.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": deploy.app.name}},
            "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {"checksum/router-config": checksum}
                    | (
                        {
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": str(deploy.listen_port),
                            "prometheus.io/path": "/metrics",
                        }
                        if deploy.service  # on the loopback there is nothing to scrape
                        else {}
                    ),
                },
                "spec": {
                    "serviceAccountName": deploy.name,
                    "terminationGracePeriodSeconds": deploy.termination_grace_s,
                    # runAsNonRoot is set on the router only: the app image is yours.
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "initContainers": [router_container(deploy)],
                    "containers": [app_container(deploy)],
                    "volumes": [
                        {"name": "router-config", "configMap": {"name": f"{deploy.name}-config"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
        },
    }


def _scale_target(deploy: DeployConfig) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": deploy.app.name}


SCALE_DOWN = {"scaleDown": {"stabilizationWindowSeconds": 300}}


def hpa(deploy: DeployConfig, recipe: str) -> dict:
    metrics: list[dict] = [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {
                    "type": "Utilization",
                    "averageUtilization": deploy.autoscaling.cpu_utilization,
                },
            },
        }
    ]
    if deploy.autoscaling.in_flight_per_pod is not None:
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "edgepack_router_in_flight"},
                    "target": {
                        "type": "AverageValue",
                        "averageValue": f"{deploy.autoscaling.in_flight_per_pod:g}",
                    },
                },
            }
        )
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(deploy, deploy.app.name, recipe),
        "spec": {
            "scaleTargetRef": _scale_target(deploy),
            "minReplicas": deploy.autoscaling.min_replicas,
            "maxReplicas": deploy.autoscaling.max_replicas,
            "metrics": metrics,
            "behavior": SCALE_DOWN,
        },
    }


def scaled_object(deploy: DeployConfig, recipe: str) -> dict:
    """KEDA scales to the forecast replica rule (threshold 1: one pod per forecast pod);
    CPU stays as a reactive floor, and a failing Prometheus keeps at least `replicas`."""
    a = deploy.autoscaling
    rule = forecast.replicas_name(a.forecast)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _meta(deploy, deploy.app.name, recipe),
        "spec": {
            "scaleTargetRef": _scale_target(deploy),
            "pollingInterval": 15,
            "minReplicaCount": a.min_replicas,
            "maxReplicaCount": a.max_replicas,
            "fallback": {
                "failureThreshold": 3,
                "replicas": deploy.replicas,
                "behavior": "currentReplicasIfHigher",
            },
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": SCALE_DOWN}},
            "triggers": [
                {
                    "type": "prometheus",
                    "name": "forecast",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": a.prometheus_url,
                        "query": f'max({rule}{{namespace="{deploy.namespace}"}})',
                        "threshold": "1",
                        "ignoreNullValues": "false",
                    },
                },
                {
                    "type": "cpu",
                    "metricType": "Utilization",
                    "metadata": {"value": str(a.cpu_utilization)},
                },
            ],
        },
    }


def autoscaler(deploy: DeployConfig, recipe: str) -> tuple[str, str, dict]:
    """File name, header and resource of the scaler the recipe chose."""
    a = deploy.autoscaling
    if a.scaler == "keda":
        rule = forecast.replicas_name(a.forecast)
        return (
            "50-scaledobject.yaml",
            f"Needs KEDA >= {MIN_KEDA}, and Prometheus loading prometheus/forecast.yaml.\n"
            f"Scales to {rule}: the load forecast {a.forecast.horizon_min} min ahead\n"
            f"divided by what one pod serves ({a.requests_per_pod:g} req/s"
            + (f", {a.in_flight_per_pod:g} in flight" if a.in_flight_per_pod else "")
            + "). Without KEDA: deploy.autoscaling.scaler: hpa.",
            scaled_object(deploy, recipe),
        )
    return (
        "50-hpa.yaml",
        "Scales on CPU; the optional Pods metric edgepack_router_in_flight needs a\n"
        "custom-metrics adapter (e.g. prometheus-adapter) exposing that gauge per pod.",
        hpa(deploy, recipe),
    )


def manifests(deploy: DeployConfig, recipe: str, config_text: str) -> dict[str, tuple[str, dict]]:
    """File name → (header comment, resource); one resource per file. The Service only
    when the recipe asks for one (`deploy.service`)."""
    config_name = f"{deploy.name}-config"
    sa_meta = _meta(deploy, deploy.name, recipe)
    if deploy.sagemaker.role_arn:
        sa_meta["annotations"] = {"eks.amazonaws.com/role-arn": deploy.sagemaker.role_arn}
    grace = (
        f"terminationGracePeriodSeconds {deploy.termination_grace_s} = app shutdown "
        f"{deploy.app.shutdown_s}s + router preStop {deploy.pre_stop_s}s + drain "
        f"{deploy.drain_grace_s}s (SIGTERM to exit, streams included) + 5s slack"
    )
    scaler_file, scaler_header, scaler = autoscaler(deploy, recipe)
    files = {
        "00-namespace.yaml": (
            "",
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": deploy.namespace,
                    "labels": {"app.kubernetes.io/part-of": "edgepack"},
                },
            },
        ),
        "10-serviceaccount.yaml": (
            "The pod's identity; for SageMaker on EKS set deploy.sagemaker.role_arn (IRSA).",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": sa_meta},
        ),
        "20-configmap.yaml": (
            "The router's config, identical to deploy/router.yaml.",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(deploy, config_name, recipe),
                "data": {"router.yaml": config_text},
            },
        ),
        "30-deployment.yaml": (
            f"Needs Kubernetes >= {MIN_KUBERNETES} (native sidecar: an initContainer with "
            f"restartPolicy: Always).\n{grace}.",
            deployment(deploy, recipe, config_text),
        ),
        "40-service.yaml": (
            "The router's port, for in-cluster callers and scraping.",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": _meta(deploy, deploy.name, recipe),
                "spec": {
                    "selector": {"app.kubernetes.io/name": deploy.app.name},
                    "ports": [
                        {"name": "router", "port": deploy.listen_port, "targetPort": "router"}
                    ],
                },
            },
        ),
        scaler_file: (scaler_header, scaler),
        "60-pdb.yaml": (
            "Keeps one pod serving during voluntary disruptions.",
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": _meta(deploy, deploy.app.name, recipe),
                "spec": {
                    "minAvailable": 1,
                    "selector": {"matchLabels": {"app.kubernetes.io/name": deploy.app.name}},
                },
            },
        ),
    }
    if not deploy.service:
        del files["40-service.yaml"]
    return files


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the ConfigMap's router.yaml) as readable `|` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def render(header: str, resource: dict) -> str:
    """YAML text with the header as comments."""
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + yaml.dump(resource, Dumper=_BlockDumper, sort_keys=False)
