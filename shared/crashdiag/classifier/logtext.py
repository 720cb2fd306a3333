"""Turn a crash log in any shape it arrives in into clean kernel message lines.

A crash log reaches us as a kdump ``vmcore-dmesg.txt``, plain or raw ``dmesg``,
``journalctl -k`` output, ``/var/log/messages``, a serial console capture, a pstore
record, a gzip file, or a log pasted from a web page that lost its newlines. This
module strips every transport prefix (syslog header, printk timestamp, level,
caller id) and hands the classifier one kernel message per ``LogLine``.

Large inputs are not read whole: ``scan_windows`` looks for a few anchor strings
with ``bytes.find`` (C speed) and only the regions around hits are decoded and
parsed, so a 200 MB log costs a bounded amount of memory.
"""

from __future__ import annotations

import gzip
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import re2 as _re2  # the anchor scan runs RE2 on bytes directly (classifier.regex serves str)

from . import formats as F
from . import regex as re  # RE2, linear in the text: every pattern here may meet guest text


class LogInputError(Exception):
    """The input cannot be read as a kernel log (missing, directory, empty, binary)."""


@dataclass(frozen=True)
class LogLine:
    """One kernel message after its transport prefixes were removed."""

    number: int  # 1-based line number within the window it came from (approximate for big logs)
    timestamp: float | None  # printk seconds since boot, when present
    text: str
    raw: str  # the line as it was, for evidence
    shape: str | None = None  # the learned prefix this line was read through (None: a known shape)


# Anchors: every crash report carries at least one of these, or is always printed
# within WINDOW_BEFORE/WINDOW_AFTER bytes of one. An oops, BUG, WARNING, OOM dump,
# hung task or lockup always dumps a stack ("Call Trace", arm64 "Call trace"); every
# panic says "Kernel panic"; "BUG" catches reports whose trace was cut off; RCU
# stalls may print no stack at all; MCE logs "[Hardware Error]" without either.
# Each anchor costs one pass of bytes.find over the input, so the list is short:
# the boot banner and command line are read from the whole of small logs only.
ANCHORS: tuple[bytes, ...] = (
    b"Call Trace",
    b"Call trace",
    b"Kernel panic",
    b"BUG",
    b"stall",
    b"Hardware Error",
)
_ANCHOR_RX = _re2.compile(b"|".join(_re2.escape(a) for a in ANCHORS))  # literals only: linear
WINDOW_BEFORE = 96 * 1024
WINDOW_AFTER = 160 * 1024
CHUNK = 8 * 1024 * 1024
MAX_WINDOW = 8 * 1024 * 1024  # a region dense with hits is cut into windows of this size

_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# Control characters other than tab that survive in broken captures.
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

# Transport prefixes, tried in order, each possibly followed by the next.
_SYSLOG = re.compile(
    r"^(?:"
    r"(?:\pL{3,5}\.?\s+\d{1,2}\s+\d\d:\d\d:\d\d(?:\.\d+)?)"  # Nov 26 10:00:01[.123456], any locale's month
    r"|(?:\d{4}-\d\d-\d\d[T\s]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)"  # ISO 8601
    r"|(?:\[\s*\d+\.\d+\])"  # journalctl -o short-monotonic
    r")\s+(?:(?P<host>[^\s:]+)\s+)?(?P<ident>[^\s:\[]+)(?:\[\d+\])?:\s?"  # rsyslog may omit the host
)
_KMSG = re.compile(r"^\d+,\d+,\d+,[^;]*;")  # /dev/kmsg records
_LEVEL = re.compile(r"^<\d{1,2}>")  # dmesg -r
_TIMESTAMP = re.compile(r"^\[\s*(\d+\.\d+)\]\s?")
# A timestamp whose "[" was lost (a log copied from the middle of a line).
_TIMESTAMP_REMNANT = re.compile(r"^(\d+\.\d{6})\]\s")
_CALLER = re.compile(r"^\[\s*[TC]\d+\]\s?")  # CONFIG_PRINTK_CALLER

# A line that holds several printk records (a log pasted onto one line): each record
# starts after a blank with a timestamp (then a blank) or a syslog header. RE2 has no
# lookahead: the split point is the match's first character, and _split_at checks the
# blank after a timestamp (so that it can start the next match).
_EMBEDDED_TS = re.compile(r"\s\[\s*\d+\.\d{3,9}\](?:\[\s*[TC]\d+\])?")
_BLANKS = frozenset(" \t\n\r\f\v")
_EMBEDDED_SYSLOG = re.compile(r"\s[A-Z][a-z]{2}\s+\d{1,2}\s\d\d:\d\d:\d\d\s\S+\s+kernel:")


