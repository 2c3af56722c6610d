"""Fixtures shared by several test modules.

The tiny models are built once per session (seconds each) and are read-only for the tests
that use them. Servers started once per session come from their fixture modules, registered
here as plugins so that each session fixture exists once (a session fixture imported into
several test modules would start once per module).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import tiny_chat, tiny_model

pytest_plugins = [
    "tests.fixtures.s3",  # s3_server, bucket, aws_env
    "tests.fixtures.kms",  # kms_server, kms_key
]


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT with MiniLM's tokenizer as a Hugging Face folder (finetune's input)."""
    return tiny_model.make_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny classifier's onnx/ folder as the export stage writes it (optimum)."""
    return tiny_model.export_with_optimum(tmp_path_factory.mktemp("tiny-export"))


@pytest.fixture(scope="session")
def tiny_onnx_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny classifier's onnx/ folder with fp32, Q/DQ and INT8 models (quantize's output)."""
    return tiny_model.make_onnx_models(tmp_path_factory.mktemp("tiny-onnx"))


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The router's classifier folder; its head leans confidential (bias 6), so a test picks
    the outcome with the threshold."""
    return tiny_model.make_classifier_dir(tmp_path_factory.mktemp("tiny-classifier"), bias=6.0)


@pytest.fixture(scope="session")
def tiny_chat_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny random causal LM per family the tests cover, each a Hugging Face folder with a
    byte-level tokenizer and a ChatML template (pipeline/chat/tiny.py)."""
    root = tmp_path_factory.mktemp("tiny-chat")
    return {f: tiny_chat.make_tiny_chat_model(root / f, f) for f in ("llama", "qwen2")}
