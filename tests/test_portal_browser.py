"""The Certificate Admin's page in a real browser: Debian's Chromium, headless, driven by
Playwright (the system browser; nothing downloaded), against ``dip-edge serve`` over real
mutual TLS with the fake GlobalSign Atlas. Validate a good PFX and a wrong password, save,
use it with the keyboard alone, refuse a large file before upload and a cross-site form
post, and leave no secret in the page, its URL, storage or cookies after a result."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

from shared.certs.advice import ADVICE
from shared.certs.facts import describe
from tests.support.leaks import assert_no_secrets
from tests.test_serve_e2e import Served, start_serve, stop

pytestmark = pytest.mark.xdist_group("portal")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PFX_PASSWORD = "Portal-Browser-Pfx-Pw-" + uuid.uuid4().hex[:8]


@dataclass
class Account:
    api_key: str
    api_secret: str
    pfx_path: Path
    thumbprint: str


@pytest.fixture(scope="module")
def served(tmp_path_factory, atlas_server):
    state = tmp_path_factory.mktemp("portal") / "state"
    # Empty is unset: the dev CA, the local secret store and the SQLite inbox.
    env = {**atlas_server.env(), "ATLAS_MAX_RETRIES": "0", "ATLAS_TIMEOUT_SECONDS": "5",
           **dict.fromkeys(("DIP_CLIENT_TRUST_ANCHORS", "DIP_CLIENT_INTERMEDIATES",
                            "KEY_VAULT_URL", "SECRET_STORE", "INBOX_STORAGE",
                            "EVENTS_STORAGE"), "")}
    served = start_serve(state, env)
    yield served
    stop(served)



@pytest.fixture(scope="module")
def account(atlas_server, tmp_path_factory) -> Account:
    issued = atlas_server.new_client_certificate("acme-portal-browser")
    pfx = pkcs12.serialize_key_and_certificates(
        b"acme", issued.private_key, issued.certificate, issued.chain()[:1],
        BestAvailableEncryption(PFX_PASSWORD.encode()))
    path = tmp_path_factory.mktemp("portal-pfx") / "atlas-access.pfx"
    path.write_bytes(pfx)
    api_key, api_secret = "portal-" + uuid.uuid4().hex[:10], "s3cr3t-" + uuid.uuid4().hex
    atlas_server.add_account(api_key, api_secret, issued)
    return Account(api_key, api_secret, path, describe(issued.certificate).thumbprint_sha1)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


class Tab:
    """One browser context (fresh storage) on the portal, recording what happens."""

    def __init__(self, browser, served: Served) -> None:
        self.served = served
        self.context = browser.new_context(
            ignore_https_errors=True,  # the dev CA; the client certificate is what matters
            client_certificates=[{"origin": served.base_url,
                                  "certPath": str(served.certs / "client.pem"),
                                  "keyPath": str(served.certs / "client.key")}])
        self.page = self.context.new_page()
        self.requests: list = []
        self.problems: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))
        self.page.on("console", lambda m: self.problems.append(m.text)
                     if m.type == "error" and "status of" not in m.text else None)

    def open(self) -> Tab:
        self.page.goto(self.served.base_url + "/api/portal")
        return self

    def connect(self) -> None:
        self.page.get_by_label("Function key").fill(self.served.function_key)
        self.page.get_by_role("button", name="Connect").click()
        self.page.get_by_text("Connected.").wait_for()

    def fill(self, account: Account, password: str = PFX_PASSWORD) -> None:
        page = self.page
        page.get_by_label("API key").fill(account.api_key)
        page.get_by_label("API secret").fill(account.api_secret)
        page.get_by_label("PFX file").set_input_files(str(account.pfx_path))
        page.get_by_label("PFX password").fill(password)

    def result(self, text: str) -> str:
        self.page.locator("#result .banner").filter(has_text=text).wait_for(timeout=20000)
        return self.page.inner_text("#result")

    def posts(self, path: str) -> list:
        return [r for r in self.requests if r.method == "POST" and r.url.endswith(path)]

    def everything_kept(self) -> str:
        """All a later reader of this tab could find: DOM, field values, URL, storage,
        cookies (the browser's and the page's view)."""
        page = self.page
        state = page.evaluate("""() => JSON.stringify({
            values: [...document.querySelectorAll('input')].map(i => [i.id, i.value,
                     i.files ? [...i.files].map(f => f.name) : []]),
            local: Object.entries(localStorage), session: Object.entries(sessionStorage),
            cookie: document.cookie, url: location.href, history: history.length,
            title: document.title})""")
        return "\n".join([page.content(), page.inner_text("body"), state, page.url,
                          json.dumps(self.context.cookies())])

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser, served):
    opened = Tab(browser, served).open()
    yield opened
    assert opened.problems == [], opened.problems  # no CSP violation, no script error
    opened.close()


def assert_no_secret_left(tab: Tab, account: Account) -> None:
    kept = tab.everything_kept()
    for secret in (account.api_secret, PFX_PASSWORD, tab.served.function_key):
        assert secret not in kept, "a secret value remains in the page"
    for request in tab.requests:  # secrets travelled in POST bodies and the key header only
        for secret in (account.api_secret, PFX_PASSWORD, tab.served.function_key):
            assert secret not in request.url
        if request.method != "POST":
            assert account.api_secret not in (request.post_data or "")


def test_a_good_pfx_is_valid_with_its_facts_and_the_globalsign_account(tab, account):
    tab.connect()
    tab.fill(account)
    tab.page.get_by_role("button", name="Validate").click()
    shown = tab.result("Valid")
    assert account.thumbprint in shown
    assert "CN=acme-portal-browser" in shown
    assert "GlobalSign account" in shown and "Validation Policy" in shown
    assert tab.page.get_by_role("button", name="Save").is_enabled()
    (post,) = tab.posts("/api/credentials/validate")
    assert post.headers["x-dip-edge-csrf"] == "1"
    assert post.headers["x-functions-key"] == tab.served.function_key
    assert_no_secret_left(tab, account)


def test_a_wrong_password_shows_the_finding_and_its_advice(tab, account):
    tab.connect()
    tab.fill(account, password="not-the-password-" + uuid.uuid4().hex[:6])
    tab.page.get_by_role("button", name="Validate").click()
    shown = tab.result("Not accepted")
    advice = ADVICE["pfx.wrong_password"]
    assert "pfx.wrong_password" in shown
    assert "Why it matters" in shown and advice.why in shown
    assert "What to do" in shown and advice.for_api in shown
    assert tab.page.get_by_role("button", name="Save").is_disabled()
    assert_no_secret_left(tab, account)


def run_monitor_and_an_event(served: Served, atlas_server, monkeypatch) -> str:
    """The expiry monitor's timer and a Key Vault event for the stored PFX version, run by
    their real services on serve's state directory; the PFX version is returned."""
    from shared.events.handler import handle_message
    from shared.services.monitor import run_scheduled
    from shared.settings import get_settings
    from shared.vault import open_store
    from shared.vault.credentials import load_metadata
    from tests.support.eventgrid import key_vault_event

    monkeypatch.setenv("DIP_EDGE_STATE_DIR", str(served.state_dir))
    for name, value in atlas_server.env().items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        settings = get_settings()
        run_scheduled(settings)
        version = load_metadata(open_store(settings), settings).versions["pfx"]
        event = key_vault_event("SecretNewVersionCreated", settings.secret_name_pfx, version,
                                vault_url="https://acme-vault.vault.azure.net")
        handle_message(json.dumps(event).encode(), "portal-msg-1", 1, settings)
    finally:
        get_settings.cache_clear()
    return version


