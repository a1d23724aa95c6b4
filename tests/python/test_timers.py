"""Lifecycle timers through the official Python SDK, on a server whose "minute" is 1 second:
auto-stop after idle minutes (activity keeps a sandbox alive), auto-delete after stopped
minutes, ephemeral sandboxes, the interval endpoints and their validation."""

import uuid

import httpx
import pytest
from conftest import state, wait_until
from daytona import (
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaConfig,
    DaytonaNotFoundError,
    ListSandboxesQuery,
)




@pytest.fixture()
def d(fast):
    return Daytona(DaytonaConfig(api_key=fast.key, api_url=fast.api_url))


def listed_state(d, tag) -> str:
    """The state as a list shows it (a list is not activity on the sandbox; a GET would be)."""
    items = list(d.list(ListSandboxesQuery(labels={"timer": tag})))
    assert len(items) == 1
    return getattr(items[0].state, "value", items[0].state)


def gone(d, sid) -> bool:
    try:
        d.get(sid)
        return False
    except DaytonaNotFoundError:
        return True


def test_auto_stop_after_idle_minutes_and_activity_keeps_alive(d):
    tag = uuid.uuid4().hex
    sb = d.create(CreateSandboxFromSnapshotParams(auto_stop_interval=2, labels={"timer": tag}), timeout=1800)
    # Busy for longer than the interval: toolbox calls count as activity.
    for _ in range(12):
        assert sb.process.exec("true").exit_code == 0
        wait_until(lambda: False, 0.25)
    assert listed_state(d, tag) == "started"
    # Idle: stopped within a few timer minutes, files kept.
    sb.fs.upload_file(b"kept", "kept.txt")
    assert wait_until(lambda: listed_state(d, tag) == "stopped", 15, 0.5)
    sb.start()
    assert sb.fs.download_file("kept.txt") == b"kept"
    sb.set_autostop_interval(0)  # never
    wait_until(lambda: False, 3.5)
    assert listed_state(d, tag) == "started"
    sb.delete()


def test_auto_delete_after_stopped_minutes(d):
    sb = d.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0, auto_delete_interval=2), timeout=1800)
    sb.stop()
    assert state(sb) == "stopped"
    assert wait_until(lambda: gone(d, sb.id), 15, 0.5)


def test_ephemeral_is_deleted_on_stop(d):
    sb = d.create(CreateSandboxFromSnapshotParams(ephemeral=True, auto_stop_interval=0), timeout=1800)
    sb.stop()
    assert gone(d, sb.id)


def test_interval_endpoints_validate_and_change_nothing_on_error(d, fast):
    sb = d.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0), timeout=1800)
    sb.set_auto_delete_interval(-1)
    sb.set_auto_archive_interval(60)
    sb.refresh_data()
    assert (sb.auto_delete_interval, sb.auto_archive_interval) == (-1, 60)
    h = {"Authorization": f"Bearer {fast.key}"}
    for path in ("autostop/-1", "autostop/abc", "autostop/1.5", "autoarchive/-3", "autodelete/-2", "autodelete/x"):
        r = httpx.post(f"{fast.api_url}/sandbox/{sb.id}/{path}", headers=h)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["statusCode"] == 400
    sb.refresh_data()
    assert (sb.auto_stop_interval, sb.auto_delete_interval, sb.auto_archive_interval) == (0, -1, 60)
    sb.delete()


def test_ttl_destroys_whatever_the_state(d, fast):
    # Started: destroyed at its deadline although it is busy.
    sb = d.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0), timeout=1800)
    sb.set_ttl(3)
    sb.refresh_data()
    assert sb.auto_destroy_at
    for _ in range(4):
        assert sb.process.exec("true").exit_code == 0
    assert wait_until(lambda: gone(d, sb.id), 15, 0.5)
    # Stopped: also destroyed (auto-delete is off).
    sb = d.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0, auto_delete_interval=-1), timeout=1800)
    sb.stop()
    sb.set_ttl(2)
    assert wait_until(lambda: gone(d, sb.id), 15, 0.5)
    # 0 clears it; a negative TTL is refused and changes nothing.
    sb = d.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0), timeout=1800)
    sb.set_ttl(2)
    sb.set_ttl(0)
    h = {"Authorization": f"Bearer {fast.key}"}
    r = httpx.post(f"{fast.api_url}/sandbox/{sb.id}/ttl/-5", headers=h)
    assert r.status_code == 400 and "ttlMinutes" in r.json()["message"], r.text
    sb.refresh_data()
    assert sb.auto_destroy_at is None
    wait_until(lambda: False, 4)
    assert state(sb) == "started"
    sb.delete()
