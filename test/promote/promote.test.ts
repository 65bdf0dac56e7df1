// End-to-end: promote against the sandbox, one test per numbered behaviour of issue 4.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { GitLab } from '../../src/gitlab/client.js';
import { DIFF_MARKER } from '../../src/model/markers.js';
import { readRecordComment } from '../../src/model/record.js';
import { type PromoteRequest, promote } from '../../src/promote/promote.js';
import { diffComment } from '../../src/render/diff-comment.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { addApps, client, OPS, sandboxFixture } from '../helpers.js';

const IMAGE = 'registry.example.com/root/helloworld';
let sb: Sandbox;
before(async () => {
  sb = await sandboxFixture();
});
after(() => sb.close());

const bot = () => new GitLab({ url: sb.url, token: 'gitops-bot-token' });
const request = (over: Partial<PromoteRequest> = {}): PromoteRequest => ({
  project: OPS,
  files: ['deployment.yml'],
  image: IMAGE,
  tag: 'ci-34',
  assignees: ['operator'],
  targetBranch: 'main',
  source: {
    project: 'root/helloworld',
    sha: 'a'.repeat(40),
    pipelineIid: '34',
    pipelineUrl: 'http://ci/p/34',
  },
  ...over,
});

/** Requests the sandbox logged for gitops-bot while `fn` ran. */
async function counted<T>(fn: () => Promise<T>): Promise<{ value: T; requests: number }> {
  const start = sb.requests.length;
  const value = await fn();
  return { value, requests: sb.requests.slice(start).filter((r) => r.user === 'gitops-bot').length };
}

async function openMrs(env: string, app = 'helloworld') {
  return client(sb, 'operator').MergeRequests.all({
    projectId: OPS,
    sourceBranch: `gitops-bot/${env}/${app}`,
    state: 'opened',
  });
}

async function branchFile(env: string, app = 'helloworld', file = 'deployment.yml'): Promise<string> {
  return String(await client(sb, 'operator').RepositoryFiles.showRaw(OPS, file, `gitops-bot/${env}/${app}`));
}

async function stickyNotes(iid: number) {
  const notes = await client(sb, 'operator').MergeRequestNotes.all(OPS, iid);
  return notes.filter((n) => n.body.startsWith(DIFF_MARKER));
}