def strip_prefixes(line: str) -> tuple[str, float | None, bool]:
    """Remove transport prefixes from one line.

    Returns (text, printk timestamp, is_kernel). Lines from syslog or the journal
    whose identifier is not ``kernel`` are reported as not kernel: the serial
    console and /var/log/messages interleave them with kernel output.
    """
    if line.startswith('{"') and '"MESSAGE"' in line:
        journal = _journal_json(line)
        if journal is not None:
            return journal
    is_kernel = True
    ts: float | None = None
    m = _KMSG.match(line)
    if m:
        line = line[m.end() :]
    m = _SYSLOG.match(line)
    if m and m.group(0).startswith("["):
        # journalctl -o short-monotonic: "[  12.345678] host ident[pid]: msg". A bare
        # kernel line "[  12.345678] Hardware name: ..." has the same shape, so only an
        # ident of "kernel" or one with a [pid] counts as a journal line.
        if m.group("ident") == "kernel" or m.group(0).rstrip().endswith("]:"):
            ts = _float(m.group(0)[1 : m.group(0).index("]")])
        else:
            m = None
    if m:
        is_kernel = m.group("ident") == "kernel"
        line = line[m.end() :]
    m = _LEVEL.match(line)
    if m:
        line = line[m.end() :]
    m = _TIMESTAMP.match(line) or _TIMESTAMP_REMNANT.match(line)
    if m:
        ts = _float(m.group(1))
        line = line[m.end() :]
        m = _CALLER.match(line)
        if m:
            line = line[m.end() :]
    elif line.startswith("[") and (m := _CALLER.match(line)):
        line = line[m.end() :]
    return line, ts, is_kernel


def _journal_json(line: str) -> tuple[str, float | None, bool] | None:
    """One record of ``journalctl -o json`` (an export, a log shipper's copy): its MESSAGE,
    the kernel's monotonic stamp, and whether the kernel wrote it. None when the line is
    not such a record. json.loads is linear in the line."""
    import json

    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if not isinstance(rec, dict):
        return None
    msg = rec.get("MESSAGE")
    if isinstance(msg, list):  # journald exports non-UTF-8 messages as a list of bytes
        try:
            msg = bytes(msg).decode("utf-8", "replace")
        except (TypeError, ValueError):
            return None
    if not isinstance(msg, str):
        return None
    kernel = rec.get("_TRANSPORT") == "kernel" or rec.get("SYSLOG_IDENTIFIER") == "kernel"
    mono = rec.get("_SOURCE_MONOTONIC_TIMESTAMP")
    ts = int(mono) / 1e6 if isinstance(mono, str) and mono.isdigit() else None
    return msg, ts, kernel


