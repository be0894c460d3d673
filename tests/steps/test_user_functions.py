"""The user-function contracts in steps/user_functions.py are what docs/functions.md says."""

from __future__ import annotations

import inspect

import pytest

from steps.user_functions import CONTRACTS
from tests.conftest import ROOT

PAGE = (ROOT / "docs" / "functions.md").read_text()


def quoted(text: str) -> str:
    """The page's blockquote of a docstring."""
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


class TestValidContracts:
    @pytest.mark.parametrize("title", sorted(CONTRACTS))
    def test_docs_page_quotes_the_docstring(self, title):
        doc = inspect.getdoc(CONTRACTS[title].__call__)
        assert f"### {title}\n\n{quoted(doc)}\n" in PAGE

    @pytest.mark.parametrize("title", sorted(CONTRACTS))
    def test_each_says_what_it_gets_returns_where_it_runs_and_an_example(self, title):
        doc = inspect.getdoc(CONTRACTS[title].__call__)
        for part in ("arguments:", "return", "runs ", "may read", "example"):
            assert part in doc.lower(), f"{title}: no {part!r}"

    @pytest.mark.parametrize("title", sorted(CONTRACTS))
    def test_example_defines_the_function(self, title):
        doc = inspect.getdoc(CONTRACTS[title].__call__)
        example = inspect.cleandoc(doc.split("Example", 1)[1].split("\n", 1)[1])
        scope: dict = {}
        exec(compile(example, f"<{title} example>", "exec"), scope)  # imports resolve, the code parses
        assert any(inspect.isfunction(v) for v in scope.values())
