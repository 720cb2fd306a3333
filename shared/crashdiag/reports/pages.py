"""The page templates (``reports/templates/*.j2``) and the one Jinja2 environment that renders them.

Guest text is hostile, so the environment escapes every ``{{ value }}`` on its way out
(``autoescape``), and it escapes with ``escape.h``, not with markupsafe's own escape, so
control and bidi-override characters are replaced and the length is bounded the same way
as in every other medium. Only markup the templates themselves produce (macros, the
``text`` and ``lines`` filters, which escape as they go) passes as markup; templates never
use ``|safe``, and tests/test_pages.py checks that they keep to the filters listed below.

Jinja2 is imported on the first render, not when this module is imported: the functions
that write no page (on_ecs_event, notify, notify_flush) never load it, and the ones that
do pay for it once per instance. Parsing and compiling the templates would cost that
first page more than importing Jinja2 does, so tools/package.py precompiles them into the
function zips (``templates_compiled/``, with the Jinja2 version that compiled them);
they are used only under that same version, and the templates themselves otherwise.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .escape import h

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"
# Written by tools/package.py into a function's zip, never into the source tree.
COMPILED = Path(__file__).resolve().parent / "templates_compiled"
COMPILED_VERSION = "JINJA2_VERSION"  # the file in COMPILED naming the Jinja2 that compiled them
TEXT_LIMIT = 4000  # characters of one value, unless a template says |text(n)


class Facts(dict):
    """A report's dict for templates: a field that is absent reads as None (as ``.get``
    does in Python), so a template can say ``{% if d.fix_status %}`` of optional fields.
    Names the templates define themselves are still checked (StrictUndefined)."""

    __slots__ = ()

    def __missing__(self, key: object) -> None:
        return None


def facts(value: Any) -> Any:
    """``value`` with every dict in it (nested, in lists and tuples too) made a ``Facts``."""
    if isinstance(value, Mapping):
        return Facts((k, facts(v)) for k, v in value.items())
    if isinstance(value, list):
        return [facts(v) for v in value]
    if isinstance(value, tuple):
        return tuple(facts(v) for v in value)
    return value


def _markup(s: str) -> Any:
    from markupsafe import Markup

    return Markup(s)


def text(value: object, limit: int = TEXT_LIMIT) -> Any:
    """``{{ value|text(300) }}``: escaped, one line, at most ``limit`` characters; None is empty."""
    if value is None or value is False:
        return _markup("")
    if hasattr(value, "__html__"):
        return value
    return _markup(h(value, limit))


def lines(values: Iterable[object], limit: int = TEXT_LIMIT) -> Any:
    """``{{ log_lines|lines }}``: each line escaped as by ``text``, joined by newlines (for <pre>)."""
    return _markup("\n".join(h(v, limit) for v in values))


def label(key: object, table: Mapping[str, str]) -> str:
    """``{{ d.kind|label(KINDS) }}``: the word for a code in one language's table, else the code."""
    return table.get(str(key), str(key))


def human_size(n: object) -> str:
    """A byte count for people: '4300' -> '4.2 KB' (anything not a number as it is)."""
    try:
        v = float(str(n))
    except ValueError:
        return str(n)
    for unit in ("B", "KB", "MB", "GB"):
        if v < 1024 or unit == "GB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return str(n)


def human_time(iso: object) -> str:
    """'2026-11-26T10:00:01Z' -> '2026-11-26 10:00:01 UTC' (anything else as it is)."""
    s = str(iso or "")
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]00:?00)?", s)
    if m:
        return f"{m.group(1)} {m.group(2)}" + (" UTC" if m.group(3) else "")
    return s


def short_time(iso: object) -> str:
    """``human_time`` without the " UTC" the fleet page states once, in its header."""
    return human_time(iso).replace(" UTC", "")


def join_text(values: Iterable[object], sep: str = ", ") -> str:
    """``{{ versions|join_text(", ") }}``: the values as one text, escaped on output like any
    other (Jinja's own ``join`` escapes with markupsafe alone, so the templates do not use it)."""
    return sep.join(str(v) for v in values)


@functools.cache
def environment() -> jinja2.Environment:
    """Built once per process, on the first page: autoescaping, strict names, our escape."""
    import jinja2

    loader: jinja2.BaseLoader = jinja2.FileSystemLoader(str(TEMPLATES))
    if _compiled_by() == getattr(jinja2, "__version__", None):
        loader = jinja2.ChoiceLoader([jinja2.ModuleLoader(str(COMPILED)), loader])
    env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=text,  # every {{ value }} not already markup goes through escape.h
        auto_reload=False,  # templates do not change under a running function
    )
    env.filters.update(text=text, lines=lines, label=label, join_text=join_text, human_time=human_time,
                       short_time=short_time, human_size=human_size)
    return env


def _compiled_by() -> str | None:
    """The Jinja2 version that precompiled the templates shipped beside us, if any."""
    try:
        return (COMPILED / COMPILED_VERSION).read_text().strip()
    except OSError:
        return None


def render(name: str, **context: Any) -> str:
    """Render one template of reports/templates/ with ``context``."""
    return environment().get_template(name).render(**context)
