"""The Certificate Admin's page and the credential API's browser defences, through the
declared functions: the page's headers and self-containment, the same-origin refusal of
cross-site POSTs (with non-browser callers unaffected), the advice on findings and the
latest event validation reports in ``GET /api/credentials``."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from html.parser import HTMLParser

import pytest
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

from shared.certs.advice import ADVICE
from shared.settings import get_settings
from shared.storage.reports import DirectoryReports, latest_validations
from tests.support.functions import call_http

BASE = "https://ops.example.test"
PASSWORD = "Portal-Http-Pfx-Password-31c9"


class _Page(HTMLParser):
    """Labels (by target id), buttons, inline scripts and styles, and every URL attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: dict[str, str] = {}
        self.inputs: dict[str, dict] = {}
        self.buttons: list[str] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.urls: list[str] = []
        self.script_attrs: list[dict] = []
        self._open: tuple[str, dict] | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href", "action", "formaction"):
            if name in attrs:
                self.urls.append(attrs[name])
        if tag == "input":
            self.inputs[attrs.get("id")] = attrs
        if tag == "script":
            self.script_attrs.append(attrs)
        if tag in ("label", "button", "script", "style"):
            self._open, self._text = (tag, attrs), ""

    def handle_data(self, data):
        if self._open:
            self._text += data

    def handle_endtag(self, tag):
        if not self._open or self._open[0] != tag:
            return
        attrs = self._open[1]
        if tag == "label":
            self.labels[attrs["for"]] = " ".join(self._text.split())
        elif tag == "button":
            self.buttons.append(" ".join(self._text.split()))
        elif tag == "script":
            self.scripts.append(self._text)
        elif tag == "style":
            self.styles.append(self._text)
        self._open = None


def get_portal():
    return call_http("portal", "GET", f"{BASE}/api/portal")


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_portal_is_one_self_contained_page_with_the_dip_fields(app_env):
    response = get_portal()
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    page = _Page()
    page.feed(response.get_body().decode())
    labels = {page.labels[i]: page.inputs[i] for i in page.labels}
    assert {"API key", "API secret", "PFX file", "PFX password"} <= set(labels)
    assert labels["API secret"]["type"] == labels["PFX password"]["type"] == "password"
    assert labels["PFX file"]["type"] == "file"
    for label in ("API key", "API secret", "PFX password", "Function key"):
        assert labels[label]["autocomplete"] == "off", label
    assert page.buttons.count("Validate") == 1 and page.buttons.count("Save") == 1
    # Nothing is fetched from anywhere: no script or style source, no external URL.
    assert len(page.scripts) == 1 and page.script_attrs == [{}]
    assert all(u.startswith(("#", "data:")) for u in page.urls), page.urls
    assert b"http://" not in response.get_body() and b"https://" not in response.get_body()


