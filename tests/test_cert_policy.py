"""The webhook's client-certificate policy (``shared/certs/trust.py``) on a GlobalSign-like
test PKI: every ``clientcert.*`` outcome, EKU modes, configuration errors, the validation
cache, and AIA fetching from a real HTTP server on loopback."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from shared.certs import aia as aia_module
from shared.certs import trust as policy_module
from shared.certs.aia import AiaFetcher
from shared.certs.devpki import CLIENT_AUTH, issue
from shared.certs.identity import IdentityRules
from shared.certs.roots import globalsign_roots
from shared.certs.trust import TrustPolicy
from shared.certs.trust_config import TrustSources, missing_identities
from shared.problems import DipEdgeError
from shared.settings import load_settings
from tests.support.dip_pki import CLIENT_CN, header_value


def _policy(dip_pki, **options) -> TrustPolicy:
    options.setdefault("anchors", [dip_pki.root.certificate])
    options.setdefault("intermediates", [dip_pki.intermediate.certificate])
    options.setdefault("identities", IdentityRules.parse(json.dumps(dip_pki.client_identities()),
                                                         "test"))
    return TrustPolicy(**options)


def _codes(verdict) -> list[str]:
    return [f.code for f in verdict.errors]


# --- outcomes -------------------------------------------------------------------------------
def test_the_dip_client_certificate_is_accepted_with_its_chain_and_facts(dip_pki):
    verdict = _policy(dip_pki).check_header(dip_pki.client_header())
    assert verdict.accepted and verdict.errors == ()
    assert verdict.chain == (dip_pki.client.certificate, dip_pki.intermediate.certificate,
                             dip_pki.root.certificate)
    assert verdict.certificate.common_name == CLIENT_CN
    assert verdict.to_dict()["accepted"] is True


@pytest.mark.parametrize("value", [None, "", "   "])
def test_no_certificate_is_clientcert_missing(dip_pki, value):
    assert _codes(_policy(dip_pki).check_header(value)) == ["clientcert.missing"]


@pytest.mark.parametrize("value", [
    "%%% not base64 %%%", "AAAA", base64.b64encode(b"\x30\x82\x01\x00junk").decode(),
    "é" * 10, "A" * 100_000, "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----",
])
def test_garbage_in_x_arr_clientcert_is_clientcert_malformed(dip_pki, value):
    verdict = _policy(dip_pki).check_header(value)
    assert _codes(verdict) == ["clientcert.malformed"]
    assert not verdict.accepted


def test_pem_armour_and_line_breaks_are_tolerated(dip_pki):
    pem = dip_pki.client.cert_pem().decode()
    assert _policy(dip_pki).check_header(pem).accepted


def test_self_signed_certificate_with_the_dips_exact_subject_is_untrusted(dip_pki):
    impostor = dip_pki.impostor.certificate
    assert impostor.subject == dip_pki.client.certificate.subject
    verdict = _policy(dip_pki).check_header(header_value(dip_pki.impostor))
    assert _codes(verdict) == ["clientcert.untrusted"]
    assert "it is self-signed (" in verdict.errors[0].detail
    assert "not issued by a trust anchor" in verdict.errors[0].detail


def test_expired_and_not_yet_valid_certificates_are_clientcert_expired(dip_pki):
    policy = _policy(dip_pki)
    expired = policy.check_header(header_value(dip_pki.expired))
    assert _codes(expired) == ["clientcert.expired"] and "expired on" in expired.errors[0].detail
    early = policy.check(dip_pki.client.certificate,
                         at=dip_pki.client.certificate.not_valid_before_utc - dt.timedelta(days=1))
    assert _codes(early) == ["clientcert.expired"] and "not valid until" in early.errors[0].detail
    late = policy.check(dip_pki.client.certificate,
                        at=dip_pki.client.certificate.not_valid_after_utc + dt.timedelta(seconds=1))
    assert _codes(late) == ["clientcert.expired"]


def test_valid_chain_but_wrong_identity_is_clientcert_identity_mismatch(dip_pki):
    verdict = _policy(dip_pki).check_header(header_value(dip_pki.stranger))
    assert _codes(verdict) == ["clientcert.identity_mismatch"]
    assert verdict.chain  # the chain was fine; the identity is not
    # The certificate's own value is shown beside the rule field it fails.
    assert ("(the certificate has 'CN=someone-else.example,O=Other Energy Ltd,C=GB')"
            in verdict.errors[0].detail)


def test_missing_intermediate_without_aia_is_untrusted(dip_pki):
    verdict = _policy(dip_pki, intermediates=[]).check_header(dip_pki.client_header())
    assert _codes(verdict) == ["clientcert.untrusted"]


def test_an_intermediate_from_another_hierarchy_does_not_help(dip_pki):
    other_root = issue("Other Root", ca=True, ekus=None)
    verdict = _policy(dip_pki, anchors=[other_root.certificate]).check_header(
        dip_pki.client_header())
    assert _codes(verdict) == ["clientcert.untrusted"]


def test_weak_leaf_key_is_untrusted_even_when_the_chain_verifies(dip_pki):
    from shared.certs.devpki import new_key

    weak = issue(CLIENT_CN, organization="Elexon Limited", country="GB",
                 issuer=dip_pki.intermediate, dns_names=(CLIENT_CN,), key=new_key("rsa1024"))
    verdict = _policy(dip_pki).check(weak.certificate)
    assert _codes(verdict) == ["clientcert.untrusted"] and "1024 bits" in verdict.errors[0].detail


# --- extended key usage ------------------------------------------------------------------------
def test_eku_modes(dip_pki):
    server_only = dip_pki.server_only.certificate
    client = dip_pki.client.certificate
    assert _codes(_policy(dip_pki, usage="client").check(server_only)) == ["clientcert.untrusted"]
    assert "does not allow TLS client" in _policy(dip_pki).check(server_only).errors[0].detail
    assert _policy(dip_pki, usage="server").check(server_only).accepted
    assert not _policy(dip_pki, usage="server").check(client).accepted
    assert _policy(dip_pki, usage="any").check(server_only).accepted
    assert _policy(dip_pki, usage="any").check(client).accepted


def test_leaf_without_eku_or_with_any_eku_is_refused(dip_pki):
    no_eku = issue(CLIENT_CN, issuer=dip_pki.intermediate, ekus=None)
    any_eku = issue(CLIENT_CN, issuer=dip_pki.intermediate,
                    ekus=(CLIENT_AUTH, x509.ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE))
    policy = _policy(dip_pki, identities=None, usage="any")
    assert _codes(policy.check(no_eku.certificate)) == ["clientcert.untrusted"]
    assert _codes(policy.check(any_eku.certificate)) == ["clientcert.untrusted"]


def test_eku_setting_drives_the_webhook_policy(dip_pki):
    header = header_value(dip_pki.server_only)
    assert not TrustPolicy.for_client(load_settings(dip_pki.env())).check_header(
        header).accepted
    settings = load_settings(dip_pki.env(DIP_CLIENT_EKU="any"))
    assert TrustPolicy.for_client(settings).check_header(header).accepted


# --- configuration -----------------------------------------------------------------------------
def test_from_settings_with_dip_pki_accepts_and_pins(dip_pki):
    policy = TrustPolicy.for_client(load_settings(dip_pki.env()))
    assert policy.check_header(dip_pki.client_header()).accepted
    assert policy.anchors == (dip_pki.root.certificate,)
    assert set(policy.pinned) == {dip_pki.root.certificate, dip_pki.intermediate.certificate}
    assert TrustPolicy.for_client(load_settings(dip_pki.env())) is policy  # built once


def test_default_anchors_are_the_bundled_globalsign_roots(caplog):
    with caplog.at_level(logging.WARNING):
        policy = TrustPolicy.for_client(load_settings({"DIP_CLIENT_EKU": "any",
                                                             "DIP_CLIENT_IDENTITIES": "ANY"}))
    assert policy.anchors == globalsign_roots() and policy.pinned == ()
    assert policy.identities is None
    assert [w.code for w in policy.warnings] == ["clientcert.no_identity_rules"]
    assert "DIP_CLIENT_IDENTITIES=any" in caplog.text
    assert "any client certificate that chains" in caplog.text


@pytest.mark.parametrize(("env", "named"), [
    ({}, ["DIP_CLIENT_IDENTITIES", "DIP_SIGNER_IDENTITIES"]),
    ({"DIP_SIGNATURE_MODE": "optional"}, ["DIP_CLIENT_IDENTITIES"]),
    ({"DIP_SIGNER_IDENTITIES": '[{"common_name": "x"}]'}, ["DIP_CLIENT_IDENTITIES"]),
])
def test_no_identity_rules_fail_closed_with_503_naming_the_settings(env, named):
    settings = load_settings(env)
    assert missing_identities(settings) == named
    for role in ("client", "signer"):
        if "DIP_SIGNER_IDENTITIES" in env and role == "signer":
            continue  # the signer has rules of its own
        with pytest.raises(DipEdgeError) as caught:
            getattr(TrustPolicy, f"for_{role}")(settings)
        err = caught.value
        assert (err.code, err.status, err.retry_after) == ("config.invalid", 503, 300)
        assert all(name in str(err) for name in named)
    # Inspecting (health, check-cert, the monitor) still shows the anchors in force.
    inspected = TrustSources.from_settings(settings, "client").build(inspect=True)
    assert inspected.anchors == globalsign_roots() and inspected.warnings == ()


def test_signer_inherits_the_clients_any_loudly(dip_pki, caplog):
    env = dip_pki.env(DIP_CLIENT_IDENTITIES="any")
    del env["DIP_SIGNER_IDENTITIES"]
    with caplog.at_level(logging.WARNING):
        signer = TrustPolicy.for_signer(load_settings(env))
    assert signer.check(dip_pki.stranger.certificate).accepted
    assert "(inherited: DIP_SIGNER_IDENTITIES is not set)" in signer.warnings[0].detail


def test_signer_policy_falls_back_to_client_settings_one_by_one(dip_pki):
    settings = load_settings(dip_pki.env())
    signer = TrustPolicy.for_signer(settings)
    assert signer.anchors == (dip_pki.root.certificate,)  # from DIP_CLIENT_TRUST_ANCHORS
    assert signer.check(dip_pki.signer.certificate).accepted  # DIP_SIGNER_IDENTITIES
    assert not signer.check(dip_pki.client.certificate).accepted
    env = dip_pki.env()
    del env["DIP_SIGNER_IDENTITIES"]
    fallback = TrustPolicy.for_signer(load_settings(env))
    assert fallback.check(dip_pki.client.certificate).accepted  # the client's identities


@pytest.mark.parametrize(("name", "value", "message"), [
    ("DIP_CLIENT_TRUST_ANCHORS", "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----",
     "DIP_CLIENT_TRUST_ANCHORS: holds no readable PEM certificate"),
    ("DIP_CLIENT_TRUST_ANCHORS", "/no/such/anchors.pem", "DIP_CLIENT_TRUST_ANCHORS"),
    ("DIP_CLIENT_INTERMEDIATES", "LEAF", "is not a CA certificate"),
    ("DIP_CLIENT_IDENTITIES", '[{"thumbprint": "zz"}]', "DIP_CLIENT_IDENTITIES: rule 1"),
    ("DIP_SIGNER_IDENTITIES", '[{"colour": "red"}]', "DIP_SIGNER_IDENTITIES: rule 1: unknown"),
    ("DIP_CLIENT_EKU", "both", "DIP_CLIENT_EKU"),
])
def test_bad_trust_settings_are_config_invalid_naming_the_setting(dip_pki, name, value, message):
    if value == "LEAF":
        value = dip_pki.client.cert_pem().decode()
    settings = load_settings(dip_pki.env(**{name: value}))
    build = TrustPolicy.for_signer if "SIGNER" in name else TrustPolicy.for_client
    with pytest.raises(DipEdgeError) as caught:
        build(settings)
    assert caught.value.code == "config.invalid"
    assert message in str(caught.value)


def test_trust_settings_from_files(dip_pki, tmp_path):
    anchors, identities = tmp_path / "anchors.pem", tmp_path / "ids.json"
    anchors.write_bytes(dip_pki.root.cert_pem())
    identities.write_text(json.dumps(dip_pki.client_identities()))
    settings = load_settings(dip_pki.env(DIP_CLIENT_TRUST_ANCHORS=str(anchors),
                                         DIP_CLIENT_IDENTITIES=str(identities)))
    policy = TrustPolicy.for_client(settings)
    assert policy.identities is not None
    assert policy.check_header(dip_pki.client_header()).accepted


# --- the validation cache ----------------------------------------------------------------------
def test_verdicts_are_cached_by_der_and_at_bypasses_the_cache(dip_pki):
    policy = _policy(dip_pki)
    first = policy.check_header(dip_pki.client_header())
    assert policy.check_header(dip_pki.client_header()) is first
    assert policy.check(dip_pki.client.cert_der()) is first
    assert policy.check(dip_pki.client.certificate, at=dt.datetime.now(dt.UTC)) is not first


def test_cache_is_bounded_lru(dip_pki):
    policy = _policy(dip_pki, cache_size=2)
    a = policy.check(dip_pki.client.certificate)
    policy.check(dip_pki.stranger.certificate)
    policy.check(dip_pki.client.certificate)  # a is now most recent
    policy.check(dip_pki.server_only.certificate)  # evicts the stranger
    assert len(policy._cache) == 2
    assert policy.check(dip_pki.client.certificate) is a


def test_cached_verdict_never_outlives_the_certificate(dip_pki, monkeypatch):
    policy = _policy(dip_pki, cache_ttl=10**9)
    assert policy.check(dip_pki.client.certificate).accepted
    after = dip_pki.client.certificate.not_valid_after_utc + dt.timedelta(seconds=5)
    monkeypatch.setattr(policy_module.time, "time", lambda: after.timestamp())
    assert _codes(policy.check(dip_pki.client.certificate)) == ["clientcert.expired"]


def test_header_text_cache_never_outlives_the_certificate(dip_pki, monkeypatch):
    policy = _policy(dip_pki, cache_ttl=10**9)
    header = dip_pki.client_header()
    first = policy.check_header(header)
    assert first.accepted and policy.check_header(header) is first
    garbage = header[:-8] + "!!!!!!!!"
    assert _codes(policy.check_header(garbage)) == ["clientcert.malformed"]
    assert _codes(policy.check_header(garbage)) == ["clientcert.malformed"]
    after = dip_pki.client.certificate.not_valid_after_utc + dt.timedelta(seconds=5)
    monkeypatch.setattr(policy_module.time, "time", lambda: after.timestamp())
    assert _codes(policy.check_header(header)) == ["clientcert.expired"]


def test_cached_verdict_expires_after_the_ttl(dip_pki, monkeypatch):
    policy = _policy(dip_pki, cache_ttl=60)
    first = policy.check(dip_pki.client.certificate)
    assert policy.check(dip_pki.client.certificate) is first
    later = dt.datetime.now(dt.UTC).timestamp() + 61
    monkeypatch.setattr(policy_module.time, "time", lambda: later)
    second = policy.check(dip_pki.client.certificate)
    assert second is not first and second.accepted


# --- AIA ---------------------------------------------------------------------------------------
class _AiaServer:
    """A loopback HTTP server: path -> (status, body, headers); counts requests per path."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.hits: dict[str, int] = {}
        routes, hits = self.routes, self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                hits[self.path] = hits.get(self.path, 0) + 1
                status, body, headers = routes.get(self.path, (404, b"", {}))
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def aia_server(dip_pki):
    server = _AiaServer()
    server.routes["/ca.crt"] = (200, dip_pki.intermediate.cert_der(), {})
    server.routes["/ca.pem"] = (200, dip_pki.intermediate.cert_pem(), {})
    server.routes["/big.crt"] = (200, b"\0" * (100 * 1024), {})
    server.routes["/moved.crt"] = (302, b"", {"Location": server.url("/ca.crt")})
    yield server
    server.close()