describe('promote', () => {
  test('3. a new promotion opens the MR: title, table, record, assignee, labels, remove source branch; at most 8 requests', async () => {
    const { value: r, requests } = await counted(() =>
      promote(request({ env: 'prod', reviewers: ['reviewer'], labels: ['team-a'] }), { gitlab: bot() }),
    );
    assert.equal(r.action, 'created');
    assert.equal(r.branch, 'gitops-bot/prod/helloworld');
    // 7 (the rejected tags read once, as something is to be written) + the reviewer lookup shares the members page
    assert.ok(requests <= 8, `requests: ${requests}`);
    const mr = await client(sb, 'operator').MergeRequests.show(OPS, r.mr!.iid);
    assert.equal(mr.title, 'Deploy helloworld ci-34 to prod');
    assert.equal(mr.target_branch, 'main');
    assert.deepEqual(
      (mr.assignees as Array<{ username: string }>).map((a) => a.username),
      ['operator'],
    );
    assert.deepEqual(
      (mr.reviewers as Array<{ username: string }>).map((a) => a.username),
      ['reviewer'],
    );
    assert.deepEqual(mr.labels, ['gitops-bot', 'team-a']);
    assert.equal(mr.force_remove_source_branch, true);
    const d = String(mr.description);
    assert.match(d, /\| Tag \| `ci-33` → `ci-34` \|/);
    assert.match(d, /\| Kind of change \| build number \|/);
    assert.match(
      d,
      /\| Source \| \[`root\/helloworld`\]\(http:\/\/127\.0\.0\.1:\d+\/root\/helloworld\) @ \[`aaaaaaaa`\]/,
    );
    assert.match(d, /\| Pipeline \| \[#34\]\(http:\/\/ci\/p\/34\) \|/);
    const record = readRecordComment(d)!;
    assert.equal(record.tag, 'ci-34');
    assert.equal(record.commit, mr.sha);
    // 4. exactly one sticky comment with the rendered diff
    const sticky = await stickyNotes(r.mr!.iid);
    assert.equal(sticky.length, 1);
    assert.match(
      sticky[0].body,
      /```diff\n@@ .* @@\n[\s\S]*-\s+image: registry.example.com\/root\/helloworld:ci-33\n\+\s+image: registry.example.com\/root\/helloworld:ci-34/,
    );
    // only the image bytes changed on the branch
    const main = String(await client(sb, 'operator').RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main'));
    assert.equal(await branchFile('prod'), main.replace('helloworld:ci-33', 'helloworld:ci-34'));
  });

  test('budget: a new promotion at most 8 requests, nothing to do 2, an update 7 API + 2 git (9)', async () => {
    const { value: r, requests } = await counted(() =>
      promote(request({ env: 'budget' }), { gitlab: bot() }),
    );
    assert.equal(r.action, 'created');
    // 6, the read that checks the new diff comment is the only one (see createDiffComment),
    // and the merged MRs of the branch (the tags rolled back from there: rejections.ts)
    assert.ok(requests <= 8, `new promotion: ${requests} requests`);
    assert.equal(r.requests, requests, 'the JSON count matches the sandbox log');
    const again = await counted(() => promote(request({ env: 'budget' }), { gitlab: bot() }));
    assert.equal(again.value.action, 'noop');
    assert.equal(again.value.reason, 'already proposed');
    assert.ok(again.requests <= 2, `noop: ${again.requests} requests`);
    const update = await counted(() => promote(request({ env: 'budget', tag: 'ci-35' }), { gitlab: bot() }));
    assert.equal(update.value.action, 'updated');
    // 6 API requests, plus the compare-and-swap move of the branch (issue 7: a forced reset
    // must not lose a newer tag): the receive-pack advertisement and the update, 2 git HTTP
    // requests. Issue 16 dropped the shallow fetch (2 more) that git push needed.
    // and the rejected tags (1).
    assert.ok(update.requests <= 9, `update: ${update.requests} requests`);
    assert.equal(update.value.requests, update.requests, 'the JSON count matches the sandbox log');
  });

  test('1. the target already runs the tag: "already deployed", nothing written', async () => {
    const before = (await client(sb, 'operator').Branches.all(OPS)).length;
    const { value: r, requests } = await counted(() =>
      promote(request({ env: 'deployed', tag: 'ci-33' }), { gitlab: bot() }),
    );
    assert.deepEqual([r.action, r.reason], ['noop', 'already deployed']);
    assert.ok(requests <= 2);
    assert.equal((await client(sb, 'operator').Branches.all(OPS)).length, before);
    assert.equal((await openMrs('deployed')).length, 0);
  });

  test('2 and 5. a newer tag updates the one MR in place: branch reset onto main with one commit, comment edited', async () => {
    const first = await promote(request({ env: 'staging' }), { gitlab: bot() });
    // main moves on meanwhile (replicas), as the story's scaling step does
    const op = client(sb, 'operator');
    const f = await op.RepositoryFiles.show(OPS, 'deployment.yml', 'main');
    const scaled = Buffer.from(f.content, 'base64').toString().replace('replicas: 1', 'replicas: 2');
    await op.Commits.create(OPS, 'main', 'Scale to 2', [
      { action: 'update', filePath: 'deployment.yml', content: scaled, lastCommitId: f.last_commit_id },
    ]);
    const second = await promote(request({ env: 'staging', tag: 'ci-36' }), { gitlab: bot() });
    assert.equal(second.action, 'updated');
    assert.equal(second.mr!.iid, first.mr!.iid);
    assert.equal((await openMrs('staging')).length, 1);
    const commits = await op.MergeRequests.allCommits(OPS, first.mr!.iid);
    assert.equal(commits.length, 1, 'one commit on top of the target head');
    const mainHead = (await op.Branches.show(OPS, 'main')).commit.id;
    assert.deepEqual(commits[0].parent_ids, [mainHead]);
    assert.equal(await branchFile('staging'), scaled.replace('helloworld:ci-33', 'helloworld:ci-36'));
    const mr = await op.MergeRequests.show(OPS, first.mr!.iid);
    assert.equal(mr.title, 'Deploy helloworld ci-36 to staging');
    const sticky = await stickyNotes(first.mr!.iid);
    assert.equal(sticky.length, 1, 'never a second comment');
    assert.match(sticky[0].body, /\+\s+image: .*:ci-36/);
    // put main back for the other tests
    const g = await op.RepositoryFiles.show(OPS, 'deployment.yml', 'main');
    await op.Commits.create(OPS, 'main', 'Scale back', [
      {
        action: 'update',
        filePath: 'deployment.yml',
        content: Buffer.from(g.content, 'base64').toString().replace('replicas: 2', 'replicas: 1'),
      },
    ]);
  });

  test('6. an older tag is refused (exit 5 in the CLI) unless --allow-downgrade', async () => {
    await promote(request({ env: 'down', tag: 'ci-40' }), { gitlab: bot() });
    const older = await promote(request({ env: 'down', tag: 'ci-39' }), { gitlab: bot() });
    assert.equal(older.action, 'refused');
    assert.match(older.reason, /ci-39 is older than ci-40, already proposed in !\d+/);
    assert.match(await branchFile('down'), /:ci-40/);
    const allowed = await promote(request({ env: 'down', tag: 'ci-39', allowDowngrade: true }), {
      gitlab: bot(),
    });
    assert.equal(allowed.action, 'updated');
    assert.match(await branchFile('down'), /:ci-39/);
    const belowDeployed = await promote(request({ env: 'down2', tag: 'ci-20' }), { gitlab: bot() });
    assert.equal(belowDeployed.action, 'refused');
    assert.match(belowDeployed.reason, /older than ci-33, which the target branch already runs/);
  });

  test('6. tags are ordered as semver: 1.10.0 after 1.9.0 is an update, 1.9.0 after 1.10.0 is refused', async () => {
    // String order would get every one of these wrong: '1.10.0' < '1.9.0' as text.
    const op = client(sb, 'operator');
    const base = String(await op.RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main'));
    await op.Commits.create(OPS, 'main', 'semver apps', [
      {
        action: 'create',
        filePath: 'apps/api.yml',
        content: base.replace('root/helloworld:ci-33', 'acme/api:1.8.0'),
      },
      {
        action: 'create',
        filePath: 'apps/api-live.yml',
        content: base.replace('root/helloworld:ci-33', 'acme/api:1.10.0'),
      },
    ]);
    const semver = (tag: string, over: Partial<PromoteRequest> = {}) =>
      promote(
        request({
          env: 'semver',
          files: ['apps/api.yml'],
          image: 'registry.example.com/acme/api',
          tag,
          ...over,
        }),
        {
          gitlab: bot(),
        },
      );
    assert.equal((await semver('1.9.0')).action, 'created');
    const newer = await semver('1.10.0');
    assert.deepEqual([newer.action, newer.reason], ['updated', 'updated the open merge request']);
    assert.match(await branchFile('semver', 'api', 'apps/api.yml'), /acme\/api:1\.10\.0\n/);
    const older = await semver('1.9.0');
    assert.equal(older.action, 'refused');
    assert.match(older.reason, /^1\.9\.0 is older than 1\.10\.0, already proposed in !\d+/);
    assert.match(await branchFile('semver', 'api', 'apps/api.yml'), /acme\/api:1\.10\.0\n/);
    const belowLive = await semver('1.9.0', { env: 'semver-live', files: ['apps/api-live.yml'] });
    assert.equal(belowLive.action, 'refused');
    assert.match(belowLive.reason, /^1\.9\.0 is older than 1\.10\.0, which the target branch already runs/);
    assert.equal((await openMrs('semver-live', 'api')).length, 0);
  });

  test('2. a --file the target branch does not have is an error naming it (exit 2)', async () => {
    const missing = await promote(
      request({
        env: 'missing',
        files: ['values.yaml'],
        image: 'ghcr.io/acme/api',
        tag: '1.9.0',
        assignees: [],
      }),
      { gitlab: bot() },
    ).catch((e: Error) => e);
    assert.match(String(missing), /values\.yaml: not found on main/);
    assert.equal((missing as { exitCode?: number }).exitCode, 2);
  });

  test('7. a stale last_commit_id (main changed between read and commit) is re-read and redone', async () => {
    let injected = false;
    class Interleaving extends GitLab {
      override async createCommit(...args: Parameters<GitLab['createCommit']>) {
        if (!injected) {
          injected = true;
          const op = client(sb, 'operator');
          const f = await op.RepositoryFiles.show(OPS, 'deployment.yml', 'main');
          const text = Buffer.from(f.content, 'base64')
            .toString()
            .replace('app: helloworld\n', 'app: helloworld\n    team: a\n');
          await op.Commits.create(OPS, 'main', 'Label', [
            { action: 'update', filePath: 'deployment.yml', content: text },
          ]);
        }
        return super.createCommit(...args);
      }
    }
    const r = await promote(request({ env: 'stale' }), {
      gitlab: new Interleaving({ url: sb.url, token: 'gitops-bot-token' }),
    });
    assert.equal(r.action, 'created');
    const main = String(await client(sb, 'operator').RepositoryFiles.showRaw(OPS, 'deployment.yml', 'main'));
    assert.match(main, /team: a/);
    assert.equal(await branchFile('stale'), main.replace('helloworld:ci-33', 'helloworld:ci-34'));
  });

  test('7. two promotions of one app racing (ci-35, ci-36) end with the MR at ci-36', async () => {
    for (let trial = 0; trial < 4; trial++) {
      const env = `race${trial}`;
      const runs = trial % 2 ? ['ci-36', 'ci-35'] : ['ci-35', 'ci-36'];
      const results = await Promise.all(runs.map((tag) => promote(request({ env, tag }), { gitlab: bot() })));
      const mrs = await openMrs(env);
      assert.equal(mrs.length, 1, `trial ${trial}: one MR`);
      assert.match(
        await branchFile(env),
        /helloworld:ci-36/,
        `trial ${trial}: ${JSON.stringify(results.map((r) => r.action))}`,
      );
      const mr = await client(sb, 'operator').MergeRequests.show(OPS, mrs[0].iid);
      assert.equal(readRecordComment(mr.description)!.tag, 'ci-36');
      const sticky = await stickyNotes(mrs[0].iid);
      assert.equal(sticky.length, 1);
      assert.equal(readRecordComment(sticky[0].body)!.tag, 'ci-36');
    }
  });

  test('7. a stale older run whose commit comes after the newer one finished loses the swap: the newer stays', async () => {
    await promote(request({ env: 'stale-race', tag: 'ci-35' }), { gitlab: bot() });
    let done = false;
    class SlowOld extends GitLab {
      override async createCommit(...args: Parameters<GitLab['createCommit']>) {
        if (!done) {
          done = true; // the newer promotion runs to the end while the older one is between read and commit
          const newer = await promote(request({ env: 'stale-race', tag: 'ci-37' }), { gitlab: bot() });
          assert.equal(newer.action, 'updated');
        }
        return super.createCommit(...args);
      }
    }
    const old = await promote(request({ env: 'stale-race', tag: 'ci-36' }), {
      gitlab: new SlowOld({ url: sb.url, token: 'gitops-bot-token' }),
    });
    assert.equal(old.action, 'refused');
    assert.match(await branchFile('stale-race'), /helloworld:ci-37/);
    const [mr] = await openMrs('stale-race');
    assert.equal(readRecordComment(mr.description)!.tag, 'ci-37');
  });

  test("7. an older run that took over the branch and then finds a newer run's MR as its own does not win", async () => {
    // ci-36 opens the MR; ci-35 observed before it did (no MR), lost the first swap, swapped
    // the branch to its commit, and its request to open the MR failed: the client then takes
    // the branch's open MR (ci-36's) for the one it opened.
    await promote(request({ env: 'adopt', tag: 'ci-36' }), { gitlab: bot() });
    let reads = 0;
    class Late extends GitLab {
      override async openMergeRequest(...args: Parameters<GitLab['openMergeRequest']>) {
        return ++reads <= 2 ? null : super.openMergeRequest(...args);
      }
      override async createMergeRequest(...args: Parameters<GitLab['createMergeRequest']>) {
        return (
          (await super.openMergeRequest(args[0], args[1].sourceBranch)) ?? super.createMergeRequest(...args)
        );
      }
    }
    const old = await promote(request({ env: 'adopt', tag: 'ci-35' }), {
      gitlab: new Late({ url: sb.url, token: 'gitops-bot-token' }),
    });
    assert.deepEqual([old.action, reads > 2], ['refused', true]);
    assert.match(old.reason, /ci-35 is older than ci-36/);
    assert.match(await branchFile('adopt'), /helloworld:ci-36/);
    const [mr] = await openMrs('adopt');
    assert.equal(readRecordComment(mr.description)!.tag, 'ci-36');
    const sticky = await stickyNotes(mr.iid);
    assert.deepEqual(
      sticky.map((n) => readRecordComment(n.body)!.tag),
      ['ci-36'],
    );
  });

  test('7. promotions of ten different apps at once end with ten MRs', async () => {
    const op = client(sb, 'operator');
    await addApps(sb, 10, (i) => `root/app${i}:ci-1`);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        promote(
          request({
            env: 'ten',
            files: [`apps/app${i}.yml`],
            image: `registry.example.com/root/app${i}`,
            tag: 'ci-2',
          }),
          {
            gitlab: bot(),
          },
        ),
      ),
    );
    assert.deepEqual(
      results.map((r) => r.action),
      Array(10).fill('created'),
    );
    const mrs = await op.MergeRequests.all({ projectId: OPS, state: 'opened', labels: 'gitops-bot' });
    assert.equal(mrs.filter((m) => m.source_branch.startsWith('gitops-bot/ten/')).length, 10);
  });

  test('8. a run that failed after the commit (no MR) is recovered by the next: it adopts the branch', async () => {
    class CrashBeforeMr extends GitLab {
      override async createMergeRequest(): Promise<never> {
        throw new Error('simulated crash after the commit');
      }
    }
    await assert.rejects(
      promote(request({ env: 'crash' }), {
        gitlab: new CrashBeforeMr({ url: sb.url, token: 'gitops-bot-token' }),
      }),
      /simulated crash/,
    );
    assert.match(await branchFile('crash'), /ci-34/, 'the branch was left behind');
    const r = await promote(request({ env: 'crash' }), { gitlab: bot() });
    assert.equal(r.action, 'created');
    const commits = await client(sb, 'operator').MergeRequests.allCommits(OPS, r.mr!.iid);
    assert.equal(commits.length, 1);
    assert.equal((await stickyNotes(r.mr!.iid)).length, 1);
  });

  test('8. a run that failed after opening the MR (no comment) is finished by the next', async () => {
    class CrashBeforeNote extends GitLab {
      override async createNote(): Promise<never> {
        throw new Error('simulated crash before the comment');
      }
    }
    await assert.rejects(
      promote(request({ env: 'crash2' }), {
        gitlab: new CrashBeforeNote({ url: sb.url, token: 'gitops-bot-token' }),
      }),
    );
    const r = await promote(request({ env: 'crash2' }), { gitlab: bot() });
    assert.deepEqual([r.action, r.reason], ['noop', 'already proposed']);
    assert.equal((await stickyNotes(r.mr!.iid)).length, 1);
  });

  test('--dry-run reads and plans, writes nothing: would-create, then would-update', async () => {
    const { value: r, requests } = await counted(() =>
      promote(request({ env: 'dry', dryRun: true }), { gitlab: bot() }),
    );
    assert.equal(r.action, 'would-create');
    assert.equal(r.reason, 'dry run: nothing written');
    assert.equal(r.dryRun, true);
    assert.equal(r.changes[0].after, `${IMAGE}:ci-34`);
    assert.ok(requests <= 3, 'the file, the MR list, the rejected tags');
    assert.equal((await openMrs('dry')).length, 0);
    const opened = await promote(request({ env: 'dry' }), { gitlab: bot() });
    const before = await client(sb, 'operator').MergeRequests.show(OPS, opened.mr!.iid);
    const update = await counted(() =>
      promote(request({ env: 'dry', tag: 'ci-35', dryRun: true }), { gitlab: bot() }),
    );
    assert.deepEqual(
      [update.value.action, update.value.mr?.iid, update.value.dryRun],
      ['would-update', opened.mr!.iid, true],
    );
    assert.ok(update.requests <= 3, `dry-run update: ${update.requests} requests`);
    const after = await client(sb, 'operator').MergeRequests.show(OPS, opened.mr!.iid);
    assert.deepEqual(
      [after.sha, after.title, after.description],
      [before.sha, before.title, before.description],
    );
    assert.match(await branchFile('dry'), /helloworld:ci-34/);
  });
});

describe('diff comment', () => {
  test('long diffs are collapsed; the whole is cut below the note limit with a line saying so', () => {
    const record = {
      v: 1 as const,
      app: 'a',
      env: 'e',
      image: 'x',
      tag: '2',
      target: 'main',
      files: [],
      source: {},
    };
    const big = Array.from({ length: 200 }, (_, i) => `line ${i}`).join('\n');
    const files = [
      { path: 'a.yml', before: big, after: big.replace(/line (\d+)/g, 'LINE $1') },
      { path: 'b.yml', before: big, after: `${big}\nmore` },
    ];
    const full = diffComment(record, files);
    assert.match(full, /<details><summary>`a.yml` \(\d+ lines\)<\/summary>/);
    const cut = diffComment(record, files, 2000);
    assert.ok(cut.length < 2200, `${cut.length}`);
    assert.match(cut, /```diff\n@@ -1,200 \+1,200 @@\n-line 0\n/);
    assert.match(cut, /The diff is cut here: GitLab's limit for a comment is 1,000,000 characters/);
  });
});
