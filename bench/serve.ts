// bench/serve: `gitops-bot serve` (a child process) receives webhook deliveries at a
// steady rate while the sandbox holds 1,000 open merge requests. Prints acknowledgement
// latency (p50, p99), the rate achieved, gates run, and the server's peak RSS.
// Targets (issue 6): 200 deliveries/s with p99 under 20 ms, RSS under 150 MB.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Gitlab } from '@gitbeaker/rest';

const OPS = 'root/helloworld-ops';
const MRS = 1000;
const RATE = 200;
const SECONDS = 10;
const SECRET = 'bench-secret';
const GATE_EVERY = Number(process.env.BENCH_GATE_EVERY ?? 10);

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

/** Starts `gitops-bot sandbox` as its own process: its work must not stall the load generator. */
async function sandboxProcess(cli: string) {
  const child = spawn(process.execPath, [cli, 'sandbox', '--port', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // The sandbox stands in for a GitLab on other machines: at nice 19 (inherited by its git
  // processes) it does not take the bot's CPU, as a real GitLab would not.
  setPriority(child.pid!, 19);
  const url = await new Promise<string>((resolve) => {
    child.stdout.on('data', (b: Buffer) => {
      const m = /sandbox ready: (\S+)/.exec(b.toString());
      if (m) resolve(m[1]);
    });
  });
  return {
    url,
    close: () =>
      new Promise((r) => {
        child.on('exit', r);
        child.kill('SIGTERM');
      }),
  };
}

export async function benchServe(): Promise<Record<string, number | string>> {
  const cli = fileURLToPath(new URL('../src/cli.js', import.meta.url));
  const sb = await sandboxProcess(cli);
  const bot = new Gitlab({ host: sb.url, token: 'gitops-bot-token' });
  try {
    // 1,000 open MRs, 8 at a time.
    let next = 1;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next <= MRS) {
          const i = next++;
          await bot.Commits.create(
            OPS,
            `bench/${i}`,
            `change ${i}`,
            [{ action: 'create', filePath: `bench/${i}.txt`, content: `${i}` }],
            {
              startBranch: 'main',
            },
          );
          await bot.MergeRequests.create(OPS, `bench/${i}`, 'main', `Change ${i}`);
        }
      }),
    );
    const child = spawn(
      process.execPath,
      [
        ...(process.env.BENCH_SERVE_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
        cli,
        'serve',
        '--listen',
        '127.0.0.1:0',
        '--project',
        OPS,
      ],
      {
        env: {
          ...process.env,
          GITLAB_URL: sb.url,
          GITOPS_BOT_TOKEN: 'gitops-bot-token',
          GITOPS_BOT_WEBHOOK_SECRET: SECRET,
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const url = await new Promise<string>((resolve) => {
      child.stdout.on('data', (b: Buffer) => {
        const m = /listening on (\S+)/.exec(b.toString());
        if (m) resolve(`${m[1]}/webhook`);
      });
    });
    const project = { id: 2, path_with_namespace: OPS };
    // node:http with keep-alive: the leanest client, so the numbers are the server's.
    const agent = new Agent({ keepAlive: true, maxSockets: 64 });
    const latencies: number[] = [];
    let gates = 0;
    const total = RATE * SECONDS;
    const started = performance.now();
    const inflight: Promise<void>[] = [];
    for (let n = 0; n < total; n++) {
      const due = started + (n * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const iid = 1 + (n % MRS);
      // One delivery in ten asks for a gate; the rest are comments the bot reads and drops.
      const gate = n % GATE_EVERY === 0;
      if (gate) gates++;
      const body = gate
        ? { object_kind: 'merge_request', project, object_attributes: { iid, action: 'update' } }
        : {
            object_kind: 'note',
            project,
            object_attributes: { note: 'looks good', noteable_type: 'MergeRequest' },
            merge_request: { iid },
          };
      const t = performance.now();
      const payload = JSON.stringify(body);
      inflight.push(
        new Promise<void>((resolve, reject) => {
          const req = request(
            url,
            {
              method: 'POST',
              agent,
              headers: {
                'Content-Type': 'application/json',
                'Content-Length': Buffer.byteLength(payload),
                'X-Gitlab-Token': SECRET,
                'X-Gitlab-Event': gate ? 'Merge Request Hook' : 'Note Hook',
                'Idempotency-Key': randomUUID(),
              },
            },
            (res) => {
              res.resume();
              res.on('end', () => {
                latencies.push(performance.now() - t);
                resolve();
              });
            },
          );
          req.on('error', reject);
          req.end(payload);
        }),
      );
    }
    await Promise.all(inflight);
    agent.destroy();
    const elapsed = (performance.now() - started) / 1000;
    // The server's own view: its ack histogram (request in to response out).
    const metrics = await (await fetch(url.replace('/webhook', '/metrics'))).text();
    const buckets = [...metrics.matchAll(/gitops_bot_webhook_ack_seconds_bucket\{le="([^"]+)"\} (\d+)/g)].map(
      (m) => ({
        le: m[1],
        n: Number(m[2]),
      }),
    );
    const count = buckets.at(-1)?.n ?? 0;
    const p99Bucket = buckets.find((b) => b.n >= count * 0.99)?.le ?? '?';
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
    child.kill('SIGTERM');
    await new Promise((r) => child.on('exit', r));
    return {
      'open merge requests': MRS,
      'sandbox priority': 'nice 19 (GitLab does not share the bot CPU in production)',
      deliveries: latencies.length,
      'deliveries/s achieved (target 200)': (latencies.length / elapsed).toFixed(0),
      'gate requests among them': gates,
      'ack p50 ms': pct(latencies, 0.5).toFixed(2),
      'ack p99 ms (target < 20)': pct(latencies, 0.99).toFixed(2),
      'server-side ack p99 bucket (s)': `<= ${p99Bucket}`,
      'server peak RSS MB (target < 150)': hwm.toFixed(0),
    };
  } finally {
    await sb.close();
  }
}
