"""Token counts for items and answers, without a model's tokenizer.

Byte-pair tokenizers of the Chinese-capable LLMs clients train (Qwen,
DeepSeek, GLM) spend about one token per CJK character and about one per four
characters of English; punctuation is a token each. Counting that way keeps
human and machine work comparable in the ledger without loading any
tokenizer files. The built-in model backend reports the same counts.
"""

import re

_PIECES = re.compile(
    r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]"  # CJK, kana, hangul
    r"|[A-Za-z]+"
    r"|[0-9]+"
    r"|[^\sA-Za-z0-9]"
)


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    total = 0
    for piece in _PIECES.findall(text):
        # ASCII words and numbers: ~4 characters a token, at least one.
        total += (len(piece) + 3) // 4 if piece.isascii() and piece.isalnum() else 1
    return total
