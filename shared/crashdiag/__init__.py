"""ecs-crashdiag: classify Linux kernel crash logs and name the cause and the fix."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["classify_path", "classify_bytes", "classify_text", "LogInputError"]


def __getattr__(name: str):
    # Lazy: importing the package (e.g. from a Function Compute handler) costs nothing
    # until the classifier is used.
    if name in ("classify_path", "classify_bytes", "classify_text"):
        from .classifier import classify

        return getattr(classify, name)
    if name == "LogInputError":
        from .classifier.logtext import LogInputError

        return LogInputError
    raise AttributeError(name)
