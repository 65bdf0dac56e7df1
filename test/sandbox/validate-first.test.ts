// Every handler validates everything before it changes anything: a 400 (or 409) leaves
// what it was asked to change as it was.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Sandbox } from '../../src/sandbox/index.js';
import { api, OPS, sandboxFixture } from '../helpers.js';

let sb: Sandbox;
before(async () => {
  sb = await sandboxFixture();
});
after(() => sb.close());

const ops = `/projects/${encodeURIComponent(OPS)}`;
const json = (method: string, body: unknown, token = 'operator-token') => ({
  method,
  token,
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify(body),
});

/** A request GitLab refuses with a 400 and this body. */
async function refused(url: string, method: string, body: unknown, answer: unknown, token?: string) {
  const r = await api(sb, url, json(method, body, token));
  assert.equal(r.status, 400);
  assert.deepEqual(r.body, answer);
}

async function branch(name: string): Promise<void> {
  const r = await api(sb, `${ops}/repository/branches`, json('POST', { branch: name, ref: 'main' }));
  assert.equal(r.status, 201);
}

async function openMr(source: string, title = `MR ${source}`): Promise<{ iid: number; title: string }> {
  await branch(source);
  const r = await api(
    sb,
    `${ops}/merge_requests`,
    json('POST', { source_branch: source, target_branch: 'main', title }),
  );
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

describe('validate before change', () => {
  test('MR PUT: an invalid state_event is a 400 and the title stays', async () => {
    const mr = await openMr('vf-state-event', 'Before');
    const r = await api(
      sb,
      `${ops}/merge_requests/${mr.iid}`,
      json('PUT', { title: 'After', state_event: 'explode' }),
    );
    assert.equal(r.status, 400);
    assert.deepEqual(r.body, { error: 'state_event does not have a valid value' });
    const now = await api(sb, `${ops}/merge_requests/${mr.iid}`, { token: 'operator-token' });
    assert.equal(now.body.title, 'Before');
    assert.equal(now.body.state, 'opened');
  });

  test('MR PUT: an invalid boolean or a missing target branch leaves every field', async () => {
    const mr = await openMr('vf-fields', 'Fields');
    const url = `${ops}/merge_requests/${mr.iid}`;
    const before = (await api(sb, url, { token: 'operator-token' })).body;
    const bad = await api(sb, url, json('PUT', { title: 'Changed', labels: 'a,b', squash: 'maybe' }));
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body, { error: 'squash is invalid' });
    const target = await api(sb, url, json('PUT', { title: 'Changed', target_branch: 'no-such-branch' }));
    assert.equal(target.status, 400);
    assert.deepEqual(target.body, { message: ['Target branch "no-such-branch" does not exist'] });
    const after = (await api(sb, url, { token: 'operator-token' })).body;
    assert.equal(after.title, 'Fields');
    assert.deepEqual(after.labels, []);
    assert.equal(after.updated_at, before.updated_at);
  });

  test('MR PUT: a reopen refused with 409 leaves the title', async () => {
    const first = await openMr('vf-reopen', 'First');
    const url = `${ops}/merge_requests/${first.iid}`;
    assert.equal((await api(sb, url, json('PUT', { state_event: 'close' }))).status, 200);
    const second = await api(
      sb,
      `${ops}/merge_requests`,
      json('POST', { source_branch: 'vf-reopen', target_branch: 'main', title: 'Second' }),
    );
    assert.equal(second.status, 201);
    const r = await api(sb, url, json('PUT', { title: 'Reopened', state_event: 'reopen' }));
    assert.equal(r.status, 409);
    assert.deepEqual(r.body, {
      message: [`Another open merge request already exists for this source branch: !${second.body.iid}`],
    });
    const now = (await api(sb, url, { token: 'operator-token' })).body;
    assert.equal(now.title, 'First');
    assert.equal(now.state, 'closed');
  });

  test('MR POST: an invalid parameter uses no iid', async () => {
    await branch('vf-iid');
    const bad = await api(
      sb,
      `${ops}/merge_requests`,
      json('POST', { source_branch: 'vf-iid', target_branch: 'main', title: 'X', squash: 'maybe' }),
    );
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body, { error: 'squash is invalid' });
    const list = (await api(sb, `${ops}/merge_requests?per_page=100`, { token: 'operator-token' })).body;
    const highest = Math.max(...list.map((m: { iid: number }) => m.iid));
    const ok = await api(
      sb,
      `${ops}/merge_requests`,
      json('POST', { source_branch: 'vf-iid', target_branch: 'main', title: 'X' }),
    );
    assert.equal(ok.status, 201);
    assert.equal(ok.body.iid, highest + 1);
  });

  test('commit POST: an invalid `stats` is a 400 and the branch does not move', async () => {
    await branch('vf-commit');
    const head = async () =>
      (await api(sb, `${ops}/repository/branches/vf-commit`, { token: 'operator-token' })).body.commit.id;
    const was = await head();
    const r = await api(
      sb,
      `${ops}/repository/commits`,
      json('POST', {
        branch: 'vf-commit',
        commit_message: 'm',
        stats: 'maybe',
        actions: [{ action: 'create', file_path: 'vf.txt', content: 'x' }],
      }),
    );
    assert.equal(r.status, 400);
    assert.deepEqual(r.body, { error: 'stats is invalid' });
    assert.equal(await head(), was);
  });

  test('project PUT: one invalid setting changes none', async () => {
    const was = (await api(sb, ops, { token: 'operator-token' })).body;
    const r = await api(
      sb,
      ops,
      json(
        'PUT',
        {
          only_allow_merge_if_pipeline_succeeds: !was.only_allow_merge_if_pipeline_succeeds,
          remove_source_branch_after_merge: 'maybe',
        },
        'root-token',
      ),
    );
    assert.equal(r.status, 400);
    assert.deepEqual(r.body, { error: 'remove_source_branch_after_merge is invalid' });
    const now = (await api(sb, ops, { token: 'operator-token' })).body;
    assert.equal(now.only_allow_merge_if_pipeline_succeeds, was.only_allow_merge_if_pipeline_succeeds);
  });

  test('project POST: an invalid initialize_with_readme creates no project', async () => {
    const r = await api(
      sb,
      '/projects',
      json('POST', { name: 'vf-project', initialize_with_readme: 'maybe' }),
    );
    assert.equal(r.status, 400);
    assert.deepEqual(r.body, { error: 'initialize_with_readme is invalid' });
    const p = await api(sb, `/projects/${encodeURIComponent('operator/vf-project')}`, {
      token: 'operator-token',
    });
    assert.equal(p.status, 404);
  });

  test('project POST: a visibility GitLab does not have is a 400', async () => {
    const body = { name: 'vf-secret', visibility: 'secret' };
    await refused('/projects', 'POST', body, { error: 'visibility does not have a valid value' });
    const p = await api(sb, `/projects/${encodeURIComponent('operator/vf-secret')}`, {
      token: 'operator-token',
    });
    assert.equal(p.status, 404);
  });

  test('hook PUT: an invalid signing token leaves the url', async () => {
    const hooks = `${ops}/hooks`;
    const made = await api(sb, hooks, json('POST', { url: 'http://127.0.0.1:9/before' }, 'root-token'));
    assert.equal(made.status, 201);
    await refused(
      `${hooks}/${made.body.id}`,
      'PUT',
      { url: 'http://127.0.0.1:9/after', signing_token: 'nope' },
      { error: 'signing_token must be whsec_ followed by 32 bytes in base64' },
      'root-token',
    );
    const now = await api(sb, `${hooks}/${made.body.id}`, { token: 'root-token' });
    assert.equal(now.body.url, 'http://127.0.0.1:9/before');
  });

  // A refused create takes no id: the next one made gets the next number.
  test('protected branch POST: an invalid access level takes no id', async () => {
    const url = `${ops}/protected_branches`;
    const first = await api(sb, url, json('POST', { name: 'vf-prot-1' }, 'root-token'));
    assert.equal(first.status, 201);
    const body = { name: 'vf-prot-x', push_access_level: 'high' };
    await refused(url, 'POST', body, { error: 'push_access_level is invalid' }, 'root-token');
    const second = await api(sb, url, json('POST', { name: 'vf-prot-2' }, 'root-token'));
    assert.equal(second.body.id, first.body.id + 1);
    const list = (await api(sb, url, { token: 'root-token' })).body.map((b: { name: string }) => b.name);
    assert.ok(!list.includes('vf-prot-x'));
  });

  test('hook POST: an invalid signing token or switch takes no id', async () => {
    const url = `${ops}/hooks`;
    const first = await api(sb, url, json('POST', { url: 'http://127.0.0.1:9/a' }, 'root-token'));
    for (const extra of [{ signing_token: 'nope' }, { note_events: 'maybe' }]) {
      const bad = await api(sb, url, json('POST', { url: 'http://127.0.0.1:9/x', ...extra }, 'root-token'));
      assert.equal(bad.status, 400);
    }
    const second = await api(sb, url, json('POST', { url: 'http://127.0.0.1:9/b' }, 'root-token'));
    assert.equal(second.body.id, first.body.id + 1);
  });

  test('note POST: an invalid `internal` takes no id', async () => {
    const mr = await openMr('vf-note');
    const url = `${ops}/merge_requests/${mr.iid}/notes`;
    const first = await api(sb, url, json('POST', { body: 'one' }));
    await refused(url, 'POST', { body: 'x', internal: 'maybe' }, { error: 'internal is invalid' });
    const second = await api(sb, url, json('POST', { body: 'two' }));
    assert.equal(second.body.id, first.body.id + 1);
    const bodies = (await api(sb, url, { token: 'operator-token' })).body.map(
      (n: { body: string }) => n.body,
    );
    assert.ok(!bodies.includes('x'));
  });
});
