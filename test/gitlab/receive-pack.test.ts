// The push protocol gitops-bot speaks itself (issue 16): pkt-lines, the advertisement, the
// update request and the report as table tests; then the leased push against the sandbox's
// real `git http-backend`, with races and failures injected by a proxy in front of it.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  fastForward,
  GitPushError,
  planLeasedPush,
  pushOutcome,
  replaceRef,
  tookEffect,
} from '../../src/gitlab/git-push.js';
import {
  demuxSideBand,
  EMPTY_PACK,
  FLUSH,
  ProtocolError,
  parseAdvertisement,
  parseReport,
  pktLine,
  readPktLines,
  updateRequest,
  ZERO_ID,
} from '../../src/gitlab/receive-pack.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { client, OPS, run, sandboxFixture, tempDir } from '../helpers.js';
import { type GitProxy, gitProxy } from './git-proxy.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);
const pkts = (...lines: Array<string | null>) =>
  Buffer.concat(lines.map((l) => (l === null ? FLUSH : pktLine(l))));

describe('pkt-lines', () => {
  test('encode: 4 hex digits of length including themselves', () => {
    for (const [data, wire] of [
      ['a\n', '0006a\n'],
      ['', '0004'],
      ['# service=git-receive-pack\n', '001f# service=git-receive-pack\n'],
    ] as const)
      assert.equal(pktLine(data).toString(), wire);
    assert.throws(() => pktLine(Buffer.alloc(65517)), ProtocolError);
  });

  test('decode: lines and flushes; malformed input is a ProtocolError', () => {
    assert.deepEqual(
      readPktLines(Buffer.from('0006a\n00000005b')).map((l) => l?.toString() ?? null),
      ['a\n', null, 'b'],
    );
    for (const bad of ['00', '000ashort', 'zzzz', '0001', '0002', '<html>'])
      assert.throws(() => readPktLines(Buffer.from(bad)), ProtocolError, bad);
  });
});

describe('advertisement', () => {
  const caps =
    'report-status report-status-v2 delete-refs side-band-64k quiet atomic ofs-delta agent=git/2.43.0';
  const table: Array<[string, Buffer, { refs: Record<string, string>; caps: string[] } | RegExp]> = [
    [
      'smart HTTP: service line, flush, refs with capabilities on the first',
      pkts(
        '# service=git-receive-pack\n',
        null,
        `${A} refs/heads/main\0${caps}\n`,
        `${B} refs/heads/x\n`,
        null,
      ),
      { refs: { 'refs/heads/main': A, 'refs/heads/x': B }, caps: caps.split(' ') },
    ],
    [
      'an empty repository: capabilities^{} alone',
      pkts('# service=git-receive-pack\n', null, `${ZERO_ID} capabilities^{}\0report-status atomic\n`, null),
      { refs: {}, caps: ['report-status', 'atomic'] },
    ],
    [
      'without the preamble (as over ssh), peeled tags and .have left out',
      pkts(`${A} refs/tags/v1\0report-status\n`, `${B} refs/tags/v1^{}\n`, `${C} .have\n`, null),
      { refs: { 'refs/tags/v1': A }, caps: ['report-status'] },
    ],
    [
      'protocol v1 announces itself first',
      pkts('# service=git-receive-pack\n', null, 'version 1\n', `${A} refs/heads/main\0atomic\n`, null),
      { refs: { 'refs/heads/main': A }, caps: ['atomic'] },
    ],
    [
      'another service',
      pkts('# service=git-upload-pack\n', null, `${A} HEAD\0x\n`, null),
      /upload-pack, not/,
    ],
    [
      'protocol v2',
      pkts('# service=git-receive-pack\n', null, 'version 2\n', 'agent=git\n', null),
      /version 2/,
    ],
    ['no capabilities', pkts(`${A} refs/heads/main\n`, null), /no capabilities/],
    ['no flush at the end', pkts(`${A} refs/heads/main\0atomic\n`), /without a flush/],
    ['not an object id', pkts(`${A.slice(2)} refs/heads/main\0atomic\n`, null), /not a ref advertisement/],
    ['an HTML page', Buffer.from('<html><body>Sign in</body></html>'), /not a pkt-line/],
  ];
  for (const [name, body, want] of table)
    test(name, () => {
      if (want instanceof RegExp) return assert.throws(() => parseAdvertisement(body), want);
      const adv = parseAdvertisement(body);
      assert.deepEqual(Object.fromEntries(adv.refs), want.refs);
      assert.deepEqual([...adv.capabilities], want.caps);
    });
});

