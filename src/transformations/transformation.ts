/**
 * An endpoint's transformation as stored (JSON in `endpoints.transformation`) and as it runs.
 * Three kinds, one runtime each:
 * - `javascript`: Svix-style `function handler(webhook) { …; return webhook; }` where webhook is
 *   `{method, url, eventType, messageId, payload}`; the returned `payload` is what is sent;
 * - `jsonata`: an expression over the payload (`$eventType` and `$messageId` are bound); its
 *   value is what is sent;
 * - `mapping`: a mapping table (mapping.ts), compiled to JSONata when saved.
 */
import type { Sandbox, SandboxLimits, RunResult } from './sandbox.js';
import { compileMapping, type MappingTable } from './mapping.js';

export type TransformationKind = 'javascript' | 'jsonata' | 'mapping';

export interface StoredTransformation {
  kind: TransformationKind;
  enabled: boolean;
  /** JavaScript source, JSONata expression, or (for a mapping) its compiled JSONata. */
  code: string;
  mapping: MappingTable | null;
  /** JSON Schema the output should satisfy (for the preview's missing-field report). */
  targetSchema: Record<string, unknown> | null;
  updatedAt: number;
}

/** What runs: the sandbox kind and its code. */
export interface Runnable {
  kind: 'javascript' | 'jsonata';
  code: string;
}

export function parseTransformation(text: string | null): StoredTransformation | null {
  return text === null ? null : (JSON.parse(text) as StoredTransformation);
}

export function runnableOf(t: Pick<StoredTransformation, 'kind' | 'code'>): Runnable {
  return { kind: t.kind === 'javascript' ? 'javascript' : 'jsonata', code: t.code };
}

/** Builds the stored form of a transformation from its parts (mapping compiled here). */
export function buildTransformation(kind: TransformationKind, source: { code?: string; expression?: string; mapping?: MappingTable }, enabled: boolean, targetSchema: Record<string, unknown> | null, now: number): StoredTransformation {
  const code = kind === 'javascript' ? source.code! : kind === 'jsonata' ? source.expression! : compileMapping(source.mapping!);
  return { kind, enabled, code, mapping: kind === 'mapping' ? source.mapping! : null, targetSchema, updatedAt: now };
}

export interface MessageContext {
  url: string;
  eventType: string;
  messageId: string;
}

/**
 * Applies a transformation to one payload; the result's output is the new payload. Failures are
 * values (syntax, runtime, timeout, memory, output): a delivery attempt records them as its error.
 */
export async function applyTransformation(sandbox: Sandbox, r: Runnable, payload: unknown, m: MessageContext, limits: SandboxLimits): Promise<RunResult> {
  if (r.kind === 'jsonata') return sandbox.run('jsonata', r.code, payload, limits, { eventType: m.eventType, messageId: m.messageId });
  const res = await sandbox.run('javascript', r.code, { method: 'POST', url: m.url, eventType: m.eventType, messageId: m.messageId, payload }, limits);
  if (!res.ok) return res;
  const out = res.output as { payload?: unknown } | null;
  if (out === null || typeof out !== 'object' || !('payload' in out) || out.payload === undefined) {
    return { ok: false, errorKind: 'output', error: 'handler(webhook) must return the webhook object with a payload', durationMs: res.durationMs };
  }
  return { ok: true, output: out.payload, durationMs: res.durationMs };
}