def _float(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


def clean(text: str) -> str:
    """Drop ANSI escapes, NUL padding and stray control characters."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    return _CTRL.sub("", text)


_LATE_TS = re.compile(r"\[\s*\d+\.\d{6}\]")


def split_records(line: str) -> list[str]:
    """Split a line that carries several printk records (a flattened log), or a
    kernel record that a serial console printed after other text ("login: [ 1.2] ...")."""
    if "[" not in line:
        return [line]
    m = _LATE_TS.search(line, 1)
    if m and not line.startswith("[") and not _SYSLOG.match(line) and not _KMSG.match(line) and not _LEVEL.match(line):
        head, line = line[: m.start()], line[m.start() :]
        return [head, *_split_embedded(line)]
    return _split_embedded(line)


def _split_embedded(line: str) -> list[str]:
    if len(line) < 80 or line.count("[") < 2:
        return [line]
    parts = _split_at(_EMBEDDED_TS, line, blank_after=True)
    if len(parts) == 1 and " kernel:" in line:
        parts = _split_at(_EMBEDDED_SYSLOG, line)
    return parts


def _split_at(rx: re.Pattern[str], line: str, blank_after: bool = False) -> list[str]:
    """Cut before each match, dropping the blank a match starts with (one pass, linear)."""
    parts, start = [], 0
    for m in rx.finditer(line):
        if blank_after and line[m.end() : m.end() + 1] not in _BLANKS:
            continue
        parts.append(line[start : m.start()])
        start = m.start() + 1
    parts.append(line[start:])
    return parts


def decode(data: bytes) -> str:
    """Decode log bytes: UTF-8 where valid, each stray byte replaced, never raising."""
    return data.decode("utf-8", errors="replace")


def normalise(text: str, first_line: int = 1) -> Iterator[LogLine]:
    """Yield kernel lines from raw log text.

    Known shapes (syslog, journal, printk timestamps, /dev/kmsg...) are stripped by
    ``strip_prefixes``. A line whose known stripping does not reach a kernel message head
    teaches this window a prefix (``learn_prefixes``); every line that starts with a learned
    prefix is read through it, so the registers and frames between the heads are read too.
    """
    # Serial consoles end lines with \r\n or a lone \r; pstore pads with NULs.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    learned = learn_prefixes(text)
    number = first_line - 1
    held: LogLine | None = None  # a head line whose wrapped tail may follow
    for physical in text.split("\n"):
        number += 1
        physical = clean(physical)
        if not physical.strip():
            continue
        for record in split_records(physical):
            record = record.strip("\n")
            shape = None
            for prefix in learned:
                m = prefix.pattern.match(record)
                if m:
                    body, ts, is_kernel = record[m.end() :], prefix.timestamp(m.group(0)), True
                    shape = prefix.shape
                    break
            else:
                body, ts, is_kernel = strip_prefixes(record)
            if held is not None:
                if body is record and _wrapped_tail(held.text, record):
                    # A mail client or terminal broke the head line: glue its tail back on.
                    held = LogLine(held.number, held.timestamp, f"{held.text} {record.strip()}",
                                   f"{held.raw} {record.strip()}", held.shape)
                    continue
                yield held
                held = None
            if not is_kernel:
                continue
            body = body.rstrip()
            if not body:
                continue
            line = LogLine(number, ts, body, record.strip(), shape)
            if body is not record and len(record) >= 40 and FATAL_HEAD.search(body):
                held = line
            else:
                yield line
    if held is not None:
        yield held


_WRAP_TAIL_MAX = 100


def _wrapped_tail(head: str, record: str) -> bool:
    """Whether ``record`` (a line with no prefix of its own) continues the head line above
    it: the log's lines carry prefixes, so a bare short line after a head is its wrapped tail.
    A line that holds a message head of its own anywhere ("traps: PANIC: double fault")
    begins a message: gluing it on would hide that head behind a long line above it."""
    if not record or record[0] in " \t[<>#|" or len(record) > _WRAP_TAIL_MAX:
        return False
    return not HEADS.search(record)


# --- prefixes learned from message heads ---------------------------------------------------

def _head_pattern(heads: tuple[str, ...]) -> str:
    # A head that opens with a word starts at a word boundary: "pc : " is not the tail of
    # RISC-V's "epc : ", "INFO: task " not the tail of another word.
    return "|".join(f"(?:\\b{h})" if h[:1].isalpha() or h.startswith(("(?:", "[Kk]")) and not h.startswith("(?:mce")
                    else f"(?:{h})" for h in heads)


_HEAD_ALTERNATIVES = F.FATAL_HEADS + F.CONT_HEADS
HEADS = re.compile(_head_pattern(_HEAD_ALTERNATIVES))
FATAL_HEAD = re.compile(_head_pattern(F.FATAL_HEADS))
MAX_LEARN_LINES = 400  # lines with a head examined per window: enough to see every prefix a log uses
MAX_PREFIX = 160  # a longer "prefix" is message text, not transport
MAX_PREFIXES = 8  # prefixes kept per window: every line is tried against each, so a few only
# RE2's \d, \w and \s are ASCII: the Unicode classes keep a CJK or Cyrillic month a word.
_SKELETON_TOKEN = re.compile(r"\p{Nd}+|\pL+|[\s\p{Z}]+|.", re.S)
_PREFIX_TS = re.compile(r"\[\s*(\d+\.\d+)\]")
_END_WORD = re.compile(r"(\pL[\pL\pN_.-]*):\s*$")
# A prefix may end with "word:" only when the word is the syslog identifier of the kernel (or
# crash's "PANIC:"); any other "word: " before a head is the message of a subsystem or program.
_PREFIX_IDENTS = frozenset({"kernel", "PANIC", "kern", "vmcore", "crash"})


@dataclass(frozen=True)
class LearnedPrefix:
    """A line prefix this log uses, learned from a line where a message head follows it."""

    pattern: re.Pattern[str]
    shape: str  # the prefix as first seen, for the confidence reason

    def timestamp(self, prefix: str) -> float | None:
        m = _PREFIX_TS.search(prefix)
        return _float(m.group(1)) if m else None


def head_start(line: str) -> int:
    """Where the first kernel message head in ``line`` starts, or -1."""
    m = HEADS.search(line)
    if not m:
        return -1
    return _comm_start(line, m)


def _comm_start(line: str, m: re.Match[str]) -> int:
    start = m.start()
    head = m.group(0)
    if head.startswith(F.COMM_LED_HEADS):
        # "kworker/0:1 invoked oom-killer:", "java: page allocation failure": back up over
        # the task name to the start of its word.
        i = start
        while i > 0 and not line[i - 1].isspace():
            i -= 1
        return i
    return start


def learn_prefixes(text: str, limit: int = MAX_LEARN_LINES) -> list[LearnedPrefix]:
    """The line prefixes of ``text`` that the known shapes do not strip, learned from the
    lines where a kernel message head follows them. Most frequent first."""
    seen: Counter[str] = Counter()
    first: dict[str, str] = {}
    looked = 0
    pos = 0
    n = len(text)
    while looked < limit:
        m = HEADS.search(text, pos)
        if not m:
            break
        lo = text.rfind("\n", 0, m.start()) + 1
        hi = text.find("\n", m.end())
        hi = n if hi == -1 else hi
        pos = hi + 1
        looked += 1
        for record in split_records(clean(text[lo:hi])):
            prefix = _unknown_prefix(record)
            if prefix is not None:
                key = skeleton(prefix)
                seen[key] += 1
                first.setdefault(key, prefix)
    return [LearnedPrefix(re.compile(key), first[key]) for key, _ in seen.most_common(MAX_PREFIXES)]


def _unknown_prefix(record: str) -> str | None:
    """The text before the message head of ``record`` when the known shapes do not strip it
    (and it looks like transport rather than message text), else None."""
    if record.startswith('{"'):
        return None  # a journal JSON record: a known shape, read by strip_prefixes
    m = HEADS.search(record)
    if not m:
        return None
    start = _comm_start(record, m)
    body, _, is_kernel = strip_prefixes(record)
    consumed = len(record) - len(body)
    if is_kernel and not body[: max(0, start - consumed)].strip():
        return None  # a known shape: its stripping reaches the head
    if not is_kernel and start >= consumed:
        return None  # another program's message that mentions a kernel message
    prefix = record[:start]
    if not prefix.strip() or len(prefix) > MAX_PREFIX or "---[" in prefix or prefix[-1].isalnum():
        return None
    w = _END_WORD.search(prefix)
    if w and w.group(1) not in _PREFIX_IDENTS:
        return None
    # Transport carries a date, a time or a counter, names the kernel, or is bare punctuation
    # (a mail quote "> "); words alone ("Console ") are a heading someone pasted.
    words = [t for t in _SKELETON_TOKEN.findall(prefix) if t.isalpha()]
    if words and not any(ch.isdigit() for ch in prefix) and not set(words) & _PREFIX_IDENTS:
        return None
    return prefix


def skeleton(prefix: str) -> str:
    """A pattern for lines that share ``prefix``'s shape: digit and letter runs become
    classes (a date, a time, a level), the kernel's syslog identifier and punctuation stay
    literal. Adjacent parts never overlap, so matching it is linear."""
    parts: list[str] = []
    tokens = _SKELETON_TOKEN.findall(prefix)
    for i, tok in enumerate(tokens):
        if tok.isdigit():
            parts.append(r"\p{Nd}+")
        elif tok[0].isspace():
            last = i == len(tokens) - 1
            after_open = i > 0 and tokens[i - 1] in "[(<{"
            parts.append(r"\s*" if last or after_open else r"\s+")
        elif tok.isalpha():
            parts.append(re.escape(tok) if tok in _PREFIX_IDENTS else r"\pL+")
        else:
            parts.append(re.escape(tok))
    return "".join(parts)


def looks_binary(sample: bytes) -> bool:
    """True when a sample is binary data rather than text (a vmcore, an ELF, an image)."""
    sample = sample.replace(b"\x00", b"")  # pstore and serial captures pad with NULs
    if not sample:
        return False
    text = sample.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") + sum(1 for ch in text if ch < " " and ch not in "\t\n\r\x1b\x0c")
    return bad / len(text) > 0.10


# makedumpfile's compressed format and ELF: the dump itself rather than its dmesg.
_VMCORE_MAGIC = (b"KDUMP   ", b"\x7fELF", b"makedumpfile")


def open_log(path: str) -> io.BufferedIOBase:
    """Open a log file for binary reading, transparently un-gzipping it.

    Raises LogInputError with a one-line reason for anything that is not a readable
    text log.
    """
    import os

    if os.path.isdir(path):
        raise LogInputError(f"{path}: is a directory, not a log file")
    try:
        fh = open(path, "rb")  # noqa: SIM115 - returned to the caller
    except FileNotFoundError:
        raise LogInputError(f"{path}: no such file") from None
    except PermissionError:
        raise LogInputError(f"{path}: permission denied") from None
    except OSError as exc:
        raise LogInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return _wrap(fh, path)


def open_bytes(data: bytes, name: str = "<bytes>") -> io.BufferedIOBase:
    """Like open_log, for a log already in memory."""
    return _wrap(io.BytesIO(data), name)


def _wrap(fh: io.BufferedIOBase, name: str) -> io.BufferedIOBase:
    head = fh.read(4096)
    if head[:2] == b"\x1f\x8b":
        fh.seek(0)
        gz = gzip.GzipFile(fileobj=fh)
        try:
            head = gz.read(4096)
        except (OSError, EOFError) as exc:
            raise LogInputError(f"{name}: damaged gzip data ({exc})") from None
        fh.seek(0)
        fh = gzip.GzipFile(fileobj=fh)  # type: ignore[assignment]
    else:
        fh.seek(0)
    if not head.strip(b"\x00 \t\r\n"):
        # pstore and serial captures can start with long runs of NUL padding.
        head = _first_content(fh)
        fh.seek(0) if not isinstance(fh, gzip.GzipFile) else fh.rewind()
        if not head:
            raise LogInputError(f"{name}: empty log")
    if head.startswith(_VMCORE_MAGIC):
        raise LogInputError(
            f"{name}: this is a kernel dump (vmcore), not a log: give its vmcore-dmesg.txt, "
            "or extract the log with 'makedumpfile --dump-dmesg'"
        )
    if looks_binary(head):
        raise LogInputError(
            f"{name}: binary data, not a text log (for a vmcore, give its vmcore-dmesg.txt)"
        )
    return fh


def _first_content(fh: io.BufferedIOBase) -> bytes:
    """The first 4 KiB after any leading NUL or blank padding, or b"" when there is none."""
    while True:
        block = fh.read(1 << 16)
        if not block:
            return b""
        stripped = block.lstrip(b"\x00 \t\r\n")
        if stripped:
            return stripped[:4096]


@dataclass
class Window:
    """A region of the input around anchor hits, decoded into kernel lines."""

    offset: int  # byte offset of the region in the (uncompressed) input
    text: str
    first_line: int  # line number of the region's first line, when known (else 0)


def scan_windows(
    fh: io.BufferedIOBase,
    whole_below: int = 2 * WINDOW_AFTER,
    chunk: int = CHUNK,
    before: int = WINDOW_BEFORE,
    after: int = WINDOW_AFTER,
) -> Iterator[Window]:
    """Yield the regions of a log that can hold crash reports.

    Inputs smaller than ``whole_below`` are yielded whole. Larger ones are scanned in
    chunks; each anchor hit opens a region from WINDOW_BEFORE bytes before it to
    WINDOW_AFTER bytes after it; overlapping regions merge. Memory stays around
    CHUNK + WINDOW_BEFORE + MAX_WINDOW whatever the input size.
    """
    first = _read_fully(fh, whole_below + 1)
    if len(first) <= whole_below:
        yield Window(0, decode(first), 1)
        return
    yield from _scan_large(_LineCap(fh, first), b"", chunk, before, after)


# Kernel records are at most about 1 KB (printk's LOG_LINE_MAX). In a large log, a longer
# line is cut to LINE_CAP bytes before windows are cut, so that one hostile line cannot
# push a report's first lines out of the WINDOW_BEFORE bytes above its anchor.
LINE_CAP = 16 * 1024


class _LineCap:
    """A reader over (head + the rest of fh) whose lines are cut to LINE_CAP bytes."""

    def __init__(self, fh: io.BufferedIOBase, head: bytes) -> None:
        self.fh, self.pending, self.run = fh, head, 0  # run: bytes of the current line kept so far

    def read(self, n: int) -> bytes:
        while True:  # a block wholly inside a cut line gives nothing: read on (b"" is the end)
            data = self.pending or _read_fully(self.fh, n)
            self.pending = b""
            if not data:
                return b""
            kept = self._cut(data)
            if kept:
                return kept

    def _cut(self, data: bytes) -> bytes:
        # Fast path: real logs have no line near LINE_CAP. Jump a whole LINE_CAP at a time to
        # the last newline inside it (a few thousand rfind calls per 50 MB, not one per line);
        # only a block holding an over-long line takes the line-by-line path below.
        n, p, run = len(data), 0, self.run
        while True:
            room = LINE_CAP - run
            if n - p <= room:
                last = data.rfind(b"\n", p)
                self.run = n - last - 1 if last >= 0 else run + (n - p)
                return data
            q = data.rfind(b"\n", p, p + max(room, 0) + 1)
            if q < 0:
                return self._cut_lines(data)
            p, run = q + 1, 0

    def _cut_lines(self, data: bytes) -> bytes:
        out, i = [], 0
        while i < len(data):
            nl = data.find(b"\n", i)
            end = len(data) if nl < 0 else nl
            room = max(0, LINE_CAP - self.run)
            out.append(data[i : min(end, i + room)])
            self.run += end - i
            if nl >= 0:
                out.append(b"\n")
                self.run = 0
                i = nl + 1
            else:
                i = end
        return b"".join(out)


def _read_fully(fh: io.BufferedIOBase, n: int) -> bytes:
    parts = []
    while n > 0:
        try:
            b = fh.read(n)
        except (OSError, EOFError) as exc:  # truncated gzip: keep what we have
            _ = exc
            break
        if not b:
            break
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


def _scan_large(fh: io.BufferedIOBase, first: bytes, chunk: int, before: int, after: int) -> Iterator[Window]:
    buf = first
    base = 0  # absolute offset of buf[0]
    scanned = 0  # absolute offset up to which anchors were searched
    lines_before = 1  # line number of buf[0]
    start = end = -1  # the region being built, absolute offsets
    longest = max(len(a) for a in ANCHORS)
    eof = False
    while True:
        # Search the part of buf not yet searched (minus a tail that may hold a split anchor).
        limit = base + len(buf) if eof else base + len(buf) - longest
        lo = scanned - base
        hi = limit - base
        hits: list[int] = []
        if hi > lo:
            # One RE2 pass over the bytes for all anchors (a DFA over literals) instead of one
            # bytes.find pass per anchor; a hit starting at or past hi is the next round's.
            endpos = len(buf) if eof else min(len(buf), hi + longest - 1)
            for m in _ANCHOR_RX.finditer(buf, lo, endpos):
                if eof or m.start() < hi:
                    hits.append(base + m.start())
            scanned = max(scanned, limit)
        for h in sorted(set(hits)):
            ws, we = max(0, h - before), h + after
            if start >= 0 and ws <= end and (we - start) <= MAX_WINDOW:
                end = max(end, we)
                continue
            if start >= 0:
                # The region ends before this hit's region starts, so all of it is in buf.
                yield _emit(buf, base, start, end, lines_before)
                ws = max(ws, end)
            start, end = max(ws, base), we
        available_end = base + len(buf)
        if start >= 0 and (end <= scanned or eof):
            yield _emit(buf, base, start, min(end, available_end), lines_before)
            start = end = -1
        if eof:
            return
        # Keep only what a future region can still need.
        keep_from = scanned - before if start < 0 else start
        keep_from = max(base, keep_from)
        cut = keep_from - base
        if cut > 0:
            lines_before += buf.count(b"\n", 0, cut)
            buf = buf[cut:]
            base = keep_from
        more = _read_fully(fh, chunk)
        if not more:
            eof = True
        else:
            buf += more


def _emit(buf: bytes, base: int, start: int, end: int, lines_before: int) -> Window:
    lo, hi = start - base, end - base
    # Widen to whole lines so a region never starts or ends mid-message.
    if lo > 0:
        nl = buf.rfind(b"\n", 0, lo)
        lo = nl + 1 if nl != -1 and lo - nl < 4096 else lo
    nl = buf.find(b"\n", hi)
    hi = nl if nl != -1 and nl - hi < 4096 else min(hi, len(buf))
    first_line = lines_before + buf.count(b"\n", 0, lo)
    return Window(base + lo, decode(buf[lo:hi]), first_line)
