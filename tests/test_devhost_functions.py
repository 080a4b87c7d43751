"""The local host's reading of function_app.py: routes, methods, the host.json prefix."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from shared.devhost.functions import compile_route, route_prefix
from tests.support.functions import functions

DIP_EDGE = str(Path(sys.executable).with_name("dip-edge"))


@pytest.mark.parametrize("path, params", [
    ("/api/webhooks/dip", {}),
    ("/api/webhooks/dip/pub-033", {"channel": "pub-033"}),
    ("/api/webhooks/dip/a%20b", {"channel": "a b"}),
    ("/api/webhooks/dipx", None),
    ("/api/webhooks/dip/a/b", None),
    ("/webhooks/dip", None),
])
def test_optional_route_parameter(path, params):
    full, pattern = compile_route("api", "webhooks/dip/{channel?}")
    assert full == "/api/webhooks/dip/{channel?}"
    found = pattern.fullmatch(path)
    got = None if found is None else {k: unquote(v) for k, v in found.groupdict().items()
                                      if v is not None}
    assert got == params


def test_constraints_catch_all_and_empty_prefix():
    _, pattern = compile_route("", "items/{id:int}/{*rest}")
    assert pattern.fullmatch("/items/7/a/b/c").groupdict() == {"id": "7", "rest": "a/b/c"}
    assert pattern.fullmatch("/items/7")


def test_route_prefix_comes_from_host_json(tmp_path):
    host = tmp_path / "host.json"
    host.write_text(json.dumps({"extensions": {"http": {"routePrefix": "edge"}}}))
    assert route_prefix(host) == "edge"
    host.write_text("{}")
    assert route_prefix(host) == "api"


def test_the_table_knows_every_declared_function():
    from shared.devhost.functions import FunctionTable

    class App:  # get_functions() may be called once per app: reuse the suite's cached call
        def get_functions(self):
            return list(functions().values())

    table = FunctionTable.load(App(), Path(__file__).resolve().parents[1] / "host.json")
    routes = {r.name: r for r in table.routes}
    assert routes["dip_webhook"].methods == {"POST"}
    assert routes["dip_webhook"].path == "/api/webhooks/dip/{channel?}"
    assert routes["credentials"].methods == {"GET", "POST"}
    assert set(table.others) == {"events", "monitor"}
    assert [r.name for r, _ in table.resolve("/api/webhooks/dip/x")] == ["dip_webhook"]


def test_dev_certs_command(tmp_path):
    target = tmp_path / "certs"
    first = subprocess.run([DIP_EDGE, "dev-certs", str(target)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    names = {p.name for p in target.iterdir()}
    assert names == {"ca.pem", "intermediate.pem", "server.pem", "server.key", "client.pem",
                     "client.key", "signer.pem", "signer.key"}
    for key in target.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate((target / "ca.pem").read_bytes())
    intermediate = x509.load_pem_x509_certificates((target / "client.pem").read_bytes())[1]
    assert intermediate.issuer == ca.subject
    intermediate.verify_directly_issued_by(ca)
    again = subprocess.run([DIP_EDGE, "dev-certs", str(target)], capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr
    forced = subprocess.run([DIP_EDGE, "dev-certs", str(target), "--force"],
                            capture_output=True, text=True)
    assert forced.returncode == 0
    assert (target / "ca.pem").read_bytes() != ca.public_bytes(Encoding.PEM)


@pytest.mark.parametrize("command", [["dev-certs", "{dir}"],
                                     ["serve", "--port", "0", "--state-dir", "{dir}"]])
@pytest.mark.parametrize("where", ["under-a-file", "too-long"])
def test_an_unusable_directory_is_a_usage_error(tmp_path, command, where):
    """A directory that cannot be made (below a regular file, or a name longer than the
    file system allows) is said in one line with exit 2, not an OSError traceback."""
    (tmp_path / "file").write_text("not a directory")
    directory = tmp_path / "file" / "state" if where == "under-a-file" else tmp_path / (
        "x" * 300)
    run = subprocess.run([DIP_EDGE, *(a.format(dir=directory) for a in command)],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "cannot" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
