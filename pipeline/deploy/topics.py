"""Each topic's threshold, chosen at build time on the eval split so that it never fires on
the split's public rows.

The topic's examples (and description) are embedded with the built model's `embedding`
output (pipeline/pooling.py), and so is every window of every eval row, cut as the router
cuts them (`max_length` tokens, a new window every half of them; texts normalised by the
router's own pass, router/normalize.py).
A row's similarity to a topic is its best window's best cosine with the topic's examples.
The threshold is the highest similarity of any public row plus `MARGIN` (windows cut a
little differently in the router can move a similarity by about that much), rounded up
to 0.001: no public row of the eval split reaches it. How many confidential rows reach it
is reported beside it; a topic none can reach (threshold ≥ 1) fails the build, as it could
never fire. A threshold the recipe sets is kept, and reported the same way.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from router.config import Topic
from router.normalize import normalize

MARGIN = 0.02
EMBEDDING = "embedding"


class Embedder:
    def __init__(self, model: Path, tokenizer: Path, max_length: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        if EMBEDDING not in {o.name for o in self.session.get_outputs()}:
            raise ValueError(f"{model.name} has no `{EMBEDDING}` output (pipeline/pooling.py)")
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.no_padding()
        width = max_length - self.tokenizer.num_special_tokens_to_add(False)
        self.tokenizer.enable_truncation(max_length, stride=width // 2)

    def windows(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        """The embedding of every window of `texts`, and the text each came from."""
        rows: list[list[int]] = []
        owners: list[int] = []
        for i, text in enumerate(texts):
            encoding = self.tokenizer.encode(normalize(text))
            for part in [encoding, *encoding.overflowing]:
                rows.append(part.ids)
                owners.append(i)
        return self._embed(rows), owners

    def _embed(self, rows: list[list[int]], batch: int = 32) -> np.ndarray:
        out = []
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        for start in range(0, len(order), batch):
            group = [rows[i] for i in order[start : start + batch]]
            width = max(map(len, group))
            ids = np.zeros((len(group), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for r, row in enumerate(group):
                ids[r, : len(row)], mask[r, : len(row)] = row, 1
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            feed = {k: v for k, v in feed.items() if k in self.inputs}
            out.append(self.session.run([EMBEDDING], feed)[0])
        vectors = np.concatenate(out)
        result = np.empty_like(vectors)
        result[order] = vectors
        return result


def row_similarity(
    windows: np.ndarray, owners: list[int], rows: int, examples: np.ndarray
) -> np.ndarray:
    """Per row, its best window's best cosine with `examples` (unit rows)."""
    best = np.full(rows, -1.0)
    np.maximum.at(best, np.asarray(owners), (windows @ examples.T).max(axis=1))
    return best


def choose(
    embedder: Embedder, topics: list[Topic], public: list[str], confidential: list[str]
) -> dict[str, dict]:
    """name → {threshold, public_max, confidential_reached, confidential_rows}."""
    pub_windows, pub_owners = embedder.windows(public)
    conf_windows, conf_owners = embedder.windows(confidential)
    out = {}
    for topic in topics:
        texts = [t for t in [topic.description, *topic.examples] if t.strip()]
        examples, _ = embedder.windows(texts)
        pub = row_similarity(pub_windows, pub_owners, len(public), examples)
        conf = row_similarity(conf_windows, conf_owners, len(confidential), examples)
        public_max = float(pub.max()) if len(pub) else -1.0
        threshold = topic.threshold
        if threshold is None:
            threshold = math.ceil((public_max + MARGIN) * 1000) / 1000
        if threshold >= 1:
            raise ValueError(
                f"topic {topic.name}: a public eval row is as close as {public_max:.3f}; "
                "no threshold below 1 keeps it quiet (make the examples more specific)"
            )
        out[topic.name] = {
            "threshold": threshold,
            "public_max": round(public_max, 4),
            "confidential_reached": int((conf >= threshold).sum()),
            "confidential_rows": len(confidential),
        }
    return out
