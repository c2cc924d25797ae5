"""The API's JSON parser: DRF's, bounded in depth and refusing NUL characters.

A body nested 100,000 deep once ended in a RecursionError (a 500), and a NUL
in a string reached PostgreSQL, which cannot store one. Both are refused here
with the standard 400 body naming where the problem is.
"""

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import JSONParser


def _path(parent: str, key) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)


def json_checked(value, *, max_depth: int):
    """value, or ValidationError naming the first place nested too deep or holding a NUL.

    Iterative, so a hostile document cannot exhaust the stack here either.
    """
    stack = [(value, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > max_depth:
                raise exceptions.ValidationError(
                    {path or "body": [f"nested deeper than {max_depth} levels"]},
                    code="too_deep",
                )
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in items:
                if isinstance(key, str) and "\x00" in key:
                    raise exceptions.ValidationError(
                        {path or "body": ["a key contains a NUL character (\\u0000)"]},
                        code="null_character",
                    )
                stack.append((child, _path(path, key), depth + 1))
        elif isinstance(node, str) and "\x00" in node:
            raise exceptions.ValidationError(
                {path or "body": ["contains a NUL character (\\u0000), which cannot be stored"]},
                code="null_character",
            )
    return value


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, bounded in depth and refusing NUL characters."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(
                f"JSON parse error - nested deeper than {settings.API_JSON_MAX_DEPTH} levels"
            ) from None
        return json_checked(data, max_depth=settings.API_JSON_MAX_DEPTH)
