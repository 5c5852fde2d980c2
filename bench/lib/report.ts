/**
 * Turns scenario results into the summary: for every metric and system the median of the runs
 * with min–max, the ratios of each Koppel variant to the baseline and to the ceiling, and the
 * tables (plain text for the terminal, Markdown for the docs).
 */
import type { ListResult, ListQuery } from '../scenarios/list.js';
import { LIST_QUERIES } from '../scenarios/list.js';
import type { ScenarioResult } from '../scenarios/runner.js';
import { SYSTEM_IDS, type SystemId } from '../systems/types.js';

export interface MetricDef {
  id: string;
  scenario: string;
  label: string;
  unit: 'del/s' | 'ms' | 'µs' | 'MiB';
  higherIsBetter: boolean;
  pick: (r: ScenarioResult) => number | null;
}

export const METRICS: MetricDef[] = [
  { id: 'a-bulk.throughput', scenario: 'a-bulk', label: 'a. burst, bulk API', unit: 'del/s', higherIsBetter: true, pick: (r) => r.throughput },
  { id: 'a-single.throughput', scenario: 'a-single', label: 'a. burst, single POSTs', unit: 'del/s', higherIsBetter: true, pick: (r) => r.throughput },
  // CPU of the system's own processes (Koppel's, or the BullMQ worker; not Redis, PostgreSQL or
  // the load generator) per delivery: steadier than throughput on a busy machine, and what an
  // optimisation of Koppel's own code changes.
  { id: 'a-bulk.cpu', scenario: 'a-bulk', label: 'a. bulk: CPU per delivery', unit: 'µs', higherIsBetter: false, pick: cpuPerDelivery },
  { id: 'b.p50', scenario: 'b', label: 'b. steady: p50', unit: 'ms', higherIsBetter: false, pick: (r) => r.latency?.p50 ?? null },
  { id: 'b.p99', scenario: 'b', label: 'b. steady: p99', unit: 'ms', higherIsBetter: false, pick: (r) => r.latency?.p99 ?? null },
  { id: 'b.max', scenario: 'b', label: 'b. steady: max', unit: 'ms', higherIsBetter: false, pick: (r) => r.latency?.max ?? null },
  { id: 'c.throughput', scenario: 'c', label: 'c. fan-out', unit: 'del/s', higherIsBetter: true, pick: (r) => r.throughput },
  { id: 'c.p99', scenario: 'c', label: 'c. fan-out: p99', unit: 'ms', higherIsBetter: false, pick: (r) => r.latency?.p99 ?? null },
  { id: 'd0.p99', scenario: 'd0', label: 'd. healthy p99, alone', unit: 'ms', higherIsBetter: false, pick: (r) => r.latency?.p99 ?? null },
  { id: 'd1.p99', scenario: 'd1', label: 'd. healthy p99, beside timeout', unit: 'ms', higherIsBetter: false, pick: (r) => r.latency?.p99 ?? null },
  { id: 'e.throughput', scenario: 'e', label: 'e. slow receivers', unit: 'del/s', higherIsBetter: true, pick: (r) => r.throughput },
  { id: 'e.p50', scenario: 'e', label: 'e. slow receivers: p50', unit: 'ms', higherIsBetter: false, pick: (r) => r.latency?.p50 ?? null },
  { id: 'e.p99', scenario: 'e', label: 'e. slow receivers: p99', unit: 'ms', higherIsBetter: false, pick: (r) => r.latency?.p99 ?? null },
];

function cpuPerDelivery(r: ScenarioResult): number | null {
  if (!r.processes.length || !r.delivered || r.processes.some((p) => p.cpuSeconds === null)) return null;
  return (r.processes.reduce((t, p) => t + (p.cpuSeconds ?? 0), 0) * 1e6) / r.delivered;
}

