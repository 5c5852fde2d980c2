/**
 * The chart for the docs: a PNG with the burst throughput (scenario a) and the steady-rate
 * latency (scenario b) of every system, medians with min–max whiskers. Pure JS (pureimage), with
 * the DejaVu Sans font from the dejavu-fonts-ttf package.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as PImage from 'pureimage';
import type { Cell, SummaryRow } from './lib/report.js';
import { SYSTEM_SHORT } from './lib/report.js';
import type { SystemId } from './systems/types.js';

const COLORS: Record<SystemId, string> = {
  ceiling: '#9e9e9e',
  bullmq: '#d9534f',
  'koppel-sqlite': '#2f6fdb',
  'koppel-pg': '#2e9e5b',
};
const FONT = 'DejaVuSans';
let fontLoaded = false;

function loadFont() {
  if (fontLoaded) return;
  const require = createRequire(import.meta.url);
  const dir = path.join(path.dirname(require.resolve('dejavu-fonts-ttf/package.json')), 'ttf');
  PImage.registerFont(path.join(dir, 'DejaVuSans.ttf'), FONT).loadSync();
  fontLoaded = true;
}

type Ctx = ReturnType<ReturnType<typeof PImage.make>['getContext']>;

function text(ctx: Ctx, s: string, x: number, y: number, size: number, color = '#222222', align: 'left' | 'center' | 'right' = 'left') {
  ctx.font = `${size}px ${FONT}`;
  ctx.fillStyle = color;
  const w = ctx.measureText(s).width;
  ctx.fillText(s, align === 'center' ? x - w / 2 : align === 'right' ? x - w : x, y);
}

function line(ctx: Ctx, x1: number, y1: number, x2: number, y2: number, color: string, width = 1) {
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  ctx.beginPath();
  ctx.moveTo(x1, y1);
  ctx.lineTo(x2, y2);
  ctx.stroke();
}

function short(v: number): string {
  if (v === 0) return '0';
  if (v >= 10_000) return `${(v / 1000).toFixed(0)}k`;
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
  if (v >= 10) return v.toFixed(0);
  return v.toFixed(1);
}

interface Panel {
  x: number;
  y: number;
  w: number;
  h: number;
  title: string;
  groups: { label: string; cells: Partial<Record<SystemId, Cell | null>> }[];
  log: boolean;
}

function drawPanel(ctx: Ctx, p: Panel, systems: SystemId[]) {
  text(ctx, p.title, p.x - 40, p.y - 16, 14, '#111111');
  const values = p.groups.flatMap((g) => systems.flatMap((s) => (g.cells[s]?.n ? [g.cells[s]!.max, g.cells[s]!.min] : []))).filter((v) => v > 0);
  if (!values.length) {
    text(ctx, 'no data', p.x + p.w / 2, p.y + p.h / 2, 14, '#888888', 'center');
    return;
  }
  let lo = 0;
  let hi = Math.max(...values) * 1.15;
  let ticks: number[] = [];
  if (p.log) {
    lo = Math.pow(10, Math.floor(Math.log10(Math.min(...values))));
    hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...values) * 1.05)));
    for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
  } else {
    const step = Math.pow(10, Math.floor(Math.log10(hi / 4)));
    const nice = [1, 2, 2.5, 5, 10].map((m) => m * step).find((s) => hi / s <= 6) ?? step * 10;
    for (let t = 0; t <= hi; t += nice) ticks.push(t);
    hi = ticks[ticks.length - 1] + nice;
    ticks.push(hi);
  }
  const yOf = (v: number) => (p.log ? p.y + p.h - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * p.h : p.y + p.h - (v / hi) * p.h);
  for (const t of ticks) {
    const y = yOf(t);
    line(ctx, p.x, y, p.x + p.w, y, '#e4e4e4');
    text(ctx, short(t), p.x - 6, y + 4, 11, '#555555', 'right');
  }
  line(ctx, p.x, p.y + p.h, p.x + p.w, p.y + p.h, '#444444');
  const groupW = p.w / p.groups.length;
  const barW = Math.min(46, (groupW * 0.8) / systems.length);
  p.groups.forEach((g, gi) => {
    const gx = p.x + gi * groupW + (groupW - barW * systems.length) / 2;
    systems.forEach((s, si) => {
      const c = g.cells[s];
      const x = gx + si * barW;
      if (!c || !c.n) {
        text(ctx, c ? 'failed' : 'n/a', x + barW / 2, p.y + p.h - 6, 10, '#aa0000', 'center');
        return;
      }
      const top = yOf(c.median);
      ctx.fillStyle = COLORS[s];
      ctx.fillRect(x + 3, top, barW - 6, p.y + p.h - top);
      if (c.n > 1) {
        const cx = x + barW / 2;
        line(ctx, cx, yOf(c.max), cx, yOf(c.min), '#111111', 1);
        line(ctx, cx - 5, yOf(c.max), cx + 5, yOf(c.max), '#111111', 1);
        line(ctx, cx - 5, yOf(c.min), cx + 5, yOf(c.min), '#111111', 1);
      }
      text(ctx, short(c.median), x + barW / 2, Math.min(yOf(c.max), top) - 5, 11, '#222222', 'center');
    });
    text(ctx, g.label, p.x + gi * groupW + groupW / 2, p.y + p.h + 18, 13, '#222222', 'center');
  });
}

export async function drawChart(rows: SummaryRow[], systems: SystemId[], file: string, subtitle: string): Promise<void> {
  loadFont();
  const W = 1200;
  const H = 560;
  const img = PImage.make(W, H);
  const ctx = img.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, W, H);
  text(ctx, 'Koppel benchmark: webhook delivery on one machine, loopback', 30, 32, 20, '#111111');
  text(ctx, subtitle, 30, 54, 12, '#555555');
  const get = (id: string) => rows.find((r) => r.metric === id);
  const a = [
    { label: 'bulk API', row: get('a-bulk.throughput') },
    { label: 'single POSTs', row: get('a-single.throughput') },
  ].filter((g) => g.row);
  const b = [
    { label: 'p50', row: get('b.p50') },
    { label: 'p99', row: get('b.p99') },
    { label: 'max', row: get('b.max') },
  ].filter((g) => g.row);
  drawPanel(ctx, { x: 90, y: 110, w: 460, h: 340, title: 'a. Burst to one endpoint: deliveries/s (higher is better)', groups: a.map((g) => ({ label: g.label, cells: g.row!.cells })), log: false }, systems);
  drawPanel(ctx, { x: 700, y: 110, w: 460, h: 340, title: 'b. Steady rate: create→receipt ms (log scale, lower is better)', groups: b.map((g) => ({ label: g.label, cells: g.row!.cells })), log: true }, systems);
  let lx = 90;
  for (const s of systems) {
    ctx.fillStyle = COLORS[s];
    ctx.fillRect(lx, 505, 16, 16);
    text(ctx, SYSTEM_SHORT[s], lx + 22, 518, 13);
    ctx.font = `13px ${FONT}`;
    lx += 22 + ctx.measureText(SYSTEM_SHORT[s]).width + 30;
  }
  text(ctx, 'bars: median of the runs; whiskers: min–max', W - 30, 518, 11, '#555555', 'right');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await PImage.encodePNGToStream(img, fs.createWriteStream(file));
}
