"""``python -m tests.support.try_atlas``: the fake Atlas by hand, as the README tells a
newcomer to run it, then ``dip-edge check-pfx`` proving its account online."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIP_EDGE = str(Path(sys.executable).with_name("dip-edge"))


def test_the_fake_atlas_by_hand_proves_its_account_with_check_pfx(tmp_path):
    out = tmp_path / "atlas"
    fake = subprocess.Popen([sys.executable, "-m", "tests.support.try_atlas", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        banner = [fake.stdout.readline() for _ in range(5)]
        assert banner[0].startswith("fake GlobalSign Atlas on https://127.0.0.1:"), banner
        assert stat.S_IMODE(out.stat().st_mode) == 0o700
        assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o600}
        secret_values = [(out / n).read_text() for n in ("api-key", "api-secret",
                                                          "pfx-password")]
        assert not any(v in "".join(banner) for v in secret_values)
        env = dict(os.environ)
        for line in (out / "atlas.env").read_text().splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value
        env.update(GS_API_KEY=secret_values[0], GS_API_SECRET=secret_values[1],
                   PFX_PASSWORD=secret_values[2])
        command = [DIP_EDGE, "check-pfx", str(out / "atlas-access.pfx"), "--password-env",
                   "PFX_PASSWORD", "--api-key-env", "GS_API_KEY", "--api-secret-env",
                   "GS_API_SECRET"]
        run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "GlobalSign Atlas: login with the PFX, API key and secret succeeded" in run.stdout
        wrong = subprocess.run(command, env={**env, "GS_API_SECRET": "0" * 40},
                               capture_output=True, text=True, timeout=60)
        assert wrong.returncode == 1 and "globalsign.invalid_credentials" in wrong.stdout
    finally:
        fake.send_signal(signal.SIGINT)
        assert fake.wait(10) == 0
