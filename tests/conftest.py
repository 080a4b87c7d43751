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


@pytest.fixture(scope="session")
def dip_pki():
    """A GlobalSign-like test PKI with the DIP's client and signing certificates
    (``tests/support/dip_pki.py``); ``dip_pki.env()`` gives settings that trust it."""
    from tests.support.dip_pki import DipPki

    return DipPki.create()


@pytest.fixture(scope="session")
def atlas_server():
    """The fake GlobalSign Atlas over real mTLS (``tests/support/fake_atlas.py``), one per
    test process; prefer ``fake_atlas``, which resets it around each test."""
    from tests.support.fake_atlas import FakeAtlas

    with FakeAtlas() as server:
        yield server


@pytest.fixture
def fake_atlas(atlas_server):
    """``atlas_server`` with faults, tokens, mode and request log cleared (accounts stay)."""
    atlas_server.reset()
    yield atlas_server
    atlas_server.reset()


@pytest.fixture(scope="session")
def keyvault_server():
    """The fake Key Vault (``tests/support/fake_keyvault.py``), one per test process;
    prefer ``fake_keyvault``, which empties it around each test."""
    from tests.support.fake_keyvault import FakeKeyVault

    with FakeKeyVault() as server:
        yield server


@pytest.fixture
def fake_keyvault(keyvault_server):
    """``keyvault_server``, empty and healthy for this test."""
    keyvault_server.reset()
    yield keyvault_server
    keyvault_server.reset()


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


def pytest_terminal_summary(terminalreporter):
    """Print how many cases the property-based hostile-input tests generated."""
    totals: dict[str, int] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, value in getattr(report, "user_properties", ()):
                # recorded at fixture teardown, so it rides on the teardown report
                if name == "generated_cases" and report.when == "teardown":
                    test = report.nodeid.split("::")[-1]
                    totals[test] = totals.get(test, 0) + value
    if totals:
        terminalreporter.section("generated hostile-input cases")
        for test, count in sorted(totals.items()):
            terminalreporter.write_line(f"{count:6d}  {test}")
        terminalreporter.write_line(f"{sum(totals.values()):6d}  in all")
