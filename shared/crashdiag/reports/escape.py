"""Make untrusted text (log lines, process names, module names) inert in Markdown and HTML.

Log text is attacker-controlled: a process can name itself ``<img src=x onerror=...>``
or ``[click](http://evil)``. Everything that came from a guest passes through here
before it reaches a report, a DingTalk card or an email.
"""

from __future__ import annotations

import html
import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&:=\"'])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def plain(text: object, limit: int = 500) -> str:
    """One line, no control or bidi-override characters, bounded length."""
    s = _CONTROL.sub("?", str(text)).replace("\n", " ").replace("\r", " ")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def md(text: object, limit: int = 500) -> str:
    """Inline Markdown text: every character Markdown or HTML could act on is escaped."""
    return _MD_SPECIAL.sub(r"\\\1", plain(text, limit))


def md_code_block(lines: list[str], limit: int = 200) -> str:
    """A fenced block that no line inside can close: the fence is longer than any
    backtick run in the content, and HTML-significant characters are escaped too
    (some Markdown renderers, DingTalk's among them, pass HTML through code blocks)."""
    body = "\n".join(html.escape(plain(x, limit), quote=False) for x in lines)
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def h(text: object, limit: int = 2000) -> str:
    """HTML text content or attribute value."""
    return html.escape(plain(text, limit), quote=True)
