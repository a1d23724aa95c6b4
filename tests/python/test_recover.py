"""`sandbox.recover()` through the official Python SDK: a sandbox whose PID 1 dies (killed from
the host) is marked `error` "sandbox process exited" with `recoverable: true`; recover boots it
again with its files (the reconciler does not do it unasked); recovering a sandbox that is not in error is a 400 naming its state."""

import os
import signal
import time
from pathlib import Path

import pytest
from conftest import Server, state, wait_until
from daytona import Daytona, DaytonaConfig, DaytonaError


@pytest.fixture()
def client(fast):
    return Daytona(DaytonaConfig(api_key=fast.key, api_url=fast.api_url))


def pid1(srv: Server, sandbox_id: str) -> int:
    pidfile = Path(srv.root.name) / "data" / "sandboxes" / sandbox_id / "pid"
    return int(pidfile.read_text().split()[0])


def test_recover_after_sandbox_process_died(fast, client):
    sb = client.create()
    try:
        assert sb.process.exec("echo kept > $HOME/kept.txt").exit_code == 0
        assert sb.recoverable is False
        os.kill(pid1(fast, sb.id), signal.SIGKILL)

        assert wait_until(lambda: state(sb) == "error", 30, 0.1), state(sb)
        assert sb.error_reason == "sandbox process exited"
        assert sb.recoverable is True
        # The reconciler retries failed actions but leaves a sandbox whose own process ended
        # for the user: still `error` after several timer ticks (250 ms each here).
        time.sleep(1.5)
        assert state(sb) == "error"

        sb.recover(timeout=120)
        assert state(sb) == "started"
        assert sb.recoverable is False and sb.error_reason is None
        out = sb.process.exec("cat $HOME/kept.txt")
        assert (out.exit_code, out.result.strip()) == (0, "kept")
    finally:
        sb.delete()


def test_recover_refuses_a_sandbox_not_in_error(client):
    sb = client.create()
    try:
        with pytest.raises(DaytonaError) as err:
            sb.recover()
        assert "not in error state" in str(err.value) and "started" in str(err.value)
        assert state(sb) == "started"
    finally:
        sb.delete()