def test_portal_headers_allow_only_its_own_hashed_script_and_style(app_env):
    response = get_portal()
    page = _Page()
    page.feed(response.get_body().decode())
    policy = dict(d.strip().split(" ", 1) for d in
                  response.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == sha256_source(page.scripts[0])
    assert policy["style-src"] == sha256_source(page.styles[0])
    assert policy["frame-ancestors"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert policy["form-action"] == "'none'" and policy["base-uri"] == "'none'"
    assert policy["require-trusted-types-for"] == "'script'"
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"


def test_portal_holds_no_data_the_same_bytes_before_and_after_a_save(app_env, fake_atlas,
                                                                     account, tmp_path):
    """The page is static: what is stored reaches it only through the keyed API."""
    from shared.services import portal

    app_env(**fake_atlas.env())
    before = get_portal().get_body()
    saved = call_http("credentials", "POST", f"{BASE}/api/credentials",
                      body=json.dumps(account).encode(),
                      headers={"Content-Type": "application/json"})
    assert saved.status_code == 201, saved.get_body()
    reports = DirectoryReports(tmp_path / "state" / "reports")
    reports.put("keyvault/globalsign-pfx/v1.json", {"kind": "secret", "handledAt": "x"})
    portal._document.cache_clear()  # built again, now that a set and a report are stored
    after = get_portal().get_body()
    assert after == before
    thumbprint = json.loads(saved.get_body())["stored"]["thumbprint"]
    assert thumbprint.encode() not in after and account["apiKey"].encode() not in after


# -- the same-origin rule --------------------------------------------------------------------


def post(name: str, headers: dict[str, str], url: str | None = None):
    body = json.dumps({"apiKey": "k", "apiSecret": "s"}).encode()
    path = "credentials/validate" if name == "credentials_validate" else "credentials"
    return call_http(name, "POST", url or f"{BASE}/api/{path}", body=body,
                     headers={"Content-Type": "application/json", **headers})


REFUSED = {
    "a cross-site form post": {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.test",
                               "Cookie": "AppServiceAuthSession=abc"},
    "a same-site page": {"Sec-Fetch-Site": "same-site", "Origin": "https://x.example.test",
                         "X-DIP-Edge-CSRF": "1"},
    "a foreign Origin, even with the header": {"Origin": "https://evil.test",
                                               "X-DIP-Edge-CSRF": "1"},
    "an opaque Origin": {"Origin": "null", "X-DIP-Edge-CSRF": "1"},
    "another port of the same host": {"Origin": "https://ops.example.test:8443",
                                      "X-DIP-Edge-CSRF": "1"},
    "a cookie without the header": {"Cookie": "AppServiceAuthSession=abc"},
    "our Origin without the header": {"Origin": BASE, "Sec-Fetch-Site": "same-origin"},
    "a browser navigation": {"Sec-Fetch-Site": "none", "X-DIP-Edge-CSRF": "1"},
    "an Origin that is not a URL": {"Origin": "https://[::1", "X-DIP-Edge-CSRF": "1"},
    "an Origin with an impossible port": {"Origin": "https://ops.example.test:99999",
                                          "X-DIP-Edge-CSRF": "1"},
    "our host as a prefix of another": {"Origin": "https://ops.example.test.evil.test",
                                        "X-DIP-Edge-CSRF": "1"},
}


@pytest.mark.parametrize("name", ["credentials_validate", "credentials"])
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_browser_requests_from_elsewhere_are_refused_before_any_check(app_env, name, case):
    response = post(name, REFUSED[case])
    assert response.status_code == 403, response.get_body()
    assert response.headers["Content-Type"] == "application/problem+json"
    document = json.loads(response.get_body())
    assert document["code"] == "request.cross_origin"
    assert "errors" not in document  # refused before the submission was even read
    assert not (get_settings().state_dir / "secrets").exists()


ACCEPTED = {
    "curl or a script (no browser headers)": {},
    "the page itself": {"Origin": BASE, "Sec-Fetch-Site": "same-origin",
                        "X-DIP-Edge-CSRF": "1", "Cookie": "AppServiceAuthSession=abc"},
    "the page behind App Service (worker URL is http)": {
        "Origin": BASE, "X-Forwarded-Proto": "https", "Sec-Fetch-Site": "same-origin",
        "X-DIP-Edge-CSRF": "1"},
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_the_page_and_non_browser_callers_reach_the_checks(app_env, case):
    url = ("http://ops.example.test/api/credentials/validate" if "App Service" in case
           else None)
    response = post("credentials_validate", ACCEPTED[case], url)
    assert response.status_code == 422, response.get_body()  # the checks ran: no PFX
    assert "pfx.missing" in [e["code"] for e in json.loads(response.get_body())["errors"]]


# -- what the page shows ---------------------------------------------------------------------


@pytest.fixture
def account(atlas_server):
    issued = atlas_server.new_client_certificate("acme-portal-http")
    pfx = pkcs12.serialize_key_and_certificates(b"acme", issued.private_key,
                                                issued.certificate, issued.chain()[:1],
                                                BestAvailableEncryption(PASSWORD.encode()))
    api_key, api_secret = os.urandom(8).hex(), os.urandom(20).hex()
    atlas_server.add_account(api_key, api_secret, issued)
    return {"apiKey": api_key, "apiSecret": api_secret,
            "pfx": base64.b64encode(pfx).decode(), "pfxPassword": PASSWORD}


def test_every_finding_carries_the_advice_check_pfx_prints(app_env, fake_atlas, account):
    app_env(**fake_atlas.env())
    wrong = {**account, "pfxPassword": "not-the-password"}
    response = call_http("credentials_validate", "POST", f"{BASE}/api/credentials/validate",
                         body=json.dumps(wrong).encode(),
                         headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    (error,) = json.loads(response.get_body())["errors"]
    assert error["code"] == "pfx.wrong_password"
    advice = ADVICE["pfx.wrong_password"]
    assert (error["why"], error["action"]) == (advice.why, advice.for_api)
    assert PASSWORD not in response.get_body().decode()


def test_describe_lists_the_latest_event_validation_reports_newest_first(app_env, tmp_path):
    reports = DirectoryReports(tmp_path / "state" / "reports")
    for n, kind, outcome in ((1, "secret", "passed"), (2, "upload", "failed"),
                             (3, "secret", "failed")):
        prefix = "keyvault/globalsign-pfx" if kind == "secret" else "uploads/pfx.p12"
        subject = ({"name": "globalsign-pfx", "version": f"v{n}"} if kind == "secret"
                   else {"container": "uploads", "blob": "pfx.p12"})
        reports.create(f"{prefix}/v{n}.json", {
            "kind": kind, "outcome": outcome, "handledAt": f"2026-12-0{n}T10:00:00+00:00",
            kind: subject, "errors": [] if outcome == "passed" else
            [{"code": "cert.expired", "detail": "d"}], "warnings": [],
            "certificate": {"subject": "CN=acme", "thumbprintSha1": "AB", "notAfter": "x",
                            "serialNumber": "not shown"}})
        time.sleep(0.01)
    reports.put("monitor/latest.json", {"level": "ok", "credentials": []})  # not an event
    response = call_http("credentials", "GET", f"{BASE}/api/credentials")
    assert response.status_code == 200
    events = json.loads(response.get_body())["events"]
    assert [e["name"] for e in events] == ["keyvault/globalsign-pfx/v3.json",
                                           "uploads/pfx.p12/v2.json",
                                           "keyvault/globalsign-pfx/v1.json"]
    assert events[0]["subject"] == {"name": "globalsign-pfx", "version": "v3"}
    assert events[0]["errors"] == [{"code": "cert.expired", "detail": "d"}]
    assert events[0]["certificate"] == {"subject": "CN=acme", "thumbprintSha1": "AB",
                                        "notAfter": "x"}
    assert latest_validations(get_settings(), limit=1)[0]["name"].endswith("v3.json")


def test_describe_says_when_reports_cannot_be_read(app_env, tmp_path):
    reports = DirectoryReports(tmp_path / "state" / "reports")
    reports.put("uploads/x/1.json", {"kind": "upload"})
    (tmp_path / "state" / "reports" / "uploads" / "x" / "1.json").write_text("{not json")
    response = call_http("credentials", "GET", f"{BASE}/api/credentials")
    assert response.status_code == 200
    assert json.loads(response.get_body())["events"] is None


@pytest.mark.azurite
def test_blob_reports_list_the_latest_validations_too(app_env, azurite):
    """In Azure the reports are blobs: the same listing through the real SDK on Azurite."""
    app_env(EVENTS_STORAGE=azurite.connection_string,
            REPORTS_CONTAINER=f"reports-{os.urandom(4).hex()}")
    from shared.storage.reports import BlobReports, open_reports

    settings = get_settings()
    assert latest_validations(settings) == []  # no container yet
    reports = open_reports(settings)
    assert isinstance(reports, BlobReports)
    for n in range(3):
        reports.create(f"keyvault/globalsign-pfx/v{n}.json",
                       {"kind": "secret", "outcome": "passed", "errors": [], "warnings": [],
                        "handledAt": f"2026-12-0{n + 1}T00:00:00+00:00"})
    reports.put("monitor/latest.json", {"level": "ok"})
    # Last-Modified has one-second resolution; ties go to the greater name (v2 over v1).
    assert reports.recent("keyvault/", 2) == ["keyvault/globalsign-pfx/v2.json",
                                              "keyvault/globalsign-pfx/v1.json"]
    names = [e["name"] for e in latest_validations(settings)]
    assert names == [f"keyvault/globalsign-pfx/v{n}.json" for n in (2, 1, 0)]
