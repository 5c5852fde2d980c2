/**
 * The versions of an endpoint (every change to its URL, filters, auth or transformation), each
 * with a field-by-field diff against the version before, and a rollback to any earlier version.
 */
import { useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, enc, type EndpointAuth, type EndpointVersion, type ListOut, type MappingTable } from '../api';
import { Badge, Button, Card, Dialog, Empty, ErrorBox, Loading, Notice, formatTime } from './ui';
import { useScope } from '../scope';

const fieldLabel: Record<string, string> = { url: 'URL', eventTypes: 'Event types', channels: 'Channels', auth: 'Auth', transformation: 'Transformation' };

export function describeAuth(a: (EndpointAuth & { secretChanged?: boolean }) | null | undefined): string {
  if (!a || a.type === 'none') return 'None';
  const what = a.type === 'api-key' ? `API key in header ${a.header}` : a.type === 'bearer' ? 'Bearer token' : `Basic auth as ${a.username}`;
  return a.secretChanged ? `${what} (new secret)` : what;
}

function mappingLines(m: MappingTable): string {
  return m.fields
    .map((f) => {
      const from = f.source ?? (f.expression !== undefined ? `= ${f.expression}` : f.value !== undefined ? `constant ${JSON.stringify(f.value)}` : '');
      const extras = [
        f.values ? `values ${Object.entries(f.values).map(([k, v]) => `${JSON.stringify(k)} → ${JSON.stringify(v)}`).join(', ')}` : '',
        f.default !== undefined ? `default ${JSON.stringify(f.default)}` : '',
        f.note ? `note: ${f.note}` : '',
      ].filter(Boolean);
      return `${from} → ${f.target ?? '(cannot be mapped)'}${extras.length ? `  [${extras.join('; ')}]` : ''}`;
    })
    .join('\n');
}

/** A version's value of one field as plain text (rendered as a text node, never as markup). */
export function describeValue(field: string, v: unknown): string {
  if (v === null || v === undefined) {
    if (field === 'eventTypes' || field === 'channels') return 'All';
    return 'None';
  }
  if (field === 'auth') return describeAuth(v as EndpointAuth);
  if (field === 'transformation') {
    const t = v as NonNullable<EndpointVersion['transformation']>;
    const head = `${t.kind === 'mapping' ? 'Mapping table' : t.kind === 'jsonata' ? 'JSONata' : 'JavaScript'}, ${t.enabled ? 'enabled' : 'disabled'}`;
    const body = t.mapping ? mappingLines(t.mapping) : (t.code ?? t.expression ?? '');
    return body ? `${head}\n${body}` : head;
  }
  if (Array.isArray(v)) return v.join(', ');
  return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}

function Diff({ v }: { v: EndpointVersion }) {
  if (v.changes.length === 0) return <Empty>No change to the URL, filters, auth or transformation.</Empty>;
  return (
    <div className="flex flex-col gap-3" data-testid={`diff-${v.version}`}>
      {v.changes.map((c) => (
        <div key={c.field} className="rounded-md border border-slate-200">
          <h4 className="border-b border-slate-200 bg-slate-50 px-3 py-1.5 text-sm font-medium">{fieldLabel[c.field] ?? c.field}</h4>
          <dl className="grid gap-2 p-3 text-xs sm:grid-cols-2">
            <div className="min-w-0">
              <dt className="mb-1 font-medium text-slate-500">{v.version > 1 ? `Before (version ${v.version - 1})` : 'Before'}</dt>
              <dd className="max-h-64 overflow-auto rounded bg-red-50 p-2 font-mono whitespace-pre-wrap break-all text-red-900"><del className="no-underline">{describeValue(c.field, c.from)}</del></dd>
            </div>
            <div className="min-w-0">
              <dt className="mb-1 font-medium text-slate-500">After (version {v.version})</dt>
              <dd className="max-h-64 overflow-auto rounded bg-emerald-50 p-2 font-mono whitespace-pre-wrap break-all text-emerald-900"><ins className="no-underline">{describeValue(c.field, c.to)}</ins></dd>
            </div>
          </dl>
        </div>
      ))}
    </div>
  );
}

