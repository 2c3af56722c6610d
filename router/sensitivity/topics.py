"""Topics matched by meaning: a window is on a topic when its pooled embedding (the model's
`embedding` output, unit length) has a cosine similarity at or above the topic's threshold
with any of the topic's examples (its description counts as one).

The examples are embedded when the model loads, normalised as requests are (normalize.py),
by the same model and tokenizer, so their
vectors are the build's (the build embeds them too, to choose each threshold on the eval
split: pipeline/deploy/topics.py) and cannot go stale when router.yaml is edited.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from router.config import Topic
from router.normalize import normalize


class Score(float):
    """P(positive) of one window, and the indices of the topics its embedding passed."""

    topics: tuple[int, ...] = ()


class Topics:
    def __init__(self, topics: Sequence[Topic], embed: Callable[[list[str]], np.ndarray]) -> None:
        examples = [(i, text) for i, topic in enumerate(topics)
                    for text in [topic.description, *topic.examples] if text.strip()]  # fmt: skip
        self.labels = [f"topic:{topic.name}" for topic in topics]
        self.owner = np.array([i for i, _ in examples])
        self.vectors = embed([normalize(text) for _, text in examples])  # unit rows
        self.thresholds = np.array([topic.threshold for topic in topics], dtype=np.float32)

    def similarities(self, embeddings: np.ndarray) -> np.ndarray:
        """(windows, topics): each window's highest similarity to each topic's examples."""
        per_example = embeddings @ self.vectors.T
        out = np.full((len(embeddings), len(self.labels)), -1.0, dtype=np.float32)
        for topic in range(len(self.labels)):
            out[:, topic] = per_example[:, self.owner == topic].max(axis=1)
        return out

    def scored(self, probs: list[float], embeddings: np.ndarray) -> list[Score]:
        """Each window's score with the topics it passed."""
        passed = self.similarities(embeddings) >= self.thresholds
        out = []
        for p, row in zip(probs, passed, strict=True):
            score = Score(p)
            score.topics = tuple(int(i) for i in np.flatnonzero(row))
            out.append(score)
        return out