def _leaf_with_aia(dip_pki, *urls: str, cn: str = CLIENT_CN):
    aia = x509.AuthorityInformationAccess([x509.AccessDescription(
        AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(url))
        for url in urls])
    return issue(cn, organization="Elexon Limited", country="GB", issuer=dip_pki.intermediate,
                 dns_names=(cn,), extra_extensions=[(aia, False)]).certificate


def _aia_policy(dip_pki, hosts=("127.0.0.1",)):
    return _policy(dip_pki, intermediates=[], identities=None, aia=AiaFetcher(hosts))


def test_aia_fetches_the_missing_intermediate_from_an_allowed_host_once(dip_pki, aia_server):
    policy = _aia_policy(dip_pki)
    before = aia_server.hits.get("/ca.crt", 0)
    verdict = policy.check(_leaf_with_aia(dip_pki, aia_server.url("/ca.crt")))
    assert verdict.accepted, verdict.errors
    assert verdict.chain[1] == dip_pki.intermediate.certificate
    another = _leaf_with_aia(dip_pki, aia_server.url("/ca.crt"), cn="dip2.elexon.example")
    assert policy.check(another).accepted
    assert aia_server.hits["/ca.crt"] == before + 1  # the second leaf used the AIA cache


def test_aia_accepts_pem(dip_pki, aia_server):
    assert _aia_policy(dip_pki).check(_leaf_with_aia(dip_pki, aia_server.url("/ca.pem"))).accepted


