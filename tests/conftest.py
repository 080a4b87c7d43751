"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest

from shared.settings import get_settings
from tests.support.azurite import start_azurite


@pytest.fixture(scope="session")
def azurite():
    """A private Azurite for this test process (each xdist worker has its own)."""
    instance = start_azurite()
    yield instance
    instance.stop()


@pytest.fixture
def app_env(monkeypatch, tmp_path):
    """Settings for the function app under test: a private state dir, re-read per test.

    Returns a setter: ``app_env(NAME="value", ...)`` updates the environment and clears
    the cached settings so the next function call reads them.
    """
    monkeypatch.setenv("DIP_EDGE_STATE_DIR", str(tmp_path / "state"))
    for name in ("KEY_VAULT_URL", "SECRET_STORE", "INBOX_STORAGE", "INBOX_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield set_env
    get_settings.cache_clear()
