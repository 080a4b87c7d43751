"""``dip-edge check-pfx`` through its real interface: the console script in a subprocess
(exit codes, output, no traceback, no secret), ``shared.cli.main`` in-process for the
long tables, a real terminal (pty) for the password prompt, and the fake GlobalSign
Atlas over real mutual TLS for the online proof."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.cli import main
from tests.support.fake_atlas import FakeAtlas
from tests.support.leaks import assert_no_secrets
from tests.support.pfx_factory import PASSWORD, PfxFactory, to_pfx

DIP_EDGE = str(Path(sys.executable).parent / "dip-edge")
API_KEY = "5e1f0c3a9b7d2468"
API_SECRET = "c0ffee" + "9a8b7c6d5e4f3a2b1c0d" * 2 + "55"  # distinctive, 48 hex
# Settings that would change a verdict are cleared so the machine's environment is moot.
CLEARED = ("PFX_TRUSTED_ISSUERS", "EXPIRY_WARNING_DAYS", "ATLAS_BASE_URL", "ATLAS_CA_BUNDLE",
           "ATLAS_MAX_RETRIES", "ATLAS_RETRY_BACKOFF_SECONDS", "PFX_PASSWORD")


@pytest.fixture(scope="module")
def factory() -> PfxFactory:
    return PfxFactory()


@pytest.fixture(scope="module")
def files(factory, tmp_path_factory) -> dict[str, Path]:
    """Every factory kind, and the mistakes, written as files."""
    folder = tmp_path_factory.mktemp("pfx")
    out = {}
    for name, pfx in factory.kinds().items():
        out[name] = folder / f"{name}.pfx"
        out[name].write_bytes(pfx.data)
    extra = {
        "empty": b"",
        "truncated": factory.rsa_aes.data[:700],
        "random": bytes((i * 7919 + 13) % 256 for i in range(3000)),
        "huge": b"\x30\x82" + bytes(1024 * 1024 + 10),
        "pem": factory.good.cert_pem(),
        "der": factory.good.cert_der(),
        "zip": _zip(factory.rsa_aes.data),
        "private_root": factory.private_root.cert_pem(),
        "not_pem": b"hello\n",
    }
    for name, data in extra.items():
        out[name] = folder / name
        out[name].write_bytes(data)
    return out


def _zip(data: bytes) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("credentials.pfx", data)
    return buffer.getvalue()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(extra)
    return env


def run_script(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DIP_EDGE, "check-pfx", *args], capture_output=True, text=True,
                          env=_env(**env), timeout=60, stdin=subprocess.DEVNULL)


@pytest.fixture
def cli(monkeypatch, capsys, tmp_path):
    """Run ``dip-edge check-pfx`` in-process: returns (exit code, stdout, stderr)."""
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DIP_EDGE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)

    def invoke(*args: str, **env: str) -> tuple[int, str, str]:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        code = main(["check-pfx", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


# -- the console script ----------------------------------------------------------------------

def test_script_valid_pfx_human_report(files, factory):
    done = run_script(str(files["rsa_aes"]), "--password-env", "PFX_PW",
                      PFX_PW=PASSWORD.decode())
    assert done.returncode == 0, done.stderr
    assert "VALID: the PFX passes every offline check" in done.stdout
    assert factory.good.certificate.subject.rfc4514_string() in done.stdout
    assert "GlobalSign Atlas: not asked" in done.stdout
    assert done.stderr == ""
    assert_no_secrets(done.stdout + done.stderr, PASSWORD)


def test_script_json_document(files):
    done = run_script(str(files["expired"]), "--password-env", "PFX_PW", "--json",
                      PFX_PW=PASSWORD.decode())
    assert done.returncode == 1
    document = json.loads(done.stdout)
    assert set(document) >= {"valid", "errors", "warnings", "certificate", "globalsign"}
    assert document["valid"] is False
    assert [e["code"] for e in document["errors"]] == ["cert.expired"]
    assert set(document["errors"][0]) == {"code", "detail"}
    assert document["certificate"]["commonName"] == "acme-expired"
    assert document["globalsign"] is None


@pytest.mark.parametrize(("name", "code"), [
    ("empty", "pfx.missing"), ("truncated", "pfx.not_pkcs12"), ("random", "pfx.not_pkcs12"),
    ("huge", "pfx.too_large"), ("pem", "pfx.not_pkcs12"), ("der", "pfx.not_pkcs12"),
    ("zip", "pfx.not_pkcs12"),
])
def test_script_bad_input_exit_1_with_the_code_and_no_traceback(files, name, code):
    done = run_script(str(files[name]), "--json")
    assert done.returncode == 1
    assert [e["code"] for e in json.loads(done.stdout)["errors"]] == [code]
    assert "Traceback" not in done.stderr and done.stderr == ""


def test_a_multi_gigabyte_file_is_refused_without_reading_it(tmp_path):
    huge = tmp_path / "disk-image.pfx"
    with huge.open("wb") as out:
        out.truncate(8 * 1024**3)  # sparse: 8 GiB that read_bytes() would try to hold
    done = run_script(str(huge), "--json")
    assert done.returncode == 1
    assert [e["code"] for e in json.loads(done.stdout)["errors"]] == ["pfx.too_large"]


def test_script_usage_error_exit_2(files, tmp_path):
    done = run_script(str(tmp_path / "missing.pfx"))
    assert done.returncode == 2
    assert "cannot read" in done.stderr and "Traceback" not in done.stderr


def test_script_never_shows_secrets(files, factory):
    for args in (["--password-env", "PFX_PW"], ["--password-env", "WRONG_PW"], []):
        for json_flag in ([], ["--json"]):
            done = run_script(str(files["rsa_aes"]), *args, *json_flag,
                              PFX_PW=PASSWORD.decode(), WRONG_PW="x" + PASSWORD.decode())
            assert_no_secrets(done.stdout + done.stderr, PASSWORD, "x" + PASSWORD.decode(),
                              factory.good.key_pem())


# -- every code through the CLI (in-process) ------------------------------------------------

CLI_CASES = {
    "expired": "cert.expired", "not_yet_valid": "cert.not_yet_valid",
    "rsa1024": "cert.weak_key", "secp256k1": "cert.weak_key",
    "sha1_signed": "cert.weak_signature", "server_only": "cert.missing_client_auth",
    "ca_certificate": "cert.is_ca", "self_signed": "cert.untrusted_issuer",
    "wrong_chain": "cert.untrusted_issuer", "key_mismatch": "pfx.key_mismatch",
    "key_only": "pfx.no_certificate", "certificate_only": "pfx.no_private_key",
    "malformed_extension": "cert.malformed", "several_keys": "pfx.several_keys",
}


@pytest.mark.parametrize(("kind", "code"), sorted(CLI_CASES.items()))
def test_cli_reports_each_code_with_advice(cli, files, kind, code):
    exit_code, out, _ = cli(str(files[kind]), "--password-env", "PFX_PW", "--json",
                            PFX_PW=PASSWORD.decode())
    assert exit_code == 1
    assert code in [e["code"] for e in json.loads(out)["errors"]]
    exit_code, out, _ = cli(str(files[kind]), "--password-env", "PFX_PW")
    assert exit_code == 1
    assert f"ERROR {code}:" in out
    assert "Why it matters:" in out and "What to do:" in out


@pytest.mark.parametrize("kind", ["rsa_aes", "rsa_legacy", "rsa_no_chain", "ec_p256",
                                  "ec_p384_legacy", "no_eku"])
def test_cli_good_files_exit_0(cli, files, kind):
    exit_code, out, _ = cli(str(files[kind]), "--password-env", "PFX_PW", "--json",
                            PFX_PW=PASSWORD.decode())
    document = json.loads(out)
    assert (exit_code, document["valid"], document["errors"]) == (0, True, [])


def test_cli_passwordless_needs_no_password_env(cli, files):
    assert cli(str(files["rsa_passwordless"]))[0] == 0


def test_warning_only_exits_0(cli, files):
    exit_code, out, _ = cli(str(files["expiring_soon"]), "--password-env", "PFX_PW", "--json",
                            PFX_PW=PASSWORD.decode())
    document = json.loads(out)
    assert exit_code == 0 and document["valid"] is True
    assert [w["code"] for w in document["warnings"]] == ["cert.expiring_soon"]


def test_expiry_warning_days_setting(cli, files):
    exit_code, out, _ = cli(str(files["rsa_aes"]), "--password-env", "PFX_PW", "--json",
                            PFX_PW=PASSWORD.decode(), EXPIRY_WARNING_DAYS="400")
    assert exit_code == 0
    assert [w["code"] for w in json.loads(out)["warnings"]] == ["cert.expiring_soon"]


def test_password_missing_and_wrong(cli, files):
    exit_code, out, _ = cli(str(files["rsa_aes"]), "--json")
    assert exit_code == 1
    error = json.loads(out)["errors"][0]
    assert error["code"] == "pfx.wrong_password" and "none was given" in error["detail"]
    exit_code, out, _ = cli(str(files["rsa_aes"]), "--password-env", "PW", "--json", PW="nope")
    error = json.loads(out)["errors"][0]
    assert error["code"] == "pfx.wrong_password" and "password is wrong" in error["detail"]


def test_trust_accepts_a_private_ca(cli, files):
    args = (str(files["trusted_private"]), "--password-env", "PFX_PW")
    assert cli(*args, PFX_PW=PASSWORD.decode())[0] == 1
    assert cli(*args, "--trust", str(files["private_root"]))[0] == 0
    assert cli(*args, PFX_TRUSTED_ISSUERS=str(files["private_root"]))[0] == 0


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--password-env", "NOT_SET_ANYWHERE"], {}, "NOT_SET_ANYWHERE, which is not set"),
    (["--api-key-env", "K"], {"K": API_KEY}, "go together"),
    (["--api-secret-env", "S"], {"S": API_SECRET}, "go together"),
    (["--trust", "/no/such.pem"], {}, "--trust /no/such.pem"),
    (["--trust", "NOT_PEM"], {}, "not a file of PEM certificates"),
    ([], {"PFX_TRUSTED_ISSUERS": "/no/such/trust.pem"}, "PFX_TRUSTED_ISSUERS"),
])
def test_usage_errors_exit_2(cli, files, args, env, message):
    args = [str(files["not_pem"]) if a == "NOT_PEM" else a for a in args]
    exit_code, out, err = cli(str(files["rsa_passwordless"]), *args, **env)
    assert exit_code == 2
    assert message in err and out == ""


@pytest.mark.parametrize("args", [["--password", PASSWORD.decode()],
                                  [f"--api-secret={PASSWORD.decode()}"],
                                  ["--password-env", PASSWORD.decode() + "!"]])
def test_secrets_typed_as_arguments_are_refused_unechoed(cli, files, args):
    exit_code, out, err = cli(str(files["rsa_aes"]), *args)
    assert exit_code == 2 and "environment variable" in err
    assert_no_secrets(out + err, PASSWORD)


def test_empty_api_key_is_a_finding(cli, files):
    exit_code, out, _ = cli(str(files["rsa_passwordless"]), "--api-key-env", "K",
                            "--api-secret-env", "S", "--json", K="", S=API_SECRET)
    assert exit_code == 1
    assert [e["code"] for e in json.loads(out)["errors"]] == ["credentials.api_key_missing"]
    exit_code, out, _ = cli(str(files["rsa_passwordless"]), "--api-key-env", "K",
                            "--api-secret-env", "S", K="", S=API_SECRET)
    assert exit_code == 1 and "credentials.api_key_missing" in out
    # The human report says why GlobalSign was not asked (it printed "GlobalSign Atlas: None").
    assert out.rstrip().endswith("GlobalSign Atlas: not asked: fix the problems above first")


# -- the password prompt on a real terminal -------------------------------------------------

def _answer_prompt(pfx: Path, typed: bytes) -> tuple[int, bytes, bytes]:
    """Run check-pfx on a real terminal, type ``typed`` at the prompt; (exit, out, err+prompt)."""
    controller, terminal = pty.openpty()
    # A new session has no controlling terminal, so getpass reads the pty given as stdin.
    process = subprocess.Popen([DIP_EDGE, "check-pfx", str(pfx), "--json"],
                               stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=_env(), start_new_session=True)
    os.close(terminal)
    try:
        seen, deadline = b"", time.monotonic() + 30
        while b"PFX password:" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stderr, controller], [], [], 1)
            for stream in ready:
                fd = stream if isinstance(stream, int) else stream.fileno()
                seen += os.read(fd, 1024)
        assert b"PFX password:" in seen
        os.write(controller, typed)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
        os.close(controller)
    return process.returncode, out, seen + err


def test_prompts_for_the_password_on_a_terminal(files):
    exit_code, out, err = _answer_prompt(files["rsa_aes"], PASSWORD + b"\n")
    assert exit_code == 0, err
    assert json.loads(out)["valid"] is True
    assert_no_secrets(out.decode() + err.decode(), PASSWORD)


def test_end_of_input_at_the_prompt_reports_the_missing_password(files):
    exit_code, out, err = _answer_prompt(files["rsa_aes"], b"\x04")  # Ctrl-D
    assert exit_code == 1, err
    assert [e["code"] for e in json.loads(out)["errors"]] == ["pfx.wrong_password"]
    assert b"Traceback" not in err


def test_no_prompt_without_a_terminal(files):
    done = run_script(str(files["rsa_aes"]))
    assert done.returncode == 1 and "PFX password" not in done.stderr


# -- online proof against the fake Atlas (real mutual TLS) ----------------------------------

@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    with FakeAtlas() as fake:
        client = fake.new_client_certificate("acme-atlas-client")
        fake.add_account(API_KEY, API_SECRET, client)
        folder = tmp_path_factory.mktemp("atlas")
        fake.pfx_path = folder / "account.pfx"
        fake.pfx_path.write_bytes(to_pfx(client).data)
        stranger = fake.new_client_certificate("acme-unlinked")
        fake.unlinked_pfx_path = folder / "unlinked.pfx"
        fake.unlinked_pfx_path.write_bytes(to_pfx(stranger).data)
        yield fake


def _online(atlas, pfx_path, *extra: str) -> list[str]:
    return [str(pfx_path), "--password-env", "PFX_PW", "--api-key-env", "GS_KEY",
            "--api-secret-env", "GS_SECRET", "--atlas-url", atlas.base_url,
            "--atlas-ca", str(atlas.ca_path), *extra]


ONLINE_ENV = {"PFX_PW": PASSWORD.decode(), "GS_KEY": API_KEY, "GS_SECRET": API_SECRET,
              "ATLAS_MAX_RETRIES": "0", "ATLAS_RETRY_BACKOFF_SECONDS": "0"}


def test_online_proof_succeeds_through_the_script(atlas):
    atlas.reset()
    done = run_script(*_online(atlas, atlas.pfx_path, "--json"), **ONLINE_ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(done.stdout)
    assert document["valid"] is True and document["globalsign"]["proven"] is True
    assert atlas.logins() >= 1
    assert_no_secrets(done.stdout + done.stderr, PASSWORD, API_SECRET)


def test_online_unreadable_atlas_ca_is_a_usage_error(cli, atlas, tmp_path):
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("this is not a certificate")
    args = _online(atlas, atlas.pfx_path)
    args[args.index("--atlas-ca") + 1] = str(not_pem)
    exit_code, out, err = cli(*args, **ONLINE_ENV)
    assert exit_code == 2
    assert "ATLAS_CA_BUNDLE" in err or "CA" in err
    assert "Traceback" not in out + err
    assert_no_secrets(out + err, PASSWORD, API_SECRET)


def test_online_wrong_secret_exit_1(cli, atlas):
    atlas.reset()
    env = {**ONLINE_ENV, "GS_SECRET": "0" * 48}
    exit_code, out, err = cli(*_online(atlas, atlas.pfx_path, "--json"), **env)
    assert exit_code == 1
    assert [e["code"] for e in json.loads(out)["errors"]] == ["globalsign.invalid_credentials"]
    exit_code, out, err = cli(*_online(atlas, atlas.pfx_path), **env)
    assert "ERROR globalsign.invalid_credentials" in out
    assert_no_secrets(out + err, PASSWORD, API_SECRET, "0" * 48)


def test_online_busy_exit_3(cli, atlas):
    atlas.reset()
    atlas.busy(times=5)
    exit_code, out, _ = cli(*_online(atlas, atlas.pfx_path, "--json"), **ONLINE_ENV)
    assert exit_code == 3
    document = json.loads(out)
    assert document["globalsign"]["errors"][0]["code"] == "globalsign.unavailable"


def test_offline_flag_and_offline_errors_skip_the_login(cli, atlas, files):
    atlas.reset()
    exit_code, out, _ = cli(*_online(atlas, atlas.pfx_path, "--offline", "--json"),
                            **ONLINE_ENV)
    assert exit_code == 0 and json.loads(out)["globalsign"] is None
    exit_code, out, _ = cli(*_online(atlas, files["expired"]), **ONLINE_ENV)
    assert exit_code == 1 and "not asked: fix the problems above first" in out
    assert atlas.logins() == 0


@pytest.mark.parametrize(("option", "value"), [
    ("--atlas-url", "http://127.0.0.1:1/v2"),
    # urlsplit's ValueError (an unclosed bracket, a port over 65535) and a path too long to
    # stat (OSError) came out as tracebacks
    ("--atlas-url", "https://[127.0.0.1:1/v2"),
    ("--atlas-url", "https://127.0.0.1:99999/v2"),
    ("--atlas-ca", "x" * 5000),
])
def test_bad_atlas_url_or_ca_is_a_usage_error(cli, atlas, option, value):
    args = _online(atlas, atlas.pfx_path)
    args[args.index(option) + 1] = value
    exit_code, out, err = cli(*args, **ONLINE_ENV)
    assert exit_code == 2
    assert err.startswith(f"dip-edge check-pfx: {option}") and "Traceback" not in out + err


def test_a_mistyped_option_does_not_repeat_what_follows_it(files):
    done = run_script(str(files["rsa_aes"]), "--passwd", "S3cret-after-a-typo")
    assert done.returncode == 2
    assert "unrecognized arguments" in done.stderr
    assert_no_secrets(done.stdout + done.stderr, "S3cret-after-a-typo")
