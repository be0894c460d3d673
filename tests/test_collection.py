"""Every test file is collected: pytest skips folders matching `norecursedirs` without a word
(its default list has `build`, and tests/pipeline/build once went unrun)."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_test_folder_is_one_pytest_skips(pytestconfig):
    patterns = pytestconfig.getini("norecursedirs")
    skipped = {str(path.relative_to(TESTS)): part for path in TESTS.rglob("test_*.py")
               for part in path.relative_to(TESTS).parts[:-1] if any(fnmatch(part, p) for p in patterns)}
    assert skipped == {}, f"pytest never collects these (norecursedirs {patterns}): {skipped}"
