"""deploy/Dockerfile, built and run: podman as root, no Docker engine and no Docker Hub.

deploy/build-offline.sh makes the base (Debian bookworm from Debian's packages, python3 3.11) and builds
the image with it; then the image runs on the host's network: /healthz, the HEALTHCHECK, the user, one
call from the Twilio stand-in through the bridge in the container to the Realtime stand-in in a second
container of the same image, its report from /api/v1/calls, and a clean stop on SIGTERM.

The podman storage lives in a directory of its own (STORAGE), kept between runs: the base is made once
(about a minute and a half), and the image's layers are cached (a rebuild with unchanged sources takes
seconds). A missing tool is a failure, not a skip: scripts/bootstrap.sh installs podman, runc and
debootstrap.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.stand_ins.twilio_caller import SimulatedCaller
from tests.bridge.live_rig import schedule, silence_frames, speech_frames

ROOT = Path(__file__).resolve().parents[2]
STORAGE = Path("/var/lib/mosbridge-image-test")
PODMAN_OPTS = f"--root {STORAGE}/storage --runroot /run/mosbridge-image-test"
IMAGE = "localhost/mosbridge:image-test"
ADMIN_TOKEN = "image-test-admin"
# This machine's cgroups are hybrid (v1 controllers and an empty v2), which crun refuses even with
# --cgroups=disabled; runc runs. Root here lacks CAP_SYS_RESOURCE, so podman's default rlimits (raised
# above the host's) fail: explicit ones at or below the host's go through.
RUN_OPTS = ["--runtime", "runc", "--network", "host", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["podman", *shlex.split(PODMAN_OPTS), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        pytest.fail(f"{shlex.join(cmd)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def listening(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def get_json(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=3) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def wait_for(what: str, check: Any, timeout: float, logs_of: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.25)
    logs = podman("logs", logs_of, check=False)
    pytest.fail(f"{what} not up after {timeout:.0f} s; {logs_of}'s log:\n{(logs.stdout + logs.stderr)[-3000:]}")


@pytest.fixture(scope="module")
def image() -> str:
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: the image test needs podman, runc and debootstrap "
                    "(Debian packages; scripts/bootstrap.sh installs them)")
    if os.geteuid() != 0:
        pytest.fail("the image test runs as root (debootstrap, chroot and podman's storage)")
    STORAGE.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MOSBRIDGE_PODMAN_OPTS": PODMAN_OPTS}
    done = subprocess.run([str(ROOT / "deploy" / "build-offline.sh"), "--tag", IMAGE], env=env,
                          capture_output=True, text=True, timeout=1200, check=False)
    if done.returncode != 0:
        pytest.fail(f"deploy/build-offline.sh exited {done.returncode}:\n{(done.stdout + done.stderr)[-5000:]}")
    podman("image", "prune", "--force")  # the layers of earlier builds: bound the storage
    return IMAGE


@dataclass
class Running:
    bridge: str  # container names
    fake: str
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def running(image: str) -> Iterator[Running]:
    tag = f"mosbridge-image-test-{os.getpid()}"
    fake_port, port = free_port(), free_port()
    names = (f"{tag}-bridge", f"{tag}-fake")
    for name in names:
        podman("rm", "--force", "--ignore", name)
    try:
        podman("run", "--detach", "--name", names[1], *RUN_OPTS, image, "fake-realtime", "--host", "127.0.0.1",
               "--port", str(fake_port), "--no-webrtc", "--speed", "8")
        podman("run", "--detach", "--name", names[0], *RUN_OPTS,
               "-e", f"MOSBRIDGE_PORT={port}", "-e", "MOSBRIDGE_VALIDATE_TWILIO_SIGNATURE=0",
               "-e", "OPENAI_API_KEY=sk-test", "-e", f"MOSBRIDGE_OPENAI_URL=ws://127.0.0.1:{fake_port}/v1/realtime",
               "-e", f"MOSBRIDGE_ADMIN_TOKEN={ADMIN_TOKEN}", "-e", "MOSBRIDGE_PSEUDONYM_KEY=image-test",
               image)
        wait_for("the Realtime stand-in", lambda: listening(fake_port), 60, names[1])
        wait_for("the bridge's /healthz", lambda: get_json(f"http://127.0.0.1:{port}/healthz")[0] == 200, 60,
                 names[0])
        yield Running(names[0], names[1], port)
    finally:
        for name in names:
            podman("rm", "--force", "--ignore", "--time", "5", name, check=False)


def test_healthz_answers_from_the_container(running: Running) -> None:
    status, body = get_json(running.base + "/healthz")
    assert status == 200 and body["status"] == "ok"
    status, ready = get_json(running.base + "/readyz")
    assert status == 200 and ready["ai"] == "ok", ready


def test_image_healthcheck_user_and_workdir(running: Running) -> None:
    config = json.loads(podman("image", "inspect", IMAGE).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["WorkingDir"] == "/var/lib/mosbridge"
    assert config["Entrypoint"] == ["mosbridge"] and config["Cmd"] == ["serve"]
    assert config["StopSignal"] == "SIGTERM"
    assert podman("exec", running.bridge, "id", "-u").stdout.strip() == "10001"
    # The Dockerfile's HEALTHCHECK, run once by podman inside the container (kept: --format docker).
    done = podman("healthcheck", "run", running.bridge, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


async def one_call(base_ws: str) -> tuple[int, int]:
    frames = speech_frames(1.5) + silence_frames(2.5)
    caller = SimulatedCaller(f"{base_ws}/media", stream_sid="MZimagetest", call_sid="CAimagetest",
                             params={"tenant": "image-test"})
    async with aiohttp.ClientSession() as http:
        result = await caller.run(schedule(frames), hangup_after_s=len(frames) * 0.02 + 0.5, session=http)
    return result.frames_sent, result.media_received


def test_one_call_through_the_container(running: Running) -> None:
    sent, received = asyncio.run(one_call(f"ws://127.0.0.1:{running.port}"))
    assert sent == 200
    assert received > 0, "no AI audio came back through the bridge"
    deadline = time.monotonic() + 15
    while True:
        status, body = get_json(running.base + "/api/v1/calls", ADMIN_TOKEN)
        assert status == 200, body
        calls = [c for c in body["calls"] if c["call_sid"] == "CAimagetest"]
        if calls or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert calls, f"no report for the call in /api/v1/calls: {body}"
    [call] = calls
    assert call["tenant"] == "image-test" and call["end_reason"] == "stop"
    assert call["packet_loss_pct"] == 0.0 and call["mos"] > 4.0, call
    status, detail = get_json(running.base + "/api/v1/calls/CAimagetest", ADMIN_TOKEN)
    assert status == 200 and detail["inbound"]["frames"] == 200, detail


def test_sigterm_stops_the_bridge_cleanly(running: Running) -> None:
    started = time.monotonic()
    podman("stop", "--time", "30", running.bridge, timeout=60)
    assert time.monotonic() - started < 25, "SIGTERM did not stop an idle bridge: podman had to kill it"
    state = json.loads(podman("inspect", running.bridge).stdout)[0]["State"]
    assert state["ExitCode"] == 0, state