describe('update request', () => {
  test('the empty pack is what git pack-objects writes for no objects', async () => {
    const dir = await tempDir();
    await run('git', ['init', '-q', '--bare', dir]);
    const { stdout } = await run('sh', [
      '-c',
      `git -C '${dir}' pack-objects --stdout </dev/null | od -An -tx1 -v`,
    ]);
    assert.equal(EMPTY_PACK.toString('hex'), stdout.replace(/\s+/g, ''));
    assert.equal(EMPTY_PACK.length, 32);
  });

  test('capabilities on the first command only, a flush, then the pack unless all are deletes', () => {
    const update = updateRequest(
      [
        { ref: 'refs/heads/main', old: A, new: B },
        { ref: 'refs/heads/tmp', old: C, new: ZERO_ID },
      ],
      ['report-status', 'atomic'],
    );
    assert.deepEqual(
      update,
      Buffer.concat([
        pkts(`${A} ${B} refs/heads/main\0report-status atomic\n`, `${C} ${ZERO_ID} refs/heads/tmp\n`, null),
        EMPTY_PACK,
      ]),
    );
    const deletes = updateRequest([{ ref: 'refs/heads/tmp', old: C, new: ZERO_ID }], ['report-status']);
    assert.deepEqual(deletes, pkts(`${C} ${ZERO_ID} refs/heads/tmp\0report-status\n`, null));
  });

  test('refuses what would be a malformed command', () => {
    for (const [c, why] of [
      [{ ref: 'refs/heads/x', old: 'HEAD', new: A }, /not a SHA-1/],
      [{ ref: 'main', old: A, new: B }, /bad ref name/],
      [{ ref: 'refs/heads/a b', old: A, new: B }, /bad ref name/],
    ] as const)
      assert.throws(() => updateRequest([c], []), why);
    assert.throws(() => updateRequest([], []), /no ref/);
  });
});

describe('report-status', () => {
  const table: Array<[string, Buffer, { unpack: string; refs: Record<string, string | null> } | RegExp]> = [
    [
      'all moved',
      pkts('unpack ok\n', 'ok refs/heads/main\n', 'ok refs/heads/tmp\n', null),
      { unpack: 'ok', refs: { 'refs/heads/main': null, 'refs/heads/tmp': null } },
    ],
    [
      'one refused, the other collateral of atomic',
      pkts(
        'unpack ok\n',
        'ng refs/heads/main failed to update ref\n',
        'ng refs/heads/tmp atomic push failure\n',
        null,
      ),
      {
        unpack: 'ok',
        refs: { 'refs/heads/main': 'failed to update ref', 'refs/heads/tmp': 'atomic push failure' },
      },
    ],
    [
      'unpack failed',
      pkts('unpack index-pack abnormal exit\n', 'ng refs/heads/main unpacker error\n', null),
      { unpack: 'index-pack abnormal exit', refs: { 'refs/heads/main': 'unpacker error' } },
    ],
    ['not a report', pkts('ERR access denied\n', null), /not a report-status/],
    ['an unknown line', pkts('unpack ok\n', 'maybe refs/heads/main\n', null), /not a report-status line/],
    ['cut short', pkts('unpack ok\n', 'ok refs/heads/main\n'), /without a flush/],
    ['empty', Buffer.alloc(0), /no report-status/],
  ];
  for (const [name, body, want] of table)
    test(name, () => {
      if (want instanceof RegExp) return assert.throws(() => parseReport(body), want);
      const r = parseReport(body);
      assert.equal(r.unpack, want.unpack);
      assert.deepEqual(Object.fromEntries(r.refs), want.refs);
    });
});