def test_save_adds_the_validated_set_and_stored_credentials_show_it(tab, account,
                                                                    atlas_server, monkeypatch):
    tab.connect()
    tab.fill(account)
    page = tab.page
    page.get_by_role("button", name="Validate").click()
    tab.result("Valid")
    # Validated inputs only: changing a field after Validate disables Save again.
    page.get_by_label("API key").fill(account.api_key + "x")
    assert page.get_by_role("button", name="Save").is_disabled()
    page.get_by_label("API key").fill(account.api_key)
    tab.fill(account)
    page.get_by_role("button", name="Validate").click()
    tab.result("Valid")
    page.get_by_role("button", name="Save").click()
    tab.result("Added successfully")
    page.locator("#stored dd", has_text=account.thumbprint).wait_for()
    stored = page.inner_text("#stored")
    assert "Validated at" in stored and "Current credential set" in stored
    assert len(tab.posts("/api/credentials")) == 1
    # The monitor's table and the event validation reports, after they ran.
    version = run_monitor_and_an_event(tab.served, atlas_server, monkeypatch)
    page.get_by_role("button", name="Refresh").click()
    monitor = page.locator("#stored table", has_text="Latest expiry monitor run")
    row = monitor.locator("tr", has_text=account.thumbprint)
    row.wait_for()
    assert row.locator(".level").inner_text() == "ok"
    events = page.locator("#stored table", has_text="Latest event validation reports")
    event_row = events.locator("tr", has_text=version)
    assert event_row.locator(".level").inner_text() == "passed"
    assert_no_secret_left(tab, account)


