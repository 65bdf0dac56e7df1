// Finding 8: `serve` resolves each --project to its id and canonical path at startup, matches
// deliveries by numeric project id only, and acts on the resolved path, never the payload's.
// Also: `/gitops-bot accept <sha>` comments (on an MR or a commit) become accept jobs.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { GitLab } from '../../src/gitlab/client.js';
import { promote } from '../../src/promote/promote.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { APP, client, OPS, sandboxFixture, until } from '../helpers.js';
import { CLI, deliver, type ServeProcess, startServe } from './serve-process.js';

let sb: Sandbox;
let serve: ServeProcess;
let opsId: number;
let appId: number;
const op = () => client(sb, 'operator');

const statuses = async (project: string, sha: string) =>
  (await client(sb, 'root').Commits.allStatuses(project, sha)).filter(
    (s) => s.name === 'gitops-bot/approval',
  );
/** The API paths the bot asked for since `from` (an index in the sandbox's request log). */
const botPaths = (from: number) =>
  sb.requests
    .slice(from)
    .filter((r) => r.user === 'gitops-bot')
    .map((r) => r.path);
const touches = (paths: string[], id: number, path: string) =>
  paths.filter((p) => p.includes(`/projects/${id}/`) || p.includes(`/projects/${encodeURIComponent(path)}/`));

before(async () => {
  sb = await sandboxFixture();
  opsId = (await op().Projects.show(OPS)).id;
  appId = (await client(sb, 'root').Projects.show(APP)).id;
  serve = await startServe(sb, ['--project', OPS]);
});
after(async () => {
  await serve?.stop();
  await sb?.close();
});

