"""Snapshots through the official Python SDK: create from the default image, list with pages,
get by name and id, deactivate/activate, delete; `sandbox.create_snapshot` of a started and
of a stopped sandbox, sandboxes created from it (whiteouts, opaque dirs, isolation between
them, one shared layer on disk), snapshots of snapshots; and rejected requests (taken names,
unknown images, Dockerfiles, snapshots in use) that change nothing."""

import os
import sqlite3
import uuid
from pathlib import Path

import pytest
import requests
from conftest import Server, cleanup_data_dir, wait_until
from daytona import (
    Daytona,
    DaytonaConfig,
    CreateSandboxFromSnapshotParams,
    CreateSnapshotParams,
    DaytonaBadRequestError,
    DaytonaConflictError,
    DaytonaNotFoundError,
    Image,
)

DEFAULT_IMAGE = "default"


def sname(prefix: str = "snap") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def api(server, method: str, path: str, body=None, **params) -> requests.Response:
    return requests.request(
        method,
        server.api_url + path,
        headers={"Authorization": f"Bearer {server.key}"},
        json=body,
        params=params,
        timeout=120,
    )


def run(sb, cmd: str) -> str:
    r = sb.process.exec(cmd)
    assert r.exit_code == 0, f"{cmd!r} -> {r.exit_code}: {r.result}"
    return r.result.strip()


def data_dir(server) -> Path:
    return Path(server.root.name) / "data"


def store_state(server, daytona):
    """Everything a rejected request must leave alone: snapshots and sandboxes."""
    snaps = api(server, "GET", "/snapshots", limit=200).json()
    assert snaps["total"] <= 200
    sandboxes = {(s.id, s.state) for s in daytona.list()}
    return sorted((s["id"], s["name"], s["state"]) for s in snaps["items"]), sandboxes


def lowerdirs(server, sandbox_id: str) -> list[str]:
    """The overlay lowerdirs of the sandbox's root, from its PID 1's mountinfo (as root)."""
    pid = (data_dir(server) / "sandboxes" / sandbox_id / "pid").read_text().split()[0]
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        if fields[4] != "/" or " - overlay " not in line:
            continue
        opts = line.split(" - ", 1)[1].split(" ", 2)[2]
        for opt in opts.split(","):
            if opt.startswith("lowerdir="):
                return opt[len("lowerdir="):].split(":")
    raise AssertionError(f"no overlay root in /proc/{pid}/mountinfo")


def test_create_list_get_activate_delete(daytona, server):
    prefix = sname("pg")
    names = [f"{prefix}-{i}" for i in range(3)]
    snaps = [daytona.snapshot.create(CreateSnapshotParams(name=n, image=DEFAULT_IMAGE)) for n in names]
    s = snaps[0]
    assert (s.state, s.image_name, s.source_sandbox_id, s.general) == ("active", DEFAULT_IMAGE, None, False)
    assert daytona.snapshot.get(names[0]).id == s.id
    assert daytona.snapshot.get(s.id).name == names[0]

    # Pages: exact counts through the name filter, and the SDK's own call.
    page1 = api(server, "GET", "/snapshots", name=prefix, page=1, limit=2, sort="name", order="asc").json()
    page2 = api(server, "GET", "/snapshots", name=prefix, page=2, limit=2, sort="name", order="asc").json()
    assert (page1["total"], page1["totalPages"], page1["page"]) == (3, 2, 1)
    assert [x["name"] for x in page1["items"]] == names[:2]
    assert [x["name"] for x in page2["items"]] == names[2:]
    sdk_page = daytona.snapshot.list(page=1, limit=2)
    assert sdk_page.page == 1 and len(sdk_page.items) == 2 and sdk_page.total >= 3
    assert sdk_page.total_pages == (sdk_page.total + 1) // 2

    # Deactivated: no new sandbox from it (400), and nothing created.
    before = store_state(server, daytona)
    r = api(server, "POST", f"/snapshots/{s.id}/deactivate")
    assert r.status_code == 204, r.text
    assert daytona.snapshot.get(s.id).state == "inactive"
    with pytest.raises(DaytonaBadRequestError, match="inactive"):
        daytona.create(CreateSandboxFromSnapshotParams(snapshot=names[0]))
    after = store_state(server, daytona)
    assert after[1] == before[1], "no sandbox created"

    assert daytona.snapshot.activate(names[0]).state == "active"
    sb = daytona.create(CreateSandboxFromSnapshotParams(snapshot=names[0]))
    try:
        assert sb.snapshot == names[0]
        assert run(sb, "cat /etc/debian_version")
        assert daytona.snapshot.get(s.id).last_used_at is not None
        before = store_state(server, daytona)
        with pytest.raises(DaytonaConflictError, match="in use"):
            daytona.snapshot.delete(names[0])
        assert store_state(server, daytona) == before
    finally:
        sb.delete()
    for n in names:
        daytona.snapshot.delete(n)
        with pytest.raises(DaytonaNotFoundError):
            daytona.snapshot.get(n)


