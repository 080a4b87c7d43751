"""``dip-edge serve`` as a front door, attacked: real TLS and raw sockets against a running
``serve``. Certificates are judged by the function like on App Service, hostile HTTP is a
400 problem document and a closed connection, slow clients are cut off and cannot starve
a delivery, nothing private reaches the disk's other readers or the log."""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import socket
import ssl
import stat
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shared.certs.devpki import CLIENT_AUTH, issue
from tests.support.dip_pki import CLIENT_CN, DIP_ORG
from tests.test_serve_e2e import (
    DIP_EDGE,
    Served,
    delivery,
    signed_request,
    start_serve,
    stop,
    tls_client,
    write_pem,
)

pytestmark = pytest.mark.xdist_group("serve")


@pytest.fixture(scope="module")
def certs(dip_pki, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """PEM files of the DIP's client certificate and its hostile variants."""
    directory = tmp_path_factory.mktemp("front-door-pki")
    now = dt.datetime.now(dt.UTC)
    foreign_root = issue("Foreign Test Root", organization="Elsewhere CA", ca=True, ekus=None)
    hostile = {
        "client": dip_pki.client,
        "foreign": issue(CLIENT_CN, organization=DIP_ORG, country="GB", issuer=foreign_root,
                         dns_names=(CLIENT_CN,), ekus=(CLIENT_AUTH,)),
        "expired": dip_pki.expired,
        "not_yet_valid": issue(CLIENT_CN, organization=DIP_ORG, country="GB",
                               issuer=dip_pki.intermediate, dns_names=(CLIENT_CN,),
                               ekus=(CLIENT_AUTH,), not_before=now + dt.timedelta(days=2),
                               not_after=now + dt.timedelta(days=90)),
        "impostor": dip_pki.impostor,  # self-signed, the DIP's exact subject and SAN
    }
    return {name: write_pem(directory, name, issued) for name, issued in hostile.items()}


@pytest.fixture(scope="module")
def served(dip_pki, tmp_path_factory):
    instance = start_serve(tmp_path_factory.mktemp("front-door") / "state", dip_pki.env())
    yield instance
    stop(instance)


def _strict_child() -> None:
    os.umask(0o022)


@pytest.fixture(scope="module")
def strict(dip_pki, tmp_path_factory):
    """Short deadlines, a 1 KiB webhook limit, --debug, started under umask 022."""
    env = dip_pki.env(SERVE_HEAD_TIMEOUT_SECONDS="1", SERVE_BODY_TIMEOUT_SECONDS="1",
                      SERVE_IDLE_TIMEOUT_SECONDS="1", WEBHOOK_MAX_BODY_BYTES="1024")
    instance = start_serve(tmp_path_factory.mktemp("front-door-strict") / "state", env,
                           "--debug", preexec_fn=_strict_child)
    yield instance
    stop(instance)


def port(served: Served) -> int:
    return int(served.base_url.rsplit(":", 1)[1])


def context(served: Served, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(served.ca))
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def connect(served: Served, ctx: ssl.SSLContext, **kwargs) -> ssl.SSLSocket:
    plain = socket.create_connection(("127.0.0.1", port(served)), timeout=10)
    return ctx.wrap_socket(plain, server_hostname="localhost", **kwargs)


def read_all(tls: ssl.SSLSocket) -> bytes:
    answer = b""
    try:
        while chunk := tls.recv(65536):
            answer += chunk
    except (ssl.SSLError, ConnectionResetError):
        pass
    return answer


def exchange(served: Served, cert, request: bytes) -> bytes:
    """``request`` written over mTLS; everything answered until the host closes (a host
    that does not close fails the test with a timeout)."""
    with connect(served, context(served, cert)) as tls:
        tls.sendall(request)
        return read_all(tls)


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def problem(answer: bytes) -> tuple[int, str]:
    status, headers, body = parse(answer)
    assert headers["content-type"] == "application/problem+json", answer[:300]
    assert headers["connection"] == "close"
    document = json.loads(body)
    assert document["status"] == status
    return status, document["code"]


def signed_delivery(dip_pki, served: Served, url_path: str = "/api/webhooks/dip"):
    body = delivery(f"tx-{uuid.uuid4()}")
    url = served.base_url + url_path
    return url, body, {"Content-Type": "application/json", **dip_pki.sign("POST", url, body)}


# --- TLS like App Service (Required) ------------------------------------------------------

@pytest.mark.parametrize(("who", "code"), [
    ("foreign", "clientcert.untrusted"), ("expired", "clientcert.expired"),
    ("not_yet_valid", "clientcert.expired"), ("impostor", "clientcert.untrusted")])
def test_any_client_certificate_is_accepted_at_tls_and_judged_by_the_function(
        served, certs, dip_pki, who, code):
    url, body, headers = signed_delivery(dip_pki, served)
    with tls_client(served, *certs[who]) as client:
        response = client.post(url, content=body, headers=headers)
    assert (response.status_code, response.json()["code"]) == (403, code), response.text


def test_the_certificate_presented_is_forwarded_also_on_resumed_sessions(served, certs,
                                                                         dip_pki):
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        ctx = context(served, certs["client"])
        ctx.minimum_version = ctx.maximum_version = version
        session = None
        for attempt in range(2):
            url, body, _ = signed_delivery(dip_pki, served)
            with connect(served, ctx, session=session) as tls:
                assert tls.session_reused is (attempt == 1), version
                tls.sendall(signed_request(dip_pki, url, url, body,
                                           length=len(body)))
                answer = read_all(tls)
                session = tls.session
            # 401 clientcert.missing if the resumed session had lost the certificate.
            assert parse(answer)[0] == 200, (version, attempt, answer[:400])


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_a_handshake_without_a_certificate_is_refused_with_an_alert(served, version):
    ctx = context(served, None)
    ctx.minimum_version = ctx.maximum_version = version
    with pytest.raises(ssl.SSLError) as refused:  # noqa: PT012 - TLS 1.3 refuses on read
        with connect(served, ctx) as tls:
            tls.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            tls.recv(100)
    assert "ALERT" in (refused.value.reason or ""), refused.value


def test_tls_12_offers_only_mozilla_intermediate_ciphers(served, certs):
    ctx = context(served, certs["client"])
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with connect(served, ctx) as tls:
        name, protocol, _ = tls.cipher()
    assert protocol == "TLSv1.2" and name.startswith("ECDHE-")
    assert "GCM" in name or "CHACHA20" in name
    for weak in ("AES128-SHA256", "ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"):
        ctx = context(served, certs["client"])
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(weak)
        with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE|NO_SHARED_CIPHER"):
            connect(served, ctx).close()


def test_verify_client_at_tls_refuses_in_the_handshake_and_send_says_so(dip_pki, certs,
                                                                       tmp_path):
    instance = start_serve(tmp_path / "state", dip_pki.env(), "--verify-client-at-tls")
    try:
        with tls_client(instance, *certs["client"]) as client:
            assert client.get(instance.base_url + "/api/health").status_code == 200
        file = tmp_path / "d.json"
        file.write_bytes(delivery("x"))
        signer = (tmp_path / "signer.pem", tmp_path / "signer.key")
        signer[0].write_bytes(dip_pki.signer.cert_pem())
        signer[1].write_bytes(dip_pki.signer.key_pem())
        result = subprocess.run(
            [DIP_EDGE, "send", instance.base_url + "/api/webhooks/dip", str(file),
             "--ca", str(instance.ca), "--cert", str(certs["impostor"][0]),
             "--key", str(certs["impostor"][1]), "--sign-cert", str(signer[0]),
             "--sign-key", str(signer[1])], capture_output=True, text=True, timeout=60)
    finally:
        stop(instance)
    # A refusal, not "unreachable" (exit 3, which means "retry later").
    assert result.returncode == 1, result.stderr
    assert "refused the TLS handshake" in result.stderr and "ALERT" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_corrupt_tls_record_after_the_handshake_is_one_log_line(served, certs):
    with connect(served, context(served, certs["client"])) as tls:
        tls.sendall(b"GET /api/health HTTP/1.1\r\n")
        os.write(tls.fileno(), b"\x17\x03\x03\x00\x20" + os.urandom(32))
        read_all(tls)
    deadline = time.monotonic() + 5
    while "TLS error with" not in served.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = served.stderr()
    assert "TLS error with 127.0.0.1" in log
    assert "Traceback" not in log


# --- strict HTTP/1.1 ----------------------------------------------------------------------

HEAD = ("POST /api/webhooks/dip HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: application/json\r\n")
HOSTILE = {
    "conflicting Content-Length": HEAD + "Content-Length: 2\r\nContent-Length: 40\r\n\r\n[]",
    "Content-Length with a sign": HEAD + "Content-Length: +2\r\n\r\n[]",
    "Content-Length with underscores": HEAD + "Content-Length: 0_2\r\n\r\n[]",
    "negative Content-Length": HEAD + "Content-Length: -2\r\n\r\n[]",
    "Transfer-Encoding with Content-Length": HEAD + "Transfer-Encoding: chunked\r\n"
                                             "Content-Length: 2\r\n\r\n2\r\n[]\r\n0\r\n\r\n",
    "unsupported Transfer-Encoding": HEAD + "Transfer-Encoding: gzip\r\n\r\n",
    "bare CR in a header value": HEAD + "X-Note: a\rContent-Length: 2\r\n\r\n[]",
    "bare LF ending a header": HEAD + "X-Note: a\nContent-Length: 2\r\n\r\n[]",
    "bare LF head": "GET /api/health HTTP/1.1\nHost: localhost\n\n",
    "malformed header line": HEAD + "this is not a header\r\nContent-Length: 2\r\n\r\n[]",
    "space before the colon": HEAD + "Content-Length : 2\r\n\r\n[]",
    "obs-fold": HEAD + "X-Note: a\r\n folded\r\nContent-Length: 2\r\n\r\n[]",
    "no Host": "GET /api/health HTTP/1.1\r\n\r\n",
    # Once no answer at all (StopIteration, ValueError in the front door), or the function
    # called at https://[/api/... (its URL parsing then raised):
    "HTTP/1.0 without Host": "GET /api/health HTTP/1.0\r\n\r\n",
    "empty Host": "GET /api/health HTTP/1.1\r\nHost: \r\n\r\n",
    "Host an unclosed IPv6 literal": "GET /api/health HTTP/1.1\r\nHost: [::1\r\n\r\n",
    "Host with a path": "GET /api/health HTTP/1.1\r\nHost: a/b?c\r\n\r\n",
    "Host with userinfo": "GET /api/health HTTP/1.1\r\nHost: user@localhost\r\n\r\n",
    "Host with a port past 65535": "GET /api/health HTTP/1.1\r\nHost: localhost:99999\r\n\r\n",
    "absolute-form target not a URL": "GET https://[/api/health HTTP/1.1\r\n"
                                      "Host: localhost\r\n\r\n",
    "bad chunk size": HEAD + "Transfer-Encoding: chunked\r\n\r\nzz\r\n[]\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_http_is_a_400_problem_and_a_closed_connection(served, certs, case):
    answer = exchange(served, certs["client"], HOSTILE[case].encode("latin-1"))
    assert answer.count(b"HTTP/1.1 ") == 1, answer  # nothing ran as a second request
    assert problem(answer) == (400, "request.malformed")


def test_overlong_request_line_and_head_are_414_and_431(served, certs):
    long_line = f"GET /api/health?x={'a' * 9000} HTTP/1.1\r\nHost: localhost\r\n\r\n"
    assert problem(exchange(served, certs["client"], long_line.encode())) == (
        414, "request.uri_too_long")
    big_head = "GET /api/health HTTP/1.1\r\nHost: localhost\r\n" + "".join(
        f"X-Filler-{n}: {'b' * 1000}\r\n" for n in range(40)) + "\r\n"
    assert problem(exchange(served, certs["client"], big_head.encode())) == (
        431, "request.headers_too_large")


def test_a_body_over_the_limit_is_refused_from_its_content_length(served, certs):
    # 50 MB announced, nothing sent: the answer comes without waiting for the body.
    started = time.monotonic()
    answer = exchange(served, certs["client"],
                      (HEAD + "Content-Length: 50000000\r\n\r\n").encode())
    assert problem(answer) == (413, "message.too_large")
    assert time.monotonic() - started < 5


def test_a_chunked_body_is_cut_off_at_the_limit(strict, certs):
    # No Content-Length to refuse early: the host stops reading at the limit.
    chunk = b"400\r\n" + b" " * 1024 + b"\r\n"
    answer = exchange(strict, certs["client"], (HEAD + "Transfer-Encoding: chunked\r\n\r\n")
                      .encode() + chunk * 3 + b"0\r\n\r\n")
    assert problem(answer) == (413, "message.too_large")


def test_chunked_and_expect_100_continue_deliveries_are_served(served, certs, dip_pki):
    url, body, headers = signed_delivery(dip_pki, served)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Host: {served.base_url.split('//', 1)[1]}\r\n"  # the URL signed
    chunked = (f"POST /api/webhooks/dip HTTP/1.1\r\n{head}"
               "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    chunked += b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 50]), body[i:i + 50])
                        for i in range(0, len(body), 50)) + b"0\r\n\r\n"
    assert parse(exchange(served, certs["client"], chunked))[0] == 200

    url, body, headers = signed_delivery(dip_pki, served)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Host: {served.base_url.split('//', 1)[1]}\r\n"  # the URL signed
    with connect(served, context(served, certs["client"])) as tls:
        tls.sendall((f"POST /api/webhooks/dip HTTP/1.1\r\n{head}"
                     f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n"
                     "Connection: close\r\n\r\n").encode())
        assert tls.recv(100).startswith(b"HTTP/1.1 100 ")
        tls.sendall(body)
        assert parse(read_all(tls))[0] == 200


def test_pipelined_requests_are_answered_in_order(served, certs):
    two = b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n" \
          b"GET /API/Health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    answer = exchange(served, certs["client"], two)
    assert answer.count(b"HTTP/1.1 200 ") == 2, answer[:500]


def test_a_target_starting_with_two_slashes_is_a_path_not_a_host(served, certs):
    # urlsplit reads "//evil.example/api/health" as host evil.example: the old front door
    # served /api/health to a function told it was called at https://evil.example/...
    answer = exchange(served, certs["client"], b"GET //evil.example/api/health HTTP/1.1\r\n"
                      b"Host: localhost\r\n\r\n")
    assert problem(answer) == (404, "request.not_found")


def test_routes_match_case_insensitively_like_azure(served, certs, dip_pki):
    with tls_client(served, *certs["client"]) as client:
        assert client.get(served.base_url + "/API/Health").status_code == 200
        url, body, headers = signed_delivery(dip_pki, served, "/Api/WebHooks/DIP/Pub-9")
        response = client.post(url, content=body, headers=headers)
    assert response.status_code == 200, response.text


# --- hard to hold down --------------------------------------------------------------------

def _closed_within(tls: ssl.SSLSocket, seconds: float, trickle: bytes = b"") -> float:
    """Send ``trickle`` one byte every 0.2 s until the host closes; how long that took."""
    started = time.monotonic()
    tls.settimeout(0.2)
    for byte in trickle or b"\0" * 1000:
        if time.monotonic() - started > seconds:
            raise AssertionError(f"still open after {seconds} s")
        try:
            if trickle:
                tls.sendall(bytes([byte]))
            if tls.recv(100) == b"":
                break
        except TimeoutError:
            continue
        except (ssl.SSLError, OSError):
            break
    return time.monotonic() - started


def test_slow_head_slow_body_and_idle_connections_are_closed(strict, certs):
    ctx = context(strict, certs["client"])
    with connect(strict, ctx) as tls:  # slowloris: a head that never ends
        tls.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n")
        assert _closed_within(tls, 4, b"X-Slow: " + b"a" * 100) < 4
    with connect(strict, ctx) as tls:  # a body that never ends
        tls.sendall((HEAD + "Content-Length: 1000\r\n\r\n[").encode())
        assert _closed_within(tls, 4, b" " * 100) < 4
    with connect(strict, ctx) as tls:  # keep-alive, then nothing
        tls.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert tls.recv(65536).startswith(b"HTTP/1.1 200 ")
        assert _closed_within(tls, 4) < 4


def test_a_64_connection_burst_connects_without_syn_retries(served, certs):
    barrier = threading.Barrier(64)
    ctx = context(served, certs["client"])

    def one(_: int) -> tuple[float, int]:
        barrier.wait()
        started = time.monotonic()
        plain = socket.create_connection(("127.0.0.1", port(served)), timeout=30)
        connected = time.monotonic() - started
        with ctx.wrap_socket(plain, server_hostname="localhost") as tls:
            tls.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return connected, parse(read_all(tls))[0]

    with ThreadPoolExecutor(64) as pool:
        results = list(pool.map(one, range(64)))
    assert [status for _, status in results] == [200] * 64
    # A dropped SYN is retried after 1 s: every connect well under it means none was.
    assert max(connected for connected, _ in results) < 0.9


def _file_limit_1024() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


@pytest.mark.slow
def test_deliveries_are_served_while_1000_slow_connections_are_held(dip_pki, certs,
                                                                    tmp_path):
    instance = start_serve(tmp_path / "state", dip_pki.env(), preexec_fn=_file_limit_1024)
    held: list[ssl.SSLSocket] = []
    try:
        ctx = context(instance, certs["client"])

        def slow(_: int) -> ssl.SSLSocket:
            tls = connect(instance, ctx)
            tls.sendall(b"POST /api/webhooks/dip HTTP/1.1\r\nHost: localhost\r\n")
            return tls

        with ThreadPoolExecutor(8) as pool:
            held = list(pool.map(slow, range(1000)))
        started = time.monotonic()
        with tls_client(instance, *certs["client"]) as client:
            for _ in range(3):
                url, body, headers = signed_delivery(dip_pki, instance)
                response = client.post(url, content=body, headers=headers)
                assert response.status_code == 200, response.text
        assert time.monotonic() - started < 10
        open_now = 0
        for tls in held:  # the slow ones were held, not all dropped
            tls.setblocking(False)
            try:
                open_now += tls.recv(1) != b""
            except ssl.SSLWantReadError:
                open_now += 1
            except (ssl.SSLError, OSError):
                pass
        assert open_now >= 900, open_now
    finally:
        for tls in held:
            tls.close()
        stop(instance)
    assert "Traceback" not in instance.stderr()


# --- nothing private on disk or in the log ------------------------------------------------

def test_state_is_owner_only_under_umask_022_and_the_debug_log_has_no_key(strict, certs,
                                                                          dip_pki):
    key = (strict.state_dir / "function-key").read_text().strip()
    with tls_client(strict, *certs["client"]) as client:
        url, body, headers = signed_delivery(dip_pki, strict)
        assert client.post(url, content=body, headers=headers).status_code == 200
        assert client.get(f"{strict.base_url}/api/credentials?code={key}").status_code == 200
        assert client.get(f"{strict.base_url}/api/credentials",
                          headers={"x-functions-key": key}).status_code == 200
        assert client.get(f"{strict.base_url}/api/credentials?code={key}x").status_code == 401
        client.get(f"{strict.base_url}/api/health?code={key}&next=1")
        client.get(f"{strict.base_url}/nothing/here?code={key}")
    exchange(strict, certs["client"], f"GET /api/x?code={key} HTTP/1.1\r\n\r\n".encode())
    time.sleep(0.2)
    log = strict.stderr()
    assert " DEBUG " in log and "GET /api/credentials -> 200" in log
    assert key not in log
    assert "code=" not in log

    modes = {}
    for path in [strict.state_dir, *strict.state_dir.rglob("*")]:
        modes[str(path.relative_to(strict.state_dir))] = stat.S_IMODE(path.lstat().st_mode)
    assert "inbox.sqlite3" in modes and "dev-certs/ca.pem" in modes
    loose = {name: oct(mode) for name, mode in modes.items()
             if mode != (0o700 if (strict.state_dir / name).is_dir() else 0o600)}
    assert not loose