export function EndpointVersions({ appId, endpointId }: { appId: string; endpointId: string }) {
  const scope = useScope();
  const qc = useQueryClient();
  const path = `/api/v1/app/${enc(appId)}/endpoint/${enc(endpointId)}/version`;
  const versions = useQuery({ queryKey: ['endpoint', appId, endpointId, 'versions'], queryFn: () => api<ListOut<EndpointVersion>>('GET', `${path}?limit=50`) });
  const [target, setTarget] = useState<EndpointVersion | null>(null);
  const [done, setDone] = useState<number | null>(null);
  const rollback = useMutation({
    mutationFn: (v: number) => api('POST', `${path}/${v}/rollback`, {}),
    onSuccess: (_r, v) => {
      setTarget(null);
      setDone(v);
      // Everything about this endpoint (URL, auth, transformation, versions) may have changed.
      qc.invalidateQueries({ queryKey: ['endpoint', appId, endpointId] });
      qc.invalidateQueries({ queryKey: ['endpoints', appId] });
    },
  });
  return (
    <Card title="Versions" className="lg:col-span-2">
      <p className="mb-3 text-sm text-slate-600">Every change to the URL, event types, channels, auth or transformation is a version. Rolling back restores those of an earlier version as a new version.</p>
      {done !== null && <div className="mb-3"><Notice>Rolled back to version {done}.</Notice></div>}
      {versions.isPending ? <Loading /> : versions.error ? <ErrorBox error={versions.error} /> : versions.data.data.length === 0 ? <Empty>No versions recorded.</Empty> : (
        <ol className="flex flex-col divide-y divide-slate-100" aria-label="Versions, newest first" data-testid="versions">
          {versions.data.data.map((v) => (
            <li key={v.version} className="py-2" data-testid={`version-${v.version}`}>
              <div className="flex flex-wrap items-center justify-between gap-2">
                <div className="flex min-w-0 flex-wrap items-center gap-2 text-sm">
                  <span className="font-semibold">Version {v.version}</span>
                  {v.current && <Badge tone="green">Current</Badge>}
                  <span className="text-slate-500">{formatTime(v.createdAt)}</span>
                  <span className="text-slate-700">{v.reason}{v.changes.length ? `: ${v.changes.map((c) => fieldLabel[c.field] ?? c.field).join(', ')}` : ''}</span>
                </div>
                {!scope.readOnly && !v.current && <Button onClick={() => { rollback.reset(); setTarget(v); }}>Roll back to version {v.version}</Button>}
              </div>
              <details className="mt-1">
                <summary className="cursor-pointer text-sm text-accent">{v.version > 1 ? `Changes from version ${v.version - 1}` : 'Initial settings'}</summary>
                <div className="mt-2"><Diff v={v} /></div>
              </details>
            </li>
          ))}
        </ol>
      )}
      <Dialog open={target !== null} onClose={() => setTarget(null)} title={target ? `Roll back to version ${target.version}` : 'Roll back'}>
        {target && (
          <>
            <p className="text-sm">Restore the URL, event types, channels, auth and transformation of version {target.version}? This makes a new version; you can roll that back too.</p>
            <dl className="mt-3 grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1 text-sm">
              <dt className="text-slate-500">URL</dt><dd className="break-all">{target.url}</dd>
              <dt className="text-slate-500">Auth</dt><dd className="break-words">{describeAuth(target.auth)}</dd>
              <dt className="text-slate-500">Transformation</dt><dd>{target.transformation ? describeValue('transformation', target.transformation).split('\n')[0] : 'None'}</dd>
            </dl>
            <ErrorBox error={rollback.error} />
            <div className="mt-4 flex justify-end gap-2">
              <Button onClick={() => setTarget(null)}>Cancel</Button>
              <Button variant="primary" busy={rollback.isPending} onClick={() => rollback.mutate(target.version)}>Roll back</Button>
            </div>
          </>
        )}
      </Dialog>
    </Card>
  );
}