def test_default_image_is_a_general_snapshot(daytona, server):
    # The image is built (or found in the cache) at server start: pending/building, then active.
    assert wait_until(lambda: daytona.snapshot.get(DEFAULT_IMAGE).state == "active", 600)
    d = daytona.snapshot.get(DEFAULT_IMAGE)
    assert (d.name, d.general, d.organization_id, d.image_name) == (DEFAULT_IMAGE, True, None, DEFAULT_IMAGE)
    assert daytona.snapshot.get("daytona-small").general, "the SDKs' default names too"

    # Listed first on page 1 and counted in the total; later pages neither skip nor repeat.
    made = [daytona.snapshot.create(CreateSnapshotParams(name=sname("gen"), image=DEFAULT_IMAGE)) for _ in range(3)]
    try:
        first = daytona.snapshot.list(page=1, limit=2)
        assert first.items[0].name == DEFAULT_IMAGE and first.items[0].general
        assert not any(x.general for x in first.items[1:])
        seen = []
        for page in range(1, first.total_pages + 1):
            seen += [x.name for x in daytona.snapshot.list(page=page, limit=2).items]
        assert len(seen) == len(set(seen)) == first.total
        assert {m.name for m in made} | {DEFAULT_IMAGE} <= set(seen)
        filtered = api(server, "GET", "/snapshots", name="gen-").json()
        assert DEFAULT_IMAGE not in [x["name"] for x in filtered["items"]], "a name filter excludes it"

        # It cannot be deleted or deactivated, and stays usable.
        before = store_state(server, daytona)
        with pytest.raises(DaytonaBadRequestError, match="built-in default image"):
            daytona.snapshot.delete(DEFAULT_IMAGE)
        r = api(server, "POST", f"/snapshots/{DEFAULT_IMAGE}/deactivate")
        assert r.status_code == 400 and "built-in" in r.json()["message"], r.text
        assert store_state(server, daytona) == before
        assert daytona.snapshot.activate(DEFAULT_IMAGE).state == "active"
        assert daytona.snapshot.get(DEFAULT_IMAGE).state == "active"
    finally:
        for m in made:
            daytona.snapshot.delete(m.name)


def test_snapshot_entrypoint_runs_in_its_sandboxes(daytona, server):
    n = sname("entry")
    argv = ["sh", "-c", "echo started > /tmp/entry-ran; echo entry-out; echo entry-err >&2; exec sleep 100000"]
    with pytest.raises(DaytonaBadRequestError, match="entrypoint"):
        daytona.snapshot.create(CreateSnapshotParams(name=sname("bad"), image=DEFAULT_IMAGE, entrypoint=[""]))
    snap = daytona.snapshot.create(CreateSnapshotParams(name=n, image=DEFAULT_IMAGE, entrypoint=argv))
    assert snap.entrypoint == argv
    sb = daytona.create(CreateSandboxFromSnapshotParams(snapshot=n))
    copy = None
    try:
        def logs():
            return sb.process.get_entrypoint_logs()

        assert wait_until(lambda: logs().stdout == "entry-out\n", 30, 0.1), logs()
        assert logs().stderr == "entry-err\n"
        session = sb.process.get_entrypoint_session()
        assert len(session.commands) == 1 and "exec sleep 100000" in session.commands[0].command
        assert session.commands[0].exit_code is None, "still running"
        assert run(sb, "cat /tmp/entry-ran") == "started"
        assert "entrypoint" not in [s.session_id for s in sb.process.list_sessions()]

        # It runs again on every boot.
        run(sb, "rm /tmp/entry-ran")
        sb.stop()
        sb.start()
        assert wait_until(lambda: logs().stdout == "entry-out\n", 30, 0.1), logs()
        assert run(sb, "cat /tmp/entry-ran") == "started"

        # A snapshot of the sandbox keeps the entrypoint, as an image built on another would.
        copy = sname("entry-copy")
        sb.create_snapshot(copy)
        assert daytona.snapshot.get(copy).entrypoint == argv
    finally:
        sb.delete()
        if copy:
            daytona.snapshot.delete(copy)
        daytona.snapshot.delete(n)