export const SYSTEM_SHORT: Record<SystemId, string> = {
  ceiling: 'ceiling',
  bullmq: 'BullMQ',
  'koppel-sqlite': 'Koppel SQLite',
  'koppel-pg': 'Koppel PG',
};

export interface Cell {
  median: number;
  min: number;
  max: number;
  /** Runs that produced a value (failed runs are left out). */
  n: number;
  /** Runs that failed (loss, create errors, bad signatures, crash). */
  failed: number;
}

export interface SummaryRow {
  metric: string;
  label: string;
  unit: string;
  higherIsBetter: boolean;
  cells: Partial<Record<SystemId, Cell | null>>;
  ratios: { name: string; value: number | null }[];
}

export interface MemoryRow {
  system: SystemId;
  role: string;
  cell: Cell;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function cellOf(values: number[], failed: number): Cell | null {
  const v = values.filter((x) => Number.isFinite(x));
  if (!v.length) return failed ? { median: NaN, min: NaN, max: NaN, n: 0, failed } : null;
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length, failed };
}

/** Koppel ÷ baseline and Koppel ÷ ceiling, for the systems present. */
export const RATIOS: { name: string; num: SystemId; den: SystemId }[] = [
  { name: 'SQLite÷BullMQ', num: 'koppel-sqlite', den: 'bullmq' },
  { name: 'PG÷BullMQ', num: 'koppel-pg', den: 'bullmq' },
  { name: 'SQLite÷ceiling', num: 'koppel-sqlite', den: 'ceiling' },
  { name: 'PG÷ceiling', num: 'koppel-pg', den: 'ceiling' },
];

export function summarize(results: ScenarioResult[], systems: SystemId[]): SummaryRow[] {
  const rows: SummaryRow[] = [];
  const ratios = RATIOS.filter((r) => systems.includes(r.num) && systems.includes(r.den));
  for (const m of METRICS) {
    const rs = results.filter((r) => r.scenario === m.scenario);
    if (!rs.length) continue;
    const cells: SummaryRow['cells'] = {};
    for (const s of systems) {
      const mine = rs.filter((r) => r.system === s);
      if (!mine.length) continue;
      const ok = mine.filter((r) => r.ok);
      cells[s] = cellOf(ok.map((r) => m.pick(r)).filter((v): v is number => v !== null), mine.length - ok.length);
    }
    rows.push({
      metric: m.id,
      label: m.label,
      unit: m.unit,
      higherIsBetter: m.higherIsBetter,
      cells,
      ratios: ratios.map((r) => {
        const a = cells[r.num];
        const b = cells[r.den];
        return { name: r.name, value: a && b && a.n && b.n && b.median > 0 ? a.median / b.median : null };
      }),
    });
  }
  return rows;
}

/** Peak RSS of each process of each system: the largest in a run, median over runs. */
export function memoryRows(results: ScenarioResult[]): MemoryRow[] {
  const byKey = new Map<string, Map<number, number>>();
  for (const r of results) {
    for (const p of r.processes) {
      if (p.peakMiB === null) continue;
      const key = `${r.system}\u0000${p.role}`;
      const runs = byKey.get(key) ?? new Map<number, number>();
      runs.set(r.run, Math.max(runs.get(r.run) ?? 0, p.peakMiB));
      byKey.set(key, runs);
    }
  }
  const out: MemoryRow[] = [];
  for (const [key, runs] of byKey) {
    const [system, role] = key.split('\u0000') as [SystemId, string];
    const cell = cellOf([...runs.values()], 0);
    if (cell) out.push({ system, role, cell });
  }
  return out.sort((a, b) => SYSTEM_IDS.indexOf(a.system) - SYSTEM_IDS.indexOf(b.system) || a.role.localeCompare(b.role));
}

export function listRows(list: ListResult): { query: ListQuery; p50: Cell | null; p99: Cell | null }[] {
  return LIST_QUERIES.map((q) => {
    const runs = list.runs.map((r) => r.queries[q]).filter((x) => x && x.count > 0);
    return { query: q, p50: cellOf(runs.map((x) => x.p50), 0), p99: cellOf(runs.map((x) => x.p99), 0) };
  });
}

