// afterPush with an environment that has a deploy_ref but no target_branches: only the
// default branch is deployed from, so a push elsewhere is no "direct push" alert.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { afterPush } from '../../src/gate/gate.js';
import { GitLabGate } from '../../src/gitlab/client.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS, sandboxFixture } from '../helpers.js';

let sb: Sandbox;
before(async () => {
  sb = await sandboxFixture();
  await client(sb, 'operator').Commits.create(OPS, 'main', 'Policy', [
    {
      action: 'create',
      filePath: '.gitops-bot.yml',
      content:
        'version: 1\nenvironments:\n  - name: all\n    match: { files: ["**"] }\n    deploy_ref: deploy/prod\n',
    },
  ]);
});
after(() => sb?.close());

test('deploy_ref without target_branches: a push to another branch is not a direct push to a deployed one', async () => {
  const op = client(sb, 'operator');
  const ctx = { gitlab: new GitLabGate({ url: sb.url, token: 'gitops-bot-token' }), botUserId: 6 };
  await op.Branches.create(OPS, 'feature', 'main');
  const onFeature = await op.Commits.create(OPS, 'feature', 'Work', [
    { action: 'create', filePath: 'f.txt', content: 'f' },
  ]);
  assert.equal(await afterPush(ctx, OPS, 'feature', onFeature.id), 'none');
  const onMain = await op.Commits.create(OPS, 'main', 'Direct', [
    { action: 'create', filePath: 'm.txt', content: 'm' },
  ]);
  assert.equal(await afterPush(ctx, OPS, 'main', onMain.id), 'direct');
});
