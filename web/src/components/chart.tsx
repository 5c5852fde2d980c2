/**
 * Deliveries over time: stacked bars (succeeded below, failed above) drawn as SVG. The numbers
 * are also in a visually hidden table, so the chart is readable without sight.
 */
import type { HealthOut } from '../api';

export function DeliveryChart({ health, title = 'Delivery attempts over time' }: { health: HealthOut; title?: string }) {
  const t = health.timeline;
  const max = Math.max(1, ...t.map((b) => b.attempts));
  const W = 600;
  const H = 140;
  const bw = (W - 2) / Math.max(1, t.length);
  const total = t.reduce((s, b) => s + b.attempts, 0);
  const failed = t.reduce((s, b) => s + b.failures, 0);
  const label = (iso: string) => {
    const d = new Date(iso);
    return health.bucketSeconds >= 86400 ? d.toLocaleDateString() : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  };
  return (
    <figure className="m-0">
      <figcaption className="mb-2 flex flex-wrap items-center justify-between gap-2 text-sm">
        <span className="font-medium text-slate-800">{title}</span>
        <span className="text-slate-500">
          {total} attempts, {failed} failed ·{' '}
          <span className="inline-flex items-center gap-1"><span aria-hidden className="inline-block size-2.5 rounded-sm bg-emerald-500" />succeeded</span>{' '}
          <span className="inline-flex items-center gap-1"><span aria-hidden className="inline-block size-2.5 rounded-sm bg-red-500" />failed</span>
        </span>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} className="h-40 w-full" role="img" aria-label={`${title}: ${total} attempts, ${failed} failed`} preserveAspectRatio="none">
        <line x1="0" y1={H} x2={W} y2={H} className="stroke-slate-300" strokeWidth="1" />
        {t.map((b, i) => {
          const hs = (b.successes / max) * (H - 4);
          const hf = (b.failures / max) * (H - 4);
          const x = 1 + i * bw + bw * 0.12;
          const w = bw * 0.76;
          return (
            <g key={b.start}>
              <title>{`${label(b.start)}: ${b.successes} succeeded, ${b.failures} failed`}</title>
              <rect x={x} y={H - hs} width={w} height={hs} className="fill-emerald-500" />
              <rect x={x} y={H - hs - hf} width={w} height={hf} className="fill-red-500" />
            </g>
          );
        })}
      </svg>
      {t.length > 0 && (
        <div className="flex justify-between text-xs text-slate-500" aria-hidden>
          <span>{label(t[0].start)}</span>
          <span>now</span>
        </div>
      )}
      <table className="sr-only">
        <caption>{title}</caption>
        <thead><tr><th scope="col">From</th><th scope="col">Succeeded</th><th scope="col">Failed</th></tr></thead>
        <tbody>{t.map((b) => <tr key={b.start}><td>{label(b.start)}</td><td>{b.successes}</td><td>{b.failures}</td></tr>)}</tbody>
      </table>
    </figure>
  );
}
