"""Archive and restore through the official Python SDK: `sandbox.archive()` moves a stopped
sandbox's files to object storage (a local directory, or a real S3-compatible server on
loopback), frees the local copy, and `sandbox.start()` brings everything back exactly; archive
of a started sandbox is a 400 that changes nothing; delete removes the object; a stopped
sandbox is archived by its auto-archive timer."""

import hashlib
import os
import stat
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from conftest import Server, free_port, state, wait_until
from daytona import CreateSandboxFromSnapshotParams, Daytona, DaytonaConfig, DaytonaError

# Everything an overlay upper dir can hold, written through the sandbox (sudo for root's part).
SEED = r"""
set -e
mkdir -p ~/w/empty ~/w/sub
printf 'hello\n' > ~/w/text.txt
head -c 200000 /dev/urandom > ~/w/bin.dat
ln -s text.txt ~/w/link
ln -s /nowhere ~/w/dangling
ln ~/w/text.txt ~/w/hard
printf secret > ~/w/secret && chmod 600 ~/w/secret
touch -d '2001-02-03 04:05:06' ~/w/old
sudo sh -c 'echo root > /root/r.txt && chmod 640 /root/r.txt'
sudo chown root:daytona ~/w/sub && sudo chmod 2770 ~/w/sub
sudo install -m 4755 /bin/true /usr/local/bin/suid-true
sudo rm /etc/issue.net
sudo rm -rf /etc/skel && sudo mkdir /etc/skel && sudo touch /etc/skel/only
"""

# What the sandbox sees of it.
DESCRIBE = r"""
cd ~/w
stat -c '%n %a %U %G %s %F %Y' . * /root/r.txt /etc/skel /usr/local/bin/suid-true
sha256sum text.txt bin.dat secret
readlink link dangling
ls -A /etc/skel
stat -c %i text.txt hard | uniq | wc -l
test -e /etc/issue.net && echo issue.net is back || echo issue.net stays deleted
test -e /etc/skel/.bashrc && echo skel is merged || echo skel stays opaque
"""



def sh(sb, cmd: str) -> str:
    out = sb.process.exec(cmd, timeout=120)
    assert out.exit_code == 0, out.result
    return out.result


def data_dir(srv: Server) -> Path:
    return Path(srv.root.name) / "data"


def upper(srv: Server, sid: str) -> Path:
    """The sandbox's files: inside its mounted disk, or a plain dir where disks are not
    enforced (no loop devices)."""
    plain = data_dir(srv) / "sandboxes" / sid / "upper"
    return plain if plain.is_dir() else data_dir(srv) / "sandboxes" / sid / "disk" / "upper"


def local_object(srv: Server, sid: str) -> Path:
    return data_dir(srv) / "objects" / "sandboxes" / sid / "upper.tar.zst"


def host_view(root: Path) -> dict:
    """Every entry of an upper dir as the host sees it: type, mode, owner, size, mtime,
    device number, link count, xattrs, and contents or link target."""
    paths = []
    for dirpath, dirs, files in os.walk(root):
        here = Path(dirpath)
        paths.append(here)
        paths += [here / n for n in files]
        paths += [here / n for n in dirs if (here / n).is_symlink()]
    out = {}
    for p in paths:
        st = p.lstat()
        xattrs = []
        if not stat.S_ISLNK(st.st_mode):
            xattrs = sorted((x, os.getxattr(p, x, follow_symlinks=False)) for x in os.listxattr(p, follow_symlinks=False))
        if stat.S_ISREG(st.st_mode):
            body = hashlib.sha256(p.read_bytes()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            body = os.readlink(p)
        else:
            body = None
        size = 0 if stat.S_ISDIR(st.st_mode) else st.st_size
        # Overlay links its whiteouts to a shared one in its work dir, which is not archived.
        nlink = st.st_nlink if stat.S_ISREG(st.st_mode) else None
        out[str(p.relative_to(root))] = dict(
            mode=st.st_mode, uid=st.st_uid, gid=st.st_gid, size=size, mtime=int(st.st_mtime),
            rdev=st.st_rdev, nlink=nlink, xattrs=xattrs, body=body,
        )
    return out



@pytest.fixture()
def d(fast):
    return Daytona(DaytonaConfig(api_key=fast.key, api_url=fast.api_url))


def test_archive_then_start_brings_everything_back(fast, d):
    sb = d.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0), timeout=1800)
    try:
        sh(sb, SEED)
        before = sh(sb, DESCRIBE)
        assert "issue.net stays deleted" in before and "skel stays opaque" in before
        sb.stop()
        host_before = host_view(upper(fast, sb.id))
        # The upper dir has what only a faithful archive keeps: a whiteout, an opaque dir,
        # shifted owners, setuid/setgid bits.
        whiteout = host_before["etc/issue.net"]
        assert stat.S_ISCHR(whiteout["mode"]) and whiteout["rdev"] == 0
        assert ("user.overlay.opaque", b"y") in host_before["etc/skel"]["xattrs"]
        assert host_before["home/daytona/w/secret"]["uid"] >= 1_000_000
        assert host_before["home/daytona/w/hard"]["nlink"] == 2
        assert host_before["usr/local/bin/suid-true"]["mode"] & 0o7777 == 0o4755

        sb.archive()
        assert state(sb) == "archived"
        assert not upper(fast, sb.id).exists(), "local copy freed"
        assert local_object(fast, sb.id).stat().st_size > 200_000

        sb.start(timeout=300)
        assert state(sb) == "started"
        assert sh(sb, DESCRIBE) == before
        # The object goes once the restored files are on disk.
        assert wait_until(lambda: not local_object(fast, sb.id).exists(), 30, 0.1)
        sb.stop()
        after = host_view(upper(fast, sb.id))
        changed = {k: (v, host_before.get(k)) for k, v in after.items() if v != host_before.get(k)}
        assert not changed, repr(changed)
        assert after == host_before

        # A second round trip works the same (the object is written afresh).
        sb.archive()
        assert state(sb) == "archived" and local_object(fast, sb.id).exists()
        sb.start(timeout=300)
        assert sh(sb, DESCRIBE) == before
    finally:
        sb.delete()


