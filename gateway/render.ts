// How a consumed message is shown over HTTP: one line of JSON with its id, attempts, timestamp,
// receipt, remaining lease and body. A body that is JSON is shown as JSON (spliced in as sent,
// whitespace line breaks turned into spaces, so it never spans lines); any other body as base64,
// or as text when the consumer asks for it and the bytes are valid UTF-8. Pure functions.

import { isUtf8 } from 'node:buffer';

/** What a consumer may ask for: `json` (the default: JSON as JSON, other bytes base64), `text` or `base64`. */
export type Encoding = 'json' | 'text' | 'base64';
export const ENCODINGS: readonly Encoding[] = ['json', 'text', 'base64'];

export interface RenderedBody {
  /** How `body` is to be read: a JSON value, a UTF-8 string, or base64 of the exact bytes. */
  encoding: Encoding;
  /** The JSON text of the `body` field. */
  json: string;
}

const FIRST_JSON_BYTE = new Uint8Array(256);
for (const c of '{["-0123456789tfn \t\r\n') FIRST_JSON_BYTE[c.charCodeAt(0)] = 1;

const WS = new Uint8Array(256);
for (const c of ' \t\r\n') WS[c.charCodeAt(0)] = 1;

/**
 * Whether the last significant byte can end a value that starts with the first one: `{` needs
 * `}`, `[` needs `]`, `"` needs `"`. Cheap, and it spares the parse (and the exception it throws)
 * for the common non-JSON bodies that merely start like JSON — cut-off or binary ones.
 */
function endsLikeJson(body: Buffer): boolean {
  let i = 0;
  let j = body.length - 1;
  while (i <= j && WS[body[i]] === 1) i++;
  while (j > i && WS[body[j]] === 1) j--;
  if (i > j) return false;
  const first = body[i];
  const last = body[j];
  if (first === 0x7b) return last === 0x7d && j > i;
  if (first === 0x5b) return last === 0x5d && j > i;
  if (first === 0x22) return last === 0x22 && j > i;
  return true;
}

/** The body's JSON text (no line breaks) if the bytes are one JSON value in UTF-8, else null. */
export function jsonText(body: Buffer): string | null {
  if (body.length === 0 || FIRST_JSON_BYTE[body[0]] === 0 || !endsLikeJson(body) || !isUtf8(body)) return null;
  const text = body.toString('utf8');
  try {
    JSON.parse(text);
  } catch {
    return null;
  }
  // Outside strings JSON allows only whitespace; inside, CR and LF must be escaped. So every raw
  // CR/LF is whitespace between tokens and a space keeps the value while keeping it on one line.
  return text.indexOf('\n') === -1 && text.indexOf('\r') === -1 ? text : text.replace(/[\r\n]/g, ' ');
}

export function renderBody(body: Buffer, encoding: Encoding): RenderedBody {
  if (encoding === 'json') {
    const j = jsonText(body);
    if (j !== null) return { encoding: 'json', json: j };
  } else if (encoding === 'text' && isUtf8(body)) {
    return { encoding: 'text', json: JSON.stringify(body.toString('utf8')) };
  }
  return { encoding: 'base64', json: '"' + body.toString('base64') + '"' };
}

export interface Deliverable {
  id: string;
  attempts: number;
  timestamp: number;
  body: Buffer;
}

/**
 * One message as a single line of JSON:
 * `{"id","attempts","timestamp","receipt","lease_ms","encoding","body"}`. Ids are hex and receipts
 * base64url, so they are embedded without escaping.
 */
export function messageJson(m: Deliverable, receipt: string, leaseMs: number, encoding: Encoding): string {
  const b = renderBody(m.body, encoding);
  return (
    '{"id":"' + m.id + '","attempts":' + m.attempts + ',"timestamp":' + m.timestamp + ',"receipt":"' + receipt + '","lease_ms":' + Math.max(0, Math.round(leaseMs)) + ',"encoding":"' + b.encoding + '","body":' + b.json + '}'
  );
}

/** One Server-Sent Event: the receipt is the event id, `data:` is one line of JSON (no payload can add a field). */
export function sseEvent(receipt: string, json: string): string {
  return 'event: message\nid: ' + receipt + '\ndata: ' + json + '\n\n';
}
