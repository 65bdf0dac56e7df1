// Issue 7: hostile input. Each row gets a clear error naming the file, field or limit, and
// leaves nothing behind: no branch, commit, MR, comment or status.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { GitLab, GitLabGate } from '../../src/gitlab/client.js';
import { PromoteError, type PromoteRequest, promote } from '../../src/promote/promote.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { createWebhookServer, type WebhookServer } from '../../src/server/webhook.js';
import { client, OPS, sandboxFixture } from '../helpers.js';

const IMAGE = 'registry.example.com/root/helloworld';
let sb: Sandbox;
let srv: WebhookServer;
let hook: string;

function footprint() {
  const d = sb.core.store.data;
  return JSON.stringify({
    mrs: d.mergeRequests.length,
    notes: d.notes.length,
    statuses: d.statuses.length,
    comments: d.commitComments?.length ?? 0,
  });
}
const branches = async () => (await client(sb, 'operator').Branches.all(OPS)).map((b) => b.name).sort();

before(async () => {
  sb = await sandboxFixture();
  const op = client(sb, 'operator');
  let bomb = 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
  for (let i = 1; i < 10; i++)
    bomb += `a${i}: &a${i} [${Array(9)
      .fill(`*a${i - 1}`)
      .join(',')}]\n`;
  const big = `apiVersion: v1\nkind: ConfigMap\ndata:\n${'  k: "x"\n'.repeat(1)}${'# padding\n'.repeat(5_300_000)}spec:\n  containers:\n  - name: a\n    image: ${IMAGE}:ci-33\n`;
  await op.Commits.create(OPS, 'main', 'Hostile files', [
    { action: 'create', filePath: 'bomb.yml', content: bomb },
    { action: 'create', filePath: 'big.yml', content: big },
    {
      action: 'create',
      filePath: 'binary.yml',
      content: Buffer.from([0x69, 0x6d, 0x00, 0xff, 0x01]).toString('base64'),
      encoding: 'base64',
    },
    {
      action: 'create',
      filePath: 'latin1.yml',
      content: Buffer.from(`image: ${IMAGE}:ci-33 # caf\xe9\n`, 'latin1').toString('base64'),
      encoding: 'base64',
    },
  ] as never);
  const gitlab = new GitLabGate({ url: sb.url, token: 'gitops-bot-token' });
  srv = createWebhookServer({ ctx: { gitlab, botUserId: 6 }, secret: 's', projects: [OPS] });
  hook = `${await srv.listen(0, '127.0.0.1')}/webhook`;
});
after(async () => {
  await srv?.close();
  await sb?.close();
});

describe('promote refuses hostile input with a clear error and writes nothing', () => {
  const rows: Array<[string, Partial<PromoteRequest>, number, RegExp]> = [
    [
      'a YAML alias bomb (not expanded)',
      { files: ['bomb.yml'] },
      3,
      /bomb\.yml: image '.*' is not referenced/,
    ],
    [
      'a manifest over the size limit',
      { files: ['big.yml'] },
      4,
      /big\.yml: \d+ bytes is over the 16 MiB limit/,
    ],
    ['a binary file', { files: ['binary.yml'] }, 4, /binary\.yml: binary file/],
    ['invalid UTF-8', { files: ['latin1.yml'] }, 4, /latin1\.yml: not valid UTF-8/],
    [
      '--file ../../etc/passwd',
      { files: ['../../etc/passwd'] },
      2,
      /--file '\.\.\/\.\.\/etc\/passwd' must be a relative path/,
    ],
    ['an absolute --file', { files: ['/etc/passwd'] }, 2, /--file '\/etc\/passwd' must be a relative path/],
    [
      'an uppercase repository',
      { image: 'registry.example.com/Root/HelloWorld' },
      2,
      /--image: .*lowercase/i,
    ],
    ['spaces in the image', { image: 'registry.example.com/root/hello world' }, 2, /--image:/],
    ['a 129-character tag', { tag: `v${'1'.repeat(128)}` }, 2, /--tag: .*128/],
    ['a tag with a space', { tag: 'ci 34' }, 2, /--tag:/],
    ['a bad digest', { tag: undefined, digest: 'sha256:xyz' }, 2, /--digest:/],
  ];
  for (const [name, over, exit, message] of rows) {
    test(name, async () => {
      const before = [footprint(), await branches()];
      const req: PromoteRequest = {
        project: OPS,
        files: ['deployment.yml'],
        image: IMAGE,
        tag: 'ci-34',
        targetBranch: 'main',
        env: 'hostile',
        ...over,
      };
      await assert.rejects(
        promote(req, { gitlab: new GitLab({ url: sb.url, token: 'gitops-bot-token' }) }),
        (e: Error) => {
          assert.ok(e instanceof PromoteError, `${e.name}: ${e.message}`);
          assert.equal(e.exitCode, exit, e.message);
          assert.match(e.message, message);
          assert.ok(!e.message.includes('\n'), 'one line');
          return true;
        },
      );
      assert.deepEqual([footprint(), await branches()], before, 'nothing written');
    });
  }
});

describe('serve refuses hostile webhook bodies; nothing is done', () => {
  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(hook, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'X-Gitlab-Token': 's',
        'X-Gitlab-Event': 'Merge Request Hook',
        ...headers,
      },
      body,
    });
  const mr = (project: string) =>
    JSON.stringify({
      object_kind: 'merge_request',
      project: { path_with_namespace: project },
      object_attributes: { iid: 1, action: 'update' },
    });
  const rows: Array<[string, () => Promise<Response>, number, RegExp]> = [
    ['a 10 MB body', () => post(' '.repeat(10 * 1024 * 1024)), 413, /body over/],
    ['invalid JSON', () => post('{"object_kind": '), 400, /invalid JSON/],
    ['a JSON array', () => post('[1,2]'), 400, /invalid JSON/],
    [
      'the wrong content type',
      () => post(mr(OPS), { 'Content-Type': 'text/plain' }),
      415,
      /application\/json/,
    ],
    ['an unknown event kind', () => post(mr(OPS), { 'X-Gitlab-Event': 'Deployment Hook' }), 202, /ignored/],
    [
      'an unknown object_kind',
      () => post(JSON.stringify({ object_kind: 'wiki_page', project: { path_with_namespace: OPS } })),
      202,
      /ignored/,
    ],
    ['a project the bot does not manage', () => post(mr('evil/other')), 202, /unmanaged/],
    [
      'a non-numeric MR iid',
      () =>
        post(
          JSON.stringify({
            object_kind: 'merge_request',
            project: { path_with_namespace: OPS },
            object_attributes: { iid: '1; DROP', action: 'update' },
          }),
        ),
      202,
      /invalid/,
    ],
  ];
  for (const [name, send, status, body] of rows) {
    test(name, async () => {
      const before = footprint();
      const requests = sb.requests.length;
      const r = await send();
      assert.equal(r.status, status);
      assert.match(await r.text(), body);
      await sb.settle(srv);
      assert.equal(footprint(), before);
      assert.equal(
        sb.requests.slice(requests).filter((x) => x.user === 'gitops-bot').length,
        0,
        'no GitLab call',
      );
    });
  }
});
