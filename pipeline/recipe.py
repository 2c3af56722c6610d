"""The recipe schema: what to fine-tune, on which data, and how INT8 may cost accuracy.

Shared by every stage and by the router (which reads `labels` and `positive_label`).
Paths in a recipe are relative to the recipe file, so a recipe folder can be moved.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from pipeline.deploy.spec import DeployConfig
from router.schema_io import load_model


class Strict(BaseModel):
    """Base for every schema: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LoraConfig(Strict):
    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["query", "value"], min_length=1)
    modules_to_save: list[str] = Field(
        default_factory=lambda: ["classifier"],
        description="modules trained in full next to the adapters (peft modules_to_save)",
    )
    layers: list[int] | None = Field(
        None,
        description="encoder layers to adapt (peft layers_to_transform); default: all. "
        "Leaving the bottom layers out lets fine-tuning compute them once, not every epoch",
    )

    @field_validator("layers")
    @classmethod
    def _layers_valid(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or min(v) < 0 or len(set(v)) != len(v)):
            raise ValueError("must be a non-empty list of distinct layer indexes >= 0")
        return v


class VocabularyPhase(Strict):
    """The short first phase that trains the embeddings of added characters
    (`pipeline.vocabulary`): it back-propagates through every layer, so it is bounded."""

    windows: int = Field(128, gt=0, description="windows holding an added character, at most")
    tokens: int = Field(48, ge=8, description="each window cut to its first N tokens")
    learning_rate: float | None = Field(
        None, gt=0, description="of the embedding rows; default: training.learning_rate"
    )


class TrainingConfig(Strict):
    epochs: float = Field(3, gt=0)
    learning_rate: float = Field(5e-4, gt=0)
    batch_size: int = Field(32, gt=0)
    max_length: int = Field(128, gt=0, le=512)
    seed: int = 42
    positive_weight: float = Field(
        1.0,
        gt=0,
        description="loss weight of positive_label vs the others; > 1 favours its recall",
    )
    threads: int | None = Field(None, gt=0, description="torch threads; default: all cores")
    vocabulary: VocabularyPhase = VocabularyPhase()


class DataConfig(Strict):
    """JSONL splits, each line `{"text": ..., "label": ...}`; paths relative to the recipe."""

    train: str
    eval: str
    calib: str


class EvalConfig(Strict):
    metric: Literal["accuracy", "f1"] = "accuracy"
    min_recall: float = Field(
        0.98,
        gt=0,
        le=1,
        description="recall of positive_label the threshold must keep on eval (recall first: "
        "the highest threshold, at most 0.5, that reaches it)",
    )
    int8_budget: float = Field(
        1.0, description="max drop of the metric, in points (0-100 scale), INT8 vs FP32"
    )


class ExportConfig(Strict):
    opset: int = Field(17, ge=11, le=23, description="preferred opset; capped by the target")
    atol: float = Field(1e-4, gt=0)


class QuantizeConfig(Strict):
    calibration: Literal["minmax", "entropy", "percentile", "per-tensor"] = "percentile"
    percentile: float = Field(99.999, gt=90, le=100)
    samples: int = Field(256, gt=0, description="calibration samples from the calib split")
    smoothing: float | None = Field(
        None,
        ge=0,
        le=1,
        description="SmoothQuant migration strength α for the TensorRT Q/DQ model "
        "(pipeline/quant/smoothing.py); unset: no smoothing",
    )


class RecipeBase(Strict):
    """What a recipe of every task has: its name, model, data and deployment, and the file
    it was loaded from (data and templates resolve against its folder)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    model: str = Field(
        description="`package:<dist>` (weights shipped in an installed package) or a local dir"
    )
    data: DataConfig
    deploy: DeployConfig | None = Field(
        None, description="router sidecar deployment (pipeline/deploy/spec.py)"
    )

    _path: Path | None = PrivateAttr(None)

    @property
    def path(self) -> Path:
        assert self._path is not None, "recipe was not loaded from a file"
        return self._path

    def data_path(self, split: str) -> Path:
        """Absolute path of a data split, resolved against the recipe's folder."""
        return (self.path.parent / getattr(self.data, split)).resolve()

    def field(self, dotted: str) -> object:
        """Value at a dotted path (`lora.r`), JSON-ready, for cache keys."""
        value: object = self.model_dump(mode="json")
        for part in dotted.split("."):
            value = value[part]  # type: ignore[index]
        return value

    def digest(self) -> str:
        return hashlib.sha256(
            json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        ).hexdigest()


class Recipe(RecipeBase):
    task: Literal["text-classification"] = "text-classification"
    labels: list[str] = Field(min_length=2)
    positive_label: str = Field(description="the class whose precision/recall are reported")
    lora: LoraConfig = LoraConfig()
    training: TrainingConfig = TrainingConfig()
    eval: EvalConfig = EvalConfig()
    export: ExportConfig = ExportConfig()
    quantize: QuantizeConfig = QuantizeConfig()

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("labels must be unique")
        return v

    @model_validator(mode="after")
    def _positive_in_labels(self) -> Recipe:
        if self.positive_label not in self.labels:
            raise ValueError(f"positive_label {self.positive_label!r} is not in labels")
        return self


def load_recipe(path: Path | str) -> Recipe:
    """Load and validate a recipe; raise UserError naming file and field on bad input."""
    path = Path(path)
    recipe = load_model(Recipe, path)
    recipe._path = path.resolve()
    return recipe
