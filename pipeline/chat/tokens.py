"""Conversations → token ids with the loss on assistant turns only.

The chat template renders the turns; an assistant turn's characters are what rendering the
conversation up to that turn adds to rendering the turns before it with the generation
prompt (so the reply and the template's end-of-turn marker, not the role header). This
works with any template that renders earlier turns the same whether or not a later one
follows, which is checked rather than assumed. Tokens are then labelled by their character
offsets, so no template needs `{% generation %}` markers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.chat.data import Conversation, as_dicts
from router.errors import UserError

IGNORE = -100
"""Label of a token the loss skips (PyTorch's and transformers' ignore_index)."""


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]
    """The token itself where the loss covers it (an assistant turn), else IGNORE."""

    @property
    def trained(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def render(tokenizer: Any, template: str, turns: Conversation, generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        as_dicts(turns),
        chat_template=template,
        tokenize=False,
        add_generation_prompt=generation_prompt,
    )


def assistant_spans(
    tokenizer: Any, template: str, conversation: Conversation
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the [start, end) character span of each assistant turn."""
    text = render(tokenizer, template, conversation, generation_prompt=False)
    spans = []
    for index, message in enumerate(conversation):
        if message.role != "assistant":
            continue
        before = render(tokenizer, template, conversation[:index], generation_prompt=True)
        upto = render(tokenizer, template, conversation[: index + 1], generation_prompt=False)
        if not (upto.startswith(before) and text.startswith(upto)):
            raise UserError(
                "chat_template: renders earlier turns differently once a later turn follows, "
                "so the assistant turns cannot be told apart for the loss"
            )
        spans.append((len(before), len(upto)))
    return text, spans


def encode(tokenizer: Any, template: str, conversation: Conversation, max_length: int) -> Encoded:
    """Token ids (cut at max_length) and their labels: IGNORE outside assistant turns."""
    text, spans = assistant_spans(tokenizer, template, conversation)
    batch = tokenizer(
        text,
        add_special_tokens=False,  # the template writes any BOS itself
        return_offsets_mapping=True,
        truncation=True,
        max_length=max_length,
    )
    ids = batch["input_ids"]
    labels = [
        token if any(s <= start < e for s, e in spans) else IGNORE
        for token, (start, _end) in zip(ids, batch["offset_mapping"], strict=True)
    ]
    return Encoded(ids, labels)


def encode_prompt(tokenizer: Any, template: str, turns: Conversation) -> list[int]:
    """What a user's request becomes: the turns and the template's generation prompt."""
    text = render(tokenizer, template, turns, generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]
