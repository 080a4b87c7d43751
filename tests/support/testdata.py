"""The external test suites in ``shared/testdata`` beside the checkout (used by path, never
copied): the nearest ancestor directory that has one, so ``/work/main`` and worktrees such as
``/work/wt/<name>`` both find ``/work/shared/testdata``."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def shared_testdata(*parts: str) -> Path:
    for ancestor in REPO.parents:
        root = ancestor / "shared" / "testdata"
        if root.is_dir():
            return root.joinpath(*parts)
    return REPO.parent.joinpath("shared", "testdata", *parts)  # absent: the tests say so
