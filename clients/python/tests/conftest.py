"""Starts real gatehouse servers for the tests: the binary named by GATEHOUSE_BIN, on a free loopback
port, with a fresh secret and a temporary copy of the example books policy."""

from __future__ import annotations

import os
import queue
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import pytest

HERE = Path(__file__).resolve().parent
CLIENT_DIR = HERE.parent
EXAMPLES = CLIENT_DIR / "examples"
sys.path.insert(0, str(EXAMPLES))

from gatehouse_client import Gatehouse, Resource  # noqa: E402

STARTUP_TIMEOUT = 30.0


def gatehouse_bin() -> str:
    path = os.environ.get("GATEHOUSE_BIN")
    if not path:
        pytest.exit("GATEHOUSE_BIN is not set: point it at a gatehouse binary (target/release/gatehouse)", 2)
    if not os.access(path, os.X_OK):
        pytest.exit(f"GATEHOUSE_BIN={path} is not an executable file", 2)
    return path


def clean_env(**settings: str) -> dict:
    """The environment without any GATEHOUSE_* setting of the caller's, plus ``settings``: a stray
    GATEHOUSE_CONFIG or GATEHOUSE_HTTP_LISTEN must not change the server under test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update(settings)
    return env


def pytest_sessionstart(session) -> None:
    """Every test module but one needs the server: say so at once rather than in a fixture."""
    gatehouse_bin()


@dataclass
class Server:
    """A running `gatehouse serve`, and how to mint tokens with its secret."""

    process: subprocess.Popen
    address: str
    secret: str
    output: List[str]
    reader: threading.Thread

    def mint(self, *args: str) -> str:
        """A token signed locally with the server's secret (`gatehouse token issue ...`)."""
        env = clean_env(GATEHOUSE_API_SECRET=self.secret)
        done = subprocess.run(
            [gatehouse_bin(), "token", "issue", *args], env=env, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def user_token(self, user_id: str, *roles: str) -> str:
        return self.mint("--user", user_id, *[a for r in roles for a in ("--role", r)])

    def server_token(self) -> str:
        return self.mint("--server")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(timeout=20)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_server(policy_dir: Path) -> Server:
    """Starts gatehouse on 127.0.0.1:0 and reads the port it chose from its `serving listen=` line,
    so no port is guessed and none can be taken by someone else in between."""
    secret = secrets.token_urlsafe(36)
    env = clean_env(
        GATEHOUSE_LISTEN="127.0.0.1:0",
        GATEHOUSE_API_SECRET=secret,
        GATEHOUSE_POLICY_DIR=str(policy_dir),
        GATEHOUSE_LOG_FORMAT="text",
        GATEHOUSE_SHUTDOWN_GRACE="1s",
    )
    process = subprocess.Popen(
        [gatehouse_bin(), "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: "queue.Queue[Optional[str]]" = queue.Queue()
    output: List[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    address = None
    while address is None:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            process.kill()
            pytest.fail("gatehouse did not start:\n" + "".join(output))
        match = re.search(r"serving listen=(\S+)", line)
        if match:
            address = match.group(1)
    server = Server(process, address, secret, output, reader)
    # Serving is logged once the socket is bound; wait until a call is actually answered.
    with Gatehouse(address, timeout=STARTUP_TIMEOUT, retries=100) as client:
        client.allowed_actions(Resource("book", "1"), anonymous=True)
    return server


@pytest.fixture(scope="session")
def policy_dir(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("policies")
    for f in (EXAMPLES / "policies").glob("*.yaml"):
        shutil.copy(f, target / f.name)
    return target


@pytest.fixture(scope="session")
def server(policy_dir):
    running = start_server(policy_dir)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def stopped_address(policy_dir) -> str:
    """The address of a gatehouse that was running and has stopped: nothing listens there now."""
    running = start_server(policy_dir)
    running.stop()
    return running.address


@pytest.fixture
def client(server):
    with Gatehouse(server.address, server_token=server.server_token(), timeout=10) as c:
        yield c


@pytest.fixture(scope="session")
def tokens(server):
    return {
        "reader": server.user_token("rita", "reader"),
        "editor": server.user_token("ed", "editor"),
        "nobody": server.user_token("nemo"),
        "server": server.server_token(),
    }


@pytest.fixture
def silent_listener():
    """A TCP listener that accepts connections and never says a word: a hung server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: List[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield "127.0.0.1:%d" % sock.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()
