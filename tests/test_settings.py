import json
import re
import subprocess
import sys
from pathlib import Path

from shared.settings import DEFAULT_ATLAS_BASE_URL, SETTINGS, load_settings
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


def test_health_ok(app_env):
    resp = call_http("health", "GET", "http://localhost/api/health")
    assert resp.status_code == 200
    assert json.loads(resp.get_body())["configuration"]["secretStore"] == "local"


def test_health_reports_trust_settings_that_cannot_be_built(app_env):
    # Readable, well-formed JSON, but not identity rules: found when the policy is built.
    app_env(DIP_CLIENT_IDENTITIES='[{"thumbprnt": "AB"}]')
    resp = call_http("health", "GET", "http://localhost/api/health")
    assert resp.status_code == 503
    errors = json.loads(resp.get_body())["errors"]
    assert any("DIP_CLIENT_IDENTITIES" in e for e in errors), errors


def test_health_warns_when_no_identity_rules_pin_the_dip(app_env):
    doc = json.loads(call_http("health", "GET", "http://localhost/api/health").get_body())
    assert any("no identity rules" in w for w in doc["warnings"])
