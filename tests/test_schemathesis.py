"""schemathesis derives requests from openapi.yaml and sends them to ``dip-edge serve``
over real mutual TLS: no 500s, every response as documented, a problem document on
every error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from shared.problems import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
DIP_EDGE = str(Path(sys.executable).with_name("dip-edge"))
schema = schemathesis.openapi.from_path(ROOT / "openapi.yaml")

pytestmark = pytest.mark.xdist_group("schemathesis")


@schemathesis.serializer("application/x-pkcs12", "application/octet-stream")
def _binary_part(ctx, value) -> bytes:
    # The pfx part of a multipart submission: schemathesis has no serializer for these
    # media types and fails (not the API) whenever it generates a non-bytes value there.
    return value if isinstance(value, bytes) else str(value).encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    state = tmp_path_factory.mktemp("schemathesis") / "state"
    env = {**os.environ, "ATLAS_BASE_URL": "https://127.0.0.1:9/v2", "ATLAS_MAX_RETRIES": "0",
           "ATLAS_TIMEOUT_SECONDS": "1"}
    for name in ("DIP_CLIENT_TRUST_ANCHORS", "DIP_CLIENT_INTERMEDIATES", "KEY_VAULT_URL",
                 "INBOX_STORAGE", "EVENTS_STORAGE"):
        env.pop(name, None)
    process = subprocess.Popen([DIP_EDGE, "serve", "--port", "0", "--state-dir", str(state),
                                "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env=env)
    deadline, base_url = time.monotonic() + 60, None
    while time.monotonic() < deadline and base_url is None:
        line = process.stdout.readline()
        if not line:
            break
        if "listening on " in line:
            base_url = line.split("listening on ", 1)[1].split()[0]
    if base_url is None:
        process.kill()
        pytest.fail("dip-edge serve did not start")
    certs = state / "dev-certs"
    call = {"cert": (str(certs / "client.pem"), str(certs / "client.key")),
            "verify": str(certs / "ca.pem"),
            "headers": {"x-functions-key": (state / "function-key").read_text().strip()}}
    with requests.Session() as session:
        yield base_url.rstrip("/"), session, call
    process.terminate()
    process.wait(10)


def problem_documents_on_errors(ctx, response, case) -> None:
    if response.status_code < 400:
        return
    content_type = {k.lower(): v for k, v in response.headers.items()}.get("content-type")
    assert content_type == ["application/problem+json"], response.headers
    document = json.loads(response.content)
    assert document["code"] in CATALOGUE, document
    assert document["status"] == response.status_code


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_openapi(served, case):
    base_url, session, call = served
    # A credential submission can match the schema and still be invalid credentials: the
    # documented answer is then 422, so "schema-valid data is accepted" does not apply.
    excluded = [positive_data_acceptance] if case.path.startswith("/api/credentials") else []
    case.call_and_validate(base_url=base_url, session=session, excluded_checks=excluded,
                           additional_checks=[problem_documents_on_errors], **call)
