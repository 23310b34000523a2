// What the gateway's request metrics cost per request, apart from the network: the same loop of
// building a node:http request/response pair and closing it, without and then with
// HttpRequestCounts.track() (route lookup, clock reads, the close listener, the array updates).
// End-to-end rates on a shared 2-core machine are too noisy to show a difference this small.
//
// Usage (after `npm run build`): node dist/bench/http-metrics.js [--requests 500000] [--rounds 3]

import http from 'node:http';
import { Socket } from 'node:net';
import { HttpRequestCounts } from '../gateway/http-metrics';

function flag(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? def : Number(process.argv[i + 1]);
}

const counts = new HttpRequestCounts();
const URLS = ['/v1/topics/bench/messages', '/v1/topics/bench/batch?x=1', '/v1/topics/bench/channels/c/messages?wait_ms=0', '/nope'];

/** Mean µs per request over `n` request/response pairs. */
function loop(n: number, track: boolean): number {
  const socket = new Socket();
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    const req = new http.IncomingMessage(socket);
    req.method = 'POST';
    req.url = URLS[i & 3];
    const res = new http.ServerResponse(req);
    if (track) counts.track(req, res);
    res.statusCode = 200;
    res.emit('close');
  }
  return ((performance.now() - started) * 1000) / n;
}

const n = flag('requests', 500_000);
const lines: string[] = [];
for (let r = 0, rounds = flag('rounds', 3); r < rounds; r++) {
  const without = loop(n, false);
  const withMetrics = loop(n, true);
  lines.push(`round ${r + 1}: ${(withMetrics - without).toFixed(2)} µs per request for the request metrics (${without.toFixed(2)} µs without, ${withMetrics.toFixed(2)} µs with)`);
}
for (const l of lines) console.log(l);
console.log('RESULT ' + JSON.stringify(lines));
