"""Markdown, reStructuredText and HTML to plain text, through each format's own parser.

Headings and paragraphs become blocks separated by a blank line; a list is one
block with one item per line (``- `` or ``N. `` in Markdown and reST, the bullets
resiliparse writes in HTML); a Markdown or reST table row is one line, cells joined
by `` | ``; inline code and link text stay as text; images, tags, comments and
directive syntax go. reST directives docutils does not know (Sphinx's ``toctree``,
``versionadded``...) go with their content. Code blocks (fenced and indented
Markdown, reST literal blocks, HTML ``<pre>``) are kept or dropped by
``code_blocks``. Parser errors propagate: the reader turns them into a quarantine
item.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Literal

CodeBlocks = Literal["keep", "drop"]
FORMATS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "rst",
    ".html": "html",
    ".htm": "html",
}
# docutils' own default, set explicitly so the check below matches it.
RST_LINE_LIMIT = 10_000


class MarkupError(ValueError):
    """A document its parser would not turn into text; the message is a short reason."""


def _join(blocks: list[str]) -> str:
    return "\n\n".join(b.strip("\n") for b in blocks if b.strip())


def _list_block(items: list[tuple[str, list[str]]]) -> str:
    """One line per item: its marker, then its text; an item's further lines indented under it."""
    lines: list[str] = []
    for marker, blocks in items:
        body = "\n".join(b.strip("\n") for b in blocks if b.strip()).split("\n")
        if body == [""]:
            continue
        pad = " " * len(marker)
        lines.append(marker + body[0])
        lines.extend(pad + ln if ln.strip() else "" for ln in body[1:])
    return "\n".join(lines)


# --------------------------------------------------------------------------- Markdown


# A link destination the parser refuses (``validateLink``) starts with one of these after
# normalisation; see _normalize_link.
_UNSAFE_LINK_PARTS = ("script:", "file:", "data:")


def _normalize_link(url: str) -> str:
    """markdown-it's ``normalizeLink`` only where its result can change the parse.

    The normalised URL goes into ``href`` attributes, which the text never shows, and
    into ``validateLink``, which refuses URLs starting ``javascript:``, ``vbscript:``,
    ``file:`` or ``data:`` (data: images excepted). Normalising trims, percent-encodes, punycodes
    the host and lower-cases the scheme: it adds no letter and no colon, so a URL that
    holds none of those schemes is accepted either way. Normalising every link was
    about 15% of the parse of link-heavy documentation.
    """
    if any(part in url.lower() for part in _UNSAFE_LINK_PARTS):
        from markdown_it.common.normalize_url import normalizeLink

        return normalizeLink(url)
    return url


@functools.cache  # building one costs more than parsing a short file; parse() keeps no state
def _markdown_parser():
    from markdown_it import MarkdownIt

    # CommonMark plus the two GFM block/inline rules READMEs use most.
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    md.normalizeLink = _normalize_link
    return md


def _md_inline(node) -> str:
    parts = []
    for c in node.children:
        if c.type in ("text", "code_inline"):
            parts.append(c.content)
        elif c.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif c.type not in ("image", "html_inline"):  # link, em, strong, s: their text
            parts.append(_md_inline(c))
    return "".join(parts)


def _md_blocks(node, code: CodeBlocks) -> list[str]:
    out: list[str] = []
    for c in node.children:
        if c.type in ("heading", "paragraph"):
            out.append(_md_inline(c.children[0]) if c.children else "")
        elif c.type in ("fence", "code_block"):
            if code == "keep":
                out.append(c.content)
        elif c.type in ("bullet_list", "ordered_list"):
            ordered = c.type == "ordered_list"
            out.append(
                _list_block(
                    [
                        (f"{i.info}{i.markup} " if ordered else "- ", _md_blocks(i, code))
                        for i in c.children
                    ]
                )
            )
        elif c.type == "table":
            rows = (tr for part in c.children for tr in part.children)
            out.append(
                "\n".join(
                    " | ".join(
                        _md_inline(cell.children[0]) if cell.children else ""
                        for cell in tr.children
                    )
                    for tr in rows
                )
            )
        elif c.type == "html_block":
            out.append(html_to_text(c.content, code))
        elif c.type != "hr":  # blockquote and any other container: its blocks
            out.extend(_md_blocks(c, code))
    return out


def markdown_to_text(source: str, code_blocks: CodeBlocks = "keep") -> str:
    """Walk markdown-it's token stream as a tree (``SyntaxTreeNode`` nests open/close pairs)."""
    from markdown_it.tree import SyntaxTreeNode

    return _join(_md_blocks(SyntaxTreeNode(_markdown_parser().parse(source)), code_blocks))


# --------------------------------------------------------------------------- reST

# Sphinx's cross-reference text: "Title <target>" shows Title, "~a.b.C" shows C. Written
# here because docutils alone does not know Sphinx's roles (:ref:, :func:, ...).
_EXPLICIT_TITLE = re.compile(r"^(.+?)\s*<[^<]*>$", re.DOTALL)


def _role_text(text: str) -> str:
    m = _EXPLICIT_TITLE.match(text)
    if m:
        return m.group(1)
    text = text.lstrip("!")
    return text[1:].rsplit(".", 1)[-1] if text.startswith("~") else text


def _rst_parser():
    from docutils import nodes, utils
    from docutils.parsers.rst import Parser, roles
    from docutils.parsers.rst.states import Inliner

    inliner = Inliner()
    known = inliner.interpreted

    def interpreted(rawsource, text, role, lineno):
        """An unknown role (Sphinx's), or a known one given Sphinx syntax docutils rejects
        (``:pep:`title <427>```), becomes its text, not a ``problematic`` node that would
        carry the raw ``:role:`...``` markup into the output."""
        if roles.role(role, inliner.language, lineno, inliner.reporter)[0]:
            result, messages = known(rawsource, text, role, lineno)
            if not any(isinstance(n, nodes.problematic) for n in result):
                return result, messages
        return [nodes.Text(_role_text(utils.unescape(text)))], []

    # Set on the instance: Inliner builds its patterns from vars(type(self)), so a
    # subclass of it fails to initialise.
    inliner.interpreted = interpreted
    return Parser(inliner=inliner)


