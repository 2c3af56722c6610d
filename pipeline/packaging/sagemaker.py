"""SageMaker: `model.tar.gz` in the layout SageMaker's Triton containers load (the Triton
model folder at the archive root) and `deploy.json`, the CreateModel and
CreateEndpointConfig parameters with the account-specific values left for the user.

deploy.json's two requests validate against botocore's own SageMaker service model, so a
user who fills in the placeholders gets parameters boto3 accepts.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.fingerprint import sha256_file
from pipeline.packaging.tarball import write_tar_gz
from pipeline.target import Target

# Instance families per target runtime (the user may change them in deploy.json).
INSTANCE_TYPES = {"a100": "ml.p4d.24xlarge", "cpu": "ml.c6i.xlarge"}
DEFAULT_GPU_INSTANCE = "ml.g5.xlarge"
TRITON_IMAGE = "<account>.dkr.ecr.<region>.amazonaws.com/sagemaker-tritonserver:<tag>-py3"


def instance_type(target: Target) -> str:
    if target.name in INSTANCE_TYPES:
        return INSTANCE_TYPES[target.name]
    return DEFAULT_GPU_INSTANCE if target.runtime == "tensorrt" else INSTANCE_TYPES["cpu"]


def deploy_params(name: str, target: Target, *, tarball_sha256: str | None) -> dict:
    """create_model / create_endpoint_config kwargs; `<...>` values are for the user."""
    return {
        "create_model": {
            "ModelName": f"{name}-{target.name}",
            "ExecutionRoleArn": "arn:aws:iam::<account>:role/<sagemaker-execution-role>",
            "PrimaryContainer": {
                "Image": TRITON_IMAGE,
                "ModelDataUrl": "s3://<bucket>/<prefix>/model.tar.gz",
                "Environment": {"SAGEMAKER_TRITON_DEFAULT_MODEL_NAME": name},
            },
        },
        "create_endpoint_config": {
            "EndpointConfigName": f"{name}-{target.name}-config",
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": f"{name}-{target.name}",
                    "InstanceType": instance_type(target),
                    "InitialInstanceCount": 1,
                }
            ],
        },
        "model_data": {"file": "model.tar.gz", "sha256": tarball_sha256},
    }


def write_sagemaker(dest: Path, model_folder: Path, target: Target, *, complete: bool) -> dict:
    """Write dest/model.tar.gz (when the model folder is complete) and dest/deploy.json."""
    dest.mkdir(parents=True, exist_ok=True)
    name = model_folder.name
    digest = None
    if complete:
        tarball = write_tar_gz(model_folder, dest / "model.tar.gz", prefix=name)
        digest = sha256_file(tarball)
    params = deploy_params(name, target, tarball_sha256=digest)
    if not complete:
        params["model_data"]["pending"] = (
            "the engine is built on a GPU with the target's TensorRT: put it in "
            f"triton/{name}/1/model.plan, then tar the triton/{name} folder as model.tar.gz"
        )
    (dest / "deploy.json").write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
    return params