def test_a_moved_data_dir_keeps_snapshots_and_sandboxes():
    """The store names layers relative to the data dir: after the server's data dir moves, a
    snapshot still boots sandboxes with its files, and a stopped sandbox starts with its own."""
    first = Server()
    moved = Path(first.root.name) / "moved-data"
    second = None
    try:
        d = Daytona(DaytonaConfig(api_key=first.key, api_url=first.api_url))
        src = d.create()
        run(src, "echo from-the-snapshot > $HOME/snap.txt")
        name = sname("moved")
        src.create_snapshot(name)
        src.delete()
        kept = d.create()
        run(kept, "echo my-own > $HOME/own.txt")
        kept.stop()
        first.terminate()
        os.rename(first.data, moved)

        second = Server(data_dir=moved)
        # The first server's key is stored in the data dir, so it still works.
        d = Daytona(DaytonaConfig(api_key=first.key, api_url=second.api_url))
        sb = d.create(CreateSandboxFromSnapshotParams(snapshot=name))
        assert run(sb, "cat $HOME/snap.txt") == "from-the-snapshot"
        sb.delete()
        kept = d.get(kept.id)
        kept.start()
        assert run(kept, "cat $HOME/own.txt") == "my-own"
        kept.delete()
        d.snapshot.delete(name)
    finally:
        if second:
            second.stop()
        first.log.close()
        cleanup_data_dir(first.root.name, moved)
        first.root.cleanup()


def test_rejected_requests_change_nothing(daytona, server):
    taken = daytona.snapshot.create(CreateSnapshotParams(name=sname(), image=DEFAULT_IMAGE))
    sb = daytona.create()
    try:
        before = store_state(server, daytona)
        with pytest.raises(DaytonaConflictError, match="already exists"):
            daytona.snapshot.create(CreateSnapshotParams(name=taken.name, image=DEFAULT_IMAGE))
        with pytest.raises(DaytonaConflictError, match="already exists"):
            sb.create_snapshot(taken.name)
        with pytest.raises(DaytonaConflictError):
            sb.create_snapshot("default")
        with pytest.raises(DaytonaBadRequestError, match="not in the image store"):
            daytona.snapshot.create(CreateSnapshotParams(name=sname(), image="python:3.12"))
        with pytest.raises(DaytonaBadRequestError, match="buildInfo"):
            daytona.snapshot.create(CreateSnapshotParams(name=sname(), image=Image.debian_slim("3.12")))
        with pytest.raises(DaytonaNotFoundError, match="no-such-snapshot"):
            daytona.create(CreateSandboxFromSnapshotParams(snapshot="no-such-snapshot"))
        for body in [{"name": "x", "includeMemory": True}, {"name": "a/b"}, {}]:
            r = api(server, "POST", f"/sandbox/{sb.id}/snapshot", body)
            assert r.status_code == 400, (body, r.text)
        assert api(server, "POST", "/snapshots", {"name": sname()}).status_code == 400
        r = api(server, "GET", "/snapshots", limit=0)
        assert r.status_code == 400 and "limit" in r.json()["message"]
        assert api(server, "GET", "/snapshots/no-such-snapshot").status_code == 404
        assert store_state(server, daytona) == before
        sb.refresh_data()
        assert sb.state == "started"
    finally:
        sb.delete()
        daytona.snapshot.delete(taken.id)


