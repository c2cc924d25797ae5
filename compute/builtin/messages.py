"""Chat messages: their text, the text to label, token counts."""

from __future__ import annotations

import re

from annotation.token_estimate import estimate_tokens

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_TEXT_PARTS = {"text", "input_text", "output_text"}


class MessageError(ValueError):
    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


def content_text(content, where: str) -> str:
    """A message's text: a string, or the text parts of a list of content parts joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in _TEXT_PARTS:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise MessageError(
                    f"{where}[{index}]: only text content parts are supported by the built-in "
                    f"model, got {kind!r}",
                    f"{where}[{index}].type",
                )
            if not isinstance(part.get("text"), str):
                raise MessageError(f"{where}[{index}].text: expected a string", f"{where}[{index}]")
            texts.append(part["text"])
        return "\n".join(texts)
    raise MessageError(f"{where}: expected a string or a list of content parts", where)


def read_messages(messages, where: str = "messages") -> list[tuple[str, str]]:
    """[(role, text)] of a chat, or MessageError naming the offending field."""
    if not isinstance(messages, list) or not messages:
        raise MessageError(f"{where}: expected a non-empty list of messages", where)
    result = []
    for index, message in enumerate(messages):
        path = f"{where}[{index}]"
        if not isinstance(message, dict):
            raise MessageError(f"{path}: expected an object with 'role' and 'content'", path)
        role = message.get("role")
        if role not in ROLES:
            raise MessageError(
                f"{path}.role: expected one of {', '.join(sorted(ROLES))}, got {role!r}",
                f"{path}.role",
            )
        if "content" not in message and role != "assistant":
            raise MessageError(f"{path}.content: required", f"{path}.content")
        result.append((role, content_text(message.get("content"), f"{path}.content")))
    return result


def last_user_text(chat: list[tuple[str, str]]) -> str | None:
    for role, text in reversed(chat):
        if role == "user":
            return text
    return None


def prompt_tokens(chat: list[tuple[str, str]]) -> int:
    """Usage: estimate_tokens summed over every message's content (no per-message overhead)."""
    return sum(estimate_tokens(text) for _, text in chat)


_SENTENCE_END = re.compile(r"[。！？!?；\n]|\.(?=\s|$)")


def first_sentence(text: str) -> str:
    """The first sentence of text, its closing punctuation included."""
    stripped = text.strip()
    match = _SENTENCE_END.search(stripped)
    if match is None:
        return stripped
    sentence = stripped[: match.end()].strip()
    return sentence or stripped
