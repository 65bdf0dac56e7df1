// An HTTP proxy in front of the sandbox, for faults at the transport: every request is
// recorded (method, path, whether it carried an Authorization header) and passed on, unless
// `intercept` answers it itself. `intercept` may also act first (move a branch between the
// bot's advertisement and its update) and then let the request through, or pass it on and
// cut the sandbox's answer short (`cut`: its status and headers, the first bytes of its body).
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxiedRequest {
  method: string;
  /** path and query */
  path: string;
  authorization: string | undefined;
  body: Buffer;
}

export type Answer =
  | { status: number; headers?: Record<string, string>; body?: string | Buffer }
  /** the connection dropped without an answer: before the request reaches the sandbox, or after */
  | { reset: 'before' | 'after' }
  /** the sandbox handles it; its answer arrives with only the first `cut` bytes of the body */
  | { cut: number };

export interface GitProxy {
  url: string;
  requests: ProxiedRequest[];
  /** undefined: pass the request on to the sandbox */
  intercept: (r: ProxiedRequest) => Promise<Answer | undefined> | Answer | undefined;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** A proxy on 127.0.0.1 to `target` (the sandbox's URL). */
export async function gitProxy(target: string): Promise<GitProxy> {
  const proxy: GitProxy = {
    url: '',
    requests: [],
    intercept: () => undefined,
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        // requests left hanging on purpose must not keep it open
        server.closeAllConnections();
      }),
  };
  const server = createServer(async (req, res) => {
    const r: ProxiedRequest = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      authorization: req.headers.authorization,
      body: await readBody(req),
    };
    proxy.requests.push(r);
    try {
      const own = await proxy.intercept(r);
      if (own && 'reset' in own && own.reset === 'before') {
        req.socket.destroy();
        return;
      }
      if (own && 'status' in own) {
        res.writeHead(own.status, own.headers ?? {});
        res.end(own.body ?? '');
        return;
      }
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers))
        if (typeof v === 'string' && !['host', 'connection', 'content-length'].includes(k)) headers.set(k, v);
      const up = await fetch(`${target}${r.path}`, {
        method: r.method,
        headers,
        body: r.method === 'GET' || r.method === 'HEAD' ? undefined : new Uint8Array(r.body),
        redirect: 'manual',
      });
      const out: Record<string, string> = {};
      up.headers.forEach((v, k) => {
        if (!['content-length', 'content-encoding', 'transfer-encoding', 'connection'].includes(k))
          out[k] = v;
      });
      const body = Buffer.from(await up.arrayBuffer());
      if (own && 'cut' in own) {
        res.writeHead(up.status, out);
        res.end(body.subarray(0, own.cut));
        return;
      }
      if (own) {
        req.socket.destroy(); // the sandbox did the work; its answer is lost on the way
        return;
      }
      res.writeHead(up.status, out);
      res.end(body);
    } catch (e) {
      res.writeHead(502, { 'Content-Type': 'text/plain' });
      res.end(`proxy: ${(e as Error).message}`);
    }
  });
  server.keepAliveTimeout = 100;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
