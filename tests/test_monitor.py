"""The expiry monitor through its real interfaces: ``dip-edge monitor``, the ``monitor`` timer
function, and ``GET /api/credentials``; stores are the local store, the fake Key Vault and
Azurite; Atlas is the fake."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from azure.functions.timer import TimerRequest

from shared.certs.devpki import SERVER_AUTH, issue
from shared.cli import main
from shared.services.monitor import run_checks
from shared.settings import Settings, get_settings
from tests.support.fake_atlas import FakeAtlas
from tests.support.functions import call_http, user_function
from tests.support.leaks import assert_no_secrets

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "fedcba9876543210"
API_SECRET = "monitor-secret-0123456789abcdef0123456789"


@pytest.fixture(scope="module")
def atlas():
    with FakeAtlas() as fake:
        fake.year = fake.new_client_certificate("acme-atlas-year", days=365)
        fake.week = fake.new_client_certificate("acme-atlas-week", days=5)
        fake.add_account(API_KEY, API_SECRET, fake.year, fake.week)
        yield fake


@pytest.fixture
def env(app_env, atlas, monkeypatch):
    atlas.reset()
    for name in ("EVENTS_STORAGE", "MONITOR_REPROVE_ATLAS", "SECRET_NAME_SIGNING_CERT",
                 "SECRET_NAME_TLS_CERT", "EXPIRY_WARNING_DAYS", "EXPIRY_ERROR_DAYS",
                 "EXPIRY_WARNING_FRACTION", "EXPIRY_ERROR_FRACTION",
                 *(n for n in os.environ if n.startswith(("DIP_CLIENT_", "DIP_SIGNER_")))):
        monkeypatch.delenv(name, raising=False)
    app_env(ATLAS_MAX_RETRIES="0", **atlas.env())
    return app_env


def store():
    from shared.vault import open_store

    return open_store(get_settings())


def save(issued) -> None:
    from shared.certs.facts import to_passwordless_pfx
    from shared.certs.pfx_check import PfxPolicy, check_pfx
    from shared.vault.credentials import save_credentials

    report = check_pfx(issued.pfx(), None, PfxPolicy.from_settings(get_settings()))
    assert report.valid, report.errors
    save_credentials(store(), get_settings(), api_key=API_KEY, api_secret=API_SECRET,
                     pfx_passwordless=to_passwordless_pfx(report), facts=report.certificate)


def line(report, fragment):
    (found,) = [c for c in report.credentials if fragment in c.credential]
    return found


def test_thresholds_grade_the_stored_pfx(env, atlas):
    env(EXPIRY_WARNING_FRACTION="0", EXPIRY_ERROR_FRACTION="0")  # days only
    save(atlas.year)
    not_after = atlas.year.certificate.not_valid_after_utc
    for days_before, level in ((200, "ok"), (30, "warning"), (8, "warning"), (7, "error"),
                               (1, "error"), (-3, "error")):
        report = run_checks(get_settings(), now=not_after - timedelta(days=days_before, hours=1))
        pfx = line(report, "GlobalSign Atlas PFX (globalsign-pfx)")
        assert (pfx.level, pfx.subject) == (level, "acme-atlas-year"), days_before
        assert report.level == level
    assert pfx.detail.startswith("expired") and pfx.days_left < 0
    issuer = line(report, "issuer in globalsign-pfx")  # the chain inside the PFX
    assert issuer.subject == "Fake Atlas mTLS Issuing CA"


def test_a_fraction_of_the_lifetime_warns_first_on_long_lives(env, atlas):
    # Defaults: warn at 30 days or 30% of the lifetime left, error at 7 days or 5%.
    save(atlas.year)
    not_after = atlas.year.certificate.not_valid_after_utc
    for days_before, level in ((120, "ok"), (100, "warning"), (31, "warning"),
                               (17, "error")):
        pfx = line(run_checks(get_settings(), now=not_after - timedelta(days=days_before)),
                   "Atlas PFX")
        assert pfx.level == level, days_before
        assert pfx.kind == "atlas_pfx" and pfx.lifetime_days in (364, 365)
    assert pfx.fraction_left == pytest.approx(17 / pfx.lifetime_days, abs=0.01)
    assert "of its lifetime" in pfx.detail
    # The issuing CA inside the PFX is graded by days only (a fraction of a CA's life is
    # years): never warned about for its lifetime share.
    issuer = line(run_checks(get_settings(), now=not_after - timedelta(days=100)),
                  "issuer in globalsign-pfx")
    assert issuer.fraction_left is None and issuer.kind == "atlas_pfx_issuer"


def test_on_short_lives_the_fixed_days_come_first(env, atlas):
    # A 47-day certificate (public TLS from March 2029): 30 days left is 64% of its life,
    # so the days threshold warns first; 5% is 2.35 days, so 7 days errs first.
    short = atlas.new_client_certificate("acme-atlas-47d", days=47)
    save(short)
    not_after = short.certificate.not_valid_after_utc
    for days_before, level in ((31, "ok"), (29, "warning"), (6, "error")):
        pfx = line(run_checks(get_settings(), now=not_after - timedelta(days=days_before)),
                   "Atlas PFX")
        assert pfx.level == level, days_before


def test_fraction_settings_are_checked(env):
    env(EXPIRY_WARNING_FRACTION="0.1", EXPIRY_ERROR_FRACTION="0.2")
    assert get_settings().issues_for(Settings.expiry_error_fraction)
    report = run_checks(get_settings())
    assert line(report, "monitor settings").level == "error"
    env(EXPIRY_WARNING_FRACTION="1.5", EXPIRY_ERROR_FRACTION="0.05")
    assert get_settings().issues_for(Settings.expiry_warning_fraction)


def test_thresholds_follow_the_settings(env, atlas):
    env(EXPIRY_WARNING_DAYS="60", EXPIRY_ERROR_DAYS="45", EXPIRY_WARNING_FRACTION="0",
        EXPIRY_ERROR_FRACTION="0")
    save(atlas.year)
    not_after = atlas.year.certificate.not_valid_after_utc
    for days, level in ((61, "ok"), (50, "warning"), (45, "error")):
        now = not_after - timedelta(days=days, hours=1)
        assert line(run_checks(get_settings(), now=now), "Atlas PFX").level == level


def test_nothing_stored_is_a_warning_and_the_default_anchors_are_watched(env):
    report = run_checks(get_settings())
    assert line(report, "Atlas PFX").detail == "no GlobalSign credentials are stored"
    anchors = [c for c in report.credentials if "trust anchor" in c.credential]
    assert len(anchors) == 6  # the bundled GlobalSign roots, each listed once
    assert all(c.credential == "DIP client trust anchor, DIP signer trust anchor"
               for c in anchors)
    assert report.level == "warning"


def test_configured_anchors_and_pins_are_graded(env, dip_pki):
    env(**dip_pki.env())
    now = dip_pki.intermediate.certificate.not_valid_after_utc - timedelta(days=3)
    report = run_checks(get_settings(), now=now)
    intermediate = next(c for c in report.credentials
                        if c.subject == "GlobalSign Test Atlas R46 TLS CA 2026 Q2")
    assert intermediate.level == "error"
    assert intermediate.credential == "DIP client pinned certificate, DIP signer pinned certificate"
    root = next(c for c in report.credentials if c.subject == "GlobalSign Test Root R46")
    assert root.level == "ok" and "pinned trust anchor" in root.credential


def test_a_broken_trust_setting_is_an_error_line(env, tmp_path):
    leaf = issue("not a CA", days=30)
    path = tmp_path / "leaf.pem"
    path.write_bytes(leaf.cert_pem())
    env(DIP_CLIENT_TRUST_ANCHORS=str(path))
    report = run_checks(get_settings())
    policy = line(report, "DIP client certificate policy")
    assert policy.level == "error" and policy.detail.startswith("config.invalid")


def test_signing_and_tls_certificates_in_the_store(env, atlas):
    signer = issue("dip-signing.acme.example", days=3)
    tls = issue("webhook.acme.example", days=90, ekus=(SERVER_AUTH,))
    store().set_secret("dip-signing", signer.cert_pem().decode(),
                       content_type="application/x-pem-file")
    store().set_secret("webhook-tls", base64.b64encode(tls.pfx()).decode(),
                       content_type="application/x-pkcs12")
    store().set_secret("garbled", "neither pem nor pfx")
    env(SECRET_NAME_SIGNING_CERT="dip-signing", SECRET_NAME_TLS_CERT="webhook-tls")
    report = run_checks(get_settings())
    assert line(report, "DIP signing certificate (dip-signing)").level == "error"
    assert line(report, "webhook TLS certificate (webhook-tls)").level == "ok"
    env(SECRET_NAME_SIGNING_CERT="garbled", SECRET_NAME_TLS_CERT="missing")
    report = run_checks(get_settings())
    assert "neither PEM" in line(report, "(garbled)").detail
    assert line(report, "(missing)").detail.startswith("secrets.not_found")


def test_reproving_atlas_catches_revoked_access(env, atlas, caplog):
    env(MONITOR_REPROVE_ATLAS="true")
    save(atlas.year)
    report = run_checks(get_settings())
    assert line(report, "Atlas login").level == "ok" and report.atlas["proven"] is True
    atlas.accounts[API_KEY].api_secret = "rotated-at-globalsign"
    try:
        report = run_checks(get_settings())
    finally:
        atlas.accounts[API_KEY].api_secret = API_SECRET
    login = line(report, "Atlas login")
    assert login.level == "error" and login.detail.startswith("globalsign.invalid_credentials")
    atlas.busy(times=5)
    assert line(run_checks(get_settings()), "Atlas login").level == "warning"
    assert_no_secrets(caplog.text + json.dumps(report.to_dict()), API_SECRET)


# --- the command ----------------------------------------------------------------------------


def test_cli_exit_codes_and_table(env, atlas, capsys):
    save(atlas.year)
    assert main(["monitor"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["credential", "subject", "not", "after", "days",
                                             "left", "level"]
    assert "acme-atlas-year" in table and "OK" in table
    save(atlas.week)  # the current set now expires in 5 days
    assert main(["monitor", "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["level"] == "error" and document["counts"]["error"] == 1
    pfx = next(c for c in document["credentials"] if c["subject"] == "acme-atlas-week")
    assert (pfx["level"], pfx["daysLeft"]) == ("error", 4)


def test_cli_as_a_pipeline_runs_it(env, atlas, tmp_path):
    save(atlas.week)
    run = subprocess.run([str(Path(sys.executable).parent / "dip-edge"), "monitor"],
                         env={**os.environ}, capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    assert "ERROR" in run.stdout and "expires in 4 day(s)" in run.stdout
    assert_no_secrets(run.stdout + run.stderr, API_SECRET)


# --- the timer and the API ------------------------------------------------------------------


def test_the_timer_logs_one_summary_and_the_api_shows_the_latest(env, atlas, caplog):
    save(atlas.week)
    assert json.loads(call_http("credentials", "GET", "/api/credentials").get_body())[
        "monitor"] is None
    caplog.set_level(logging.INFO)
    user_function("monitor")(TimerRequest(past_due=False))
    (summary,) = [r for r in caplog.records if r.name == "dip_edge.monitor"]
    assert summary.levelno == logging.ERROR
    fields = summary.custom_dimensions
    assert json.loads(summary.getMessage()) == fields  # the message is the same fields
    assert (fields["record"], fields["level"], fields["errors"]) == ("monitor", "error", 1)
    assert (fields["nearest"], fields["nearestDaysLeft"]) == (
        "GlobalSign Atlas PFX (globalsign-pfx)", 4)
    pfx = fields["credentials"][0]
    assert (pfx["kind"], pfx["level"], pfx["daysLeft"]) == ("atlas_pfx", "error", 4)
    assert {c["kind"] for c in fields["credentials"]} >= {"atlas_pfx", "atlas_pfx_issuer",
                                                          "dip_anchor"}
    described = json.loads(call_http("credentials", "GET", "/api/credentials").get_body())
    assert described["stored"] is True
    assert described["monitor"]["level"] == "error"
    assert described["monitor"]["credentials"][0]["subject"] == "acme-atlas-week"
    assert_no_secrets(caplog.text + json.dumps(described), API_SECRET)


def test_an_unreadable_latest_report_is_shown_as_none_not_a_500(env, atlas):
    from shared.settings import get_settings

    kept = get_settings().state_dir / "reports" / "monitor" / "latest.json"
    kept.parent.mkdir(parents=True)
    kept.write_text('{"level": "ok", "credentials": [')  # torn by a crash mid-write
    response = call_http("credentials", "GET", "/api/credentials")
    assert response.status_code == 200
    assert json.loads(response.get_body())["monitor"] is None


@pytest.mark.azurite
def test_with_storage_the_latest_report_is_a_blob(env, atlas, azurite, fake_keyvault):
    from azure.storage.blob import BlobServiceClient

    container = f"rep-{uuid.uuid4().hex[:12]}"
    env(EVENTS_STORAGE=azurite.connection_string, REPORTS_CONTAINER=container,
        **fake_keyvault.env())
    save(atlas.year)
    user_function("monitor")(TimerRequest(past_due=True))
    blob = BlobServiceClient.from_connection_string(azurite.connection_string) \
        .get_blob_client(container, "monitor/latest.json")
    kept = json.loads(blob.download_blob().readall())
    assert kept["level"] == "ok" and kept["credentials"][0]["subject"] == "acme-atlas-year"
    described = json.loads(call_http("credentials", "GET", "/api/credentials").get_body())
    assert described["monitor"] == kept


def test_an_unreachable_store_is_an_error_line_not_a_crash(env, fake_keyvault):
    env(**fake_keyvault.env())
    fake_keyvault.down = True
    report = run_checks(get_settings())
    assert line(report, "Atlas PFX").detail.startswith("secrets.unavailable")
    assert report.level == "error"


def test_reproving_with_an_unreadable_atlas_ca_bundle_is_an_error_line(env, atlas, tmp_path):
    save(atlas.year)
    garbage = tmp_path / "atlas-ca.pem"
    garbage.write_text("not a certificate")
    env(MONITOR_REPROVE_ATLAS="true", ATLAS_CA_BUNDLE=str(garbage))
    login = line(run_checks(get_settings()), "Atlas login")
    assert login.level == "error" and login.detail.startswith("config.invalid")


def test_a_manifest_naming_no_versions_is_an_error_line(env, atlas, capsys):
    save(atlas.year)
    settings = get_settings()
    manifest = json.loads(store().get_secret(settings.secret_name_credential_set).value)
    store().set_secret(settings.secret_name_credential_set,
                       json.dumps({**manifest, "versions": {"apiKey": 7}}))
    assert main(["monitor"]) == 1
    pfx = line(run_checks(settings), "Atlas PFX")
    assert pfx.level == "error" and pfx.detail.startswith("secrets.unavailable")
