"""The server under test, for the Python, browser and Flask tests: the real sink (with a broker
and workers, on private ipc:// endpoints) or the fake (fake_sink.py), chosen by one setting:

    TOPICFLOW_TEST_SINK=real|fake|auto   (auto, the default: real when the binaries exist and
                                          topicflow-sink --help lists --http-port, else fake)
    TOPICFLOW_BIN_DIR=build/dev/bin      (default: the first of build/*/bin with the binaries)

Workers run each topic as behaviour.py says, in both cases (or, real sink only, the handler
``start(handler=...)`` names). Fixtures: ``server`` (one per module), ``make_server`` (a factory
for servers with a token, read-only, no workers, other handlers or sink flags), ``job_name``
(unique per test). A real server can restart its sink on the same database and endpoints
(``Server.restart_sink``); its database is ``Server.db``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))

from topicflow import Client  # noqa: E402

ROLES = ("topicflow-sink", "topicflow-broker", "topicflow-worker")


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition",
               interval: float = 0.05) -> Any:
    """Polls ``condition`` until it returns something truthy (returned), or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not true after {timeout} s (last: {value!r})")
        time.sleep(interval)


def bin_dir() -> Path | None:
    """Where the real binaries are, or None."""
    explicit = os.environ.get("TOPICFLOW_BIN_DIR")
    candidates = [Path(explicit)] if explicit else sorted(REPO.glob("build/*/bin"))
    for d in candidates:
        if all((d / role).is_file() for role in ROLES):
            return d
    return None


def real_supported(d: Path | None) -> bool:
    if d is None:
        return False
    try:
        out = subprocess.run([str(d / "topicflow-sink"), "--help"], capture_output=True,
                             text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--http-port" in out


def kind() -> str:
    """"real" or "fake", as TOPICFLOW_TEST_SINK says (auto: real when it can)."""
    wanted = os.environ.get("TOPICFLOW_TEST_SINK", "auto")
    if wanted not in ("real", "fake", "auto"):
        raise SystemExit(f"TOPICFLOW_TEST_SINK={wanted!r}: use real, fake or auto")
    if wanted == "auto":
        return "real" if real_supported(bin_dir()) else "fake"
    return wanted


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running server: its URL and token, and its processes (stopped by ``stop``)."""

    kind: str
    url: str
    dir: Path
    token: str | None = None
    read_only: bool = False
    procs: list[subprocess.Popen] = field(default_factory=list)
    # (real sink only) how each process was started, by name ("sink", "broker", "worker1"...)
    cmds: dict[str, list[str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    roles: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def db(self) -> Path:
        """The sink's SQLite file (real sink)."""
        return self.dir / "topics.db"

    def spawn(self, name: str) -> subprocess.Popen:
        """Starts the process ``name`` of ``cmds`` (its output appended to NAME.log)."""
        with open(self.dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(self.cmds[name], stdout=log, stderr=log, env=self.env)
        old = self.roles.get(name)
        if old is not None and old in self.procs:
            self.procs[self.procs.index(old)] = proc
        else:
            self.procs.append(proc)
        self.roles[name] = proc
        return proc

    def stop_sink(self) -> int:
        """Stops the sink (SIGTERM, as a supervisor would) and returns its exit status; the
        broker and the workers go on."""
        proc = self.roles["sink"]
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=30)

    def restart_sink(self) -> None:
        """Stops the sink and starts it again with the same flags: same database, same
        endpoints, same HTTP port. Returns when it answers."""
        assert self.kind == "real", "only the real sink restarts"
        self.stop_sink()
        self.spawn("sink")
        _wait_answering(self)

    def client(self, **kw: Any) -> Client:
        kw.setdefault("token", self.token)
        return Client(self.url, **kw)

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()

    def logs(self) -> str:
        return "\n".join(f"--- {f.name}:\n{f.read_text(errors='replace')[-3000:]}"
                         for f in sorted(self.dir.glob("*.log")))


def start(directory: Path, *, token: str | None = None, read_only: bool = False,
          workers: int = 2, slots: int = 4,
          preload: dict[str, list[dict[str, Any]]] | None = None,
          which: str | None = None, fake_args: tuple[str, ...] = (),
          handler: str | None = None, sink_args: tuple[str, ...] = (),
          worker_endpoints: dict[str, str] | None = None) -> Server:
    """Starts a server in ``directory``. ``preload``: topics registered (and run to the end)
    before a read-only server starts, so it has something to show. ``fake_args``: more flags
    for fake_sink.py (ignored by the real sink). Real sink only: ``handler``, the workers'
    --handler (default: behaviour_handler.py, exec-persistent); ``sink_args``, more flags for
    topicflow-sink; ``worker_endpoints``, endpoints the workers use instead of the sink's
    (e.g. {"events": ...} for workers that never hear the sink's cancel events)."""
    which = which or kind()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "state").mkdir(exist_ok=True)
    token_file = None
    if token is not None:
        token_file = directory / "token"
        token_file.write_text(token + "\n")
    if which == "fake":
        return _start_fake(directory, token, token_file, read_only, workers, slots, preload,
                           fake_args)
    if preload:
        writer = _start_real(directory, None, None, False, workers, slots)
        try:
            client = writer.client()
            for job, items in preload.items():
                client.submit(job, items)
                client.wait(job, timeout=60)
        finally:
            writer.stop()
    return _start_real(directory, token, token_file, read_only, workers, slots, handler,
                       sink_args, worker_endpoints or {})


