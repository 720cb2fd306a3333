"""Guilty-frame agreement with syzkaller on the peer cases (tests/cases/syzkaller/).

syzkaller's own expected title for each log is kept in the case's NOTE header
("syzkaller title: KASAN: use-after-free Read in tcp_v4_rcv"). Where that title names a
frame (the words after its last " in "), we compare it with the frame our title names.
`python bench/frames.py -v` lists the disagreements.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))
sys.path.insert(0, str(ROOT / "tests"))


def title_frame(title: str) -> str | None:
    """The frame a crash title names: what follows its last " in ", or None."""
    head, sep, frame = title.rpartition(" in ")
    if not sep or not frame or " " in frame.strip():
        return None
    return frame.strip()


def agreement(verbose: bool = False) -> tuple[int, int]:
    """(cases where our frame equals syzkaller's, cases where syzkaller names a frame)."""
    from corpus import load_case
    from crashdiag.classifier.classify import classify_bytes

    agree = total = 0
    for path in sorted((ROOT / "tests" / "cases" / "syzkaller").glob("*.txt")):
        case = load_case(path)
        notes = [n for n in case.get("NOTE") if n.startswith("syzkaller title: ")]
        if not notes:
            continue
        theirs = title_frame(notes[0].removeprefix("syzkaller title: "))
        if theirs is None:
            continue
        total += 1
        ours_title = classify_bytes(case.log, source=path.name)["title"]
        ours = title_frame(ours_title)
        if ours == theirs:
            agree += 1
        elif verbose:
            print(f"{path.name}: syzkaller {theirs!r} / ours {ours!r} ({ours_title})")
    return agree, total


if __name__ == "__main__":
    a, t = agreement("-v" in sys.argv)
    print(f"guilty frame agrees with syzkaller on {a} of {t} cases ({100 * a / max(t, 1):.0f}%)")
