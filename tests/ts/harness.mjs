// Starts a real `cove server` on a free loopback port with a temporary data dir, for tests
// that drive it through the official Daytona TypeScript SDK.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..', '..');

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on('error', fail);
  });
}

async function waitUntil(cond, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts the server; returns { apiUrl, apiKey, stop }. */
export async function startServer() {
  const bin = process.env.COVE_BIN ?? join(root, 'target', 'debug', 'cove');
  const dir = mkdtempSync(join(tmpdir(), 'cove-ts-'));
  const port = await freePort();
  const apiKey = 'ts-test-key';
  const child = spawn(
    bin,
    ['server', '--listen', `127.0.0.1:${port}`, '--data-dir', join(dir, 'data'),
      '--images-dir', process.env.COVE_IMAGES_DIR ?? '/var/cache/cove/images'],
    { env: { ...process.env, COVE_API_KEY: apiKey }, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  let exited = false;
  child.on('exit', () => { exited = true; });
  const apiUrl = `http://127.0.0.1:${port}/api`;
  await waitUntil(async () => {
    if (exited) throw new Error('cove server exited during start-up');
    try { return (await fetch(`${apiUrl}/health`)).ok; } catch { return false; }
  }, 30_000, 'cove server health');
  return {
    apiUrl,
    apiKey,
    async stop() {
      // Sandboxes a failed test left behind: deleted through the API (their disks unmounted).
      const auth = { Authorization: `Bearer ${apiKey}` };
      try {
        const list = await (await fetch(`${apiUrl}/sandbox`, { headers: auth })).json();
        for (const sb of Array.isArray(list) ? list : list.items ?? []) {
          await fetch(`${apiUrl}/sandbox/${sb.id}`, { method: 'DELETE', headers: auth });
        }
      } catch { /* best effort */ }
      if (!exited) {
        child.kill('SIGTERM');
        await waitUntil(async () => exited, 10_000, 'server exit').catch(() => child.kill('SIGKILL'));
      }
      // Anything still mounted under the data dir (a sandbox's disk) is detached first.
      const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
        .map((l) => l.split(' ')[4]).filter((m) => m && m.startsWith(`${dir}/`))
        .sort((a, b) => b.length - a.length);
      for (const m of mounts) spawnSync('umount', ['-l', m]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
