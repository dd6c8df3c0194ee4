"""Article bodies: Markdown (CommonMark plus tables and strikethrough, markdown-it-py) rendered to
HTML, then sanitised by an allow-list (nh3, the Ammonia sanitiser), and the plain text that
search and snippets read.

Two independent barriers: raw HTML in the Markdown is not passed through (it shows as text), and
whatever the renderer produces is cleaned again, so no script, event handler, style or
`javascript:` link reaches a reader's browser.
"""

from __future__ import annotations

import html
import re

import nh3
from markdown_it import MarkdownIt

_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"])

ALLOWED_TAGS = frozenset({
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td",
})
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "th": {"align"},
    "td": {"align"},
    "code": {"class"},  # language-xyz from fenced code
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
_SPACES = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")


def to_html(markdown: str) -> str:
    """Sanitised HTML for display."""
    rendered = _MARKDOWN.render(markdown)
    return nh3.clean(rendered, tags=set(ALLOWED_TAGS), attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
                     url_schemes=set(URL_SCHEMES), link_rel="noopener noreferrer nofollow",
                     clean_content_tags={"script", "style"})


def to_text(safe_html: str) -> str:
    """The words of the rendered body, without markup: what search indexes and snippets quote.
    In sanitised HTML every literal '<' of the text is escaped, so whatever is between < and > is
    a tag."""
    return _SPACES.sub(" ", html.unescape(_TAG.sub(" ", safe_html))).strip()


def render(markdown: str) -> tuple[str, str]:
    """(html, text) of a Markdown body."""
    safe = to_html(markdown)
    return safe, to_text(safe)
