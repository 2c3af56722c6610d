"""How the chat model is served off the edge: vLLM on the on-prem GPUs (a Kubernetes
Deployment + Service) and a SageMaker real-time endpoint, both over the merged weights.

The SageMaker endpoint runs AWS's vLLM container for SageMaker (OpenAI protocol on 8080;
each `SM_VLLM_<FLAG>` variable becomes `--<flag>`; the model is read from /opt/ml/model),
so both routes serve the same weights with the same vLLM flags. The router's on-prem
upstream is the Service's cluster DNS name and its SageMaker endpoint is `endpoint_name`,
the one deploy.json creates.
"""

from __future__ import annotations

from pipeline.chat.recipe import ChatRecipe

MODEL_ROOT = "/models"
SAGEMAKER_MODEL_DIR = "/opt/ml/model"
HEALTH = "/health"
"""vLLM's liveness/readiness path (also the router's active health check's default)."""


def service_name(recipe: ChatRecipe) -> str:
    return f"{recipe.served_name}-vllm"


def service_url(recipe: ChatRecipe) -> str:
    vllm = recipe.serve.vllm
    return f"http://{service_name(recipe)}.{vllm.namespace}.svc.cluster.local:{vllm.port}"


def endpoint_name(recipe: ChatRecipe) -> str:
    """The SageMaker endpoint deploy.json creates, and the router calls."""
    return recipe.deploy.sagemaker.endpoint if recipe.deploy else recipe.served_name


def vllm_flags(recipe: ChatRecipe) -> dict[str, str]:
    """The vLLM flags both routes share, by name without the dashes."""
    vllm = recipe.serve.vllm
    return {
        "served-model-name": recipe.served_name,
        "dtype": vllm.dtype,
        "max-model-len": str(vllm.max_model_len),
        "gpu-memory-utilization": str(vllm.gpu_memory_utilization),
        "tensor-parallel-size": str(vllm.gpus),
        "generation-config": "vllm",  # vLLM's defaults, not sampling settings in the folder
    }


def vllm_args(recipe: ChatRecipe) -> list[str]:
    """`vllm serve <model dir> ...` on the on-prem GPUs, as the container's command."""
    args = ["vllm", "serve", f"{MODEL_ROOT}/{recipe.served_name}", "--host", "0.0.0.0"]
    args += ["--port", str(recipe.serve.vllm.port)]
    for flag, value in vllm_flags(recipe).items():
        args += [f"--{flag}", value]
    return args


def _labels(recipe: ChatRecipe) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": service_name(recipe),
        "app.kubernetes.io/part-of": "edgepack",
        "edgepack.dev/recipe": recipe.name,
    }


def _probe(recipe: ChatRecipe, period: int, failures: int) -> dict:
    return {
        "httpGet": {"path": HEALTH, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def vllm_deployment(recipe: ChatRecipe) -> dict:
    """vLLM pods reading the model from a read-only volume (`<served>-model` PVC)."""
    vllm, name = recipe.serve.vllm, service_name(recipe)
    gpus = {"nvidia.com/gpu": str(vllm.gpus)}
    container = {
        "name": "vllm",
        "image": vllm.image,
        "command": vllm_args(recipe),
        "ports": [{"name": "http", "containerPort": vllm.port}],
        "resources": {"requests": gpus, "limits": gpus},
        "startupProbe": _probe(recipe, period=10, failures=60),
        "readinessProbe": _probe(recipe, period=5, failures=3),
        "livenessProbe": _probe(recipe, period=10, failures=6),
        "volumeMounts": [
            {"name": "model", "mountPath": f"{MODEL_ROOT}/{recipe.served_name}", "readOnly": True},
            {"name": "shm", "mountPath": "/dev/shm"},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": vllm.namespace, "labels": _labels(recipe)},
        "spec": {
            "replicas": vllm.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": _labels(recipe)},
                "spec": {
                    "containers": [container],
                    "volumes": [
                        {"name": "model", "persistentVolumeClaim": {
                            "claimName": f"{recipe.served_name}-model", "readOnly": True}},
                        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
                    ],
                },
            },
        },
    }  # fmt: skip


def vllm_service(recipe: ChatRecipe) -> dict:
    vllm, name = recipe.serve.vllm, service_name(recipe)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": vllm.namespace, "labels": _labels(recipe)},
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": vllm.port, "targetPort": "http"}],
        },
    }


def sagemaker_requests(recipe: ChatRecipe, target: str) -> dict[str, dict]:
    """CreateModel, CreateEndpointConfig and CreateEndpoint parameters; `<...>` values are
    the account's, for the user to fill in."""
    sm, name = recipe.serve.sagemaker, f"{recipe.served_name}-{target}"
    variant = (recipe.deploy.sagemaker.variant if recipe.deploy else None) or "AllTraffic"
    environment = {
        f"SM_VLLM_{flag.upper().replace('-', '_')}": value
        for flag, value in vllm_flags(recipe).items()
    }
    return {
        "create_model": {
            "ModelName": name,
            "ExecutionRoleArn": "arn:aws:iam::<account>:role/<sagemaker-execution-role>",
            "PrimaryContainer": {
                "Image": sm.image,
                "ModelDataSource": {
                    "S3DataSource": {
                        "S3Uri": "s3://<bucket>/<prefix>/model/",
                        "S3DataType": "S3Prefix",
                        "CompressionType": "None",
                    }
                },
                "Environment": environment,
            },
        },
        "create_endpoint_config": {
            "EndpointConfigName": f"{name}-config",
            "ProductionVariants": [
                {
                    "VariantName": variant,
                    "ModelName": name,
                    "InstanceType": sm.instance_type,
                    "InitialInstanceCount": sm.instance_count,
                    "ContainerStartupHealthCheckTimeoutInSeconds": 900,
                    "ModelDataDownloadTimeoutInSeconds": 1800,
                }
            ],
        },
        "create_endpoint": {
            "EndpointName": endpoint_name(recipe),
            "EndpointConfigName": f"{name}-config",
        },
    }


OPERATIONS = {
    "create_model": "CreateModel",
    "create_endpoint_config": "CreateEndpointConfig",
    "create_endpoint": "CreateEndpoint",
}


def botocore_errors(requests: dict[str, dict]) -> list[str]:
    """botocore's own parameter validation of each request against the SageMaker model."""
    import botocore.session
    from botocore.validate import ParamValidator

    service = botocore.session.get_session().get_service_model("sagemaker")
    errors = []
    for key, operation in OPERATIONS.items():
        shape = service.operation_model(operation).input_shape
        report = ParamValidator().validate(requests[key], shape)
        if report.has_errors():
            errors.append(f"{operation}: {report.generate_report()}")
    return errors
