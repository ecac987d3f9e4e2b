"""The page model of the reports and its two renderings, Markdown and HTML.

:mod:`apro.report` builds a :class:`Page` (title, then text, bullet lists, tables, figures and nested
sections) from a suite's results; :func:`markdown` and :func:`html` turn it into
``summary.md``, ``summary.html`` and ``index.html``. Every piece of text is a line of
inline Markdown: ``**bold**``, ```code``` and ``[label](href)`` links, nothing else; the HTML
rendering escapes everything else. Nothing here reads or writes files.
"""
from __future__ import annotations

import html as _html
import re
from dataclasses import dataclass, field
from typing import List, Optional, Union


# ---------------------------------------------------------------- the model

@dataclass
class Text:
    """A paragraph. ``missing``: it says that something does not exist yet (styled as such in HTML)."""
    text: str
    missing: bool = False


@dataclass
class Bullets:
    """A bullet list (rendered as nothing when empty)."""
    items: List[str]


@dataclass
class Table:
    header: List[str]
    rows: List[List[str]]


@dataclass
class Figure:
    """An image, by its path relative to the page."""
    src: str
    alt: str
    caption: str


@dataclass
class Section:
    """A heading and what follows it; a section inside a section is one heading level deeper."""
    title: str
    blocks: List["Block"] = field(default_factory=list)
    anchor: Optional[str] = None  # the HTML id, and an entry of the page's navigation bar


Block = Union[Text, Bullets, Table, Figure, Section]


@dataclass
class Page:
    title: str
    blocks: List[Block] = field(default_factory=list)


# ---------------------------------------------------------------- Markdown

def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def _md_blocks(blocks: List[Block], level: int) -> List[str]:
    out: List[str] = []
    for b in blocks:
        if isinstance(b, Section):
            out += [f"{'#' * level} {b.title}", ""] + _md_blocks(b.blocks, level + 1)
        elif isinstance(b, Text):
            out += [b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + ([""] if b.items else [])
        elif isinstance(b, Table):
            out.append("| " + " | ".join(map(_md_cell, b.header)) + " |")
            out.append("| " + " | ".join("---" for _ in b.header) + " |")
            out += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in b.rows]
            out.append("")
        elif isinstance(b, Figure):
            out += [f"![{b.alt}]({b.src})", "", b.caption, ""]
    return out


def markdown(page: Page) -> str:
    return "\n".join([f"# {page.title}", ""] + _md_blocks(page.blocks, 2)).rstrip() + "\n"


# ---------------------------------------------------------------- HTML

STYLE = ("body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;line-height:1.4}"
         "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
         "th{background:#f4f4f4}code{background:#f4f4f4;padding:0 .2em}img{max-width:100%;border:1px solid #eee}"
         "nav a{margin-right:1em}figure{margin:1em 0}figcaption{color:#444;font-size:.9em}.missing{color:#a33}")

_INLINE = re.compile(r"`([^`]*)`|(\*\*)|\[([^\]]+)\]\(([^)\s]+)\)")


def _e(text: object) -> str:
    return _html.escape("" if text is None else str(text))


def inline(text: str) -> str:
    """HTML of a line of inline Markdown (``**bold**``, ```code```, ``[label](href)``)."""
    out, bold, pos = [], False, 0
    for m in _INLINE.finditer(text):
        out.append(_e(text[pos:m.start()]))
        code, star, label, href = m.groups()
        if star:
            out.append("</b>" if bold else "<b>")
            bold = not bold
        elif label is not None:
            out.append(f'<a href="{_e(href)}">{_e(label)}</a>')
        else:
            out.append(f"<code>{_e(code)}</code>")
        pos = m.end()
    out.append(_e(text[pos:]))
    if bold:
        out.append("</b>")
    return "".join(out)


def _html_blocks(blocks: List[Block], level: int) -> List[str]:
    out: List[str] = []
    for b in blocks:
        if isinstance(b, Section):
            anchor = f' id="{_e(b.anchor)}"' if b.anchor else ""
            out.append(f"<h{level}{anchor}>{_e(b.title)}</h{level}>")
            out += _html_blocks(b.blocks, level + 1)
        elif isinstance(b, Text):
            cls = ' class="missing"' if b.missing else ""
            out.append(f"<p{cls}>{inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            if b.items:
                out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{inline(h)}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{inline(str(c))}</td>" for c in r) + "</tr>" for r in b.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Figure):
            out.append(f'<figure><img src="{_e(b.src)}" alt="{_e(b.alt)}"><figcaption>{inline(b.caption)}'
                       "</figcaption></figure>")
    return out


def html(page: Page) -> str:
    """A standalone HTML page; a navigation bar links the top-level sections that have an anchor."""
    body = [f"<h1>{_e(page.title)}</h1>"]
    anchored = [b for b in page.blocks if isinstance(b, Section) and b.anchor]
    for b in page.blocks:
        if anchored and b is anchored[0]:
            body.append("<nav>" + "".join(f'<a href="#{_e(s.anchor)}">{_e(s.title)}</a>' for s in anchored)
                        + "</nav>")
        body += _html_blocks([b], 2)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(page.title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
