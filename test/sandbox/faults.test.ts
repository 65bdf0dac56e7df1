// --faults: the spec's parsing, its one-route faults (`only=`), faults that start with a
// write (`after=`) and `hold`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DEFAULT_FAULT_KINDS, FaultSpecError, parseFaults } from '../../src/sandbox/faults.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS, sandboxFixture, until } from '../helpers.js';

let sb: Sandbox;
before(async () => {
  sb = await sandboxFixture();
});
after(() => sb.close());

test('only= names one route; hold is not among the default kinds', () => {
  const spec = parseFaults('rate=1,kinds=hold,slow_ms=500,only=put /projects/:id/merge_requests/:iid/merge');
  assert.deepEqual(spec.only, {
    method: 'PUT',
    segments: ['projects', ':id', 'merge_requests', ':iid', 'merge'],
  });
  assert.deepEqual(spec.kinds, ['hold']);
  assert.equal(spec.slowMs, 500);
  assert.equal(parseFaults('rate=0.2').only, undefined);
  assert.ok(!parseFaults('rate=0.2').kinds.includes('hold'));
  assert.ok(!DEFAULT_FAULT_KINDS.includes('hold'));
});

test('a bad only= or after= is a one-line error', () => {
  for (const bad of ['only=', 'only=/projects', 'only=PUT', 'only=FETCH /projects', 'only=PUT projects']) {
    assert.throws(
      () => parseFaults(`rate=1,${bad}`),
      (e: Error) =>
        e instanceof FaultSpecError &&
        e.message ===
          `--faults: ${bad} is not 'METHOD /path' (e.g. only=PUT /projects/:id/merge_requests/:iid/merge)`,
    );
  }
  assert.throws(
    () => parseFaults('after=PUT'),
    /^FaultSpecError: --faults: after=PUT is not 'METHOD \/path' \(e\.g\. after=PUT \/projects/,
  );
  assert.throws(() => parseFaults('kinds=hold,nope=1'), /unknown key 'nope' \(known: .*only, after\)/);
});

test('hold with only=: the write lands, its answer is kept back, other routes are untouched', async () => {
  sb.setFaults('rate=1,kinds=hold,slow_ms=60000,only=POST /projects/:id/repository/branches');
  try {
    const project = encodeURIComponent(OPS);
    const aborted = new AbortController();
    const held = fetch(`${sb.url}/api/v4/projects/${project}/repository/branches?branch=held&ref=main`, {
      method: 'POST',
      headers: { 'PRIVATE-TOKEN': 'root-token' },
      signal: aborted.signal,
    });
    held.catch(() => {});
    const root = client(sb, 'root');
    // the branch exists while the client still waits for the answer
    await until(
      async () => (await root.Branches.all(OPS)).some((b) => b.name === 'held'),
      'the write',
      1,
      10_000,
    );
    const settled = await Promise.race([
      held.then(() => 'answered'),
      new Promise((r) => setTimeout(r, 300, 'waiting')),
    ]);
    assert.equal(settled, 'waiting', 'the answer is held');
    // not aimed at: answered at once and not counted
    assert.equal((await root.Branches.show(OPS, 'held')).name, 'held');
    assert.deepEqual(sb.faults(), { hold: 1 });
    aborted.abort();
    await assert.rejects(held);
  } finally {
    sb.setFaults(null);
  }
});

test('hold answers after slow_ms', async () => {
  sb.setFaults('rate=1,kinds=hold,slow_ms=300,only=GET /projects/:id');
  try {
    const t0 = Date.now();
    const res = await fetch(`${sb.url}/api/v4/projects/${encodeURIComponent(OPS)}`, {
      headers: { 'PRIVATE-TOKEN': 'root-token' },
    });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { path_with_namespace: string }).path_with_namespace, OPS);
    assert.ok(Date.now() - t0 >= 290, 'the answer waited');
  } finally {
    sb.setFaults(null);
  }
});

test('after=: no faults until the route succeeded; its answer is the first faulted, the write done', async () => {
  sb.setFaults('rate=1,kinds=503,after=POST /projects/:id/repository/branches');
  try {
    const project = `/api/v4/projects/${encodeURIComponent(OPS)}`;
    const call = (path: string, method = 'GET') =>
      fetch(`${sb.url}${project}${path}`, { method, headers: { 'PRIVATE-TOKEN': 'root-token' } });
    assert.equal((await call('')).status, 200, 'not armed yet');
    assert.equal((await call('/repository/branches/nope', 'DELETE')).status, 404);
    assert.equal(
      (await call('/repository/branches?branch=armed&ref=nope', 'POST')).status,
      400,
      'a failure arms nothing',
    );
    assert.deepEqual(sb.faults(), {});
    assert.equal((await call('/repository/branches?branch=armed&ref=main', 'POST')).status, 503);
    assert.equal((await call('')).status, 503, 'every answer from then on');
    assert.deepEqual(sb.faults(), { 503: 2 });
    sb.setFaults(null);
    assert.equal((await call('/repository/branches/armed')).status, 200, 'the write landed');
  } finally {
    sb.setFaults(null);
  }
});
