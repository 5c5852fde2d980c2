/**
 * `tsx bench/profile-summary.ts <file.cpuprofile>… [--top=N] [--inclusive]`: where a Koppel process spent its
 * CPU, from the V8 profiles `npm run bench -- --cpu-prof` writes to bench/results/prof/<run>/.
 * Prints self time by function and by source file (node_modules packages grouped), and the
 * share of idle time; with `--inclusive`, also the time spent in each function including what it
 * called (each sample counted once per function, however deep the recursion), which separates
 * e.g. the API's request handling from the delivery loop.
 */
import fs from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

function where(url: string): string {
  if (!url) return '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 1);
  // The copy of dist/ the benchmark runs Koppel from: bench/results/build/<run>/…
  const snap = /\/bench\/results\/build\/[^/]+\/(.*)$/.exec(url);
  if (snap) return `dist/${snap[1]}`;
  if (url.startsWith('node:')) return url;
  return url.replace(/^file:\/\//, '');
}

function main() {
  const files = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const top = Number(process.argv.find((a) => a.startsWith('--top='))?.slice(6) ?? 25);
  const inclusive = process.argv.includes('--inclusive');
  if (!files.length) {
    process.stderr.write('usage: tsx bench/profile-summary.ts <file.cpuprofile>… [--top=N] [--inclusive]\n');
    process.exit(2);
  }
  for (const file of files) {
    const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const self = new Map<number, number>();
    const samples = p.samples ?? [];
    const deltas = p.timeDeltas ?? [];
    for (let i = 0; i < samples.length; i++) self.set(samples[i], (self.get(samples[i]) ?? 0) + (deltas[i] ?? 0));
    const total = [...self.values()].reduce((a, b) => a + b, 0);
    const byFn = new Map<string, number>();
    const byFile = new Map<string, number>();
    let idle = 0;
    for (const [id, us] of self) {
      const n = byId.get(id)!;
      const name = n.callFrame.functionName || '(anonymous)';
      if (name === '(idle)') {
        idle += us;
        continue;
      }
      const key = `${name}  ${where(n.callFrame.url)}${n.callFrame.url ? ':' + (n.callFrame.lineNumber + 1) : ''}`;
      byFn.set(key, (byFn.get(key) ?? 0) + us);
      const f = name === '(garbage collector)' || name === '(program)' ? name : where(n.callFrame.url);
      byFile.set(f, (byFile.get(f) ?? 0) + us);
    }
    const busy = total - idle;
    const pct = (us: number) => `${((100 * us) / Math.max(1, busy)).toFixed(1).padStart(5)} %`;
    process.stdout.write(`\n${file}\n  wall ${(total / 1e6).toFixed(1)} s, busy ${(busy / 1e6).toFixed(1)} s (${((100 * busy) / Math.max(1, total)).toFixed(0)} % of wall); shares below are of busy time\n`);
    process.stdout.write('\n  by file / package:\n');
    for (const [k, v] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  ${pct(v)}  ${k}\n`);
    process.stdout.write('\n  by function (self time):\n');
    for (const [k, v] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  ${pct(v)}  ${k}\n`);
    if (inclusive) {
      const parent = new Map<number, number>();
      for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
      const key = (n: Node) =>
        `${n.callFrame.functionName || '(anonymous)'}  ${where(n.callFrame.url)}${n.callFrame.url ? ':' + (n.callFrame.lineNumber + 1) : ''}`;
      const byKey = new Map<string, number>();
      for (const [id, us] of self) {
        if (byId.get(id)!.callFrame.functionName === '(idle)') continue;
        const seen = new Set<string>();
        for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
          const k = key(byId.get(at)!);
          if (seen.has(k)) continue;
          seen.add(k);
          byKey.set(k, (byKey.get(k) ?? 0) + us);
        }
      }
      process.stdout.write('\n  by function (inclusive time):\n');
      for (const [k, v] of [...byKey].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  ${pct(v)}  ${k}\n`);
    }
  }
}

main();
