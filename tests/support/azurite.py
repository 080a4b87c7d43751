"""Start and stop Azurite (npm ``azurite``) on free loopback ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"Azurite did not listen on {port}")


def connection_string(blob_port: int, queue_port: int, table_port: int) -> str:
    """A connection string for Azurite's three services on these ports (or proxies')."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
        f"BlobEndpoint=http://127.0.0.1:{blob_port}/{ACCOUNT};"
        f"QueueEndpoint=http://127.0.0.1:{queue_port}/{ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{table_port}/{ACCOUNT};"
    )


@dataclass
class Azurite:
    blob_port: int
    queue_port: int
    table_port: int
    process: subprocess.Popen
    workdir: Path

    @property
    def connection_string(self) -> str:
        return connection_string(self.blob_port, self.queue_port, self.table_port)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def suspend(self) -> None:
        """Make storage unreachable (SIGSTOP) without losing its state."""
        self.process.send_signal(19)

    def resume(self) -> None:
        self.process.send_signal(18)


def start_azurite() -> Azurite:
    if not BINARY.exists():
        raise RuntimeError(f"{BINARY} is missing: run `make setup` (npm install)")
    workdir = Path(tempfile.mkdtemp(prefix="azurite-"))
    blob_port, queue_port, table_port = _free_port(), _free_port(), _free_port()
    log = open(workdir / "azurite.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [str(BINARY), "--silent", "--inMemoryPersistence", "--skipApiVersionCheck",
         "--disableTelemetry", "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1",
         "--tableHost", "127.0.0.1", "--blobPort", str(blob_port), "--queuePort",
         str(queue_port), "--tablePort", str(table_port)],
        cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    try:
        _wait_for(blob_port, deadline)
        _wait_for(queue_port, deadline)
        _wait_for(table_port, deadline)
    except TimeoutError:
        process.kill()
        raise
    return Azurite(blob_port, queue_port, table_port, process, workdir)