def test_archive_of_a_started_sandbox_is_a_400_that_changes_nothing(fast, d):
    sb = d.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0), timeout=1800)
    try:
        sh(sb, "echo still-here > ~/f")
        with pytest.raises(DaytonaError) as err:
            sb.archive()
        msg = str(err.value)
        assert f"Sandbox {sb.id} is started; stop it before archiving" in msg, msg
        r = httpx.post(f"{fast.api_url}/sandbox/{sb.id}/archive", headers={"Authorization": f"Bearer {fast.key}"})
        assert r.status_code == 400 and r.json()["statusCode"] == 400, r.text
        assert "stop it before archiving" in r.json()["message"]
        got = httpx.get(f"{fast.api_url}/sandbox/{sb.id}", headers={"Authorization": f"Bearer {fast.key}"}).json()
        assert (got["state"], got["desiredState"]) == ("started", "started")
        assert sh(sb, "cat ~/f").strip() == "still-here"
        assert not local_object(fast, sb.id).exists()
        r = httpx.post(f"{fast.api_url}/sandbox/no-such-sandbox/archive", headers={"Authorization": f"Bearer {fast.key}"})
        assert r.status_code == 404, r.text
    finally:
        sb.delete()


def test_delete_of_an_archived_sandbox_removes_its_object(fast, d):
    sb = d.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0), timeout=1800)
    sh(sb, "echo x > ~/x")
    sb.stop()
    sb.archive()
    assert local_object(fast, sb.id).exists()
    sb.delete()
    assert not local_object(fast, sb.id).exists()
    assert not (data_dir(fast) / "sandboxes" / sb.id).exists()


def test_auto_archive_after_stopped_minutes(fast, d):
    tag = uuid.uuid4().hex
    sb = d.create(
        CreateSandboxFromSnapshotParams(auto_stop_interval=0, auto_archive_interval=2, labels={"aa": tag}),
        timeout=1800,
    )
    try:
        sh(sb, "echo kept > ~/kept")
        sb.stop()
        # A "minute" is a second here: archived a couple of seconds after the stop.
        assert wait_until(lambda: state(sb) == "archived", 20, 0.25), state(sb)
        assert not upper(fast, sb.id).exists()
        sb.start(timeout=300)
        assert sh(sb, "cat ~/kept").strip() == "kept"
    finally:
        sb.delete()


# --- a real S3-compatible server (moto, from PyPI) on loopback ------------------------------


@pytest.fixture(scope="module")
def s3():
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is installed by .ci/run")
    import boto3

    port = free_port()
    moto = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "cove-test",
        "AWS_SECRET_ACCESS_KEY": "cove-test-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    )
    client.create_bucket(Bucket="cove-archives")
    srv = Server(extra_args=("--object-store", "s3://cove-archives/some/prefix"), env=env)
    yield srv, client
    srv.stop()
    moto.stop()


def keys(client, prefix: str) -> list:
    got = client.list_objects_v2(Bucket="cove-archives", Prefix=prefix)
    return [o["Key"] for o in got.get("Contents", [])]


def test_archive_and_restore_through_s3(s3):
    srv, client = s3
    d = Daytona(DaytonaConfig(api_key=srv.key, api_url=srv.api_url))
    sb = d.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0), timeout=1800)
    key = f"some/prefix/sandboxes/{sb.id}/upper.tar.zst"
    try:
        # Bigger than one 16 MiB upload part, so the multipart upload has several.
        sh(sb, "head -c 40000000 /dev/urandom > ~/big && sha256sum ~/big > ~/big.sum && echo hi > ~/t")
        sb.stop()
        sb.archive()
        assert state(sb) == "archived"
        assert keys(client, f"some/prefix/sandboxes/{sb.id}/") == [key]
        size = client.head_object(Bucket="cove-archives", Key=key)["ContentLength"]
        assert size > 40_000_000
        assert not upper(srv, sb.id).exists()
        assert not (data_dir(srv) / "objects").exists(), "nothing archived locally"

        sb.start(timeout=300)
        assert state(sb) == "started"
        assert sh(sb, "cat ~/t && sha256sum -c ~/big.sum").split() == ["hi", f"/home/daytona/big:", "OK"]
        assert wait_until(lambda: keys(client, f"some/prefix/sandboxes/{sb.id}/") == [], 30, 0.2)

        sb.stop()
        sb.archive()
        assert keys(client, f"some/prefix/sandboxes/{sb.id}/") == [key]
    finally:
        sb.delete()
    assert keys(client, f"some/prefix/sandboxes/{sb.id}/") == []


def test_a_bad_object_store_url_stops_the_server_with_a_clear_error(fast, tmp_path):
    env = dict(os.environ, COVE_API_KEY="k")
    for url in ("ftp://nope", "s3://"):
        r = subprocess.run(
            [fast.bin, "server", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "data"),
             "--object-store", url],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
        )
        err = r.stderr.decode(errors="replace")
        assert r.returncode != 0 and f'invalid --object-store "{url}"' in err, err