def test_sandboxes_from_a_sandbox_snapshot_share_its_layer(daytona, server):
    n = uuid.uuid4().hex[:8]
    new = f"/home/daytona/new-{n}.txt"
    src = daytona.create()
    run(src, f"echo new > {new} && chmod 640 {new} && ln -s {new} /home/daytona/link && ln {new} /home/daytona/hard")
    run(src, "sudo rm /etc/issue.net")  # a file of the base image
    run(src, "sudo rm -rf /etc/skel && sudo mkdir /etc/skel && echo only | sudo tee /etc/skel/only.txt")
    name = sname("s1")
    src.create_snapshot(name)
    src.refresh_data()
    assert src.state == "started", "back to its state"
    assert run(src, f"cat {new}") == "new", "thawed"
    snap = daytona.snapshot.get(name)
    assert (snap.state, snap.source_sandbox_id, snap.image_name) == ("active", src.id, DEFAULT_IMAGE)
    assert snap.size is not None and snap.size > 0
    layer = data_dir(server) / "layers" / snap.id
    assert (layer / new.lstrip("/")).read_text() == "new\n"
    src.delete()  # the snapshot does not depend on its source

    a = daytona.create(CreateSandboxFromSnapshotParams(snapshot=name))
    b = daytona.create(CreateSandboxFromSnapshotParams(snapshot=snap.id))
    try:
        for sb in (a, b):
            assert sb.snapshot == name
            assert run(sb, f"cat {new}") == "new"
            assert run(sb, f"stat -c '%U %a' {new}") == "daytona 640"
            assert run(sb, "readlink /home/daytona/link") == new
            assert run(sb, f"stat -c %h {new}") == "2", "hard link kept"
            assert run(sb, "test -e /etc/issue.net || echo absent") == "absent"
            assert run(sb, "ls -A /etc/skel") == "only.txt", "opaque dir"
            assert run(sb, "cat /etc/debian_version"), "base image below"
        run(a, f"echo a > /home/daytona/a-{n}.txt && rm {new}")
        assert run(b, f"cat {new}") == "new"
        assert run(b, f"test -e /home/daytona/a-{n}.txt || echo absent") == "absent"
        assert not (layer / f"home/daytona/a-{n}.txt").exists()
        assert (layer / new.lstrip("/")).read_text() == "new\n", "snapshot untouched"

        # One layer on disk, used by both overlays.
        assert str(layer) in lowerdirs(server, a.id)
        assert str(layer) in lowerdirs(server, b.id)
        copies = [
            Path(root) / f
            for root, _, files in os.walk(data_dir(server))
            for f in files
            if f == f"new-{n}.txt" and (Path(root) / f).is_file() and not (Path(root) / f).is_symlink()
        ]
        assert copies == [layer / new.lstrip("/")], copies
    finally:
        a.delete()
        b.delete()
    daytona.snapshot.delete(name)
    assert not layer.exists(), "its layer goes with it"


def stopped_since(server, sandbox_id: str) -> str:
    """When the sandbox entered its state, as stored (the auto-archive/auto-delete clock)."""
    db = sqlite3.connect(f"file:{data_dir(server) / 'cove.db'}?mode=ro", uri=True)
    try:
        (at,) = db.execute("SELECT state_changed_at FROM sandboxes WHERE id = ?", (sandbox_id,)).fetchone()
        return at
    finally:
        db.close()


def test_snapshot_of_a_stopped_sandbox_and_of_a_snapshot(daytona, server):
    n = uuid.uuid4().hex[:8]
    src = daytona.create()
    run(src, f"echo one > /home/daytona/one-{n}")
    src.stop()
    since = stopped_since(server, src.id)
    first = sname("first")
    r = api(server, "POST", f"/sandbox/{src.id}/snapshot", {"name": first, "includeMemory": False})
    assert r.status_code == 200 and r.json()["state"] == "snapshotting", r.text
    assert wait_until(lambda: daytona.get(src.id).state != "snapshotting", 120)
    assert daytona.get(src.id).state == "stopped", "back to its state"
    assert stopped_since(server, src.id) == since, "a snapshot does not restart the stopped clock"
    assert daytona.snapshot.get(first).state == "active"

    mid = daytona.create(CreateSandboxFromSnapshotParams(snapshot=first))
    run(mid, f"echo two > /home/daytona/two-{n}")
    second = sname("second")
    mid.create_snapshot(second)
    mid.delete()
    src.delete()
    # Deleting the base snapshot keeps the layer the second one still stands on.
    daytona.snapshot.delete(first)
    first_layer = [p for p in (data_dir(server) / "layers").iterdir() if (p / f"home/daytona/one-{n}").exists()]
    assert len(first_layer) == 1
    top = daytona.create(CreateSandboxFromSnapshotParams(snapshot=second))
    try:
        assert run(top, f"cat /home/daytona/one-{n} /home/daytona/two-{n}") == "one\ntwo"
    finally:
        top.delete()
    daytona.snapshot.delete(second)
    assert not first_layer[0].exists(), "unlisted layers are removed with the last snapshot"
