"""Regular expressions over guest text, on RE2: time linear in the text, whatever the pattern.

A crash log is written by whoever has root on the crashed guest, so a pattern run with
Python's backtracking ``re`` can be made to take seconds or hours on one long line
(``XFS: .*(?:a|b)`` over 160 KB of ``XFS: ``). RE2 has no backtracking: every search is
linear in the text and the pattern. It has no lookarounds or backreferences either, so a
pattern it cannot compile is rejected here (``error``) rather than run slowly.

This module exposes the part of ``re``'s API the classifier, the format table and the
redactor use (compile, search, match, fullmatch, finditer, sub, split, escape, groups), so
their modules import it in place of ``re``. Differences from ``re`` to keep in mind when
writing a pattern: ``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII (write ``\\pL`` for any
letter), ``$`` matches only at the very end, and ``(?x)`` verbose patterns are not
supported. The flags accepted are ``IGNORECASE``, ``MULTILINE`` and ``DOTALL``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import re2
from re2 import _re2

error = re2.error
# re's flag values, so code written for re reads the same; each becomes an inline flag.
IGNORECASE = I = 2  # noqa: E741 - re.I
MULTILINE = M = 8
DOTALL = S = 16
_INLINE = {IGNORECASE: "i", MULTILINE: "m", DOTALL: "s"}

_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
_ANCHOR_START = _re2.RE2.Anchor.ANCHOR_START
_ANCHOR_BOTH = _re2.RE2.Anchor.ANCHOR_BOTH
_NULL = (-1, -1)

class _Text:
    """A string's bytes for RE2, and for non-ASCII text a point where a character offset
    and its byte offset agree. Conversions move that point forward, so a caller walking a
    text with ``pos`` (search, finditer) pays once for each stretch it walks: linear."""

    __slots__ = ("text", "b", "ascii", "c", "o")

    def __init__(self, text: str) -> None:
        self.text = text
        self.ascii = text.isascii()
        self.b = text.encode("ascii") if self.ascii else text.encode("utf-8", "surrogatepass")
        self.c = self.o = 0

    def byte(self, c: int) -> int:
        if self.ascii:
            return c
        if c < self.c:
            self.c = self.o = 0
        self.o += len(self.text[self.c : c].encode("utf-8", "surrogatepass"))
        self.c = c
        return self.o

    def char(self, o: int) -> int:
        if self.ascii:
            return o
        if o < self.o:
            self.c = self.o = 0
        self.c += len(self.b[self.o : o].decode("utf-8", "surrogatepass"))
        self.o = o
        return self.c

    def spans(self, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        if self.ascii:
            return spans
        conv = {o: self.char(o) for o in sorted({o for sp in spans for o in sp if o >= 0})}
        return [(-1, -1) if s < 0 else (conv[s], conv[e]) for s, e in spans]


# The texts encoded last, by identity: every pattern of the catalogue and the format table
# runs over the same line in turn, and a window is walked with pos between other lines.
_recent: list[_Text] = []


def _encoded(text: str) -> _Text:
    for t in _recent:
        if t.text is text:
            return t
    t = _Text(text)
    _recent.insert(0, t)
    del _recent[4:]
    return t


class Match:
    """A match (character offsets), with re.Match's accessors."""

    __slots__ = ("re", "string", "_spans")
    __class_getitem__ = classmethod(lambda cls, item: cls)  # Match[str] in annotations, as for re

    def __init__(self, pattern: Pattern, string: str, spans: list[tuple[int, int]]) -> None:
        self.re = pattern
        self.string = string
        self._spans = spans

    def _index(self, group: int | str) -> int:
        if isinstance(group, str):
            try:
                return self.re.groupindex[group]
            except KeyError:
                raise IndexError(f"no such group {group!r}") from None
        if not 0 <= group < len(self._spans):
            raise IndexError("no such group")
        return group

    def __getitem__(self, group: int | str) -> str | None:
        s, e = self._spans[self._index(group)]
        return None if s < 0 else self.string[s:e]

    def group(self, *groups: int | str) -> Any:
        if not groups:
            return self[0]
        if len(groups) == 1:
            return self[groups[0]]
        return tuple(self[g] for g in groups)

    def groups(self, default: Any = None) -> tuple[Any, ...]:
        return tuple(default if v is None else v for v in (self[i] for i in range(1, len(self._spans))))

    def groupdict(self, default: Any = None) -> dict[str, Any]:
        return {name: (default if self[i] is None else self[i]) for name, i in self.re.groupindex.items()}

    def start(self, group: int | str = 0) -> int:
        return self._spans[self._index(group)][0]

    def end(self, group: int | str = 0) -> int:
        return self._spans[self._index(group)][1]

    def span(self, group: int | str = 0) -> tuple[int, int]:
        return self._spans[self._index(group)]

    def __repr__(self) -> str:
        return f"<regex.Match span={self.span()} match={self.group(0)!r}>"