def test_aia_refuses_a_host_not_on_the_allow_list(dip_pki, aia_server):
    url = aia_server.url("/ca.crt", host="localhost")  # same server, host not listed
    before = aia_server.hits.get("/ca.crt", 0)
    verdict = _aia_policy(dip_pki).check(_leaf_with_aia(dip_pki, url))
    assert _codes(verdict) == ["clientcert.untrusted"]
    assert "not allowed" in verdict.errors[0].detail
    assert aia_server.hits.get("/ca.crt", 0) == before  # never contacted


@pytest.mark.parametrize(("path", "note"), [("/big.crt", "larger than 65536 bytes"),
                                            ("/moved.crt", "HTTP 302"),
                                            ("/missing.crt", "HTTP 404")])
def test_aia_size_limit_no_redirects_and_errors(dip_pki, aia_server, path, note):
    verdict = _aia_policy(dip_pki).check(_leaf_with_aia(dip_pki, aia_server.url(path)))
    assert _codes(verdict) == ["clientcert.untrusted"]
    assert note in verdict.errors[0].detail


def test_aia_refuses_other_schemes_and_userinfo():
    fetcher = AiaFetcher(("secure.globalsign.com",))
    assert fetcher.allowed("http://secure.globalsign.com/cacert/x.crt")
    assert fetcher.allowed("https://SECURE.globalsign.com:8443/x.crt")
    for url in ("ftp://secure.globalsign.com/x.crt", "file:///etc/passwd",
                "http://secure.globalsign.com.evil.example/x.crt",
                "http://user@secure.globalsign.com/x.crt", "http://evil.example/x.crt",
                "ldap://secure.globalsign.com/x", "http://secure.globalsign.com:bad/x"):
        assert not fetcher.allowed(url), url


