import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared.problems import DipEdgeError
from shared.settings import (
    DEFAULT_ATLAS_BASE_URL,
    SETTINGS,
    Setting,
    SettingIssue,
    Settings,
    load_settings,
)
from tests.support.functions import call_http

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_with_nothing_configured():
    settings = load_settings({})
    assert settings.errors == ()
    assert settings.secret_store == "local"
    assert settings.inbox_backend == "sqlite"
    assert settings.atlas_base_url == DEFAULT_ATLAS_BASE_URL
    assert settings.expiry_warning_days == 30
    assert settings.webhook_max_body_bytes == 4194304
    assert settings.aia_fetch is False


def test_derived_defaults_follow_what_is_configured():
    settings = load_settings({"KEY_VAULT_URL": "https://kv.vault.azure.net/",
                              "INBOX_STORAGE": "UseDevelopmentStorage=true",
                              "WEBSITE_SITE_NAME": "app"})
    assert settings.secret_store == "keyvault"
    assert settings.key_vault_url == "https://kv.vault.azure.net"
    assert settings.inbox_backend == "blob"
    assert settings.aia_fetch is True  # on by default in Azure


def test_bad_values_are_recorded_not_raised():
    settings = load_settings({"EXPIRY_WARNING_DAYS": "soon", "DIP_SIGNATURE_MODE": "maybe",
                              "KEY_VAULT_URL": "http://insecure", "DIP_CLIENT_TRUST_ANCHORS":
                              "/no/such/file.pem", "SECRET_STORE": "keyvault"})
    text = "\n".join(settings.errors)
    assert "EXPIRY_WARNING_DAYS: must be a whole number" in text
    assert "DIP_SIGNATURE_MODE: must be one of required, optional, off" in text
    assert "KEY_VAULT_URL: must be an https:// URL" in text
    assert "DIP_CLIENT_TRUST_ANCHORS: is neither inline PEM nor the path" in text
    assert "KEY_VAULT_URL: must be set when SECRET_STORE is keyvault" in text
    assert settings.expiry_warning_days == 30  # falls back to the default


def test_values_the_url_and_path_readers_refuse_are_issues_not_exceptions(app_env):
    # urlsplit raises ValueError for an unclosed IPv6 bracket, a port is checked only when
    # read, and Path.is_file raises OSError for a name too long to stat: each stopped
    # load_settings (and so the import of function_app and every command) with a traceback.
    bad = {"KEY_VAULT_URL": "https://[::1", "ATLAS_BASE_URL": "https://atlas.example:99999",
           "DIP_PUBLIC_BASE_URL": "https://[edge.example", "PFX_TRUSTED_ISSUERS": "x" * 5000,
           "DIP_CLIENT_IDENTITIES": "r" * 300}
    settings = load_settings(bad)
    assert sorted(issue.name for issue in settings.issues) == sorted(bad)
    text = "\n".join(settings.errors)
    assert "KEY_VAULT_URL: must be an https:// URL" in text
    assert "ATLAS_BASE_URL: must be an https:// URL" in text
    assert "DIP_PUBLIC_BASE_URL: must be a URL such as https://host[:port]" in text
    assert "PFX_TRUSTED_ISSUERS: is neither inline PEM nor the path of a file" in text
    assert "DIP_CLIENT_IDENTITIES: is neither inline JSON nor the path of a file" in text
    app_env(**bad)
    resp = call_http("health", "GET", "http://localhost/api/health")
    assert resp.status_code == 503
    assert json.loads(resp.get_body())["status"] == "misconfigured"


def test_import_function_app_needs_no_settings():
    env = {"PATH": "/usr/bin:/bin"}
    code = "import function_app; print(len(function_app.app.get_functions()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True)
    assert int(out.stdout) >= 3


def test_example_settings_list_every_setting_and_nothing_else():
    values = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    ours = {k for k in values if k not in {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage"}}
    assert ours == {s.name for s in SETTINGS}


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, re.M))
    assert {s.name for s in SETTINGS} <= documented


