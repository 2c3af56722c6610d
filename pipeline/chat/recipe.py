"""The recipe schema of `task: text-generation` (a chat LLM), beside the classifier's.

It is a schema of its own rather than a variant of `pipeline.recipe.Recipe`: the two tasks
share the data splits and the router's `deploy:` section (reused from there), but nothing
of labels, thresholds or INT8 accuracy points. `load_build_recipe` reads a recipe file of
either task. `data.calib` is checked like the other splits; round-to-nearest weight-only
quantization reads no calibration data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from pipeline.deploy.spec import DNS_LABEL, IMAGE_REF
from pipeline.fingerprint import sha256_file
from pipeline.recipe import Recipe, RecipeBase, Strict, load_recipe
from router.schema_io import load_model, read_yaml

TASK = "text-generation"


class ChatLora(Strict):
    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | None = Field(
        None,
        min_length=1,
        description="default: the attention and MLP projections of the model's family "
        "(pipeline/chat/model.py)",
    )


class ChatTraining(Strict):
    epochs: float = Field(1, gt=0)
    learning_rate: float = Field(2e-4, gt=0)
    batch_size: int = Field(4, gt=0)
    max_length: int = Field(512, gt=0, le=32768, description="tokens per conversation")
    seed: int = 42
    threads: int | None = Field(None, gt=0, description="torch threads; default: all cores")


class Budget(Strict):
    """What a weight-only variant may cost against FP32 on the eval split."""

    max_perplexity_increase: float = Field(
        ge=0, description="relative: 0.05 lets eval perplexity rise by 5% over FP32"
    )
    min_token_agreement: float = Field(
        gt=0, le=1, description="share of FP32's greedy tokens the variant predicts alike"
    )


class ChatEval(Strict):
    prompts: int = Field(16, gt=0, description="eval conversations used for greedy checks")
    new_tokens: int = Field(16, gt=0, description="greedy tokens generated per prompt")
    int8: Budget = Budget(max_perplexity_increase=0.02, min_token_agreement=0.99)
    int4: Budget = Budget(max_perplexity_increase=0.10, min_token_agreement=0.95)


class ChatExport(Strict):
    opset: int = Field(18, ge=14, le=23, description="preferred opset; capped by the target")


class ChatQuantize(Strict):
    variants: list[Literal["int8", "int4"]] = Field(
        default_factory=lambda: ["int8", "int4"], min_length=1
    )
    block_size: int = Field(32, ge=16, description="weights per scale (MatMulNBits block)")
    symmetric: bool = True
    accuracy_level: Literal[0, 1, 2, 3, 4] = Field(
        4,
        description="MatMulNBits compute type on CPU: 4 multiplies with INT8 activations "
        "(the fast kernels; benchmarks/llm_decode.py), 0 leaves it to the input type (FP32)",
    )

    @field_validator("block_size")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError("must be a power of two")
        return v


class VllmServe(Strict):
    """The on-prem GPUs' OpenAI server (vllm serve) and its Kubernetes Deployment."""

    image: str = Field("vllm/vllm-openai:v0.11.0", pattern=IMAGE_REF)
    namespace: str = Field("llm-serving", pattern=DNS_LABEL)
    replicas: int = Field(1, ge=1)
    port: int = Field(8000, ge=1024, le=65535)
    gpus: int = Field(1, ge=1, description="GPUs per replica (tensor parallel size)")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "bfloat16"
    max_model_len: int = Field(2048, gt=0)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)


class SageMakerServe(Strict):
    """The cloud endpoint: AWS's vLLM container for SageMaker over the merged weights."""

    image: str = Field(
        "763104351884.dkr.ecr.<region>.amazonaws.com/vllm:<sagemaker-image-tag>",
        description="a SageMaker image of AWS's vLLM Deep Learning Container (its list of "
        "available images gives the tag per region)",
    )
    instance_type: str = Field("ml.g5.xlarge", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    instance_count: int = Field(1, ge=1)


class ChatServe(Strict):
    name: str | None = Field(
        None, pattern=DNS_LABEL, description="served model name (OpenAI `model`); default: recipe"
    )
    vllm: VllmServe = VllmServe()
    sagemaker: SageMakerServe = SageMakerServe()


class ChatRecipe(RecipeBase):
    task: Literal["text-generation"]
    chat_template: str | None = Field(
        None, description="Jinja chat template file (relative to the recipe); default: the "
        "tokenizer's own",
    )  # fmt: skip
    lora: ChatLora = ChatLora()
    training: ChatTraining = ChatTraining()
    eval: ChatEval = ChatEval()
    export: ChatExport = ChatExport()
    quantize: ChatQuantize = ChatQuantize()
    serve: ChatServe = ChatServe()

    @property
    def served_name(self) -> str:
        return self.serve.name or self.name.replace(".", "-").replace("_", "-")

    def template_path(self) -> Path | None:
        if self.chat_template is None:
            return None
        return (self.path.parent / self.chat_template).resolve()

    def field(self, dotted: str) -> object:
        """Value at a dotted path (`lora.r`), JSON-ready, for cache keys; `chat_template`
        stands for the template file's contents, which the key must follow."""
        path = self.template_path()
        if dotted == "chat_template" and path is not None:
            return {"file": self.chat_template, "sha256": path.is_file() and sha256_file(path)}
        return super().field(dotted)


def is_chat(recipe: object) -> bool:
    return getattr(recipe, "task", None) == TASK


def load_build_recipe(path: Path | str) -> Recipe | ChatRecipe:
    """A recipe of either task, by its `task:` key; errors name the file and field."""
    path = Path(path)
    raw = read_yaml(path)
    if raw.get("task") != TASK:
        return load_recipe(path)
    recipe = load_model(ChatRecipe, path, raw)
    recipe._path = path.resolve()
    return recipe