@pytest.mark.parametrize("url", ["http://127.0.0.1\t/ca.crt", "http://127.0.0.1/ca\x01.crt",
                                 "http://127.0.0.1/ca.crt\nX-Injected: 1"])
def test_aia_url_with_control_characters_is_refused_not_raised(dip_pki, caplog, url):
    # httpx raises InvalidURL (not an HTTPError) for these: a hostile leaf must not crash.
    verdict = _aia_policy(dip_pki).check(_leaf_with_aia(dip_pki, url))
    assert _codes(verdict) == ["clientcert.untrusted"]
    assert "not allowed" in verdict.errors[0].detail
    assert "\n" not in verdict.errors[0].detail and "\n" not in caplog.text.strip()


def test_aia_tries_only_the_first_few_urls_of_a_certificate(dip_pki, aia_server):
    # The URLs are the attacker's choice: 50 slow or failing fetches per request is a DoS.
    paths = [f"/many-{i}.crt" for i in range(50)]
    verdict = _aia_policy(dip_pki).check(
        _leaf_with_aia(dip_pki, *(aia_server.url(p) for p in paths)))
    assert _codes(verdict) == ["clientcert.untrusted"]
    fetched = [p for p in paths if aia_server.hits.get(p)]
    assert fetched == paths[:aia_module.MAX_URLS]
    assert "further caIssuers URLs ignored" in verdict.errors[0].detail


def test_aia_from_settings(dip_pki, aia_server):
    settings = load_settings(dip_pki.env(DIP_CLIENT_INTERMEDIATES="", DIP_CLIENT_IDENTITIES="any",
                                         AIA_FETCH="true", AIA_ALLOWED_HOSTS="127.0.0.1"))
    policy = TrustPolicy.for_client(settings)
    assert policy.check(_leaf_with_aia(dip_pki, aia_server.url("/ca.crt"))).accepted
    off = TrustPolicy.for_client(load_settings(dip_pki.env(DIP_CLIENT_INTERMEDIATES="",
                                                                 AIA_FETCH="false")))
    assert off.aia is None
