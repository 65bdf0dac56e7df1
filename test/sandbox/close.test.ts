// close() while requests are still running: nothing of the sandbox may outlive it. A read
// that came in after the repositories were closed used to start a new `git cat-file
// --batch` that nobody ended; the test process then never exited (a CI run hung 90 min).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OPS, sandboxFixture, tempDir } from '../helpers.js';

/** The child processes this process still holds (Node's own view of its handles). */
const children = () => process.getActiveResourcesInfo().filter((r) => r === 'ProcessWrap').length;

test('close() with reads in flight: no git process outlives the sandbox', async () => {
  const before = children();
  for (let round = 0; round < 3; round++) {
    // every answer waits 150 ms before it is handled: the handlers wake after close()
    // (a folder that stays: a temporary one goes at close(), and git could not start in it)
    const sb = await sandboxFixture({ faults: 'rate=1,kinds=slow,slow_ms=150', dataDir: await tempDir() });
    const file = `${sb.url}/api/v4/projects/${encodeURIComponent(OPS)}/repository/files/deployment.yml?ref=main`;
    const get = () =>
      fetch(file, { headers: { 'PRIVATE-TOKEN': 'root-token' } }).then(
        (r) => r.arrayBuffer(),
        () => null,
      );
    const reads = Array.from({ length: 10 }, get);
    await new Promise((r) => setTimeout(r, 50));
    await sb.close();
    await Promise.allSettled(reads);
    // the woken handlers read after close(): give them the time to (not) start git
    await new Promise((r) => setTimeout(r, 300));
  }
  // the processes close() ended take a moment to be reaped
  for (let i = 0; i < 100 && children() > before; i++) await new Promise((r) => setTimeout(r, 20));
  if (children() > before) {
    // a leaked git process would keep this file's process alive and the whole run waiting
    setTimeout(() => process.exit(1), 2000).unref();
  }
  assert.equal(children(), before, 'a git process is still running after every sandbox closed');
});
