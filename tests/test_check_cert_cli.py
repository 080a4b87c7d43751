"""``dip-edge check-cert``: the webhook's certificate policy from the command line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from shared.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(dip_pki, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("check-cert")
    content = {
        "client.pem": dip_pki.client.cert_pem(),
        "client.der": dip_pki.client.cert_der(),
        "bundle.pem": dip_pki.client.cert_pem() + dip_pki.intermediate.cert_pem(),
        "server-only.pem": dip_pki.server_only.cert_pem(),
        "stranger.pem": dip_pki.stranger.cert_pem(),
        "expired.pem": dip_pki.expired.cert_pem(),
        "impostor.pem": dip_pki.impostor.cert_pem(),
        "anchors.pem": dip_pki.root.cert_pem(),
        "chain.pem": dip_pki.intermediate.cert_pem(),
        "ids.json": json.dumps(dip_pki.client_identities()).encode(),
        "garbage.pem": b"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n",
        "garbage.der": b"\x30\x82 definitely not DER",
    }
    for name, data in content.items():
        (root / name).write_bytes(data)
    return {name: root / name for name in content}


@pytest.fixture(autouse=True)
def _clean_trust_env(monkeypatch):
    for name in ("DIP_CLIENT_TRUST_ANCHORS", "DIP_CLIENT_INTERMEDIATES", "DIP_CLIENT_IDENTITIES",
                 "DIP_CLIENT_EKU", "AIA_FETCH"):
        monkeypatch.delenv(name, raising=False)


def _run(capsys, *argv: str) -> tuple[int, dict]:
    code = main(["check-cert", *map(str, argv), "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def _trust(files) -> list:
    return ["--anchors", files["anchors.pem"], "--chain", files["chain.pem"],
            "--identities", files["ids.json"]]


def test_accepted_pem_and_der(capsys, files):
    for cert in ("client.pem", "client.der"):
        code, doc = _run(capsys, files[cert], *_trust(files))
        assert code == 0 and doc["accepted"] is True and doc["errors"] == []
        assert set(doc) == {"accepted", "errors", "warnings", "certificate", "trust"}
        assert doc["certificate"]["commonName"] == "dip-webhook-client.elexon.example"


def test_chain_after_the_leaf_in_the_cert_file_is_used(capsys, files):
    ids = ["--identities", files["ids.json"]]
    code, doc = _run(capsys, files["bundle.pem"], "--anchors", files["anchors.pem"], *ids)
    assert code == 0, doc["errors"]
    code, doc = _run(capsys, files["client.pem"], "--anchors", files["anchors.pem"], *ids)
    assert code == 1 and doc["errors"][0]["code"] == "clientcert.untrusted"


@pytest.mark.parametrize(("cert", "code_expected"), [
    ("stranger.pem", "clientcert.identity_mismatch"),
    ("expired.pem", "clientcert.expired"),
    ("impostor.pem", "clientcert.untrusted"),
    ("server-only.pem", "clientcert.untrusted"),
    ("garbage.pem", "clientcert.malformed"),
    ("garbage.der", "clientcert.malformed"),
])
def test_rejections_exit_1_with_the_webhooks_codes(capsys, files, cert, code_expected):
    code, doc = _run(capsys, files[cert], *_trust(files))
    assert code == 1 and doc["accepted"] is False
    assert [e["code"] for e in doc["errors"]] == [code_expected]


def test_usage_any_accepts_a_server_auth_only_certificate(capsys, files):
    code, doc = _run(capsys, files["server-only.pem"], *_trust(files), "--usage", "any")
    assert code == 0, doc
    assert doc["certificate"]["extendedKeyUsages"] == ["serverAuth"]


def test_at_answers_will_it_be_accepted_then(capsys, files, dip_pki):
    after = dip_pki.client.certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    code, doc = _run(capsys, files["client.pem"], *_trust(files), "--at", after)
    assert code == 0
    code, doc = _run(capsys, files["client.pem"], *_trust(files), "--at", "2099-01-01T00:00:00Z")
    assert code == 1 and doc["errors"][0]["code"] == "clientcert.expired"


def test_options_override_the_settings(capsys, files, dip_pki, monkeypatch):
    for name, value in dip_pki.env().items():
        monkeypatch.setenv(name, value)
    code, _ = _run(capsys, files["client.pem"])  # the settings alone: accepted
    assert code == 0
    code, doc = _run(capsys, files["client.pem"], "--identities",
                     '[{"common_name": "somebody-else.example"}]')
    assert code == 1 and doc["errors"][0]["code"] == "clientcert.identity_mismatch"
    monkeypatch.setenv("DIP_CLIENT_IDENTITIES", '[{"bogus": 1}]')  # bad, but overridden
    code, _ = _run(capsys, files["client.pem"], "--identities", files["ids.json"])
    assert code == 0


def test_no_identity_rules_is_a_rejection_naming_the_setting(capsys, files):
    # The chain is fine, but the webhook refuses everyone until identities are set.
    code, doc = _run(capsys, files["client.pem"], "--anchors", files["anchors.pem"],
                     "--chain", files["chain.pem"])
    assert code == 1 and doc["accepted"] is False
    assert [e["code"] for e in doc["errors"]] == ["config.invalid"]
    assert "DIP_CLIENT_IDENTITIES" in doc["errors"][0]["detail"]
    assert doc["trust"]["identities"]["mode"] == "missing"
    code, doc = _run(capsys, files["stranger.pem"], "--anchors", files["anchors.pem"],
                     "--chain", files["chain.pem"])  # and a chain failure still shows first
    assert code == 1


def test_identities_any_is_accepted_with_the_warning(capsys, files):
    code, doc = _run(capsys, files["client.pem"], "--anchors", files["anchors.pem"],
                     "--chain", files["chain.pem"], "--identities", "any")
    assert code == 0, doc["errors"]
    assert [w["code"] for w in doc["warnings"]] == ["clientcert.no_identity_rules"]
    assert doc["trust"]["identities"] == {"mode": "any", "setting": "--identities"}


def test_anchors_in_force_are_named(capsys, files, dip_pki):
    from cryptography.hazmat.primitives import hashes

    from shared.certs.roots import globalsign_roots

    code, doc = _run(capsys, files["client.pem"], *_trust(files))
    assert doc["trust"]["anchors"] == {"source": "--anchors", "certificates": [{
        "subject": dip_pki.root.certificate.subject.rfc4514_string(),
        "sha256": dip_pki.root.certificate.fingerprint(hashes.SHA256()).hex().upper()}]}
    code, doc = _run(capsys, files["client.pem"], "--identities", files["ids.json"])
    assert code == 1  # our test PKI does not chain to the real GlobalSign roots
    anchors = doc["trust"]["anchors"]
    assert anchors["source"] == "bundled GlobalSign roots"
    assert len(anchors["certificates"]) == len(globalsign_roots())
    assert all("GlobalSign" in a["subject"] for a in anchors["certificates"])
    code = main(["check-cert", str(files["client.pem"]), *map(str, _trust(files))])
    out = capsys.readouterr().out
    assert "trust anchors (--anchors):" in out and "sha-256" in out


@pytest.mark.parametrize("argv", [
    ["missing.pem"],
    ["client.pem", "--at", "next tuesday"],
    ["client.pem", "--anchors", "missing.pem"],
    ["client.pem", "--anchors", "ids.json"],
    ["client.pem", "--chain", "client.pem"],
    ["client.pem", "--identities", '[{"thumbprnt": "AB"}]'],
    ["client.pem", "--usage", "both"],
    ["client.pem", "--at", ""],  # an empty shell variable must not mean "now"
    ["client.pem", "--anchors", ""],
    ["/proc/self/mem"],  # a file that cannot be read (EIO) raised OSError
    [".", "--anchors", "anchors.pem"],
    ["x" * 5000],  # a name too long to stat raised OSError (ENAMETOOLONG)
    ["client.pem", "--anchors", "x" * 5000],
    ["client.pem", "--chain", "x" * 5000],
])
def test_usage_errors_exit_2(capsys, files, argv):
    resolved = [str(files.get(a, a)) for a in argv]
    try:
        code = main(["check-cert", *resolved])
    except SystemExit as exc:  # argparse's own usage errors
        code, ours = exc.code, False
    else:
        ours = True
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("dip-edge check-cert: ") or not ours


def test_installed_command_human_output(files):
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "dip-edge"), "check-cert", str(files["stranger.pem"]),
         *map(str, _trust(files))], capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 1
    assert done.stdout.startswith("REJECTED as a DIP client certificate")
    assert "clientcert.identity_mismatch" in done.stdout


def _installed(*argv) -> tuple[int, dict]:
    done = subprocess.run([str(REPO / ".venv" / "bin" / "dip-edge"), "check-cert",
                           *map(str, argv), "--json"], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    return done.returncode, json.loads(done.stdout)


def test_a_root_given_as_an_intermediate_is_named_not_a_chain_too_long(files, dip_pki,
                                                                        tmp_path):
    # The operator's likely slip: the DIP-PKI root put among the intermediates
    # (DIP_CLIENT_INTERMEDIATES, --chain) instead of the trust anchors. The verifier loops
    # on it and says "max depth"; the detail must say what is wrong.
    chain = tmp_path / "chain-with-root.pem"
    chain.write_bytes(dip_pki.intermediate.cert_pem() + dip_pki.root.cert_pem())
    code, doc = _installed(files["client.pem"], "--chain", chain, "--identities", "any")
    assert code == 1 and [e["code"] for e in doc["errors"]] == ["clientcert.untrusted"]
    detail = doc["errors"][0]["detail"]
    root = dip_pki.root.certificate.subject.rfc4514_string()
    assert f"ends at the self-signed '{root}', which is not a trust anchor" in detail, detail
    assert "maximum depth" not in detail


def test_a_self_signed_certificate_is_called_self_signed(tmp_path):
    from shared.certs.devpki import issue

    own = tmp_path / "self.pem"
    own.write_bytes(issue("self-made.example", dns_names=("self-made.example",)).cert_pem())
    code, doc = _installed(own, "--identities", "any")
    assert code == 1 and [e["code"] for e in doc["errors"]] == ["clientcert.untrusted"]
    detail = doc["errors"][0]["detail"]
    assert "it is self-signed ('CN=self-made.example'), not issued by a trust anchor" in detail
    assert "its issuer 'CN=self-made.example'" not in detail, detail