def test_health_reports_bad_settings(app_env):
    app_env(EXPIRY_WARNING_DAYS="-3")
    resp = call_http("health", "GET", "http://localhost/api/health")
    assert resp.status_code == 503
    doc = json.loads(resp.get_body())
    assert doc["status"] == "misconfigured"
    assert any(e.startswith("EXPIRY_WARNING_DAYS") for e in doc["errors"])


def test_health_ok(app_env, dip_pki):
    app_env(**dip_pki.env())
    resp = call_http("health", "GET", "http://localhost/api/health")
    assert resp.status_code == 200, resp.get_body()
    doc = json.loads(resp.get_body())
    assert doc["configuration"]["secretStore"] == "local"
    trust = doc["configuration"]["trust"]
    assert trust["client"]["identities"] == {
        "mode": "rules", "setting": "DIP_CLIENT_IDENTITIES", "rules": 1}
    assert trust["signer"]["identities"]["setting"] == "DIP_SIGNER_IDENTITIES"
    assert trust["client"]["anchors"]["source"] == "DIP_CLIENT_TRUST_ANCHORS"
    assert [a["subject"] for a in trust["client"]["anchors"]["certificates"]] == [
        dip_pki.root.certificate.subject.rfc4514_string()]
    assert doc["warnings"] == []


def test_health_is_misconfigured_without_identity_rules_and_says_what_to_set(app_env):
    resp = call_http("health", "GET", "http://localhost/api/health")
    assert resp.status_code == 503
    doc = json.loads(resp.get_body())
    assert doc["status"] == "misconfigured"
    (error,) = doc["errors"]
    assert "set DIP_CLIENT_IDENTITIES and DIP_SIGNER_IDENTITIES" in error
    trust = doc["configuration"]["trust"]
    assert trust["client"]["identities"]["mode"] == "missing"
    assert trust["client"]["anchors"]["source"] == "bundled GlobalSign roots"
    assert all("GlobalSign" in a["subject"] and len(a["sha256"]) == 64
               for a in trust["client"]["anchors"]["certificates"])


def test_health_reports_trust_settings_that_cannot_be_built(app_env):
    # Readable, well-formed JSON, but not identity rules: found when the policy is built.
    app_env(DIP_CLIENT_IDENTITIES='[{"thumbprnt": "AB"}]')
    resp = call_http("health", "GET", "http://localhost/api/health")
    assert resp.status_code == 503
    errors = json.loads(resp.get_body())["errors"]
    assert any("DIP_CLIENT_IDENTITIES" in e for e in errors), errors


def test_health_shows_the_any_opt_out_as_a_warning(app_env):
    app_env(DIP_CLIENT_IDENTITIES="any")
    resp = call_http("health", "GET", "http://localhost/api/health")
    assert resp.status_code == 200
    doc = json.loads(resp.get_body())
    assert any(w.startswith("DIP_CLIENT_IDENTITIES=any:") for w in doc["warnings"])
    assert any("inherited" in w and "signing certificate" in w for w in doc["warnings"])
    assert doc["configuration"]["trust"]["client"]["identities"]["mode"] == "any"


def test_health_lists_every_bad_value_once(app_env):
    # Issue 13: EXPIRY_WARNING_DAYS was listed three times (settings, then once per trust
    # policy it stopped), and the identity rules' error behind it was never shown.
    app_env(EXPIRY_WARNING_DAYS="abc", MONITOR_SCHEDULE="0 0 6 * *",
            ATLAS_TIMEOUT_SECONDS="soon", DIP_CLIENT_IDENTITIES='[{"thumbprnt": "AB"}]')
    resp = call_http("health", "GET", "http://localhost/api/health")
    assert resp.status_code == 503
    errors = json.loads(resp.get_body())["errors"]
    for name in ("EXPIRY_WARNING_DAYS", "MONITOR_SCHEDULE", "ATLAS_TIMEOUT_SECONDS",
                 "DIP_CLIENT_IDENTITIES"):
        assert sum(name in e for e in errors) == 1, (name, errors)
    assert len(errors) == 4, errors


