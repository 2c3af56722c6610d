"""The router image: two stages, a slim non-root final image with the classifier inside.

The build context is the bundle (dist/<recipe>-<target>/), so the Dockerfile can copy
the INT8 model and tokenizer from onnx/; the edgepack source comes in as a named
BuildKit context. Runtime dependencies are pinned to the versions this build was made
and tested with, and exclude the training stack (torch, transformers, optimum, peft).
"""

from __future__ import annotations

import sys
from importlib import metadata
from string import Template

from pipeline.deploy.k8s import CONFIG_DIR, UID
from pipeline.deploy.spec import DeployConfig

ROUTER_REQUIREMENTS = (
    "pydantic", "pyyaml", "typer", "rich", "numpy", "onnxruntime", "tokenizers", "boto3",
    "python-stdnum", "prometheus-client", "starlette", "uvicorn", "uvloop", "httptools",
    "httpx", "redis", "phonenumbers", "google-re2", "orjson", "disarm", "ahocorasick-rs",
)  # fmt: skip
"""What `edgepack router` imports at run time (tests check this against the real imports)."""

TEMPLATE = Template("""\
# syntax=docker/dockerfile:1.7
# Router sidecar image for $bundle. Build from the bundle root, with an edgepack source
# checkout as a named BuildKit context:
#   docker build -f deploy/Dockerfile --build-context edgepack-src=/path/to/edgepack \\
#     -t $image dist/$bundle
# Stage 1 may compile wheels; the final stage has no compilers, runs as uid $uid, and
# holds the INT8 classifier ($model_files).

FROM python:$python-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$$PATH
COPY deploy/requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt
# hadolint ignore=DL3022
COPY --from=edgepack-src pyproject.toml README* /src/
# hadolint ignore=DL3022
COPY --from=edgepack-src pipeline /src/pipeline
# hadolint ignore=DL3022
COPY --from=edgepack-src router /src/router
RUN pip install --no-cache-dir --no-deps /src

FROM python:$python-slim-bookworm
ENV PATH=/opt/venv/bin:$$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN useradd --system --uid $uid --no-create-home --shell /usr/sbin/nologin edgepack
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY $model_files /app/onnx/
COPY deploy/router.yaml $config_dir/router.yaml
USER $uid
EXPOSE $port
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \\
  CMD $healthcheck
ENTRYPOINT ["edgepack", "router"]
CMD ["--config", "$config_dir/router.yaml"]
""")


def _healthcheck(port: int) -> str:
    """Exec-form probe without curl: urlopen raises (exit 1) on any non-2xx answer."""
    code = f"import urllib.request as u; u.urlopen('http://127.0.0.1:{port}/livez', timeout=2)"
    return f'["python", "-c", "{code}"]'


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def runtime_closure(roots: tuple[str, ...] = ROUTER_REQUIREMENTS) -> dict[str, str]:
    """Installed distributions the roots need, transitively (markers evaluated, no extras)."""
    from packaging.requirements import Requirement

    found: dict[str, str] = {}
    todo = [_canonical(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        dist = metadata.distribution(name)
        found[name] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_canonical(req.name))
    return found


def requirements() -> str:
    """requirements.txt: the router's runtime closure, pinned to this build's versions."""
    pins = "".join(f"{n}=={v}\n" for n, v in sorted(runtime_closure().items()))
    return "# Router runtime dependencies (with their own), pinned to the build's.\n" + pins


def dockerignore(model_files: list[str]) -> str:
    """Dockerfile.dockerignore (BuildKit): send only what the image needs, not the bundle."""
    keep = [*model_files, "deploy/router.yaml", "deploy/requirements.txt"]
    return "*\n" + "".join(f"!{rel}\n" for rel in keep)


def dockerfile(deploy: DeployConfig, bundle: str, model_files: list[str]) -> str:
    """Dockerfile text; `model_files` are bundle-relative (onnx/model.int8.onnx, …)."""
    return TEMPLATE.substitute(
        bundle=bundle,
        image=deploy.image,
        python=f"{sys.version_info.major}.{sys.version_info.minor}",
        uid=UID,
        port=deploy.listen_port,
        healthcheck=_healthcheck(deploy.listen_port),
        config_dir=CONFIG_DIR,
        model_files=" ".join(model_files),
    )