_RST_SETTINGS = {
    "report_level": 5,  # 5 = none: a bad file prints nothing
    "halt_level": 5,  # and never aborts the parse
    "traceback": True,  # re-raise a parser exception; docutils would print it and sys.exit()
    "file_insertion_enabled": False,  # no include / csv-table :file: reading the disk
    "raw_enabled": False,
    "_disable_config": True,  # ignore docutils.conf in the working directory
    "docinfo_xform": False,  # a leading field list stays text, not metadata
    "syntax_highlight": "none",
    "line_length_limit": RST_LINE_LIMIT,
}


def _rst_drop():
    from docutils import nodes

    return (
        nodes.comment,
        nodes.system_message,
        nodes.substitution_definition,
        nodes.target,
        nodes.raw,
        nodes.image,
        nodes.pending,
        nodes.label,
        nodes.decoration,
        nodes.footnote_reference,
        nodes.citation_reference,
        nodes.meta,
    )


def _rst_inline(node, drop) -> str:
    from docutils import nodes

    parts = []
    for c in node.children:
        if isinstance(c, nodes.Text):
            parts.append(c.astext())
        elif not isinstance(c, drop):
            parts.append(_rst_inline(c, drop))
    return "".join(parts)


def _rst_blocks(node, code: CodeBlocks, drop) -> list[str]:
    from docutils import nodes

    out: list[str] = []
    for c in node.children:
        if isinstance(c, drop) or (isinstance(c, nodes.topic) and "contents" in c["classes"]):
            continue  # the second: a generated table of contents
        if isinstance(c, nodes.Text):
            out.append(c.astext())
        elif isinstance(c, (nodes.literal_block, nodes.doctest_block)):
            if code == "keep":
                out.append(c.astext())
        elif isinstance(c, (nodes.bullet_list, nodes.enumerated_list)):
            # Arabic numbers only; other enumerations (a., i.) read fine as bullets.
            numbered = c.get("enumtype") == "arabic"
            start = c.get("start", 1)
            out.append(
                _list_block(
                    [
                        (f"{start + n}. " if numbered else "- ", _rst_blocks(item, code, drop))
                        for n, item in enumerate(c.children)
                    ]
                )
            )
        elif isinstance(c, nodes.table):
            rows = c.findall(nodes.row)
            out.append(
                "\n".join(
                    " | ".join(" ".join(_rst_blocks(e, code, drop)) for e in row.children)
                    for row in rows
                )
            )
        elif isinstance(c, nodes.field):
            name, body = c.children
            out.append(f"{_rst_inline(name, drop)}: {' '.join(_rst_blocks(body, code, drop))}")
        elif isinstance(c, nodes.TextElement):
            out.append(_rst_inline(c, drop))
        else:  # sections, admonitions, block quotes, definitions: their blocks
            out.extend(_rst_blocks(c, code, drop))
    return out


@functools.cache
def _rst_settings():
    """The settings ``publish_doctree`` builds from ``_RST_SETTINGS``, built once.

    docutils builds them on every call from an optparse parser of every component's
    options: about a third of the time of a typical reST file. They are taken from one
    real call, so they are exactly what docutils would build; each document gets a copy
    (:func:`rst_to_text`), because the publisher and some transforms write into them.
    """
    from docutils.core import publish_doctree

    return publish_doctree("", parser=_rst_parser(), settings_overrides=_RST_SETTINGS).settings


def rst_to_text(source: str, code_blocks: CodeBlocks = "keep") -> str:
    """Parse to a docutils doctree (silently, no file access) and walk it."""
    from docutils.core import publish_doctree
    from docutils.utils import DependencyList

    # Over the limit docutils parses nothing and says so only in a (silenced) report.
    if any(len(line) > RST_LINE_LIMIT for line in source.splitlines()):
        raise MarkupError(f"line_over_{RST_LINE_LIMIT}_chars")
    settings = _rst_settings().copy()
    settings.record_dependencies = DependencyList()  # the one mutable value copy() shares
    doctree = publish_doctree(source, parser=_rst_parser(), settings=settings)
    return _join(_rst_blocks(doctree, code_blocks, _rst_drop()))


# --------------------------------------------------------------------------- HTML


def html_to_text(source: str | bytes, code_blocks: CodeBlocks = "keep") -> str:
    """resiliparse's extractor (script, style, forms and hidden elements never reach the text).

    Bytes are decoded with resiliparse's detector, which reads a ``<meta charset>``.
    """
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import detect_encoding
    from resiliparse.parse.html import HTMLTree

    if isinstance(source, bytes):
        enc = detect_encoding(source, from_html_meta=True) or "utf-8"
        tree = HTMLTree.parse_from_bytes(source, enc)
    else:
        tree = HTMLTree.parse(source)
    skip = ["pre"] if code_blocks == "drop" else None
    return extract_plain_text(tree, alt_texts=False, skip_elements=skip).strip()


_CONVERTERS: dict[str, Callable[..., str]] = {
    "markdown": markdown_to_text,
    "rst": rst_to_text,
    "html": html_to_text,
}


def to_text(source: str | bytes, suffix: str, code_blocks: CodeBlocks = "keep") -> str:
    """Plain text of a markup document, chosen by its suffix (a key of ``FORMATS``)."""
    return _CONVERTERS[FORMATS[suffix]](source, code_blocks)