def test_credential_api_reports_the_bad_setting_it_reads(app_env):
    app_env(EXPIRY_WARNING_DAYS="abc")
    body = json.dumps({"apiKey": "k", "apiSecret": "s", "pfx": "", "pfxPassword": ""})
    resp = call_http("credentials_validate", "POST", "http://localhost/api/credentials/validate",
                     body=body.encode(), headers={"Content-Type": "application/json"})
    doc = json.loads(resp.get_body())
    assert (resp.status_code, doc["code"]) == (500, "config.invalid")
    assert doc["detail"].startswith("EXPIRY_WARNING_DAYS: must be a whole number")


def test_monitor_schedule_is_checked_by_the_ncrontab_parser():
    assert load_settings({"MONITOR_SCHEDULE": "0 */5 * * * *"}).issues == ()
    for bad, words in (("0 0 6 * *", "6 fields"), ("0 0 25 * * *", "outside 0-23"),
                       ("0 0 0 31 2 *", "never fires")):
        issues = load_settings({"MONITOR_SCHEDULE": bad}).issues
        assert [i.name for i in issues] == ["MONITOR_SCHEDULE"]
        assert words in issues[0].message, issues


def test_issues_are_values_naming_their_setting():
    settings = load_settings({"EXPIRY_WARNING_DAYS": "soon", "EXPIRY_ERROR_DAYS": "40"})
    assert settings.issues == (
        SettingIssue("EXPIRY_WARNING_DAYS", "must be a whole number, got 'soon'"),
        SettingIssue("EXPIRY_ERROR_DAYS", "must not exceed EXPIRY_WARNING_DAYS"))
    assert settings.issues_for(Settings.expiry_error_days) == settings.issues[1:]
    with pytest.raises(DipEdgeError) as caught:
        settings.require(Settings.dip_client_eku, Settings.expiry_warning_days)
    assert caught.value.code == "config.invalid"
    assert str(caught.value) == "EXPIRY_WARNING_DAYS: must be a whole number, got 'soon'"
    settings.require(Settings.dip_client_eku)  # no issue: no error
    assert settings.without_issues(Settings.expiry_warning_days).issues == settings.issues[1:]


def _bad_value(setting: Setting) -> str | None:
    """A value the setting's parser refuses, if it refuses any."""
    for candidate in ("abc", "/no/such/file", "bad name!", "-5"):
        if load_settings({setting.name: candidate}).issues_for(setting):
            return candidate
    return None


def _components(tmp_path):
    """Each component that reads settings: how it is built, and what it declares."""
    from shared.atlas.client import AtlasConnection
    from shared.certs.pfx_check import PfxPolicy
    from shared.certs.trust import TrustPolicy
    from shared.certs.trust_config import TRUST_SETTINGS
    from shared.dip.inbox import INBOX_SETTINGS, open_inbox
    from shared.dip.signature import SignatureVerifier
    from shared.services import monitor, webhook
    from shared.vault import STORE_SETTINGS, open_store
    from shared.vault.credentials import CREDENTIAL_SET_SETTINGS, load_metadata

    def client_policy(settings):
        TrustPolicy.for_client(settings)

    client = (*(s for s in TRUST_SETTINGS if s.name.startswith("DIP_CLIENT_")),
              Settings.aia_fetch, Settings.aia_allowed_hosts)
    return {
        "atlas connection": (AtlasConnection.from_settings, AtlasConnection.SETTINGS),
        "pfx policy": (PfxPolicy.from_settings, PfxPolicy.SETTINGS),
        "client trust": (client_policy, client),
        "signer trust": (TrustPolicy.for_signer, TRUST_SETTINGS),
        "signature": (SignatureVerifier.from_settings,
                      (*SignatureVerifier.SETTINGS, *TRUST_SETTINGS)),
        "secret store": (open_store, STORE_SETTINGS),
        "credential set": (lambda s: load_metadata(open_store(s), s),
                           (*STORE_SETTINGS, *CREDENTIAL_SET_SETTINGS)),
        "inbox": (lambda s: open_inbox(s).close(), INBOX_SETTINGS),
        "webhook": (webhook.components, (*webhook.WEBHOOK_SETTINGS, *SignatureVerifier.SETTINGS,
                                         *TRUST_SETTINGS, *INBOX_SETTINGS)),
        "monitor thresholds": (lambda s: s.require(*monitor.MONITOR_SETTINGS),
                               monitor.MONITOR_SETTINGS),
    }


