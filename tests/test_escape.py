"""Hostile text from a guest stays inert in Markdown and HTML."""

from __future__ import annotations

import re

from crashdiag.reports.escape import h, md, md_code_block

HOSTILE = ["<img src=x onerror=alert(1)>", "[click](http://evil)", "**bold** _it_ `code`", "![x](http://e/x.png)",
           "<script>alert(1)</script>", "a\nb\r\nc", "\u202eevil", "```\n# heading", "| table | row |", "&lt;&#x3C;"]


def test_markdown_inline_escapes_everything_active():
    for s in HOSTILE:
        out = md(s)
        assert "\n" not in out and "\u202e" not in out
        assert not re.search(r"(?<!\\)[<>\[\]()`*_!|]", out), out


def test_code_block_cannot_be_closed_from_inside():
    block = md_code_block(["line", "````", "`````` x", "<b>x</b>"])
    fence = block.split("\n", 1)[0].removesuffix("text")
    inner = block.split("\n")[1:-1]
    assert all(not ln.startswith(fence) for ln in inner)
    assert "<b>" not in block


def test_html():
    assert h("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    assert h('" onmouseover="x') == "&quot; onmouseover=&quot;x"