test('at startup: --project is resolved to id and canonical path; an unknown one exits 8', async () => {
  const started = serve.logs().find((l) => l.msg === 'serve listening');
  assert.deepEqual(started?.projects, [{ id: opsId, path: OPS }]);
  // by id: the canonical path is GitLab's
  const byId = await startServe(sb, ['--project', String(opsId)]);
  assert.deepEqual(byId.logs().find((l) => l.msg === 'serve listening')?.projects, [
    { id: opsId, path: OPS },
  ]);
  await byId.kill();
  const missing = await new Promise<{ code: number | null; err: string }>((resolve) => {
    const child = spawn(
      process.execPath,
      [CLI, 'serve', '--listen', '127.0.0.1:0', '--project', 'nobody/nothing'],
      {
        env: {
          ...process.env,
          GITLAB_URL: sb.url,
          GITOPS_BOT_TOKEN: 'gitops-bot-token',
          GITOPS_BOT_WEBHOOK_SECRET: 's',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let err = '';
    child.stderr.on('data', (b) => {
      err += b;
    });
    child.on('exit', (code) => resolve({ code, err }));
  });
  assert.equal(missing.code, 8, missing.err);
  assert.match(missing.err, /--project nobody\/nothing: no such project, or the token cannot read it/);
});

test('the managed id with a foreign path: the job acts on the managed project only', async () => {
  // an MR in each project with the same iid: acting on the payload's path would gate the app's
  const r = await promote(
    { project: OPS, files: ['deployment.yml'], image: 'registry.example.com/root/helloworld', tag: 'ci-34' },
    { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) },
  );
  const mr = await op().MergeRequests.show(OPS, r.mr!.iid);
  const dev = client(sb, 'developer');
  await dev.Commits.create(APP, 'feature', 'Work', [{ action: 'create', filePath: 'f.txt', content: 'f' }], {
    startBranch: 'main',
  });
  const appMr = await dev.MergeRequests.create(APP, 'feature', 'main', 'Feature');
  assert.equal(appMr.iid, mr.iid);
  const from = sb.requests.length;
  const res = await deliver(serve, 'Note Hook', {
    object_kind: 'note',
    project: { id: opsId, path_with_namespace: APP },
    object_attributes: { note: '/gitops-bot recheck', noteable_type: 'MergeRequest' },
    merge_request: { iid: mr.iid },
  });
  assert.equal(res.status, 202);
  assert.deepEqual(await res.json(), { status: 'queued' });
  await until(async () => (await statuses(OPS, mr.sha)).length > 0, 'the gate of the ops MR');
  await until(async () => (await serve.health()).body.inFlight === 0, 'serve to finish');
  const paths = botPaths(from);
  assert.ok(touches(paths, opsId, OPS).length > 0, 'the ops project was read');
  assert.deepEqual(touches(paths, appId, APP), [], 'the app project was never touched');
  assert.deepEqual(await statuses(APP, appMr.sha), []);
});

test('a foreign id with the managed path is unmanaged: no GitLab call', async () => {
  const [mr] = await op().MergeRequests.all({ projectId: OPS, state: 'opened' });
  const from = sb.requests.length;
  for (const [event, body] of [
    [
      'Merge Request Hook',
      {
        object_kind: 'merge_request',
        project: { id: appId, path_with_namespace: OPS },
        object_attributes: { iid: mr.iid, action: 'update' },
      },
    ],
    [
      'Note Hook',
      {
        object_kind: 'note',
        project_id: appId,
        project: { path_with_namespace: OPS },
        object_attributes: { note: '/gitops-bot recheck' },
        merge_request: { iid: mr.iid },
      },
    ],
    // no id at all: the path alone is never enough
    [
      'Push Hook',
      {
        object_kind: 'push',
        project: { path_with_namespace: OPS },
        ref: 'refs/heads/main',
        after: 'a'.repeat(40),
      },
    ],
  ] as const) {
    const res = await deliver(serve, event, body);
    assert.equal(res.status, 202);
    assert.deepEqual(await res.json(), { status: 'unmanaged' }, event);
  }
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(botPaths(from), []);
  assert.equal(
    await serve.metric(
      'gitops_bot_webhook_deliveries_total',
      '{event="Merge Request Hook",result="unmanaged"}',
    ),
    1,
  );
});

test('/gitops-bot accept <sha> on an MR or a commit queues an accept job; anything else is ignored', async () => {
  const [mr] = await op().MergeRequests.all({ projectId: OPS, state: 'opened' });
  const sha = (await op().Branches.show(OPS, 'main')).commit.id;
  const note = (text: string, on: 'mr' | 'commit', id = opsId) => ({
    object_kind: 'note',
    project_id: id,
    project: { id, path_with_namespace: OPS },
    object_attributes: {
      note: text,
      noteable_type: on === 'mr' ? 'MergeRequest' : 'Commit',
      ...(on === 'commit' ? { commit_id: sha } : {}),
    },
    ...(on === 'mr' ? { merge_request: { iid: mr.iid } } : { commit: { id: sha } }),
  });
  const cases: Array<[string, 'mr' | 'commit', string, number?]> = [
    [`/gitops-bot accept ${sha}`, 'mr', 'queued'],
    [`  /gitops-bot accept ${sha.slice(0, 7).toUpperCase()}\n`, 'commit', 'queued'],
    [`/gitops-bot accept ${sha.slice(0, 6)}`, 'mr', 'ignored'],
    ['/gitops-bot accept not-a-sha', 'commit', 'ignored'],
    [`/gitops-bot accept ${sha} please`, 'mr', 'ignored'],
    [`/gitops-bot accept ${sha}`, 'commit', 'unmanaged', appId],
  ];
  for (const [text, on, want, id] of cases) {
    const res = await deliver(serve, 'Note Hook', note(text, on, id));
    assert.deepEqual(await res.json(), { status: want }, JSON.stringify(text));
  }
  await until(async () => (await serve.health()).body.inFlight === 0, 'the accept jobs to finish');
  assert.equal(await serve.metric('gitops_bot_job_failures_total', '{reason="error"}'), 0, serve.stderr());
});
