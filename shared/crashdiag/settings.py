"""All settings in one place: an explicit argument beats the environment, which
beats the default. Nothing else in the package reads os.environ."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

LANGS = ("en", "zh")


@dataclass(frozen=True)
class Settings:
    lang: str = "en"  # CRASHDIAG_LANG: language of causes, remedies and messages

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: str) -> Settings:
        env = os.environ if env is None else env
        lang = overrides.get("lang") or env.get("CRASHDIAG_LANG") or cls.lang
        if lang not in LANGS:
            raise ValueError(f"CRASHDIAG_LANG must be one of {', '.join(LANGS)}, not {lang!r}")
        return cls(lang=lang)
