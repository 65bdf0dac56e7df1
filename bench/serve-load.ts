// The load generator of bench/serve, in a process of its own: its heap holds only what it
// sends, so its own garbage collection (10-20 ms scavenges when it shared the setup's heap)
// does not show up as acknowledgement latency. Prints one JSON line of results.
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';

export interface LoadResult {
  latencies: number[];
  gates: number;
  elapsedS: number;
  loopP99Ms: number;
  loopMaxMs: number;
  slowest: Array<[number, number, number]>;
}

export interface LoadOptions {
  url: string;
  secret: string;
  project: { id: number; path_with_namespace: string };
  mrs: number;
  rate: number;
  seconds: number;
  gateEvery: number;
  /** deliveries sent first and not measured: connections opened, code warmed up */
  warmup: number;
}

export async function load(o: LoadOptions): Promise<LoadResult> {
  // node:http with keep-alive: the leanest client, so the numbers are the server's.
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const latencies: number[] = [];
  const trace: Array<[number, number, number]> = [];
  let gates = 0;
  const total = o.warmup + o.rate * o.seconds;
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  let started = performance.now();
  const inflight: Promise<void>[] = [];
  for (let n = 0; n < total; n++) {
    const measured = n >= o.warmup;
    if (n === o.warmup) {
      loop.reset();
      started = performance.now() - (n * 1000) / o.rate;
    }
    const due = started + (n * 1000) / o.rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const iid = 1 + (n % o.mrs);
    // One delivery in ten asks for a gate; the rest are comments the bot reads and drops.
    const gate = n % o.gateEvery === 0;
    if (gate && measured) gates++;
    const body = gate
      ? { object_kind: 'merge_request', project: o.project, object_attributes: { iid, action: 'update' } }
      : {
          object_kind: 'note',
          project: o.project,
          object_attributes: { note: 'looks good', noteable_type: 'MergeRequest' },
          merge_request: { iid },
        };
    const t = performance.now();
    const payload = JSON.stringify(body);
    inflight.push(
      new Promise<void>((resolve, reject) => {
        const req = request(
          o.url,
          {
            method: 'POST',
            agent,
            headers: {
              'Content-Type': 'application/json',
              'Content-Length': Buffer.byteLength(payload),
              'X-Gitlab-Token': o.secret,
              'X-Gitlab-Event': gate ? 'Merge Request Hook' : 'Note Hook',
              'Idempotency-Key': randomUUID(),
            },
          },
          (res) => {
            res.resume();
            res.on('end', () => {
              const ms = performance.now() - t;
              if (measured) {
                latencies.push(ms);
                trace.push([t - started, ms, gate ? 1 : 0]);
              }
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
  loop.disable();
  agent.destroy();
  return {
    latencies,
    gates,
    elapsedS: (performance.now() - started) / 1000 - o.warmup / o.rate,
    loopP99Ms: loop.percentile(99) / 1e6,
    loopMaxMs: loop.max / 1e6,
    slowest: trace.sort((a, b) => b[1] - a[1]).slice(0, 30),
  };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/.*\//, ''))) {
  const result = await load(JSON.parse(process.argv[2]) as LoadOptions);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
