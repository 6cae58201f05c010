// SPDX-License-Identifier: MIT
// N http.get at once from node's event loop (non-blocking connects through
// libuv), each "GET PREFIX/I"; an answer is good when it is a 200 whose body
// (trimmed) is PREFIX/I. Used by tests/e2e/shim_far.bats and scripts/bench.
//
//   node far_client.js HOST PORT PREFIX N [TIMEOUT]
//
// Prints "FAIL ..." per bad one, then "ok K of N" and "elapsed S" (seconds from
// the first request to the last answer); exits 0 when all N were good. TIMEOUT
// (seconds, default 60) bounds each request.
'use strict';
const http = require('http');

const [host, portArg, prefix, nArg, timeoutArg] = process.argv.slice(2);
const port = Number(portArg);
const n = Number(nArg);
const timeout = Number(timeoutArg || 60) * 1000;
if (!host || !port || !prefix || !n) {
  process.stderr.write('usage: node far_client.js HOST PORT PREFIX N [TIMEOUT]\n');
  process.exit(2);
}

function one(i) {
  const path = `${prefix}/${i}`;
  return new Promise((resolve, reject) => {
    // agent: false: a connection of its own for each request, all at once
    const req = http.get({ host, port, path, agent: false, timeout }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        if (res.statusCode !== 200) {
          reject(new Error(`${path}: status ${res.statusCode}`));
        } else if (body.trim() !== path) {
          reject(new Error(`${path}: body ${JSON.stringify(body.slice(0, 80))}`));
        } else {
          resolve();
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${path}: timed out`)));
    req.on('error', reject);
  });
}

const t0 = process.hrtime.bigint();
Promise.allSettled(Array.from({ length: n }, (_, i) => one(i))).then((res) => {
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const bad = res.filter((r) => r.status === 'rejected');
  for (const b of bad) {
    console.log('FAIL', String(b.reason && b.reason.message ? b.reason.message : b.reason));
  }
  console.log(`ok ${n - bad.length} of ${n}`);
  console.log(`elapsed ${elapsed.toFixed(2)}`);
  process.exit(bad.length ? 1 : 0);
});