describe('side-band-64k', () => {
  const band = (n: number, text: string | Buffer) =>
    pktLine(Buffer.concat([Buffer.from([n]), typeof text === 'string' ? Buffer.from(text) : text]));
  test("band 1 is the report (its own pkt-lines, split anywhere), band 2 the hooks' words, band 3 a fatal error", () => {
    const report = pkts('unpack ok\n', 'ng refs/heads/main pre-receive hook declined\n', null);
    const answer = Buffer.concat([
      band(2, 'GitLab: You are not allowed to push code to protected branches on this project.\n'),
      band(1, report.subarray(0, 7)),
      band(1, report.subarray(7)),
      FLUSH,
    ]);
    const got = demuxSideBand(answer);
    assert.deepEqual(got.data, report);
    assert.equal(
      got.messages,
      'GitLab: You are not allowed to push code to protected branches on this project.\n',
    );
    assert.equal(got.fatal, null);
    assert.equal(demuxSideBand(Buffer.concat([band(3, 'out of disk\n'), FLUSH])).fatal, 'out of disk');
  });
  test('a band other than 1-3, or an empty packet, is a ProtocolError', () => {
    assert.throws(() => demuxSideBand(Buffer.concat([band(4, 'x'), FLUSH])), /side-band 4/);
    assert.throws(() => demuxSideBand(Buffer.concat([pktLine(''), FLUSH])), /empty side-band/);
  });
});

