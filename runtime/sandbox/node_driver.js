// The in-sandbox half of a node session: one V8 context that every cell runs in.
//
// Run inside the sandbox as `node -e <this file>` by the sandbox agent (input left open). Top-level
// `let`, `const`, `class` and functions of one cell are there in the next (they live in the
// context's script scope, as across a browser's <script> tags); a cell whose value is a Promise is
// awaited; `typescript: true` cells are type-stripped with the image's TypeScript first. One JSON
// line per request on stdin, one answer per line on stdout after PREFIX (the same protocol as the
// python driver, kernel_driver.py). SIGINT interrupts a running cell (breakOnSigint); between
// cells it is ignored. What cells print through process.stdout/stderr (console included) is
// captured; the protocol goes straight to fd 1.
'use strict';
const fs = require('fs');
const readline = require('readline');
const util = require('util');
const vm = require('vm');

const PREFIX = '\x1eTAPK ';
let capture = null;

const pause = new Int32Array(new SharedArrayBuffer(4));

function say(message) {
  // fd 1 may be non-blocking: write it all, waiting out EAGAIN (an answer can be megabytes).
  let data = Buffer.from('\n' + PREFIX + JSON.stringify(message) + '\n');
  while (data.length) {
    try {
      data = data.subarray(fs.writeSync(1, data));
    } catch (err) {
      if (err.code !== 'EAGAIN') throw err;
      Atomics.wait(pause, 0, 0, 5);
    }
  }
}

function take(name) {
  return (chunk, encoding, callback) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    if (capture) {
      const room = capture.cap - capture.sizes[name];
      if (room > 0) capture[name].push(text.slice(0, room));
      if (text.length > room) capture.truncated = true;
      capture.sizes[name] += text.length;
    }
    const done = typeof encoding === 'function' ? encoding : callback;
    if (typeof done === 'function') done();
    return true;
  };
}
process.stdout.write = take('stdout');
process.stderr.write = take('stderr');
let interruptAwait = null;  // while a cell awaits a Promise: rejects it
process.on('SIGINT', () => {  // between cells an interrupt finds nothing to stop
  if (interruptAwait) interruptAwait(new Error('Script execution was interrupted by `SIGINT`'));
});

function fresh() {
  return vm.createContext(Object.assign(Object.create(null), {
    console, require, process, Buffer, URL, URLSearchParams, TextEncoder, TextDecoder, AbortController,
    setTimeout, clearTimeout, setInterval, clearInterval, setImmediate, clearImmediate, queueMicrotask,
    structuredClone, fetch: globalThis.fetch, module: { exports: {} }, exports: {},
  }));
}
let context = fresh();
let typescript = null;

function strip(code) {
  if (!typescript) typescript = require('/usr/local/lib/node_modules/typescript');
  return typescript.transpileModule(code, {
    compilerOptions: { target: typescript.ScriptTarget.ES2022, module: typescript.ModuleKind.CommonJS },
  }).outputText;
}

async function execute(request) {
  const t0 = process.hrtime.bigint();
  capture = { stdout: [], stderr: [], sizes: { stdout: 0, stderr: 0 }, cap: request.cap || 1 << 20, truncated: false };
  let value = null;
  let error = null;
  try {
    const code = request.typescript ? strip(String(request.code)) : String(request.code);
    let result = vm.runInContext(code, context, { filename: `cell-${request.id}`, breakOnSigint: true });
    if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
      const interrupted = new Promise((_, reject) => { interruptAwait = reject; });
      try {
        result = await Promise.race([result, interrupted]);
      } finally {
        interruptAwait = null;
      }
    }
    if (result !== undefined) value = util.inspect(result);
  } catch (err) {
    // Errors thrown in the context are of its own realm: not `instanceof` this one's Error.
    const e = err !== null && typeof err === 'object' && typeof err.message === 'string' ? err : null;
    error = {
      name: e ? String(e.name) : 'Error', message: e ? e.message : util.inspect(err),
      traceback: (e && e.stack ? String(e.stack) : util.inspect(err)).split('\n'),
    };
  }
  const { stdout, stderr, truncated } = capture;
  capture = null;
  say({
    id: request.id, stdout: stdout.join(''), stderr: stderr.join(''), value, outputs: [], error,
    duration: Number(process.hrtime.bigint() - t0) / 1e9, truncated,
  });
}

let queue = Promise.resolve();
const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  let request;
  try {
    request = JSON.parse(line);
  } catch {
    return;
  }
  if (request.op === 'execute') queue = queue.then(() => execute(request));
  else if (request.op === 'restart') {
    queue = queue.then(() => {
      context = fresh();  // a new context: its script scope (top-level let, const, class) starts empty
      say({ id: request.id, restarted: true });
    });
  }
});
lines.on('close', () => queue.then(() => process.exit(0)));
say({ ready: true });