def test_each_component_validates_exactly_the_settings_it_reads(tmp_path):
    # Issue 11: hand-kept lists had drifted (a bad ATLAS_TIMEOUT_SECONDS was config.invalid
    # in the credential API, silently defaulted elsewhere; a bad EXPIRY_WARNING_DAYS
    # stopped the webhook). Each component now fails for exactly the settings it declares.
    # Identity rules switched off: without any the trust components fail closed (issue 17).
    base = {"DIP_EDGE_STATE_DIR": str(tmp_path), "DIP_CLIENT_IDENTITIES": "any"}
    bad_values = {s: v for s in SETTINGS if (v := _bad_value(s)) is not None}
    assert len(bad_values) > 30  # every typed setting can be refused
    for component, (build, declared) in _components(tmp_path).items():
        settings = load_settings(base)
        with settings.recording() as reads:
            build(settings)
        assert reads <= {s.name for s in declared}, (component, reads)
        for setting, value in bad_values.items():
            settings = load_settings({**base, setting.name: value})
            if setting in declared:
                with pytest.raises(DipEdgeError) as caught:
                    build(settings)
                assert caught.value.code == "config.invalid", (component, setting)
                assert setting.name in str(caught.value), (component, setting)
            else:
                build(settings)  # a bad value elsewhere does not stop this component


def test_declarations_have_a_doc_and_an_example_that_parses():
    for setting in SETTINGS:
        assert setting.doc.endswith("."), setting
        if setting.example:
            assert load_settings({setting.name: setting.example}).issues_for(setting) == (), \
                setting


def test_example_settings_are_the_declared_examples():
    values = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert {s.name: values[s.name] for s in SETTINGS} == {s.name: s.example for s in SETTINGS}


def test_readme_settings_table_is_the_declaration():
    readme = (ROOT / "README.md").read_text()
    rows = [f"| `{s.name}` | {s.doc} | {f'`{s.default}`' if s.default else '—'} |"
            for s in SETTINGS]
    table = "| setting | meaning | default |\n| --- | --- | --- |\n" + "\n".join(rows) + "\n"
    assert table in readme, "README's settings table differs from shared/settings.py:\n" + table


@pytest.mark.parametrize(("env", "expected"), [
    ({"WEBSITE_SITE_NAME": "app", "WEBSITE_HOSTNAME": "app.azurewebsites.net"},
     "https://app.azurewebsites.net"),
    ({"WEBSITE_SITE_NAME": "app", "WEBSITE_HOSTNAME": "app.azurewebsites.net",
      "DIP_PUBLIC_BASE_URL": "https://dip.example.com"}, "https://dip.example.com"),
    ({"WEBSITE_HOSTNAME": "app.azurewebsites.net"}, None),  # not in Azure: the request's URL
    ({"WEBSITE_SITE_NAME": "app"}, None),
    ({"WEBSITE_SITE_NAME": "app", "WEBSITE_HOSTNAME": "bad host/"}, None),
])
def test_public_base_url_defaults_to_the_apps_own_hostname_in_azure(env, expected):
    settings = load_settings(env)
    assert settings.dip_public_base_url == expected
    assert settings.issues == ()


def test_an_unexpected_error_is_logged_with_its_place_never_its_message(app_env, monkeypatch,
                                                                         caplog):
    from shared.services import health

    def broken(request, settings):
        raise RuntimeError("token=s3cr3t")

    monkeypatch.setattr(health, "check", broken)
    resp = call_http("health", "GET", "http://localhost/api/health")
    assert (resp.status_code, json.loads(resp.get_body())["code"]) == (500, "internal.error")
    assert "unhandled RuntimeError in health at tests/test_settings.py:" in caplog.text
    assert "in broken" in caplog.text and "s3cr3t" not in caplog.text + resp.get_body().decode()
