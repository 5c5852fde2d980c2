/**
 * The code of a sandbox thread, as a string so the same file works under tsc, tsx and vitest
 * (a worker thread cannot load a .ts file by itself). It runs user transformations:
 * - JavaScript in QuickJS (WebAssembly): a fresh runtime per run with a memory limit, a stack
 *   limit and an interrupt deadline; the context gets only ECMAScript built-ins, no host
 *   functions, so there is no `process`, `require`, `fetch`, timers or module loader to reach;
 * - JSONata with its own time and depth guards; compiled expressions are cached.
 * The parent kills the whole thread if a run outlives its deadline anyway (a native loop QuickJS
 * cannot interrupt, or a JSONata expression that allocates without end).
 */
export const THREAD_SOURCE = String.raw`
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const jsonata = require(workerData.jsonataPath);
const { getQuickJS } = require(workerData.quickjsPath);

const compiled = new Map();
/** Compiled once per (expression, time limit); jsonata 2 takes its guards at compile time. */
function compileJsonata(code, timeoutMs) {
  const key = timeoutMs + '\u0000' + code;
  let e = compiled.get(key);
  if (e) { compiled.delete(key); compiled.set(key, e); return e; }
  e = jsonata(code, { timeout: timeoutMs, stack: 500 });
  if (compiled.size >= 500) compiled.delete(compiled.keys().next().value);
  compiled.set(key, e);
  return e;
}

function describe(err) {
  if (err && typeof err === 'object') {
    if (err.code && typeof err.code === 'string' && /^[SDTU]\d{4}$/.test(err.code)) {
      return (err.message || err.code) + (typeof err.position === 'number' ? ' (at character ' + err.position + ')' : '');
    }
    if (typeof err.message === 'string') return (err.name && err.name !== 'Error' ? err.name + ': ' : '') + err.message;
  }
  try { return String(err); } catch { return 'unknown error'; }
}

/** JSON text of a value, or null when it has none (undefined, a function, a bare sequence of nothing). */
function toJsonText(v) {
  if (v === undefined) return null;
  const t = JSON.stringify(v);
  return t === undefined ? null : t;
}

async function runJsonata(job) {
  let expr;
  try { expr = compileJsonata(job.code, job.timeoutMs); } catch (e) { return { ok: false, errorKind: 'syntax', error: describe(e) }; }
  if (job.op === 'check') return { ok: true, output: null };
  let out;
  try {
    out = await expr.evaluate(JSON.parse(job.input), job.bindings || {});
  } catch (e) {
    const code = e && e.code;
    if (code === 'D1012') return { ok: false, errorKind: 'timeout', error: 'the expression ran longer than ' + job.timeoutMs + ' ms' };
    if (code === 'D1011' || (e instanceof RangeError)) return { ok: false, errorKind: 'stack', error: 'the expression recursed too deeply' };
    return { ok: false, errorKind: 'runtime', error: describe(e) };
  }
  const text = toJsonText(out);
  if (text === null) return { ok: false, errorKind: 'output', error: 'the expression produced no value for this input' };
  return { ok: true, output: text };
}

let QuickJS = null;
function runJavascript(job) {
  const rt = QuickJS.newRuntime();
  let vm = null;
  const deadline = Date.now() + job.timeoutMs;
  let result;
  try {
    rt.setMemoryLimit(job.memoryBytes);
    // Far below the real WebAssembly stack: past it QuickJS would corrupt its own heap instead
    // of throwing "stack overflow" (measured: 512 KiB aborts the module, 256 KiB does not).
    rt.setMaxStackSize(256 * 1024);
    rt.setInterruptHandler(() => Date.now() > deadline);
    vm = rt.newContext();
    result = evaluate(vm, job);
  } catch (e) {
    result = { ok: false, errorKind: 'runtime', error: describe(e) };
  }
  try {
    if (vm) vm.dispose();
    rt.dispose();
  } catch (e) {
    // QuickJS could not free what the run left behind; the module may be damaged, so this thread
    // answers and then exits, and the parent starts a clean one.
    parentPort.postMessage({ id: job.id, result });
    process.exit(3);
  }
  return result;
}

function classify(err) {
  const msg = err && typeof err === 'object' && typeof err.message === 'string' ? err.message : String(err);
  if (msg === 'interrupted') return 'timeout';
  if (msg === 'out of memory' || msg === 'string too long' || msg === 'invalid array length') return 'memory';
  if (msg === 'stack overflow') return 'stack';
  return 'runtime';
}

function failure(vm, handle, fallbackKind) {
  const err = vm.dump(handle);
  handle.dispose();
  const kind = classify(err) === 'runtime' ? fallbackKind : classify(err);
  return { ok: false, errorKind: kind, error: kind === 'timeout' ? 'the transformation ran longer than its time limit' : kind === 'memory' ? 'the transformation used more memory than its limit (' + err.message + ')' : describe(err) };
}

function evaluate(vm, job) {
  const def = vm.evalCode(job.code, 'transformation.js');
  if (def.error) return failure(vm, def.error, /SyntaxError/.test(JSON.stringify(vm.dump(def.error))) ? 'syntax' : 'runtime');
  def.value.dispose();
  const handler = vm.getProp(vm.global, 'handler');
  const kind = vm.typeof(handler);
  handler.dispose();
  if (kind !== 'function') return { ok: false, errorKind: 'syntax', error: 'the code must define function handler(webhook) { … return webhook; }' };
  if (job.op === 'check') return { ok: true, output: null };
  const input = vm.newString(job.input);
  vm.setProp(vm.global, '__koppelInput', input);
  input.dispose();
  const run = vm.evalCode('(() => { const out = handler(JSON.parse(globalThis.__koppelInput)); return out === undefined ? undefined : JSON.stringify(out); })()', 'koppel-call.js');
  if (run.error) return failure(vm, run.error, 'runtime');
  const text = vm.typeof(run.value) === 'string' ? vm.getString(run.value) : null;
  run.value.dispose();
  if (text === null) return { ok: false, errorKind: 'output', error: 'handler(webhook) returned nothing; return the (changed) webhook object' };
  return { ok: true, output: text };
}

getQuickJS().then((q) => {
  QuickJS = q;
  parentPort.postMessage({ ready: true });
});

parentPort.on('message', async (job) => {
  let result;
  try {
    result = job.kind === 'javascript' ? runJavascript(job) : await runJsonata(job);
  } catch (e) {
    result = { ok: false, errorKind: 'runtime', error: describe(e) };
  }
  parentPort.postMessage({ id: job.id, result });
});
`;
