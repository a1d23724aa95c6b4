"""Enforced resources through the official Python SDK: a sandbox's disk size (its own ext4
image: writing past it fails with ENOSPC inside, nothing outside is touched; it survives
stop/start, grows with `resize`, and is gone with its loop device after delete) and a fork
flood (held at the sandbox's pids limit while the server and other sandboxes carry on)."""

import os
import time
from pathlib import Path

import pytest
from conftest import wait_until
from daytona import DaytonaError, Resources, SessionExecuteRequest
from daytona_api_client import CreateSandbox

GIB = 1 << 30


def sandbox_dir(server, sid: str) -> Path:
    return Path(server.root.name) / "data" / "sandboxes" / sid


def mounted(path: Path) -> bool:
    want = str(path)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if line.split(" ")[4] == want:
            return True
    return False


def loop_devices_of(image: Path) -> list:
    """Loop devices whose backing file is `image` (also once it is deleted)."""
    out = []
    for dev in Path("/sys/block").glob("loop*"):
        try:
            backing = (dev / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue
        if backing in (str(image), f"{image} (deleted)"):
            out.append(dev.name)
    return out


def allocated(path: Path) -> int:
    """Bytes the host really spends on `path` (a sparse file)."""
    return os.stat(path).st_blocks * 512


def sh(sb, cmd: str, timeout: int = 120):
    r = sb.process.exec(cmd, timeout=timeout)
    return r.exit_code, r.result


def create_with_disk(daytona, gib: int):
    # The SDK sends `disk` only with an image to build (CreateSandboxFromImageParams); its own
    # API client creates a sandbox of the default snapshot with a disk size.
    dto = daytona._sandbox_api.create_sandbox(CreateSandbox(disk=gib))
    assert dto.disk == gib
    return daytona.get(dto.id)


def test_disk_size_is_enforced_kept_grown_and_freed(server, daytona):
    sb = create_with_disk(daytona, 1)
    other = daytona.create()
    d = sandbox_dir(server, sb.id)
    image, mnt = d / "disk.img", d / "disk"
    try:
        assert mounted(mnt), "the sandbox's disk is not mounted"
        assert len(loop_devices_of(image)) == 1
        code, out = sh(sb, "df -B1 --output=size / | tail -1")
        assert code == 0, out
        assert 0.85 * GIB < int(out) <= GIB, f"df inside shows {out.strip()} bytes"

        code, out = sh(sb, "dd if=/dev/zero of=/home/daytona/big bs=1M count=1300 2>&1")
        assert code != 0, out
        assert "No space left on device" in out, out
        # What the host spends is bounded by the sandbox's size.
        assert allocated(image) <= GIB + (16 << 20), allocated(image)
        assert image.stat().st_size == GIB

        # Another sandbox is unaffected.
        code, out = sh(other, "dd if=/dev/zero of=/home/daytona/f bs=1M count=64 2>&1 && echo ok")
        assert code == 0 and "ok" in out, out

        # Space comes back inside (and on the host: freed blocks are discarded).
        code, out = sh(sb, "rm /home/daytona/big && sync && "
                           "dd if=/dev/zero of=/home/daytona/small bs=1M count=100 2>&1 && echo ok")
        assert code == 0 and "ok" in out, out
        assert wait_until(lambda: allocated(image) < 400 << 20, 15, 0.2), allocated(image)

        # Files stay across stop/start; the disk stays mounted while stopped.
        assert sh(sb, "echo kept > /home/daytona/kept.txt")[0] == 0
        sb.stop()
        assert mounted(mnt)
        sb.start()
        assert sh(sb, "cat /home/daytona/kept.txt") == (0, "kept\n")

        # Disk only grows, and only while stopped.
        with pytest.raises(DaytonaError, match="disk"):
            sb.resize(Resources(disk=2))
        sb.stop()
        sb.resize(Resources(disk=2))
        assert sb.disk == 2
        assert image.stat().st_size == 2 * GIB
        with pytest.raises(DaytonaError, match="only grow"):
            sb.resize(Resources(disk=1))
        sb.start()
        code, out = sh(sb, "df -B1 --output=size / | tail -1; cat /home/daytona/kept.txt")
        size, kept = out.split()
        assert 1.85 * GIB < int(size) <= 2 * GIB, out
        assert kept == "kept"
        # More than the old size fits now (allocated, not written: quick).
        code, out = sh(sb, "fallocate -l 1300M /home/daytona/big 2>&1 && echo ok")
        assert code == 0 and "ok" in out, out
    finally:
        sb.delete()
        other.delete()
    assert not image.exists() and not d.exists()
    assert not mounted(mnt)
    assert wait_until(lambda: not loop_devices_of(image), 10), loop_devices_of(image)


def pids_cgroup(sid: str) -> Path:
    for d in (Path("/sys/fs/cgroup/pids/cove") / sid, Path("/sys/fs/cgroup/cove") / sid):
        if (d / "pids.max").exists():
            return d
    raise AssertionError(f"no pids cgroup for {sid}")


FLOOD = r"""
import os, time
end = time.time() + 8
made = failed = 0
while time.time() < end:
    try:
        pid = os.fork()
    except OSError:
        failed += 1
        time.sleep(0.005)
        continue
    if pid == 0:
        try:
            time.sleep(max(0.0, end - time.time()))
        finally:
            os._exit(0)
    made += 1
print("made", made, "failed", failed, flush=True)
"""


def start_flood(sb):
    sb.fs.upload_file(FLOOD.encode(), "/tmp/flood.py")
    sb.process.create_session("flood")
    sb.process.execute_session_command(
        "flood",
        SessionExecuteRequest(command="python3 /tmp/flood.py > /tmp/flood.out 2>&1",
                              run_async=True),
    )


def test_fork_flood_is_contained(server, daytona):
    # 2 GiB so that the pids limit, not memory, is what stops the flood (~270 KiB a child).
    sb = daytona.get(daytona._sandbox_api.create_sandbox(CreateSandbox(memory=2)).id)
    other = daytona.create()
    try:
        cg = pids_cgroup(sb.id)
        limit = int((cg / "pids.max").read_text())
        assert limit == 4096
        start_flood(sb)
        peak = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and peak < limit - 8:
            peak = max(peak, int((cg / "pids.current").read_text()))
            time.sleep(0.05)
        assert peak >= limit - 8, f"the flood only reached {peak} processes"
        # At the limit: the server answers and another sandbox runs commands.
        for _ in range(3):
            assert daytona.get(sb.id).state.value == "started"
            assert sh(other, "echo fine", timeout=30) == (0, "fine\n")
            peak = max(peak, int((cg / "pids.current").read_text()))
        assert peak <= limit, f"{peak} processes > pids.max {limit}"

        # Stopped mid-flood: every process goes, and the cgroup with them.
        sb.stop(timeout=60)
        assert not cg.exists(), "the cgroup outlived the stop"
        assert not (sandbox_dir(server, sb.id) / "pid").exists()
        sb.start()
        code, out = sh(sb, "ls /proc | grep -cE '^[0-9]+$'")
        assert code == 0 and int(out) < 10, out
    finally:
        sb.delete()
        other.delete()


def test_small_process_flood_oom_spares_the_agent(daytona):
    """Under the default 1 GiB a flood of ~270 KiB processes runs out of memory before pids;
    the OOM killer must pick the flood's processes, not the agent (the sandbox's PID 1),
    also on hosts where the agent cannot be given oom_score_adj -1000."""
    sb = daytona.create()
    try:
        v1 = Path("/sys/fs/cgroup/memory/cove") / sb.id / "memory.oom_control"
        events = v1 if v1.exists() else Path("/sys/fs/cgroup/cove") / sb.id / "memory.events"
        pids = pids_cgroup(sb.id) / "pids.current"
        start_flood(sb)
        assert wait_until(lambda: int(pids.read_text()) > 1000, 30, 0.05), "no flood"
        # Over when the flood's processes are gone (finished, or the parent was the pick).
        assert wait_until(lambda: int(pids.read_text()) < 20, 60, 0.2), pids.read_text()
        kills = [ln.split()[1] for ln in events.read_text().splitlines()
                 if ln.startswith("oom_kill ")]
        assert kills and int(kills[0]) > 0, f"no OOM kill happened: {events.read_text()}"
        sb.refresh_data()
        assert sb.state.value == "started", sb.error_reason
        assert sh(sb, "echo alive") == (0, "alive\n")
    finally:
        sb.delete()