describe('lease decisions', () => {
  const adv = (refs: Record<string, string>, caps = 'report-status atomic delete-refs agent=git/2') => ({
    refs: new Map(Object.entries(refs)),
    capabilities: new Set(caps.split(' ')),
  });
  const table: Array<[string, ReturnType<typeof adv>, Parameters<typeof planLeasedPush>[1], unknown]> = [
    [
      'at the head we read: move it and delete the scratch branch at its advertised value',
      adv({ 'refs/heads/mr': A, 'refs/heads/next': B }),
      { ref: 'mr', sha: B, expected: A, alsoDelete: 'next' },
      {
        kind: 'push',
        commands: [
          { ref: 'refs/heads/mr', old: A, new: B },
          { ref: 'refs/heads/next', old: B, new: ZERO_ID },
        ],
        capabilities: ['report-status', 'atomic', 'delete-refs', 'agent=gitops-bot'],
      },
    ],
    [
      "side-band-64k and quiet when offered (a hook's reasons come along)",
      adv({ 'refs/heads/mr': A }, 'report-status side-band-64k quiet ofs-delta'),
      { ref: 'mr', sha: B, expected: A },
      {
        kind: 'push',
        commands: [{ ref: 'refs/heads/mr', old: A, new: B }],
        capabilities: ['report-status', 'side-band-64k', 'quiet'],
      },
    ],
    [
      'moved since we read it: stale, nothing sent',
      adv({ 'refs/heads/mr': C }),
      { ref: 'mr', sha: B, expected: A },
      { kind: 'stale', advertised: C },
    ],
    [
      'gone since we read it: stale',
      adv({}),
      { ref: 'mr', sha: B, expected: A },
      { kind: 'stale', advertised: null },
    ],
    [
      'must not exist and does not: created from the zero id',
      adv({}, 'report-status'),
      { ref: 'deploy/prod', sha: B, expected: null },
      {
        kind: 'push',
        commands: [{ ref: 'refs/heads/deploy/prod', old: ZERO_ID, new: B }],
        capabilities: ['report-status'],
      },
    ],
    [
      'must not exist but does: stale',
      adv({ 'refs/heads/deploy/prod': A }),
      { ref: 'deploy/prod', sha: B, expected: null },
      { kind: 'stale', advertised: A },
    ],
    [
      'the scratch branch is gone already: only the move',
      adv({ 'refs/heads/mr': A }, 'report-status'),
      { ref: 'mr', sha: B, expected: A, alsoDelete: 'next' },
      { kind: 'push', commands: [{ ref: 'refs/heads/mr', old: A, new: B }], capabilities: ['report-status'] },
    ],
    [
      'no report-status: we could not tell whether it moved',
      adv({ 'refs/heads/mr': A }, 'atomic'),
      { ref: 'mr', sha: B, expected: A },
      /does not offer report-status/,
    ],
    [
      'no atomic: the move and the delete could half happen',
      adv({ 'refs/heads/mr': A, 'refs/heads/next': B }, 'report-status delete-refs'),
      { ref: 'mr', sha: B, expected: A, alsoDelete: 'next' },
      /does not offer atomic$/,
    ],
    [
      'a SHA-256 repository',
      adv({ 'refs/heads/mr': A }, 'report-status object-format=sha256'),
      { ref: 'mr', sha: B, expected: A },
      /sha256 object ids/,
    ],
  ];
  for (const [name, advertised, lease, want] of table)
    test(name, () => {
      if (want instanceof RegExp) return assert.throws(() => planLeasedPush(advertised, lease), want);
      assert.deepEqual(planLeasedPush(advertised, lease), want);
    });

  const mr = { ref: 'refs/heads/mr', old: A, new: B };
  const next = { ref: 'refs/heads/next', old: B, new: ZERO_ID };
  const report = (unpack: string, refs: Record<string, string | null>) => ({
    unpack,
    refs: new Map(Object.entries(refs)),
  });
  const outcomes: Array<[string, ReturnType<typeof report>, unknown]> = [
    ['every ref moved', report('ok', { 'refs/heads/mr': null, 'refs/heads/next': null }), 'moved'],
    [
      'the lease failed under the lock (moved after the advertisement)',
      report('ok', { 'refs/heads/mr': 'failed to update ref', 'refs/heads/next': 'atomic push failure' }),
      'stale',
    ],
    [
      'the atomic transaction failed for all',
      report('ok', {
        'refs/heads/mr': 'atomic transaction failed',
        'refs/heads/next': 'atomic transaction failed',
      }),
      'stale',
    ],
    [
      'a hook declined: an error, not a lost race',
      report('ok', {
        'refs/heads/mr': 'pre-receive hook declined',
        'refs/heads/next': 'pre-receive hook declined',
      }),
      { error: 'mr: pre-receive hook declined' },
    ],
    [
      'a protected branch: the refusal, not the collateral',
      report('ok', { 'refs/heads/mr': 'atomic push failure', 'refs/heads/next': 'deletion prohibited' }),
      { error: 'next: deletion prohibited' },
    ],
    [
      'receive.denyNonFastForwards refused it: a standing refusal, not a lost race',
      report('ok', { 'refs/heads/mr': 'non-fast-forward', 'refs/heads/next': 'atomic push failure' }),
      { error: 'mr: non-fast-forward' },
    ],
    [
      "git push's own words for a lease (never the server's) are not taken for a lost race",
      report('ok', { 'refs/heads/mr': 'stale info', 'refs/heads/next': 'fetch first' }),
      { error: 'mr: stale info' },
    ],
    [
      'unpack failed',
      report('disk full', { 'refs/heads/mr': 'unpacker error' }),
      { error: 'the server could not unpack: disk full' },
    ],
    [
      'a ref missing from the report',
      report('ok', { 'refs/heads/mr': null }),
      { error: 'no status for refs/heads/next in the report' },
    ],
  ];
  test('took effect: every ref at its new value, a deleted one gone', () => {
    const now = (refs: Record<string, string>) => ({
      refs: new Map(Object.entries(refs)),
      capabilities: new Set<string>(),
    });
    assert.equal(tookEffect(now({ 'refs/heads/mr': B }), [mr, next]), true);
    assert.equal(
      tookEffect(now({ 'refs/heads/mr': B, 'refs/heads/next': B }), [mr, next]),
      false,
      'scratch still there',
    );
    assert.equal(tookEffect(now({ 'refs/heads/mr': A }), [mr, next]), false, 'not moved');
    assert.equal(tookEffect(now({}), [mr]), false, 'gone');
  });

  test("outcome: a refusal carries the server's words, one line", () =>
    assert.deepEqual(
      pushOutcome(
        report('ok', {
          'refs/heads/mr': 'pre-receive hook declined',
          'refs/heads/next': 'pre-receive hook declined',
        }),
        [mr, next],
        'GitLab: You are not allowed to push code to protected branches on this project.\r\nsecond line\n',
      ),
      {
        error:
          'mr: pre-receive hook declined (GitLab: You are not allowed to push code to protected branches on this project. / second line)',
      },
    ));
  for (const [name, r, want] of outcomes)
    test(`outcome: ${name}`, () => assert.deepEqual(pushOutcome(r, [mr, next]), want));
});