// ── formatting ────────────────────────────────────────────────────────────────────────────

export function fmtNum(v: number, unit: string): string {
  if (!Number.isFinite(v)) return '–';
  if (unit === 'ms') {
    if (v < 10) return v.toFixed(1);
    return Math.round(v).toLocaleString('en-US');
  }
  return Math.round(v).toLocaleString('en-US');
}

export function fmtCell(c: Cell | null | undefined, unit: string): string {
  if (c === undefined) return '';
  if (c === null) return '–';
  if (c.n === 0) return `FAILED×${c.failed}`;
  const range = c.n > 1 ? ` (${fmtNum(c.min, unit)}–${fmtNum(c.max, unit)})` : '';
  return `${fmtNum(c.median, unit)}${range}${c.failed ? ` !${c.failed} failed` : ''}`;
}

export function fmtRatio(v: number | null): string {
  if (v === null || !Number.isFinite(v)) return '–';
  return v >= 10 ? `${Math.round(v).toLocaleString('en-US')}×` : `${v.toFixed(2)}×`;
}

function table(header: string[], rows: string[][], markdown: boolean, rightAlign: boolean[]): string {
  if (markdown) {
    const esc = (s: string) => s.replace(/\|/g, '\\|');
    return [
      `| ${header.map(esc).join(' | ')} |`,
      `|${header.map((_, i) => (rightAlign[i] ? '---:' : ':---')).join('|')}|`,
      ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
    ].join('\n');
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (rightAlign[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function renderSummary(rows: SummaryRow[], systems: SystemId[], markdown: boolean): string {
  const ratioNames = rows[0]?.ratios.map((r) => r.name) ?? [];
  const header = ['metric', 'unit', ...systems.map((s) => SYSTEM_SHORT[s]), ...ratioNames];
  const body = rows.map((r) => [r.label, r.unit, ...systems.map((s) => fmtCell(r.cells[s], r.unit)), ...r.ratios.map((x) => fmtRatio(x.value))]);
  return table(header, body, markdown, header.map((_, i) => i >= 2));
}

export function renderMemory(rows: MemoryRow[], markdown: boolean): string {
  return table(['system', 'process', 'peak RSS MiB'], rows.map((r) => [SYSTEM_SHORT[r.system], r.role, fmtCell(r.cell, 'MiB')]), markdown, [false, false, true]);
}

export function renderList(list: ListResult, markdown: boolean): string {
  const rows = listRows(list);
  const peak = cellOf(list.runs.map((r) => r.peakMiB).filter((v): v is number => v !== null), 0);
  const labels: Record<ListQuery, string> = {
    newest: 'limit=50 (newest page)',
    event_types: 'limit=50 & event_types=<1 of 10>',
    channel: 'limit=50 & channel=<1 of 100>',
    before: 'limit=50 & before=<random time>',
  };
  const t = table(['GET /api/v1/app/{app}/msg', 'p50 ms', 'p99 ms'], rows.map((r) => [labels[r.query], fmtCell(r.p50, 'ms'), fmtCell(r.p99, 'ms')]), markdown, [false, true, true]);
  const errors = list.runs.flatMap((r) => LIST_QUERIES.filter((q) => r.queries[q]?.errors).map((q) => `run ${r.run} ${q}: ${r.queries[q].errors} errors (${r.queries[q].firstError})`));
  return `${t}\n\n${list.messages.toLocaleString('en-US')} messages seeded in ${list.seedSeconds.toFixed(0)} s, database ${list.dbMiB.toFixed(0)} MiB; Koppel peak RSS while listing: ${fmtCell(peak, 'MiB')} MiB.${errors.length ? '\nErrors: ' + errors.join('; ') : ''}`;
}
