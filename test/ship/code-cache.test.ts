// The bundle's V8 code cache (issue 16: made by scripts/bundle.mjs, in dist/gitops-bot.data
// beside the loader): a fresh process on the Node that built the bundle compiles the program from it,
// and one whose cache V8 rejects (another Node, or a V8 flag that changes the flag hash)
// compiles from source and works the same. The loader says which with
// GITOPS_BOT_CODE_CACHE=report; V8 itself says nothing.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS, PROMOTE_STORY, run, sandboxFixture } from '../helpers.js';
import { installBundle } from './install-bundle.js';

const _ROOT = fileURLToPath(new URL('../../../', import.meta.url));
let sb: Sandbox;
let bundle: string;

before(async () => {
  sb = await sandboxFixture();
  // installed as the image does: files the process cannot write, in a folder of their own
  bundle = await installBundle({ readOnly: true });
});
after(async () => {
  await sb?.close();
});

async function promoteWith(nodeFlags: string[], env: string): Promise<{ cache: string; action: string }> {
  // V8 flags in NODE_OPTIONS would change the flag hash the cache is checked against
  const { NODE_OPTIONS: _, ...inherited } = process.env;
  const { stdout, stderr } = await run(
    process.execPath,
    [
      ...nodeFlags,
      bundle,
      ...PROMOTE_STORY,
      '--tag',
      'ci-34',
      '--env',
      env,
      '--assignee',
      'operator',
      '--json',
    ],
    {
      env: {
        ...inherited,
        GITLAB_URL: sb.url,
        GITOPS_BOT_TOKEN: 'gitops-bot-token',
        GITOPS_BOT_CODE_CACHE: 'report',
      },
    },
  );
  const r = JSON.parse(stdout) as { action: string; mr: { iid: number } };
  const mr = await client(sb, 'operator').MergeRequests.show(OPS, r.mr.iid);
  assert.equal(mr.title, `Deploy helloworld ci-34 to ${env}`);
  return { cache: /code cache (\w+)/.exec(stderr)?.[1] ?? `no report in: ${stderr}`, action: r.action };
}

test('a fresh process on the Node that built the bundle compiles the program from its code cache', async () => {
  assert.deepEqual(await promoteWith([], 'cache-used'), { cache: 'used', action: 'created' });
});

test('a code cache V8 rejects (here: another V8 flag) costs only time: the promotion is the same', async () => {
  assert.deepEqual(await promoteWith(['--max-old-space-size=512'], 'cache-rejected'), {
    cache: 'rejected',
    action: 'created',
  });
});
