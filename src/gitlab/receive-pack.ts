// Git's receive-pack protocol (v0, the one push speaks over smart HTTP, GitLab's Workhorse
// included: protocol v2 has no push), reduced to what gitops-bot needs: moving refs to
// commits the server already has, with no objects to send. Pure encoding and parsing here;
// the HTTP exchange and the lease decisions are in git-push.ts.
//
// References: gitprotocol-pack ("Reference Update Request and Packfile Transfer",
// "Report Status"), gitprotocol-http (smart service discovery), gitprotocol-common
// (pkt-line), send-pack.c (the pack is sent iff some command is not a delete).
import { createHash } from 'node:crypto';

/** The object id meaning "no such ref": a create's old value, a delete's new one. */
export const ZERO_ID = '0'.repeat(40);
/** A flush-pkt: the end of a list of pkt-lines. */
export const FLUSH = Buffer.from('0000', 'latin1');
/** pkt-line payload limit (65520 bytes with the 4 of the length). */
const MAX_PKT_DATA = 65516;
const SHA1 = /^[0-9a-f]{40}$/;

/** A malformed answer: the server is not speaking receive-pack as we understand it. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

/** One pkt-line: 4 hex digits of length (including themselves), then the data. */
export function pktLine(data: string | Buffer): Buffer {
  const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  if (payload.length > MAX_PKT_DATA)
    throw new ProtocolError(`pkt-line of ${payload.length} bytes is too long`);
  return Buffer.concat([Buffer.from((payload.length + 4).toString(16).padStart(4, '0'), 'latin1'), payload]);
}

/**
 * The pkt-lines of `body`, a flush-pkt as null. Stops at the end of the body; anything
 * that is not a pkt-line (a truncated one, a length that is not hex) is a ProtocolError.
 */
export function readPktLines(body: Buffer): Array<Buffer | null> {
  const out: Array<Buffer | null> = [];
  let at = 0;
  while (at < body.length) {
    if (body.length - at < 4) throw new ProtocolError(`truncated pkt-line length at byte ${at}`);
    const head = body.subarray(at, at + 4).toString('latin1');
    if (!/^[0-9a-f]{4}$/i.test(head))
      throw new ProtocolError(`not a pkt-line at byte ${at}: ${JSON.stringify(head)}`);
    const len = Number.parseInt(head, 16);
    if (len === 0) {
      out.push(null);
      at += 4;
      continue;
    }
    // 0001 (delim) and 0002 (response-end) belong to protocol v2, which push does not use
    if (len < 4) throw new ProtocolError(`pkt-line length ${head} at byte ${at} is not protocol v0`);
    if (at + len > body.length) throw new ProtocolError(`truncated pkt-line at byte ${at}`);
    out.push(body.subarray(at + 4, at + len));
    at += len;
  }
  return out;
}

/** A pkt-line's text without its trailing newline (which is optional on the wire). */
function lineText(b: Buffer): string {
  const s = b.toString('utf8');
  return s.endsWith('\n') ? s.slice(0, -1) : s;
}

export interface Advertisement {
  /** ref name -> object id; peeled tags (`^{}`) left out */
  refs: Map<string, string>;
  /** `atomic`, `report-status`, `delete-refs`, `agent=git/2.43.0`, ... */
  capabilities: Set<string>;
}

/**
 * The answer to `GET info/refs?service=git-receive-pack`: `# service=...` and a flush (smart
 * HTTP's preamble), then `<id> <ref>\0<capabilities>` and one `<id> <ref>` a line, a flush.
 * An empty repository advertises `<zero-id> capabilities^{}` for the capabilities alone.
 */
export function parseAdvertisement(body: Buffer, service = 'git-receive-pack'): Advertisement {
  const lines = readPktLines(body);
  let i = 0;
  const first = lines[0] ? lineText(lines[0]) : null;
  if (first?.startsWith('# service=')) {
    if (first !== `# service=${service}`)
      throw new ProtocolError(`advertisement is for ${first.slice(2)}, not ${service}`);
    if (lines[1] !== null) throw new ProtocolError('no flush after the service line');
    i = 2;
  }
  if (lines[i] && lineText(lines[i] as Buffer) === 'version 1') i++;
  if (lines[i] && lineText(lines[i] as Buffer).startsWith('version ')) {
    throw new ProtocolError(`server speaks ${lineText(lines[i] as Buffer)}, push needs protocol v0/v1`);
  }
  const refs = new Map<string, string>();
  const capabilities = new Set<string>();
  let sawCapabilities = false;
  for (; i < lines.length; i++) {
    const line = lines[i];
    if (line === null) {
      if (i !== lines.length - 1) throw new ProtocolError('data after the advertisement');
      if (!sawCapabilities && refs.size === 0) throw new ProtocolError('empty advertisement');
      return { refs, capabilities };
    }
    let text = lineText(line);
    if (!sawCapabilities) {
      const nul = text.indexOf('\0');
      if (nul < 0) throw new ProtocolError('the first advertised ref carries no capabilities');
      for (const c of text.slice(nul + 1).split(' ')) if (c) capabilities.add(c);
      text = text.slice(0, nul);
      sawCapabilities = true;
    }
    const sp = text.indexOf(' ');
    const id = text.slice(0, sp);
    const name = text.slice(sp + 1);
    if (sp < 0 || !SHA1.test(id) || !name)
      throw new ProtocolError(`not a ref advertisement: ${JSON.stringify(text)}`);
    if (name === 'capabilities^{}' || name.endsWith('^{}')) continue;
    // `.have` lines name objects of alternates, not refs
    if (name === '.have') continue;
    refs.set(name, id);
  }
  throw new ProtocolError('advertisement ends without a flush');
}

