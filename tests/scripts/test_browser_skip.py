"""The browser tests have a skip variable, as PostgreSQL and nginx do (issue 16, item 5)."""

from __future__ import annotations

import pytest

from support.web import chromium_path


def test_skip_browser_skips_instead_of_failing(monkeypatch):
    monkeypatch.setenv("TEST_SKIP_BROWSER", "1")
    monkeypatch.setenv("CHROMIUM_BIN", "/nonexistent/chromium")

    with pytest.raises(pytest.skip.Exception, match="TEST_SKIP_BROWSER=1"):
        chromium_path()


def test_a_missing_browser_fails_and_names_the_skip_variable(monkeypatch):
    monkeypatch.delenv("TEST_SKIP_BROWSER", raising=False)
    monkeypatch.setenv("CHROMIUM_BIN", "/nonexistent/chromium")

    with pytest.raises(RuntimeError, match="TEST_SKIP_BROWSER=1"):
        chromium_path()


def test_ci_runs_the_browser_tests():
    from support.paths import ROOT

    ci = (ROOT / ".ci" / "run").read_text()
    assert "unset TEST_SKIP_BROWSER" in ci