def choose_file_with_space(page, path: Path) -> None:
    """Space on the focused file field opens the system's file dialog (intercepted here);
    on a loaded machine the first press is now and then not taken up, so up to 3 tries."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(3):
        try:
            with page.expect_file_chooser(timeout=5000) as chooser:
                page.keyboard.press("Space")
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            continue
        chooser.value.set_files(str(path))
        return


def test_keyboard_only_from_the_first_tab_to_added_successfully(tab, account):
    page, keys = tab.page, tab.page.keyboard

    def focused() -> str:
        return page.evaluate("document.activeElement.id || document.activeElement.textContent")

    order = []
    for _ in range(9):
        keys.press("Tab")
        order.append(focused())
    assert order == ["Skip to the credentials form", "function-key", "connect", "api-key",
                     "api-secret", "pfx-file", "pfx-password", "validate", "refresh"]
    page.reload()
    keys.press("Tab")
    keys.press("Tab")
    assert focused() == "function-key"
    keys.type(tab.served.function_key)
    keys.press("Enter")
    page.get_by_text("Connected.").wait_for()
    keys.press("Tab")
    keys.press("Tab")
    assert focused() == "api-key"
    keys.type(account.api_key)
    keys.press("Tab")
    keys.type(account.api_secret)
    keys.press("Tab")
    assert focused() == "pfx-file"
    choose_file_with_space(page, account.pfx_path)
    keys.press("Tab")
    keys.type(PFX_PASSWORD)
    keys.press("Enter")  # submits the form: Validate
    tab.result("Valid")
    assert focused() == "pfx-password"
    keys.press("Tab")
    keys.press("Tab")
    assert focused() == "save"
    keys.press("Enter")
    tab.result("Added successfully")
    assert focused() == "result"  # Save is disabled again; the keyboard carries on from here
    page.locator("#stored dd", has_text=account.thumbprint).wait_for()
    assert_no_secret_left(tab, account)


def test_a_large_file_is_refused_before_upload(tab, account, tmp_path):
    large = tmp_path / "backup.pfx"
    large.write_bytes(os.urandom(1024 * 1024 + 1))
    tab.connect()
    tab.fill(account)
    tab.page.get_by_label("PFX file").set_input_files(str(large))
    tab.page.get_by_role("button", name="Validate").click()
    shown = tab.result("too large")
    assert "pfx.too_large" in shown and "Nothing was sent" in shown
    assert tab.posts("/api/credentials/validate") == []
    assert_no_secret_left(tab, account)


def test_a_cross_site_form_post_is_refused_even_with_the_key(browser, served):
    """Another site's page posting a form to the app (here with the key in ?code=, the
    worst case): the browser marks it cross-site and the function refuses it."""
    tab = Tab(browser, served)
    try:
        target = f"{served.base_url}/api/credentials?code={served.function_key}"
        tab.page.set_content(
            f'<form id="f" method="post" enctype="multipart/form-data" action="{target}">'
            '<input name="apiKey" value="k"><input name="apiSecret" value="s"></form>')
        with tab.page.expect_navigation():
            tab.page.evaluate("document.getElementById('f').submit()")
        (post,) = tab.posts("/api/credentials?code=" + served.function_key)
        response = post.response()
        assert response.status == 403
        assert json.loads(response.body())["code"] == "request.cross_origin"
        assert post.all_headers().get("sec-fetch-site") == "cross-site"
    finally:
        tab.close()


CONTRAST = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (node) => {
    for (; node; node = node.parentElement) {
      const c = rgb(getComputedStyle(node).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    const node = text.parentElement;
    if (!text.textContent.trim() || !node.checkVisibility() || node.closest("[disabled]")) continue;
    const style = getComputedStyle(node);
    const [a, b] = [lum(rgb(style.color).slice(0, 3)), lum(background(node))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    out.push({text: text.textContent.trim().slice(0, 30), ratio, need: large ? 3 : 4.5});
  }
  return out;
}"""


def test_every_visible_text_meets_wcag_aa_contrast(tab, account):
    """WCAG 2.1 AA 1.4.3 on the rendered page, results included (computed colours)."""
    tab.connect()
    tab.fill(account, password="wrong-" + uuid.uuid4().hex[:6])
    tab.page.get_by_role("button", name="Validate").click()
    tab.result("Not accepted")
    texts = tab.page.evaluate(CONTRAST)
    assert len(texts) > 30  # the walk saw the page
    low = [t for t in texts if t["ratio"] < t["need"]]
    assert low == [], low
    assert min(t["ratio"] for t in texts) >= 4.5, min(t["ratio"] for t in texts)


def test_no_secret_reached_the_host_log(served, account):
    """Last in this module: every test above went through this serve (and one more
    submission here, so the test stands alone too)."""
    import requests

    requests.post(f"{served.base_url}/api/credentials/validate", timeout=30,
                  cert=(str(served.certs / "client.pem"), str(served.certs / "client.key")),
                  verify=str(served.certs / "ca.pem"),
                  headers={"x-functions-key": served.function_key},
                  data={"apiKey": account.api_key, "apiSecret": account.api_secret,
                        "pfxPassword": PFX_PASSWORD},
                  files={"pfx": account.pfx_path.read_bytes()})
    text = served.stderr()
    assert "POST /api/credentials" in text  # the host's request log is in it
    assert_no_secrets(text, account.api_secret, PFX_PASSWORD, served.function_key)