def _start_fake(d: Path, token: str | None, token_file: Path | None, read_only: bool,
                workers: int, slots: int, preload: dict | None,
                fake_args: tuple[str, ...]) -> Server:
    cmd = [sys.executable, str(HERE / "fake_sink.py"), "--port", "0", "--workers", str(workers),
           "--slots", str(slots), "--state-dir", str(d / "state"), "--sink-event-ms", "500",
           *fake_args]
    if token_file:
        cmd += ["--token-file", str(token_file)]
    if read_only:
        cmd.append("--read-only")
    if preload:
        (d / "preload.json").write_text(json.dumps(preload))
        cmd += ["--preload", str(d / "preload.json")]
    log = open(d / "fake_sink.log", "wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log)
    server = Server("fake", "", d, token, read_only, [proc])
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline().decode() if ready else ""
    match = re.search(r"(http://\S+)", line)
    if not match:
        server.stop()
        raise RuntimeError(f"fake sink did not start: {line!r}\n{server.logs()}")
    server.url = match.group(1)
    return server


def _start_real(d: Path, token: str | None, token_file: Path | None, read_only: bool,
                workers: int, slots: int, handler: str | None = None,
                sink_args: tuple[str, ...] = (),
                worker_endpoints: dict[str, str] | None = None) -> Server:
    bins = bin_dir()
    assert bins is not None, "no topicflow binaries (build first, or TOPICFLOW_TEST_SINK=fake)"
    ep = {name: f"ipc://{d}/{name}.ipc" for name in ("frontend", "backend", "sink", "events")}
    endpoints = [arg for name, addr in ep.items() for arg in (f"--{name}", addr)]
    env = {**os.environ, "TOPICFLOW_TEST_STATE_DIR": str(d / "state"),
           "PYTHONPATH": str(HERE.parent), "TOPICFLOW_LOG_LEVEL": "warn"}
    port = free_port()
    sink = [str(bins / "topicflow-sink"), "--db", str(d / "topics.db"), "--http-port", str(port),
            "--max-attempts", "3", "--retry-base-ms", "20", "--retry-max-ms", "100", *endpoints,
            *sink_args]
    if token_file:
        sink += ["--http-token-file", str(token_file)]
    if read_only:
        sink.append("--http-read-only")
    handler = handler or f"exec-persistent:exec {sys.executable} {HERE / 'behaviour_handler.py'}"
    cmds = {"sink": sink, "broker": [str(bins / "topicflow-broker"), *endpoints]}
    worker_ep = {**ep, **(worker_endpoints or {})}
    for i in range(workers):
        cmds[f"worker{i + 1}"] = [str(bins / "topicflow-worker"), "--handler", handler,
                                  "--concurrency", str(slots), "--id", f"worker-{i + 1}",
                                  *[arg for name, addr in worker_ep.items()
                                    for arg in (f"--{name}", addr)]]
    server = Server("real", f"http://127.0.0.1:{port}", d, token, read_only, cmds=cmds, env=env)
    for name in cmds:
        server.spawn(name)
    _wait_answering(server)
    return server


def _wait_answering(server: Server) -> None:
    """Returns when the sink answers GET /v1/jobs; stops the server and raises when one of its
    processes exited or the sink does not answer within 30 s."""
    client = server.client()
    deadline = time.monotonic() + 30
    while True:
        dead = [p.args[0] for p in server.procs if p.poll() is not None]
        if dead:
            server.stop()
            raise RuntimeError(f"{dead} exited at start-up\n{server.logs()}")
        try:
            client.jobs()
            return
        except Exception:  # noqa: BLE001  (not listening yet)
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"sink not answering on {server.url}\n{server.logs()}")
            time.sleep(0.05)


# --- pytest fixtures (conftest.py files import these) -------------------------------------

_counter = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start(tmp_path_factory.mktemp("sink"))
    yield s
    s.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(**kw: Any) -> Server:
        s = start(tmp_path / f"sink{len(started) + 1}", **kw)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def job_name(request: pytest.FixtureRequest) -> str:
    base = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:60]
    return f"{base}-{next(_counter)}"
