"""Chat JSONL splits: one `{"messages": [{"role": ..., "content": ...}, ...]}` per line,
the format most fine-tuning tools accept (OpenAI's, TRL's `messages` column).

A conversation may open with one system turn; it holds at least one assistant turn (the
only tokens the loss covers). Every bad line is a one-line UserError naming the file, the
line and the field, raised before any stage runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.chat.recipe import ChatRecipe
from router.errors import UserError
from router.schema_io import jsonl_objects

SPLITS = ("train", "eval", "calib")
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    role: str
    content: str


Conversation = tuple[Message, ...]


def _message(where: str, index: int, raw: object) -> Message:
    field = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise UserError(f"{where}: {field}: expected an object with role and content")
    unknown = sorted(set(raw) - {"role", "content"})
    if unknown:
        raise UserError(f"{where}: {field}.{unknown[0]}: unknown key")
    role, content = raw.get("role"), raw.get("content")
    if role not in ROLES:
        raise UserError(f"{where}: {field}.role: {role!r} is not one of {', '.join(ROLES)}")
    if not isinstance(content, str) or not content.strip():
        raise UserError(f"{where}: {field}.content: missing or not a non-empty string")
    if role == "system" and index != 0:
        raise UserError(f"{where}: {field}.role: a system turn may only open the conversation")
    return Message(role, content)


def parse_row(where: str, row: dict) -> Conversation:
    """One JSONL object as a conversation; `where` is `path:line` for errors."""
    if "messages" not in row:
        raise UserError(f'{where}: messages: missing (expected {{"messages": [...]}})')
    raw = row["messages"]
    if not isinstance(raw, list) or not raw:
        raise UserError(f"{where}: messages: expected a non-empty list of turns")
    conversation = tuple(_message(where, i, m) for i, m in enumerate(raw))
    if not any(m.role == "assistant" for m in conversation):
        raise UserError(f"{where}: messages: no assistant turn (the loss covers only those)")
    if conversation[-1].role != "assistant":
        raise UserError(
            f"{where}: messages[{len(raw) - 1}].role: the last turn must be the assistant's"
        )
    return conversation


def read_chat_jsonl(path: Path) -> list[Conversation]:
    return [parse_row(f"{path}:{n}", row) for n, row in jsonl_objects(path)]


def load_chat_split(recipe: ChatRecipe, split: str) -> list[Conversation]:
    """One split; a missing or empty file is reported against the recipe's field."""
    path = recipe.data_path(split)
    if not path.is_file():
        raise UserError(f"{recipe.path}: data.{split}: file not found: {path}")
    conversations = read_chat_jsonl(path)
    if not conversations:
        raise UserError(f"{recipe.path}: data.{split}: split is empty: {path}")
    return conversations


def check_chat_splits(recipe: ChatRecipe) -> None:
    for split in SPLITS:
        load_chat_split(recipe, split)


def prompt_and_reply(conversation: Conversation) -> tuple[Conversation, str]:
    """The turns before the last assistant turn (what a user sends), and that reply."""
    return conversation[:-1], conversation[-1].content


def as_dicts(turns: Conversation) -> list[dict[str, str]]:
    """What chat templates and OpenAI-protocol servers take."""
    return [{"role": m.role, "content": m.content} for m in turns]
