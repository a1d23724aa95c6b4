"""Starts a real `cove server` (COVE_BIN, default target/debug/cove) for the Python SDK tests."""

import ctypes
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from daytona import Daytona, DaytonaConfig

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def state(sb) -> str:
    """The sandbox's state as the server has it now (refreshes `sb`)."""
    sb.refresh_data()
    return getattr(sb.state, "value", sb.state)


def wait_until(cond, timeout: float, interval: float = 0.02) -> bool:
    """Polls `cond` until it returns truthy; False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _proc_start(pid: int):
    """Start time (clock ticks) of a live, non-zombie process, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def mounts_under(root: str) -> list:
    """Mount points at or below `root` in this mount namespace, deepest first."""
    root = os.path.realpath(root)
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split(" ")[4]
        mp = mp.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
        mp = mp.replace("\\134", "\\")
        if mp == root or mp.startswith(root + "/"):
            out.append(mp)
    return sorted(out, key=lambda m: m.count("/"), reverse=True)


def cleanup_data_dir(root: str, data=None):
    """After the server is gone: kills the sandboxes it left running (their PID 1, checked
    against the recorded start time), removes their cgroups and lazily unmounts everything
    under `root` (their disks), so no process, mount or loop device outlives the test. `data`
    is the data dir when it is not `root`/data."""
    sandboxes = Path(data or Path(root) / "data") / "sandboxes"
    ids = [d.name for d in sandboxes.iterdir()] if sandboxes.is_dir() else []
    for sid in ids:
        try:
            pid, start = (int(x) for x in (sandboxes / sid / "pid").read_text().split()[:2])
        except (OSError, ValueError):
            continue
        if _proc_start(pid) == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_until(lambda: _proc_start(pid) != start, 10)
    for sid in ids:
        for cg in ("pids/cove", "cpu/cove", "memory/cove", "cove"):
            d = Path("/sys/fs/cgroup") / cg / sid
            if d.is_dir():
                wait_until(lambda: _try_rmdir(d), 10)
    libc = ctypes.CDLL(None, use_errno=True)
    for mp in mounts_under(root):
        libc.umount2(mp.encode(), 2)  # MNT_DETACH


def _try_rmdir(d: Path) -> bool:
    try:
        d.rmdir()
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


class Server:
    def __init__(self, extra_args=(), env=None, data_dir=None):
        target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
        self.bin = os.environ.get("COVE_BIN", str(Path(target) / "debug" / "cove"))
        self.root = tempfile.TemporaryDirectory(prefix="cove-pytest-")
        self.port = free_port()
        self.key = "py-" + secrets.token_hex(12)
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log_path = Path(self.root.name) / "server.log"
        self.data = Path(data_dir) if data_dir else Path(self.root.name) / "data"
        images = os.environ.get("COVE_IMAGES_DIR", "/var/cache/cove/images")
        env = dict(os.environ, **(env or {}), COVE_API_KEY=self.key)
        env.pop("COVE_API_URL", None)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                self.bin, "server",
                "--listen", f"127.0.0.1:{self.port}",
                "--data-dir", str(self.data),
                "--images-dir", images,
                *extra_args,
            ],
            env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
        )

        def up():
            if self.proc.poll() is not None:
                return True
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        if not wait_until(up, 60) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"cove server did not start:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]

    def terminate(self):
        """Stops the server process (SIGTERM), leaving its data dir as it is."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self):
        self.terminate()
        self.log.close()
        cleanup_data_dir(self.root.name, self.data)
        self.root.cleanup()


@pytest.fixture(scope="session")
def server():
    srv = Server()
    yield srv
    try:
        d = Daytona(DaytonaConfig(api_key=srv.key, api_url=srv.api_url))
        for sb in list(d.list()):
            try:
                sb.delete()
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass
    except Exception:  # noqa: BLE001
        pass
    srv.stop()


@pytest.fixture()
def daytona(server):
    return Daytona(DaytonaConfig(api_key=server.key, api_url=server.api_url))


@pytest.fixture(scope="module")
def fast():
    """A server of this test module whose timer "minute" is 1 second (timers tick every 250 ms)."""
    srv = Server(extra_args=("--minute-seconds", "1"))
    yield srv
    srv.stop()
