"""Project instructions: Markdown in, safe HTML out.

CommonMark with raw HTML off (markdown-it-py escapes it) and links checked by
markdown-it's own validator; nh3 then keeps only an allow-list of tags and
attributes, so nothing a project's author writes runs in an annotator's browser.
"""

import nh3
from markdown_it import MarkdownIt

# breaks: a single line break stays one, as people who never wrote Markdown expect.
_renderer = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable(
    "table"
)

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
# Most instructions run to a page or two; this bounds the work of one preview.
MAX_LENGTH = 100_000


def instructions_html(text: str) -> str:
    """The instructions rendered and cleaned (an empty string for none)."""
    if not text:
        return ""
    html = _renderer.render(text[:MAX_LENGTH])
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
