"""CPU limits are enforced (cfs quota), through the official Python SDK: two busy processes in
a 1-CPU sandbox get about one core between them, not the host's two."""

from daytona import CreateSandboxFromSnapshotParams, Resources

BURN = r"""
import os, resource, time
WALL = 3.0
pids = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        end = time.monotonic() + WALL
        while time.monotonic() < end:
            pass
        os._exit(0)
    pids.append(pid)
start = time.monotonic()
for p in pids:
    os.waitpid(p, 0)
wall = time.monotonic() - start
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{ru.ru_utime + ru.ru_stime:.3f} {wall:.3f}")
"""


def test_one_cpu_sandbox_gets_one_core(daytona):
    sb = daytona.create(CreateSandboxFromSnapshotParams(resources=Resources(cpu=1)), timeout=1800)
    try:
        r = sb.process.exec(f"python3 -c '{BURN}'", timeout=60)
        assert r.exit_code == 0, r.result
        cpu, wall = map(float, r.result.split())
        # Two spinning processes for 3 s would use ~6 CPU-seconds on two free cores; the quota
        # of one core holds them to ~3 (plus one cfs period of slack).
        assert cpu <= wall * 1.0 + 0.35, f"used {cpu:.2f} CPU-s in {wall:.2f} s with cpu=1"
        assert cpu >= 0.5, f"the burners barely ran: {cpu:.2f} CPU-s"
    finally:
        sb.delete()
