/**
 * How far V8 lets the heap grow between full garbage collections. Under load Koppel allocates
 * fast and almost everything dies young (request bodies, rows, HTTP exchanges), and V8 then lets
 * the heap grow to several times its live data before collecting: in the 50,000-message burst
 * the live data stayed under 50 MiB while the heap reached 200 MiB and the process 330 MiB.
 * A growth factor of 1.5 kept the process near 210 MiB at no measurable CPU cost (docs/benchmarks.md).
 * An operator's own `--heap-growing-percent` (command line or NODE_OPTIONS) wins.
 */
import v8 from 'node:v8';

export const HEAP_GROWING_PERCENT = 50;

/** The V8 flag to set, or null when the operator chose one. */
export function heapGrowthFlag(execArgv: readonly string[], nodeOptions: string | undefined): string | null {
  const given = [...execArgv, ...(nodeOptions ?? '').split(/\s+/)];
  if (given.some((a) => /^--heap[-_]growing[-_]percent/.test(a))) return null;
  return `--heap-growing-percent=${HEAP_GROWING_PERCENT}`;
}

/** Applies the flag to this process (main.ts imports this module before anything else). */
export function applyHeapGrowth() {
  const flag = heapGrowthFlag(process.execArgv, process.env.NODE_OPTIONS);
  if (flag) v8.setFlagsFromString(flag);
}
