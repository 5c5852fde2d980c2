/**
 * A delivery thread: runs an HttpSender for the requests the worker's SenderThreads hand it, and
 * posts the results back. Requests and results travel in batches (one message per event-loop
 * turn each way), so a thread costs the worker a structured clone per delivery, not a message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HttpSender, type SendRequest, type SendResult, type SenderOptions } from './http-sender.js';

export type ToThread = { requests: [number, SendRequest][] } | { close: true };
export type FromThread = { ready: true } | { results: [number, SendResult][] } | { closed: true };

if (parentPort) {
  const port = parentPort;
  const sender = new HttpSender(workerData as SenderOptions);
  let out: [number, SendResult][] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const results = out;
    out = [];
    port.postMessage({ results } satisfies FromThread);
  };
  port.on('message', (m: ToThread) => {
    if ('close' in m) {
      // The worker closes its sender only after its attempts have finished.
      void sender.close().finally(() => {
        if (out.length) flush();
        port.postMessage({ closed: true } satisfies FromThread);
      });
      return;
    }
    for (const [id, req] of m.requests) {
      void sender.send(req).then((result) => {
        out.push([id, result]);
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    }
  });
  port.postMessage({ ready: true } satisfies FromThread);
}
