// Standard Webhooks verification (GitLab's signing token): `webhook-signature` holds one or
// more `v1,<base64 HMAC-SHA256>` over `{webhook-id}.{webhook-timestamp}.{raw body}`, keyed
// with the bytes of `whsec_<base64>`. The timestamp bounds replays of a captured delivery.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_TOLERANCE_S = 5 * 60;

/** The HMAC key of a `whsec_…` token; throws on a token that is not one. */
export function signingKey(token: string): Buffer {
  const m = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(token.trim());
  const key = m ? Buffer.from(m[1], 'base64') : Buffer.alloc(0);
  if (key.length < 16) throw new Error('a signing token is whsec_ followed by a base64 key (32 bytes)');
  return key;
}

/** null when the delivery is signed with `key`, else why not (never echoing the token). */
export function signatureProblem(
  key: Buffer,
  headers: { id?: string; timestamp?: string; signature?: string },
  body: Buffer,
  nowS = Math.floor(Date.now() / 1000),
): string | null {
  const { id, timestamp, signature } = headers;
  if (!id || !timestamp || !signature) return 'missing webhook-id, webhook-timestamp or webhook-signature';
  if (!/^\d{1,12}$/.test(timestamp)) return 'webhook-timestamp is not a unix time';
  if (Math.abs(nowS - Number(timestamp)) > SIGNATURE_TOLERANCE_S)
    return `webhook-timestamp is more than ${SIGNATURE_TOLERANCE_S} s away from now`;
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest();
  for (const part of signature.split(' ')) {
    const [version, value] = part.split(',', 2);
    if (version !== 'v1' || !value) continue;
    const given = Buffer.from(value, 'base64');
    if (given.length === expected.length && timingSafeEqual(given, expected)) return null;
  }
  return 'webhook-signature does not match';
}