describe('against the sandbox (git http-backend)', () => {
  let sb: Sandbox;
  let proxy: GitProxy;
  const op = () => client(sb, 'operator');
  /** operator's commit 'x' of a new file on a new `branch` off main. */
  const commitOffMain = (branch: string, filePath: string, content: string) =>
    op().Commits.create(OPS, branch, 'x', [{ action: 'create', filePath, content }], { startBranch: 'main' });
  const TOKEN = 'gitops-bot-token';
  before(async () => {
    sb = await sandboxFixture();
    proxy = await gitProxy(sb.url);
  });
  after(async () => {
    await proxy?.close();
    await sb?.close();
  });
  const head = async (branch: string) => (await op().Branches.show(OPS, branch)).commit.id as string;
  const exists = async (branch: string) =>
    (await op().Branches.all(OPS, { search: branch })).some((b) => b.name === branch);
  /** a branch `name` off main and a scratch branch one commit ahead of it */
  async function branchAndScratch(name: string) {
    await op().Branches.create(OPS, name, 'main');
    const c = await op().Commits.create(
      OPS,
      `${name}-next`,
      'next',
      [{ action: 'create', filePath: `${name}.txt`, content: 'x' }],
      {
        startBranch: name,
      },
    );
    return { ref: name, expected: await head(name), sha: c.id as string, scratch: `${name}-next` };
  }
  const via = (url: string) => ({ url, token: TOKEN, project: OPS });
  /** replaceRef of a branchAndScratch() pair through `url` */
  const replaceVia = (url: string, b: Awaited<ReturnType<typeof branchAndScratch>>) =>
    replaceRef({ ...via(url), ref: b.ref, sha: b.sha, expected: b.expected, from: b.scratch });

  test('replaceRef moves the branch and deletes the scratch branch in 2 requests, sending no objects', async () => {
    const { expected, sha, scratch } = await branchAndScratch('rp-move');
    proxy.requests.length = 0;
    const r = await replaceRef({ ...via(proxy.url), ref: 'rp-move', sha, expected, from: scratch });
    assert.equal(r, 'moved');
    assert.equal(await head('rp-move'), sha);
    assert.equal(await exists(scratch), false);
    assert.deepEqual(
      proxy.requests.map((q) => `${q.method} ${q.path}`),
      [`GET /${OPS}.git/info/refs?service=git-receive-pack`, `POST /${OPS}.git/git-receive-pack`],
    );
    // two commands, a flush and the 32-byte empty pack: whatever the repository holds
    const post = proxy.requests[1].body;
    assert.ok(post.subarray(-32).equals(EMPTY_PACK));
    const lines = readPktLines(post.subarray(0, -32)).map((l) => l?.toString().split('\0')[0] ?? null);
    assert.deepEqual(lines, [
      `${expected} ${sha} refs/heads/rp-move`,
      `${sha} ${ZERO_ID} refs/heads/${scratch}\n`,
      null,
    ]);
    // authenticated as the bot, as git's push was
    assert.ok(
      sb.requests.some(
        (q) => q.user === 'gitops-bot' && q.method === 'POST' && q.path.endsWith('git-receive-pack'),
      ),
    );
  });

  test('stale by the advertisement: nothing posted, nothing changed', async () => {
    const { sha, scratch } = await branchAndScratch('rp-adv');
    const before = await head('rp-adv');
    proxy.requests.length = 0;
    const r = await replaceRef({ ...via(proxy.url), ref: 'rp-adv', sha, expected: A, from: scratch });
    assert.equal(r, 'stale');
    assert.deepEqual(
      proxy.requests.map((q) => q.method),
      ['GET'],
    );
    assert.equal(await head('rp-adv'), before);
    assert.equal(await exists(scratch), true);
  });

  test("stale by the server's own check: the branch moves between advertisement and update", async () => {
    const { expected, sha, scratch } = await branchAndScratch('rp-race');
    let theirs = '';
    proxy.intercept = async (q) => {
      if (q.method !== 'POST') return undefined;
      proxy.intercept = () => undefined;
      // someone else's commit lands after our advertisement said the branch was at `expected`
      const c = await op().Commits.create(OPS, 'rp-race', 'theirs', [
        { action: 'create', filePath: 'theirs.txt', content: 't' },
      ]);
      theirs = c.id as string;
      return undefined;
    };
    const r = await replaceRef({ ...via(proxy.url), ref: 'rp-race', sha, expected, from: scratch });
    assert.equal(r, 'stale');
    assert.ok(theirs, 'the race was run');
    assert.equal(await head('rp-race'), theirs, 'their commit stays');
    assert.equal(await exists(scratch), true, 'atomic: the delete did not happen either');
  });

  test("the update's answer is lost: the refs are read again, and it counts as moved when it landed", async () => {
    const landed = await branchAndScratch('rp-lost');
    proxy.intercept = (q) => (q.method === 'POST' ? { reset: 'after' } : undefined);
    try {
      const r = await replaceVia(proxy.url, landed);
      assert.equal(r, 'moved');
      assert.equal(await head('rp-lost'), landed.sha);
      // lost before it reached the server: nothing moved, the error says why
      const lost = await branchAndScratch('rp-lost-2');
      proxy.intercept = (q) => (q.method === 'POST' ? { reset: 'before' } : undefined);
      const e = await replaceVia(proxy.url, lost).catch((x) => x);
      assert.ok(e instanceof GitPushError, String(e));
      assert.match(
        e.message,
        /^pushing rp-lost-2: cannot reach GitLab at http:\/\/127\.0\.0\.1:\d+: connection closed$/,
      );
      assert.equal(await head('rp-lost-2'), lost.expected);
    } finally {
      proxy.intercept = () => undefined;
    }
  });

  test("the update's answer is empty or cut short: the refs are read again, and it counts as moved when it landed", async () => {
    try {
      for (const cut of [0, 10]) {
        const landed = await branchAndScratch(`rp-cut-${cut}`);
        proxy.intercept = (q) => (q.method === 'POST' ? { cut } : undefined);
        const r = await replaceVia(proxy.url, landed);
        assert.equal(r, 'moved', `cut at ${cut} bytes`);
        assert.equal(await head(`rp-cut-${cut}`), landed.sha);
        assert.equal(await exists(landed.scratch), false);
      }
      // cut short, and it did not land (refused by the hook): the protocol error, not 'moved'
      proxy.intercept = (q) => (q.method === 'POST' ? { cut: 10 } : undefined);
      const main = await head('main');
      const e = await replaceRef({ ...via(proxy.url), ref: 'main', sha: A, expected: main, from: 'x' }).catch(
        (x) => x,
      );
      assert.ok(e instanceof GitPushError, String(e));
      assert.match(e.message, /^pushing main: .*pkt-line/);
    } finally {
      proxy.intercept = () => undefined;
    }
  });

  test('receive.denyNonFastForwards refuses a replaceRef that is not a fast-forward: an error naming it, not stale', async () => {
    const name = 'rp-denynff';
    await op().Branches.create(OPS, name, 'main');
    await op().Commits.create(OPS, name, 'ahead', [
      { action: 'create', filePath: `${name}.txt`, content: 'x' },
    ]);
    const expected = await head(name);
    // the scratch branch starts at main: replacing the branch with it drops the commit above
    const c = await op().Commits.create(
      OPS,
      `${name}-next`,
      'next',
      [{ action: 'create', filePath: `${name}-other.txt`, content: 'y' }],
      { startBranch: 'main' },
    );
    const project = sb.core.store.project(OPS);
    assert.ok(project);
    const dir = sb.core.repoDir(project);
    await run('git', ['-C', dir, 'config', 'receive.denyNonFastForwards', 'true']);
    try {
      const e = await replaceRef({
        ...via(proxy.url),
        ref: name,
        sha: c.id as string,
        expected,
        from: `${name}-next`,
      }).catch((x) => x);
      assert.ok(e instanceof GitPushError, `not an error: ${String(e)}`);
      assert.match(e.message, /^pushing rp-denynff: rp-denynff: non-fast-forward/);
      assert.equal(await head(name), expected);
    } finally {
      await run('git', ['-C', dir, 'config', '--unset', 'receive.denyNonFastForwards']);
    }
  });

  test('fastForward creates a missing branch and refuses to when it appeared meanwhile', async () => {
    const main = await head('main');
    const isAncestor = async () => true;
    const ff = (current: string | null) =>
      fastForward({ ...via(sb.url), ref: 'rp-deploy', sha: main, current, isAncestor });
    assert.equal(await ff(null), 'moved');
    assert.equal(await head('rp-deploy'), main);
    const c = await commitOffMain('rp-deploy-2', 'y', 'y');
    assert.equal(
      await fastForward({ ...via(sb.url), ref: 'rp-deploy', sha: c.id as string, current: null, isAncestor }),
      'diverged',
      'it exists: the lease for "absent" fails',
    );
    assert.equal(await head('rp-deploy'), main);
  });

  test("a protected branch: the push is refused with GitLab's reason, not as a lost race", async () => {
    const main = await head('main');
    const c = await commitOffMain('rp-protected-next', 'p', 'p');
    const e = await replaceRef({
      ...via(sb.url),
      ref: 'main',
      sha: c.id as string,
      expected: main,
      from: 'rp-protected-next',
    }).catch((x) => x);
    assert.ok(e instanceof GitPushError, String(e));
    assert.equal(
      e.message,
      'pushing main: main: pre-receive hook declined (GitLab: You are not allowed to push code to protected branches on this project.)',
    );
    assert.equal(await head('main'), main);
  });

  test('a wrong token: a clear 401 error, the token nowhere in it', async () => {
    const e = await replaceRef({
      ...via(sb.url),
      token: 'not-a-token-123',
      ref: 'main',
      sha: A,
      expected: B,
      from: 'x',
    }).catch((x) => x);
    assert.ok(e instanceof GitPushError);
    assert.match(
      e.message,
      /^reading the refs of root\/helloworld-ops: 127\.0\.0\.1:\d+ refused the token \(401\)/,
    );
    assert.doesNotMatch(e.message, /not-a-token-123/);
  });

  test('a redirect is not followed: the other host never sees the token', async () => {
    const seen: string[] = [];
    const other = createServer((req, res) => {
      seen.push(String(req.headers.authorization));
      res.end();
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', () => r()));
    const to = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    proxy.intercept = (q) => ({ status: 302, headers: { Location: `${to}${q.path}` } });
    try {
      const e = await replaceRef({ ...via(proxy.url), ref: 'main', sha: A, expected: B, from: 'x' }).catch(
        (x) => x,
      );
      assert.ok(e instanceof GitPushError);
      assert.match(e.message, /answered 302, a redirect to 127\.0\.0\.1:\d+: not followed/);
      assert.deepEqual(seen, []);
    } finally {
      proxy.intercept = () => undefined;
      await new Promise((r) => other.close(r));
    }
  });

  test('failures name the host and the cause, scrubbed: refused connection, timeout, error page echoing the header', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const refused = await replaceRef({
      ...via(`http://127.0.0.1:${port}`),
      ref: 'main',
      sha: A,
      expected: B,
      from: 'x',
    }).catch((x) => x);
    assert.match(
      refused.message,
      new RegExp(
        `^reading the refs of ${OPS}: cannot reach GitLab at http://127\\.0\\.0\\.1:${port}: connection refused$`,
      ),
    );

    proxy.intercept = () => new Promise(() => {}); // never answers
    const slow = await replaceRef({
      ...via(proxy.url),
      ref: 'main',
      sha: A,
      expected: B,
      from: 'x',
      timeoutMs: 300,
    }).catch((x) => x);
    assert.match(slow.message, /at http:\/\/127\.0\.0\.1:\d+: no answer in 300 ms$/);

    proxy.intercept = (q) => ({ status: 500, body: `proxy error for ${q.authorization} token=${TOKEN}\n` });
    const page = await replaceRef({ ...via(proxy.url), ref: 'main', sha: A, expected: B, from: 'x' }).catch(
      (x) => x,
    );
    proxy.intercept = () => undefined;
    assert.ok(page instanceof GitPushError);
    assert.match(page.message, /answered 500: proxy error for Basic \[REDACTED\] token=\[REDACTED\]$/);
    assert.doesNotMatch(
      page.message,
      new RegExp(`${TOKEN}|${Buffer.from(`gitops-bot:${TOKEN}`).toString('base64')}`),
    );
  });
});
