// Lifecycle and storage (issue 4) through the official TypeScript SDK: stop/archive/restore,
// timers, labels and lists, resize, snapshots (the default image among them) and volumes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Daytona } from '@daytonaio/sdk';
import { startServer } from './harness.mjs';

async function sh(sb, cmd) {
  const r = await sb.process.executeCommand(cmd);
  assert.equal(r.exitCode, 0, `${cmd} -> ${r.exitCode}: ${r.result}`);
  return r.result.trim();
}

test('stop, archive, start restores the files; timers; labels; list; resize', async () => {
  const srv = await startServer();
  try {
    const daytona = new Daytona({ apiKey: srv.apiKey, apiUrl: srv.apiUrl });
    const tag = randomUUID();
    const sb = await daytona.create({ labels: { suite: 'ts-life', tag } });
    await sh(sb, 'echo kept > $HOME/kept.txt');

    await sb.setAutostopInterval(30);
    await sb.setAutoArchiveInterval(60);
    await sb.setAutoDeleteInterval(-1);
    await sb.refreshData();
    assert.deepEqual([sb.autoStopInterval, sb.autoArchiveInterval, sb.autoDeleteInterval], [30, 60, -1]);
    // The SDK refuses a negative interval itself; the server must too, changing nothing.
    const bad = await fetch(`${srv.apiUrl}/sandbox/${sb.id}/autostop/-3`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${srv.apiKey}` },
    });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).message, /autoStopInterval/);
    await sb.refreshData();
    assert.equal(sb.autoStopInterval, 30, 'a rejected interval changes nothing');

    await sb.setLabels({ suite: 'ts-life', tag, extra: 'yes' });
    const found = [];
    for await (const s of daytona.list({ labels: { tag } })) found.push(s.id);
    assert.deepEqual(found, [sb.id]);

    await sb.resize({ cpu: 2, memory: 2 });
    assert.deepEqual([sb.cpu, sb.memory], [2, 2]);

    await assert.rejects(sb.archive(), /stop it before archiving/);
    await sb.stop();
    assert.equal(sb.state, 'stopped');
    await sb.archive();
    for (let i = 0; i < 600 && sb.state !== 'archived'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      await sb.refreshData();
    }
    assert.equal(sb.state, 'archived');
    await sb.start(120);
    assert.equal(sb.state, 'started');
    assert.equal(await sh(sb, 'cat $HOME/kept.txt'), 'kept');
    await sb.delete();
  } finally {
    await srv.stop();
  }
});

test('snapshots from a sandbox, the default image, and volumes', async () => {
  const srv = await startServer();
  try {
    const daytona = new Daytona({ apiKey: srv.apiKey, apiUrl: srv.apiUrl });
    const n = randomUUID().slice(0, 8);

    const def = await daytona.snapshot.get('default');
    assert.equal(def.general, true);
    const page = await daytona.snapshot.list(1, 10);
    assert.equal(page.items[0].name, 'default');

    const src = await daytona.create();
    await sh(src, `echo from-snapshot > $HOME/snap-${n}`);
    await src.createSnapshot(`ts-snap-${n}`);
    // createSnapshot waits for the sandbox to leave `snapshotting`, through Socket.IO events
    // and polls; a `sandbox.created` event (state `creating`) delivered late ends that wait
    // early now and then, so the snapshot's own state is awaited here.
    let snap = await daytona.snapshot.get(`ts-snap-${n}`);
    for (let i = 0; i < 300 && snap.state === 'snapshotting'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      snap = await daytona.snapshot.get(`ts-snap-${n}`);
    }
    assert.equal(snap.state, 'active');
    assert.equal(snap.sourceSandboxId, src.id);
    const child = await daytona.create({ snapshot: `ts-snap-${n}` });
    assert.equal(await sh(child, `cat $HOME/snap-${n}`), 'from-snapshot');
    await assert.rejects(daytona.snapshot.delete(snap), /in use/);
    await child.delete();
    await src.delete();
    await daytona.snapshot.delete(snap);
    await assert.rejects(daytona.snapshot.get(`ts-snap-${n}`), /not found/i);

    const vol = await daytona.volume.create(`ts-vol-${n}`);
    assert.equal((await daytona.volume.get(`ts-vol-${n}`)).id, vol.id);
    assert.ok((await daytona.volume.list()).some((v) => v.id === vol.id));
    const a = await daytona.create({ volumes: [{ volumeId: vol.id, mountPath: '/data' }] });
    const b = await daytona.create({ volumes: [{ volumeId: vol.id, mountPath: '/shared' }] });
    await sh(a, 'echo shared > /data/f');
    assert.equal(await sh(b, 'cat /shared/f'), 'shared');
    await assert.rejects(daytona.volume.delete(vol), /in use/);
    await a.delete();
    await b.delete();
    await daytona.volume.delete(vol);
  } finally {
    await srv.stop();
  }
});