export interface RefCommand {
  ref: string;
  /** the value the ref must have for the update to happen; ZERO_ID: it must not exist */
  old: string;
  /** ZERO_ID deletes it */
  new: string;
}

/** The empty pack: "PACK", version 2, 0 objects, then the SHA-1 of those 12 bytes. */
export const EMPTY_PACK: Buffer = (() => {
  const head = Buffer.from([0x50, 0x41, 0x43, 0x4b, 0, 0, 0, 2, 0, 0, 0, 0]);
  return Buffer.concat([head, createHash('sha1').update(head).digest()]);
})();

/**
 * The body of `POST git-receive-pack`: one pkt-line per command, the first carrying our
 * capabilities after a NUL, a flush, then a pack unless every command is a delete (the
 * server reads one exactly then; git sends an empty one when the server has every object).
 */
export function updateRequest(commands: RefCommand[], capabilities: string[]): Buffer {
  if (commands.length === 0) throw new ProtocolError('no ref to update');
  const parts: Buffer[] = commands.map((c, i) => {
    for (const id of [c.old, c.new])
      if (!SHA1.test(id)) throw new ProtocolError(`${JSON.stringify(id)} is not a SHA-1 object id`);
    if (!c.ref.startsWith('refs/') || /[\s\0]/.test(c.ref))
      throw new ProtocolError(`bad ref name ${JSON.stringify(c.ref)}`);
    const caps = i === 0 && capabilities.length ? `\0${capabilities.join(' ')}` : '';
    return pktLine(`${c.old} ${c.new} ${c.ref}${caps}\n`);
  });
  parts.push(FLUSH);
  if (commands.some((c) => c.new !== ZERO_ID)) parts.push(EMPTY_PACK);
  return Buffer.concat(parts);
}

export interface SideBand {
  /** band 1, our protocol's own stream (here the report-status pkt-lines) */
  data: Buffer;
  /** band 2: what the server's hooks and receive-pack printed ("GitLab: You are not allowed ...") */
  messages: string;
  /** band 3: the server gave up, and why */
  fatal: string | null;
}

/**
 * Splits a side-band-64k answer: each pkt-line's first byte names its band, a flush ends it.
 * Asked for so that a hook's refusal comes with the hook's words, as git push shows them.
 */
export function demuxSideBand(body: Buffer): SideBand {
  const data: Buffer[] = [];
  let messages = '';
  let fatal: string | null = null;
  for (const line of readPktLines(body)) {
    if (line === null) break;
    if (line.length === 0) throw new ProtocolError('an empty side-band packet');
    const band = line[0];
    const payload = line.subarray(1);
    if (band === 1) data.push(payload);
    else if (band === 2) messages += payload.toString('utf8');
    else if (band === 3) fatal = (fatal ?? '') + payload.toString('utf8');
    else throw new ProtocolError(`side-band ${band} is not 1, 2 or 3`);
  }
  return { data: Buffer.concat(data), messages, fatal: fatal?.trim() ?? null };
}

export interface Report {
  /** 'ok', or why the server could not unpack what we sent */
  unpack: string;
  /** per ref: null when it moved, else the server's reason */
  refs: Map<string, string | null>;
}

/**
 * The report-status answer: `unpack ok` (or `unpack <error>`), then `ok <ref>` or
 * `ng <ref> <reason>` per command, a flush. Without side-band, the pkt-lines come bare.
 */
export function parseReport(body: Buffer): Report {
  const lines = readPktLines(body);
  const first = lines[0];
  if (!first) throw new ProtocolError('no report-status in the answer');
  const unpackLine = lineText(first);
  if (!unpackLine.startsWith('unpack '))
    throw new ProtocolError(`not a report-status: ${JSON.stringify(unpackLine)}`);
  const refs = new Map<string, string | null>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (line === null) return { unpack: unpackLine.slice(7), refs };
    const text = lineText(line);
    if (text.startsWith('ok ')) refs.set(text.slice(3), null);
    else if (text.startsWith('ng ')) {
      const rest = text.slice(3);
      const sp = rest.indexOf(' ');
      refs.set(sp < 0 ? rest : rest.slice(0, sp), sp < 0 ? 'failed' : rest.slice(sp + 1));
    } else throw new ProtocolError(`not a report-status line: ${JSON.stringify(text)}`);
  }
  throw new ProtocolError('report-status ends without a flush');
}
