/** Starts the receiver child process and talks to it over IPC, one request at a time. */
import path from 'node:path';
import { ROOT, startProcess, stopProcess, tsxArgs, type Child } from './proc.js';
import type { EndpointSpec, GroupSummary, ReceiverReply, ReceiverRequest } from './receiver-protocol.js';

export interface Receiver {
  child: Child;
  /** One URL per endpoint spec, in order. */
  urls: string[];
  status(): Promise<Extract<ReceiverReply, { type: 'status' }>>;
  unhang(): Promise<void>;
  collect(): Promise<GroupSummary[]>;
  stop(): Promise<void>;
}

export async function startReceiver(name: string, endpoints: EndpointSpec[]): Promise<Receiver> {
  const child = startProcess(name, process.execPath, tsxArgs(path.join(ROOT, 'bench', 'receiver.ts')), { ipc: true });
  const waiting: ((m: ReceiverReply) => void)[] = [];
  let started!: () => void;
  const startedP = new Promise<void>((r) => (started = r));
  child.proc.on('message', (raw) => {
    const m = raw as ReceiverReply;
    if (m.type === 'started') return started();
    waiting.shift()?.(m);
  });
  let chain: Promise<unknown> = Promise.resolve();
  const ask = <T extends ReceiverReply>(req: ReceiverRequest, timeoutMs = 30_000): Promise<T> => {
    const p = chain.then(
      () =>
        new Promise<T>((resolve, reject) => {
          if (!child.isAlive()) return reject(new Error(`receiver ${name} is not running`));
          const t = setTimeout(() => reject(new Error(`receiver ${name} did not answer ${req.type} within ${timeoutMs} ms`)), timeoutMs);
          waiting.push((m) => {
            clearTimeout(t);
            resolve(m as T);
          });
          child.proc.send(req);
        }),
    );
    chain = p.catch(() => {});
    return p;
  };
  const ok = await Promise.race([startedP.then(() => true), child.exited.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(false), 30_000))]);
  if (!ok) {
    await stopProcess(child, 1000);
    throw new Error(`receiver ${name} did not start (see bench/results/logs/${name}.log)`);
  }
  const ready = await ask<Extract<ReceiverReply, { type: 'ready' }>>({ type: 'setup', endpoints });
  return {
    child,
    urls: ready.ports.map((p) => `http://127.0.0.1:${p}/`),
    status: () => ask({ type: 'status' }),
    unhang: async () => {
      await ask({ type: 'unhang' });
    },
    collect: async () => (await ask<Extract<ReceiverReply, { type: 'summary' }>>({ type: 'collect' })).groups,
    stop: async () => {
      if (child.isAlive()) {
        await ask({ type: 'close' }, 10_000).catch(() => {});
        await stopProcess(child, 5_000);
      }
    },
  };
}
