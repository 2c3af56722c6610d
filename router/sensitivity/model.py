"""The build's sensitivity classifier (ONNX, usually model.int8.onnx) in ONNX Runtime.

Tokenization uses the `tokenizers` library directly (tokenizer.json beside the model).
`scores` takes texts (tokenized, truncated at `max_length`) or windows (token ids that
windows.py cut from a longer text, special tokens included: `windows` builds them); a
batch is padded to its longest member (per length group), never to a fixed length.
Padding id 0 is masked out by the attention mask.

The matrix products dominate and scale with the padded tokens while a run's fixed cost is
small, so tight length groups win (measurements: docs/decisions/004-router-measured-choices.md).
The positive label's index comes from config.json's id2label beside the model.
onnxruntime and tokenizers are imported here only, so the CLI starts without them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from router.config import ModelConfig, Topic
from router.sensitivity.topics import Topics
from router.sensitivity.windows import Window, Windows

EMBEDDING = "embedding"  # the pooled output the build adds (pipeline/pooling.py)
GROUP_SLACK, GROUP_PAD = 1.1, 4  # a run's longest ≤ 1.1 × its shortest + 4 tokens (see above)


class OnnxSensitivityModel:
    """Thread-safe: `scores` may run in several threads at once on the one InferenceSession
    (ORT's run() is; the tokenizer is only read), which batching.py's workers do.
    `scores_alone` runs on a second InferenceSession with more intra-op threads
    (`solo_threads`), for a batch that has the machine to itself: a lone prompt is answered
    sooner."""

    def __init__(
        self, session, tokenizer, positive_index: int, solo_session=None, windows=None
    ) -> None:
        self.session = session
        self.solo_session = solo_session
        self.tokenizer = tokenizer
        self.positive_index = positive_index
        self.input_names = {i.name for i in session.get_inputs()}
        self.windows: Windows | None = windows  # the classifier cuts long texts with it
        self.topics: Topics | None = None  # set by `use_topics`
        outputs = [o.name for o in session.get_outputs()]
        self.logits = outputs[0]
        self.has_embedding = EMBEDDING in outputs

    @classmethod
    def load(cls, config: ModelConfig, topics: Sequence[Topic] = ()) -> OnnxSensitivityModel:
        from tokenizers import Tokenizer

        path = Path(config.path)
        if not path.is_file():
            raise FileNotFoundError(f"classifier model not found: {path}")
        tok_path = Path(config.tokenizer or path.parent / "tokenizer.json")
        tokenizer = Tokenizer.from_file(str(tok_path))
        tokenizer.enable_truncation(config.max_length)
        tokenizer.no_padding()  # padding is done per length group (see `scores`)
        whole = Tokenizer.from_file(str(tok_path))  # not truncated: windows.py cuts
        session = _session(path, config.threads)
        solo = _session(path, config.solo_threads) if config.solo_threads > config.threads else None
        index = positive_index(path.parent, config.positive_label)
        model = cls(session, tokenizer, index, solo, Windows(whole, config.max_length))
        if topics:
            model.use_topics(topics)
        return model

    def use_topics(self, topics: Sequence[Topic]) -> None:
        """Score windows against `topics` too (their examples embedded now, by this model)."""
        if not self.has_embedding:
            raise ValueError(
                f"topics need the model's `{EMBEDDING}` output, which this model lacks "
                "(a build adds it: pipeline/pooling.py)"
            )
        self.topics = Topics(topics, self.embed)

    def embed(self, texts: list[str]) -> np.ndarray:
        """The pooled embedding of each text (truncated at max_length), one unit row each."""
        rows = self._ids(list(texts))
        out = []
        for group in length_groups([len(r) for r in rows], GROUP_SLACK, GROUP_PAD):
            feed = self._feed([rows[i] for i in group])
            vectors = self.session.run([EMBEDDING], feed)[0]
            out.extend(zip(group, vectors, strict=True))
        return np.stack([vector for _, vector in sorted(out, key=lambda pair: pair[0])])

    def scores(self, texts: list[str | Window]) -> list[float]:
        """P(positive) per text or window, in order. Texts are sorted by token length and run in
        groups of similar length, each padded only to its own longest member: padding a
        short prompt to a long neighbour costs more than the batching saves."""
        return self._scores(texts, self.session)

    def scores_alone(self, texts: list[str | Window]) -> list[float]:
        """`scores` for a batch that runs while no other does (more threads, if configured)."""
        return self._scores(texts, self.solo_session or self.session)

    def _scores(self, texts: list[str | Window], session) -> list[float]:
        rows = self._ids(texts)
        out = [0.0] * len(texts)
        for group in length_groups([len(r) for r in rows], GROUP_SLACK, GROUP_PAD):
            probs = self._run([rows[i] for i in group], session)
            for i, p in zip(group, probs, strict=True):
                out[i] = p
        return out

    def _ids(self, items: list[str | Window]) -> list[Sequence[int]]:
        """Token ids per item: windows as they are, texts tokenized in one batch."""
        texts = [t for t in items if isinstance(t, str)]
        if not texts:
            return list(items)  # type: ignore[arg-type]
        fast = getattr(self.tokenizer, "encode_batch_fast", None)  # tokenizers ≥ 0.20
        encoded = iter((fast or self.tokenizer.encode_batch)(texts))
        return [next(encoded).ids if isinstance(t, str) else t for t in items]

    def _feed(self, rows: list[Sequence[int]]) -> dict[str, np.ndarray]:
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, r in enumerate(rows):
            ids[row, : len(r)] = r
            mask[row, : len(r)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return {k: v for k, v in feed.items() if k in self.input_names}

    def _run(self, rows: list[Sequence[int]], session) -> list[float]:
        """P(positive) per row; with topics, `Score`s that also name the topics passed (one
        run gives both outputs)."""
        outputs = [self.logits] if self.topics is None else [self.logits, EMBEDDING]
        results = session.run(outputs, self._feed(rows))
        logits = results[0] - results[0].max(axis=1, keepdims=True)
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        positive = probs[:, self.positive_index].astype(float).tolist()
        return positive if self.topics is None else self.topics.scored(positive, results[1])


def file_stamp(config: ModelConfig) -> tuple:
    """Size and modification time of the model and its tokenizer: a reload that finds them
    changed loads the model again, even when the config did not change."""
    path = Path(config.path)
    files = (path, Path(config.tokenizer or path.parent / "tokenizer.json"))
    return tuple((f.stat().st_size, f.stat().st_mtime_ns) if f.is_file() else None for f in files)


def _session(path: Path, threads: int):
    """An ORT CPU InferenceSession with `threads` intra-op threads that sleep rather than spin when
    idle (spinning threads took the CPU the other run and the event loop need)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def length_groups(lengths: list[int], slack: float = 1.25, pad: int = 8) -> list[list[int]]:
    """Indices grouped by similar length: a group's longest is ≤ slack × its shortest + pad."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[i] <= lengths[groups[-1][0]] * slack + pad:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def positive_index(folder: Path, label: str) -> int:
    """Index of `label` in config.json's id2label (the build writes it from recipe.labels)."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: missing (needed for the label order)")
    id2label = json.loads(config_path.read_text()).get("id2label") or {}
    for key, name in id2label.items():
        if name == label:
            return int(key)
    raise ValueError(f"{config_path}: id2label has no label {label!r}")
