"""``dip-edge serve`` end to end: real TLS handshakes, client certificates from a
GlobalSign-like test PKI, ``dip-edge send`` and ``dip-edge inbox``, a spoofed header,
refused handshakes, SIGTERM, and ``kill -9`` in the middle of a burst."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared.dip.inbox.sqlite import SqliteInbox
from tests.support.dip_pki import header_value

pytestmark = pytest.mark.xdist_group("serve")

DIP_EDGE = str(Path(sys.executable).with_name("dip-edge"))


@dataclass
class Served:
    process: subprocess.Popen
    base_url: str
    state_dir: Path
    stderr_path: Path

    @property
    def certs(self) -> Path:
        return self.state_dir / "dev-certs"

    @property
    def ca(self) -> Path:
        return self.certs / "ca.pem"

    @property
    def function_key(self) -> str:
        return (self.state_dir / "function-key").read_text().strip()

    def stderr(self) -> str:
        return self.stderr_path.read_text()


def start_serve(state_dir: Path, env: dict[str, str], *args: str, preexec_fn=None) -> Served:
    """``dip-edge serve --port 0`` (plus ``args``) on ``state_dir``; ``preexec_fn`` runs in
    the child before it starts (an umask, a file limit)."""
    stderr_path = state_dir.parent / f"{state_dir.name}-serve.log"
    process = subprocess.Popen(
        [DIP_EDGE, "serve", "--port", "0", "--state-dir", str(state_dir), *args],
        stdout=subprocess.PIPE, stderr=open(stderr_path, "wb"), text=True,  # noqa: SIM115
        env={**os.environ, **env}, preexec_fn=preexec_fn)  # noqa: PLW1509
    deadline = time.monotonic() + 60
    banner = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        banner.append(line)
        if "listening on " in line:
            url = line.split("listening on ", 1)[1].split()[0]
            return Served(process, url, state_dir, stderr_path)
    process.kill()
    raise RuntimeError(f"serve did not start: {''.join(banner)} {stderr_path.read_text()}")


def stop(served: Served) -> None:
    if served.process.poll() is None:
        served.process.kill()
        served.process.wait(10)


@dataclass
class Credentials:
    client_cert: Path
    client_key: Path
    signer_cert: Path
    signer_key: Path


def write_pem(directory: Path, name: str, issued, *, chain: bool = True) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    text = issued.cert_pem()
    if chain and issued.issuer is not None and issued.issuer.issuer is not None:
        text += issued.issuer.cert_pem()  # the intermediate, as a TLS client sends it
    cert.write_bytes(text)
    key.write_bytes(issued.key_pem())
    return cert, key


@pytest.fixture(scope="module")
def pki_files(dip_pki, tmp_path_factory) -> Credentials:
    directory = tmp_path_factory.mktemp("dip-pki")
    client = write_pem(directory, "client", dip_pki.client)
    signer = write_pem(directory, "signer", dip_pki.signer)
    for name in ("stranger", "impostor"):
        write_pem(directory, name, getattr(dip_pki, name))
    return Credentials(*client, *signer)


@pytest.fixture(scope="module")
def served(dip_pki, tmp_path_factory):
    instance = start_serve(tmp_path_factory.mktemp("serve") / "state", dip_pki.env())
    yield instance
    stop(instance)


def tls_client(served: Served, cert: Path | None = None, key: Path | None = None,
               **kwargs) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(served.ca))
    if cert:
        context.load_cert_chain(str(cert), str(key))
    return httpx.Client(verify=context, timeout=10, **kwargs)


def delivery(*txids: str) -> bytes:
    return json.dumps([{"payload": {"CommonBlock": {
        "S0": {"interfaceID": "IF-033"},
        "D0": {"transactionID": t, "transactionTimestamp": "2026-01-01T00:00:00.000Z"}}}}
        for t in txids]).encode()


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([DIP_EDGE, *args], capture_output=True, text=True, timeout=60,
                          **kwargs)


def send(served: Served, creds: Credentials, path: str, file: Path) -> subprocess.CompletedProcess:
    return cli("send", served.base_url + path, str(file), "--ca", str(served.ca),
               "--cert", str(creds.client_cert), "--key", str(creds.client_key),
               "--sign-cert", str(creds.signer_cert), "--sign-key", str(creds.signer_key))


def inbox_json(served: Served) -> list[dict]:
    result = cli("inbox", "--state-dir", str(served.state_dir), "list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_send_then_inbox_list_and_show(served, pki_files, tmp_path):
    txid = f"tx-{uuid.uuid4()}"
    file = tmp_path / "delivery.json"
    file.write_bytes(delivery(txid))
    first = send(served, pki_files, "/api/webhooks/dip/pub-033", file)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.startswith("HTTP 200")
    assert json.loads(first.stdout.splitlines()[1]) == {
        "accepted": 1, "duplicates": 0, "conflicts": 0, "transactionIds": [txid]}
    again = send(served, pki_files, "/api/webhooks/dip/pub-033", file)
    assert again.returncode == 0 and '"duplicates":1' in again.stdout

    listed = {m["transactionId"]: m for m in inbox_json(served)}
    assert listed[txid]["interfaceId"] == "IF-033" and listed[txid]["channel"] == "pub-033"
    assert listed[txid]["receivedAt"].endswith("Z")
    shown = cli("inbox", "--state-dir", str(served.state_dir), "show", txid)
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["message"]["payload"]["CommonBlock"]["D0"][
        "transactionID"] == txid
    assert cli("inbox", "--state-dir", str(served.state_dir), "show", "nope").returncode == 1


def test_inbox_commands_elsewhere_create_nothing_and_say_where_they_looked(tmp_path):
    # Run from another directory than serve's, "(the inbox is empty)" alone would read as
    # "nothing was delivered"; and a read must not leave a new, empty inbox behind.
    state = tmp_path / "not-serves-state"
    env = {k: v for k, v in os.environ.items() if k not in ("INBOX_BACKEND", "INBOX_STORAGE")}
    for argv, code, out in ((["list"], 0, "(the inbox is empty)"), (["list", "--json"], 0, "[]"),
                            (["show", "some-id"], 1, "")):
        result = cli("inbox", "--state-dir", str(state), *argv, env=env)
        assert (result.returncode, result.stdout.strip()) == (code, out), result.stderr
        assert f"no inbox at {state / 'inbox.sqlite3'}" in result.stderr
        assert not state.exists()


def test_channels_through_serve_are_distinct_and_logged_escaped(served, pki_files, tmp_path):
    file = tmp_path / "channel.json"
    file.write_bytes(delivery(f"tx-{uuid.uuid4()}"))
    # Not UTF-8: both decode to U+FFFD U+FFFD, so neither is served (they would collapse).
    for raw in ("%ff%fe", "%fe%ff"):
        refused = send(served, pki_files, f"/api/webhooks/dip/{raw}", file)
        assert refused.returncode == 1 and "HTTP 404" in refused.stdout, refused.stdout
    # U+2028 and a right-to-left override: stored as they are, logged escaped.
    accepted = send(served, pki_files, "/api/webhooks/dip/line%E2%80%A8rlo%E2%80%AEx", file)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "line\u2028rlo\u202ex" in {m["channel"] for m in inbox_json(served)}
    deadline = time.monotonic() + 10
    while "channel=\"line" not in served.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = served.stderr()
    assert 'delivery status=200 channel="line\\u2028rlo\\u202ex"' in log
    assert "\u2028" not in log and "\u202e" not in log


def test_send_reports_a_rejection_with_exit_1(served, pki_files, tmp_path):
    file = tmp_path / "bad.json"
    file.write_text('{"not": "an array"}')
    result = send(served, pki_files, "/api/webhooks/dip", file)
    assert result.returncode == 1 and "HTTP 400" in result.stdout
    assert "message.invalid_envelope" in result.stdout


def test_send_to_a_closed_port_exits_3(pki_files, served, tmp_path):
    file = tmp_path / "d.json"
    file.write_bytes(delivery("x"))
    result = cli("send", "https://127.0.0.1:9/api/webhooks/dip", str(file), "--ca",
                 str(served.ca), "--cert", str(pki_files.client_cert), "--key",
                 str(pki_files.client_key), "--sign-cert", str(pki_files.signer_cert),
                 "--sign-key", str(pki_files.signer_key))
    assert result.returncode == 3


def send_args(url: str, file: Path, creds: Credentials, ca: Path, **replace: str) -> list[str]:
    options = {"--ca": str(ca), "--cert": str(creds.client_cert), "--key": str(creds.client_key),
               "--sign-cert": str(creds.signer_cert), "--sign-key": str(creds.signer_key),
               **replace}
    return ["send", url, str(file), *[x for pair in options.items() for x in pair]]


def test_send_with_a_non_rsa_signing_key_is_a_usage_error(served, pki_files, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    key = tmp_path / "ec.key"
    key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    file = tmp_path / "d.json"
    file.write_bytes(delivery("x"))
    result = cli(*send_args(served.base_url + "/api/webhooks/dip", file, pki_files, served.ca,
                            **{"--sign-key": str(key)}))
    assert (result.returncode, "Traceback" in result.stderr) == (2, False), result.stderr
    assert "RSA" in result.stderr


@pytest.mark.parametrize("url", ["https://[::1/api/webhooks/dip", "ftp://localhost/api"])
def test_send_to_an_invalid_url_is_a_usage_error(served, pki_files, tmp_path, url):
    file = tmp_path / "d.json"
    file.write_bytes(delivery("x"))
    result = cli(*send_args(url, file, pki_files, served.ca))
    assert (result.returncode, "Traceback" in result.stderr) == (2, False), result.stderr


def test_send_to_a_server_of_another_ca_exits_3(served, pki_files, tmp_path):
    file = tmp_path / "d.json"
    file.write_bytes(delivery("x"))
    other_ca = pki_files.client_cert  # a certificate, but not the server's CA
    result = cli(*send_args(served.base_url + "/api/webhooks/dip", file, pki_files, other_ca))
    assert result.returncode == 3 and "CERTIFICATE_VERIFY_FAILED" in result.stderr
    # Not "unreachable": it answered, and what to do is to give its CA.
    assert "unreachable" not in result.stderr, result.stderr
    assert "server certificate is not trusted" in result.stderr and "--ca" in result.stderr


def test_spoofed_client_certificate_header_is_dropped(served, pki_files, dip_pki):
    """A stranger (valid chain, wrong identity) claims to be the DIP through the header."""
    stranger = pki_files.client_cert.with_name("stranger.pem")
    body = delivery(f"tx-{uuid.uuid4()}")
    url = served.base_url + "/api/webhooks/dip"
    headers = {"Content-Type": "application/json", **dip_pki.sign("POST", url, body)}
    with tls_client(served, stranger, stranger.with_suffix(".key")) as client:
        response = client.post(url, content=body, headers=[
            *headers.items(), ("X-ARR-ClientCert", dip_pki.client_header()),
            ("x-arr-clientcert", dip_pki.client_header())])
    assert response.status_code == 403
    assert response.json()["code"] == "clientcert.identity_mismatch"
    # And the same request with the DIP's own certificate in the handshake is accepted.
    with tls_client(served, pki_files.client_cert, pki_files.client_key) as client:
        response = client.post(url, content=body, headers={
            **headers, "X-ARR-ClientCert": header_value(dip_pki.stranger)})
    assert response.status_code == 200, response.text


def test_handshake_without_a_client_certificate_is_refused(served):
    # As on App Service (Required): no certificate, no connection. Any certificate is
    # accepted and judged by the function (tests/test_serve_front_door.py).
    with tls_client(served) as client, pytest.raises(httpx.TransportError):
        client.get(served.base_url + "/api/health")
    # Under TLS 1.3 the client can see the refusal before the server's thread logs it.
    deadline = time.monotonic() + 5
    while "TLS handshake" not in served.stderr() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "TLS handshake" in served.stderr()


def test_health_and_routing_over_keep_alive(served, pki_files):
    with tls_client(served, pki_files.client_cert, pki_files.client_key) as client:
        health = client.get(served.base_url + "/api/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert health.headers["content-type"].startswith("application/json")
        again = client.get(served.base_url + "/api/health")
        # Both over one connection (keep-alive).
        assert health.extensions["network_stream"] is again.extensions["network_stream"]
        missing = client.get(served.base_url + "/api/nothing-here")
        assert missing.status_code == 404
        wrong = client.get(served.base_url + "/api/webhooks/dip")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"


def test_functions_are_called_through_the_python_worker(served, pki_files):
    """serve dispatches through azure-functions-runtime, and says so."""
    assert "HTTP functions run in Microsoft's Python worker (azure-functions-runtime 1.3.0)" \
        in served.stderr()
    with tls_client(served, pki_files.client_cert, pki_files.client_key) as client:
        assert client.get(served.base_url + "/api/health").status_code == 200


def test_sigterm_stops_cleanly(dip_pki, tmp_path):
    instance = start_serve(tmp_path / "state", dip_pki.env())
    try:
        instance.process.send_signal(signal.SIGTERM)
        assert instance.process.wait(15) == 0
        assert "stopping" in instance.stderr()
    finally:
        stop(instance)


def test_restarted_at_once_on_the_same_port_after_serving(dip_pki, pki_files, tmp_path):
    """Ctrl-C, change a setting, start again (the README's walkthrough): connections the
    server closed linger in TIME_WAIT for a minute, which must not keep the port from it;
    a second serve while the first runs is still refused."""
    first = start_serve(tmp_path / "state", dip_pki.env())
    port = first.base_url.rsplit(":", 1)[1]
    try:
        with tls_client(first, pki_files.client_cert, pki_files.client_key) as client:
            answer = client.get(first.base_url + "/api/health",
                                headers={"Connection": "close"})  # the server closes first
            assert answer.status_code == 200
        rival = subprocess.run([DIP_EDGE, "serve", "--port", port, "--state-dir",
                                str(tmp_path / "state")], capture_output=True, text=True,
                               timeout=60, env={**os.environ, **dip_pki.env()})
        assert rival.returncode == 3 and "cannot listen" in rival.stderr, rival.stderr
        first.process.send_signal(signal.SIGINT)
        assert first.process.wait(15) == 0
        second = start_serve(tmp_path / "state", dip_pki.env(), "--port", port)
        try:
            assert second.base_url == first.base_url
            with tls_client(second, pki_files.client_cert, pki_files.client_key) as client:
                assert client.get(second.base_url + "/api/health").status_code == 200
        finally:
            stop(second)
    finally:
        stop(first)


def test_kill_9_during_a_burst_loses_no_acknowledged_message(dip_pki, pki_files, tmp_path):
    instance = start_serve(tmp_path / "state", dip_pki.env())
    acknowledged: list[str] = []
    lock = threading.Lock()
    started = threading.Event()

    def burst(worker: int) -> None:
        url = instance.base_url + "/api/webhooks/dip/burst"
        try:
            with tls_client(instance, pki_files.client_cert, pki_files.client_key) as client:
                for n in range(10_000):
                    ids = [f"w{worker}-{n}-{k}" for k in range(3)]
                    body = delivery(*ids)
                    headers = {"Content-Type": "application/json",
                               **dip_pki.sign("POST", url, body)}
                    response = client.post(url, content=body, headers=headers)
                    if response.status_code == 200:
                        with lock:
                            acknowledged.extend(response.json()["transactionIds"])
                        started.set()
        except httpx.TransportError:
            return  # the server died

    threads = [threading.Thread(target=burst, args=(w,)) for w in range(4)]
    try:
        for thread in threads:
            thread.start()
        assert started.wait(30)
        time.sleep(0.5)
        instance.process.send_signal(signal.SIGKILL)
        instance.process.wait(10)
        for thread in threads:
            thread.join(30)
    finally:
        stop(instance)
    assert len(acknowledged) >= 3
    inbox = SqliteInbox(tmp_path / "state" / "inbox.sqlite3")
    try:
        stored = {m.transaction_id for m in inbox.list()}
    finally:
        inbox.close()
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged messages lost"


def raw_exchange(served: Served, creds: Credentials, request: bytes, *,
                 half_close: bool = False) -> bytes:
    """One request written as bytes over mTLS; everything the host answers until it closes."""
    import socket

    context = ssl.create_default_context(cafile=str(served.ca))
    context.load_cert_chain(str(creds.client_cert), str(creds.client_key))
    port = int(served.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain, \
            context.wrap_socket(plain, server_hostname="localhost") as tls:
        tls.sendall(request)
        if half_close:
            tls.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    return answer


def signed_request(dip_pki, target: str, url: str, body: bytes, *, length: int) -> bytes:
    headers = {"Host": "localhost", "Content-Type": "application/json",
               "Content-Length": str(length), "Connection": "close",
               **dip_pki.sign("POST", url, body)}
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"POST {target} HTTP/1.1\r\n{head}\r\n".encode() + body


def test_a_body_shorter_than_its_content_length_is_never_delivered(served, pki_files, dip_pki):
    # The client announces more than it sends, then closes: the host used to pass the
    # short body on (or crash on the closed connection), so a truncated delivery, signed
    # as sent, could be stored and acknowledged.
    txid = f"tx-{uuid.uuid4()}"
    body = delivery(txid)
    url = served.base_url + "/api/webhooks/dip"
    answer = raw_exchange(served, pki_files, signed_request(
        dip_pki, "/api/webhooks/dip", url, body, length=len(body) + 100), half_close=True)
    assert b" 200 " not in answer
    assert txid not in [m["transactionId"] for m in inbox_json(served)]
    assert "Traceback" not in served.stderr()


def test_absolute_form_request_target_is_served_with_its_own_url(served, pki_files, dip_pki):
    # RFC 9112 3.2.2: a server accepts absolute-form. The function used to see
    # "https://<Host><absolute URL>", so the DIP signature over the real URL failed.
    txid = f"tx-{uuid.uuid4()}"
    body = delivery(txid)
    url = served.base_url + "/api/webhooks/dip"
    answer = raw_exchange(served, pki_files, signed_request(
        dip_pki, url, url, body, length=len(body)))
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:400]


def test_problem_answers_carry_one_connection_header(served, pki_files):
    with tls_client(served, pki_files.client_cert, pki_files.client_key) as client:
        missing = client.get(served.base_url + "/api/nothing-here")
    assert missing.status_code == 404
    assert missing.headers.get_list("connection") == ["close"]


def test_inbox_show_prints_a_message_holding_an_unpaired_surrogate(tmp_path):
    # JSON lets "\udc00" through in a payload keyed by its transaction ID; printing it
    # with ensure_ascii=False raised UnicodeEncodeError (a traceback, exit 1).
    from shared.dip.envelope import parse_delivery
    from shared.dip.inbox import Receipt

    raw = (b'[{"payload":{"CommonBlock":{"S0":{"interfaceID":"IF-1"},'
           b'"D0":{"transactionID":"tx-s"}},"CustomBlock":{"note":"a\\udc00b \xc3\xa9"}}}]')
    inbox = SqliteInbox(tmp_path / "inbox.sqlite3")
    inbox.store(parse_delivery(raw), Receipt("2026-01-01T00:00:00.000Z", None, None, None))
    inbox.close()
    shown = cli("inbox", "--state-dir", str(tmp_path), "show", "tx-s")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["message"]["payload"]["CustomBlock"]["note"] == "a\udc00b é"
    unknown = cli("inbox", "--state-dir", str(tmp_path), "show", "../../etc/passwd\u202e")
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr


# --- identity rules: fail closed, the dev defaults, rules from `identity-rule` -------------------
NO_TRUST_CONFIG = {name: "" for name in (
    "DIP_CLIENT_TRUST_ANCHORS", "DIP_CLIENT_INTERMEDIATES", "DIP_CLIENT_IDENTITIES",
    "DIP_SIGNER_TRUST_ANCHORS", "DIP_SIGNER_INTERMEDIATES", "DIP_SIGNER_IDENTITIES",
    "DIP_SIGNATURE_MODE", "AIA_FETCH")}


def without_identities(dip_pki, **overrides: str) -> dict[str, str]:
    return dip_pki.env(**{"DIP_CLIENT_IDENTITIES": "", "DIP_SIGNER_IDENTITIES": "",
                          **overrides})


def test_dev_certificates_work_out_of_the_box(tmp_path):
    # `make run` + the README's curl and send, with no trust configuration at all.
    instance = start_serve(tmp_path / "state", NO_TRUST_CONFIG)
    try:
        dev = instance.state_dir / "dev-certs"
        creds = Credentials(dev / "client.pem", dev / "client.key", dev / "signer.pem",
                            dev / "signer.key")
        result = send(instance, creds, "/api/webhooks/dip",
                      instance.state_dir / "sample-delivery.json")
        assert result.returncode == 0 and result.stdout.startswith("HTTP 200"), result.stdout
        with tls_client(instance, creds.client_cert, creds.client_key) as client:
            health = client.get(instance.base_url + "/api/health").json()
        assert health["status"] == "ok", health
        assert health["configuration"]["trust"]["client"]["identities"]["mode"] == "rules"
        assert health["configuration"]["trust"]["signer"]["identities"]["setting"] == \
            "DIP_SIGNER_IDENTITIES"
        assert "refuses every delivery" not in instance.stderr()
    finally:
        stop(instance)


def test_the_banners_commands_run_as_printed_from_another_directory(tmp_path):
    # `make run` in one terminal, the banner's commands pasted into another, where the
    # virtual environment's dip-edge is not on PATH.
    instance = start_serve(tmp_path / "state", NO_TRUST_CONFIG)
    try:
        banner = []
        while not banner or "Ctrl-C stops." not in banner[-1]:
            banner.append(instance.process.stdout.readline())
        start = next(i for i, line in enumerate(banner) if " send https://" in line)
        script = "".join(banner[start:start + 4])  # send (three lines), inbox list
        assert banner[start + 3].lstrip().startswith(DIP_EDGE + " inbox "), script
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                              timeout=60, cwd=elsewhere, env={"PATH": "/usr/bin:/bin"})
        assert done.returncode == 0, (script, done.stdout, done.stderr)
        assert done.stdout.startswith("HTTP 200") and '"accepted":1' in done.stdout
        assert "IF-033" in done.stdout.splitlines()[-1]  # the inbox list line
    finally:
        stop(instance)


def test_own_trust_configuration_without_identities_fails_closed(dip_pki, pki_files, tmp_path):
    instance = start_serve(tmp_path / "state", without_identities(dip_pki))
    try:
        # Said at start, before the first delivery is refused: nothing in the banner did.
        started = instance.stderr()
        assert "warning: the webhook refuses every delivery (503 config.invalid)" in started
        assert "set DIP_CLIENT_IDENTITIES and DIP_SIGNER_IDENTITIES" in started
        file = tmp_path / "delivery.json"
        file.write_bytes(delivery("tx-unwelcome"))
        with tls_client(instance, pki_files.client_cert, pki_files.client_key) as client:
            url = instance.base_url + "/api/webhooks/dip"
            response = client.post(url, content=file.read_bytes(), headers={
                "Content-Type": "application/json",
                **dip_pki.sign("POST", url, file.read_bytes())})
            health = client.get(instance.base_url + "/api/health")
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) > 0
        problem = response.json()
        assert problem["code"] == "config.invalid" and problem["status"] == 503
        assert "DIP_CLIENT_IDENTITIES and DIP_SIGNER_IDENTITIES" in problem["detail"]
        assert set(problem) == {"type", "title", "status", "detail", "code"}  # nothing more
        assert inbox_json(instance) == []
        assert health.status_code == 503 and health.json()["status"] == "misconfigured"
        assert any("DIP_CLIENT_IDENTITIES" in e for e in health.json()["errors"])
        assert send(instance, pki_files, "/api/webhooks/dip", file).returncode == 1
    finally:
        stop(instance)


def test_identities_any_accepts_a_stranger_and_warns(dip_pki, tmp_path):
    env = without_identities(dip_pki, DIP_CLIENT_IDENTITIES="any")
    instance = start_serve(tmp_path / "state", env)
    try:
        stranger = write_pem(tmp_path, "stranger", dip_pki.stranger)
        creds = Credentials(*stranger, *stranger)  # signs with itself too
        file = tmp_path / "delivery.json"
        file.write_bytes(delivery("tx-any"))
        result = send(instance, creds, "/api/webhooks/dip", file)
        assert result.returncode == 0, result.stdout
        assert [m["transactionId"] for m in inbox_json(instance)] == ["tx-any"]
        log = instance.stderr()
        assert "WARNING" in log and "DIP_CLIENT_IDENTITIES=any" in log
        with tls_client(instance, *stranger) as client:
            health = client.get(instance.base_url + "/api/health").json()
        assert any("DIP_CLIENT_IDENTITIES=any" in w for w in health["warnings"])
    finally:
        stop(instance)


def test_rules_from_identity_rule_accept_the_dip_and_refuse_its_siblings(dip_pki, pki_files,
                                                                         tmp_path):
    rules = {}
    for name, cert in (("DIP_CLIENT_IDENTITIES", pki_files.client_cert),
                       ("DIP_SIGNER_IDENTITIES", pki_files.signer_cert)):
        printed = cli("identity-rule", str(cert))
        assert printed.returncode == 0, printed.stderr
        rules[name] = printed.stdout.strip()
    instance = start_serve(tmp_path / "state", dip_pki.env(**rules))
    try:
        stranger = write_pem(tmp_path, "stranger", dip_pki.stranger)  # same CA, somebody else
        file = tmp_path / "delivery.json"
        file.write_bytes(delivery("tx-dip"))
        assert send(instance, pki_files, "/api/webhooks/dip", file).returncode == 0
        as_client = Credentials(*stranger, pki_files.signer_cert, pki_files.signer_key)
        refused = send(instance, as_client, "/api/webhooks/dip", file)
        assert refused.returncode == 1 and "HTTP 403" in refused.stdout
        assert json.loads(refused.stdout.splitlines()[1])["code"] == \
            "clientcert.identity_mismatch"
        as_signer = Credentials(pki_files.client_cert, pki_files.client_key, *stranger)
        refused = send(instance, as_signer, "/api/webhooks/dip", file)
        problem = json.loads(refused.stdout.splitlines()[1])
        assert problem["code"] == "signature.untrusted_certificate"
        assert "[clientcert.identity_mismatch]" in problem["detail"]
        assert [m["transactionId"] for m in inbox_json(instance)] == ["tx-dip"]
    finally:
        stop(instance)


@pytest.mark.azurite
def test_kill_9_during_a_burst_with_the_blob_inbox(dip_pki, pki_files, tmp_path, azurite):
    """Through ``dip-edge serve`` on the Blob inbox (Azurite behind the TCP proxy, 1 ms each
    way): kill -9 mid-burst, restart, the DIP redelivers what was not acknowledged. Nothing
    acknowledged is missing, nothing is stored twice, every message is announced downstream,
    and every failure was a 503 within the budget."""
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy

    from shared.dip.inbox.blob import BlobInbox
    from tests.support.azurite import connection_string
    from tests.support.proxy import TcpProxy

    budget = 3.0
    proxies = [TcpProxy(port) for port in (azurite.blob_port, azurite.queue_port,
                                           azurite.table_port)]
    for proxy in proxies:
        proxy.delay(up=0.001, down=0.001)
    name = f"kill{uuid.uuid4().hex[:12]}"
    env = dip_pki.env(INBOX_STORAGE=connection_string(*(p.port for p in proxies)),
                      INBOX_CONTAINER=name, INBOX_TABLE=name, INBOX_QUEUE=name,
                      INBOX_TIMEOUT_SECONDS=str(budget))
    bodies: dict[tuple[int, int], bytes] = {}
    acknowledged: set[tuple[int, int]] = set()
    failures: list[tuple[int, float]] = []
    lock = threading.Lock()
    started = threading.Event()

    def burst(instance: Served, worker: int, todo) -> None:
        url = instance.base_url + "/api/webhooks/dip/burst"
        try:
            with tls_client(instance, pki_files.client_cert, pki_files.client_key) as client:
                for key in todo:
                    with lock:
                        body = bodies.setdefault(key, delivery(
                            *[f"b{key[0]}-{key[1]}-{k}" for k in range(5)]))
                    headers = {"Content-Type": "application/json",
                               **dip_pki.sign("POST", url, body)}
                    sent = time.monotonic()
                    response = client.post(url, content=body, headers=headers)
                    with lock:
                        if response.status_code == 200:
                            acknowledged.add(key)
                            started.set()
                        else:
                            failures.append((response.status_code, time.monotonic() - sent))
        except httpx.TransportError:
            return  # the server died

    instance = start_serve(tmp_path / "state", env)
    threads = [threading.Thread(target=burst, args=(instance, w, ((w, n) for n in range(10**6))))
               for w in range(4)]
    try:
        for thread in threads:
            thread.start()
        assert started.wait(60)
        time.sleep(1.0)
        instance.process.send_signal(signal.SIGKILL)
        instance.process.wait(10)
        for thread in threads:
            thread.join(30)
    finally:
        stop(instance)
    assert len(acknowledged) >= 3
    # The DIP redelivers every delivery it got no 200 for, to the restarted host.
    instance = start_serve(tmp_path / "state", env)
    try:
        for _ in range(3):
            unacknowledged = sorted(set(bodies) - acknowledged)
            if not unacknowledged:
                break
            burst(instance, 0, unacknowledged)
    finally:
        stop(instance)
    assert set(bodies) == acknowledged
    assert all(status == 503 and elapsed < budget + 1 for status, elapsed in failures), failures

    expected = {f"b{w}-{n}-{k}" for w, n in bodies for k in range(5)}
    inbox = BlobInbox.connect(azurite.connection_string, name, name, name)
    try:
        listed = inbox.list()
        assert len(listed) == len({m.transaction_id for m in listed})  # none stored twice
        assert {m.transaction_id for m in listed} == expected  # none missing
        assert not any(m.conflicts for m in listed)
        for w, n in list(bodies)[:: max(1, len(bodies) // 20)]:  # a sample, byte for byte
            for k, raw in enumerate(json.loads(bodies[(w, n)])):
                assert json.loads(inbox.get(f"b{w}-{n}-{k}").body) == raw
    finally:
        inbox.close()
        for proxy in proxies:
            proxy.close()
    queue = QueueClient.from_connection_string(azurite.connection_string, name,
                                               message_decode_policy=TextBase64DecodePolicy())
    announced = set()
    while batch := list(queue.receive_messages(max_messages=32, visibility_timeout=300)):
        for message in batch:
            announced.update(m["transactionId"] for m in json.loads(message.content)["messages"])
    assert announced == expected  # at least once each
