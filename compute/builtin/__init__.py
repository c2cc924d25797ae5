"""Tokenworks' built-in model backend: an OpenAI-compatible HTTP server with a real CPU model.

It lets the whole loop (pre-label → annotate → fine-tune → evaluate → pre-label again)
run offline, reached over HTTP exactly like vLLM, SGLang or DeepSeek. No Django here:
the server runs on its own (``python -m compute.builtin serve``). See docs/BUILTIN_MODEL.md.
"""

from .app import create_app

__all__ = ["create_app"]