class Pattern:
    """A compiled RE2 pattern with re.Pattern's methods."""

    __slots__ = ("pattern", "flags", "_re", "_rx", "groupindex", "groups")
    __class_getitem__ = classmethod(lambda cls, item: cls)

    def __init__(self, pattern: str, flags: int = 0) -> None:
        if flags & ~(IGNORECASE | MULTILINE | DOTALL):
            raise error("only the flags IGNORECASE, MULTILINE and DOTALL are supported")
        self.pattern = pattern
        self.flags = flags
        inline = "".join(v for k, v in _INLINE.items() if flags & k)
        options = re2.Options()
        options.log_errors = False
        self._re = re2.compile(f"(?{inline}){pattern}" if inline else pattern, options)
        self._rx = self._re._regexp
        self.groupindex: dict[str, int] = dict(self._re.groupindex)
        self.groups: int = self._re.groups

    def _run(self, anchor: Any, text: str, pos: int, endpos: int | None) -> Any:
        t = _encoded(text)
        n = len(text)
        endpos = n if endpos is None else max(0, min(endpos, n))
        pos = max(0, min(pos, n))
        if pos > endpos:
            return None
        bpos = t.byte(pos)
        bend = len(t.b) if endpos == n else t.byte(endpos)
        spans = self._rx.Match(anchor, t.b, bpos, bend)
        if spans[0][0] < 0:
            return None
        return Match(self, text, t.spans(spans))

    # search and match are the hot path (every format and rule over every line): the
    # common case (ASCII text, whole string) goes straight to RE2.
    def search(self, text: str, pos: int = 0, endpos: int | None = None) -> Any:
        t = _recent[0] if _recent and _recent[0].text is text else _encoded(text)
        if not t.ascii or pos or endpos is not None:
            return self._run(_UNANCHORED, text, pos, endpos)
        spans = self._rx.Match(_UNANCHORED, t.b, 0, len(t.b))
        return None if spans[0][0] < 0 else Match(self, text, spans)

    def match(self, text: str, pos: int = 0, endpos: int | None = None) -> Any:
        t = _recent[0] if _recent and _recent[0].text is text else _encoded(text)
        if not t.ascii or pos or endpos is not None:
            return self._run(_ANCHOR_START, text, pos, endpos)
        spans = self._rx.Match(_ANCHOR_START, t.b, 0, len(t.b))
        return None if spans[0][0] < 0 else Match(self, text, spans)

    def fullmatch(self, text: str, pos: int = 0, endpos: int | None = None) -> Any:
        return self._run(_ANCHOR_BOTH, text, pos, endpos)

    def finditer(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[Any]:
        t = _encoded(text)
        n = len(t.b)
        bpos = t.byte(max(0, min(pos, len(text))))
        bend = n if endpos is None else t.byte(max(0, min(endpos, len(text))))
        while bpos <= bend:
            spans = self._rx.Match(_UNANCHORED, t.b, bpos, bend)
            if spans[0][0] < 0:
                return
            s, e = spans[0]
            yield Match(self, text, t.spans(spans))
            if e > s:
                bpos = e
            elif e >= n:
                return
            else:  # an empty match: step past one character
                bpos = e + 1
                while bpos < n and (t.b[bpos] & 0xC0) == 0x80:
                    bpos += 1

    def findall(self, text: str) -> list[Any]:
        out = []
        for m in self.finditer(text):
            out.append(m.group(0) if self.groups == 0 else m.group(1) if self.groups == 1 else m.groups(""))
        return out

    def sub(self, repl: str | Callable[[Any], str], text: str, count: int = 0) -> str:
        if not callable(repl) and "\\" in repl:
            return self._re.sub(repl, text, count)  # group references: RE2's wrapper expands them
        pieces: list[str] = []
        end = 0
        for i, m in enumerate(self.finditer(text), 1):
            s, e = m.span()
            pieces.append(text[end:s])
            pieces.append(repl(m) if callable(repl) else repl)
            end = e
            if count and i >= count:
                break
        if not pieces:
            return text
        pieces.append(text[end:])
        return "".join(pieces)

    def split(self, text: str, maxsplit: int = 0) -> list[str]:
        pieces: list[str] = []
        end = 0
        for i, m in enumerate(self.finditer(text), 1):
            s, e = m.span()
            pieces.append(text[end:s])
            pieces.extend(m.group(g) for g in range(1, self.groups + 1))
            end = e
            if maxsplit and i >= maxsplit:
                break
        pieces.append(text[end:])
        return pieces

    def __repr__(self) -> str:
        return f"regex.compile({self.pattern!r})"


_cache: dict[tuple[str, int], Pattern] = {}


def compile(pattern: str | Pattern, flags: int = 0) -> Pattern:  # noqa: A001 - mirrors re.compile
    if isinstance(pattern, Pattern):
        return pattern
    key = (pattern, flags)
    p = _cache.get(key)
    if p is None:
        if len(_cache) > 512:
            _cache.clear()
        p = _cache[key] = Pattern(pattern, flags)
    return p


def search(pattern: str, text: str, flags: int = 0) -> Any:
    return compile(pattern, flags).search(text)


def match(pattern: str, text: str, flags: int = 0) -> Any:
    return compile(pattern, flags).match(text)


def fullmatch(pattern: str, text: str, flags: int = 0) -> Any:
    return compile(pattern, flags).fullmatch(text)


def finditer(pattern: str, text: str, flags: int = 0) -> Iterator[Any]:
    return compile(pattern, flags).finditer(text)


def findall(pattern: str, text: str, flags: int = 0) -> list[Any]:
    return compile(pattern, flags).findall(text)


def sub(pattern: str, repl: str | Callable[[Any], str], text: str, count: int = 0, flags: int = 0) -> str:
    return compile(pattern, flags).sub(repl, text, count)


def split(pattern: str, text: str, maxsplit: int = 0, flags: int = 0) -> list[str]:
    return compile(pattern, flags).split(text, maxsplit)


def escape(text: str) -> str:
    return re2.escape(text)


__all__ = ["IGNORECASE", "Match", "Pattern", "compile", "error", "escape", "finditer", "findall", "fullmatch",
           "match", "search", "split", "sub"]
