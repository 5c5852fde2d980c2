/** One application: its endpoints with their health, deliveries over time, and (for operators) portal links. */
import { useState, type FormEvent } from 'react';
import { useMutation, useQuery } from '@tanstack/react-query';
import { api, enc, type Application, type Endpoint, type HealthOut, type ListOut } from '../api';
import { DeliveryChart } from '../components/chart';
import { EndpointForm } from '../components/endpoint-form';
import {
  Button, Card, Checkbox, CodeBlock, CopyButton, Dialog, Empty, ErrorBox, HealthBadge, Loading, PageHeader, Table, Td, TextField, formatMs, formatPercent, formatTime,
} from '../components/ui';
import { Link, navigate, useTitle } from '../router';
import { useScope } from '../scope';
import { describeLoadError } from './dashboard-app';

export function ApplicationPage({ appId }: { appId: string }) {
  const scope = useScope();
  const base = scope.appPath(appId);
  const app = useQuery({ queryKey: ['app', appId], queryFn: () => api<Application>('GET', `/api/v1/app/${enc(appId)}`) });
  const endpoints = useQuery({ queryKey: ['endpoints', appId], queryFn: () => api<ListOut<Endpoint>>('GET', `/api/v1/app/${enc(appId)}/endpoint?limit=250`) });
  const health = useQuery({
    queryKey: ['health', appId],
    queryFn: () => api<HealthOut>('GET', `/api/v1/app/${enc(appId)}/endpoint-health?buckets=24`),
    refetchInterval: 15_000,
  });
  const [adding, setAdding] = useState(false);
  const [portal, setPortal] = useState(false);
  useTitle(`${app.data?.name ?? 'Application'} · ${scope.mode === 'portal' ? 'Webhooks' : 'Koppel'}`);

  if (app.error) return <ErrorBox error={describeLoadError(app.error, 'This application')} />;
  const byId = new Map((health.data?.endpoints ?? []).map((h) => [h.endpointId, h]));

  return (
    <>
      <PageHeader
        title={scope.mode === 'portal' ? 'Endpoints' : app.data?.name ?? 'Application'}
        subtitle={scope.mode === 'portal' ? 'Where your webhooks are delivered, and how those deliveries are going.' : <span className="font-mono text-xs">{app.data?.id}{app.data?.uid ? ` · uid ${app.data.uid}` : ''}</span>}
        actions={
          <>
            {scope.mode === 'dashboard' && <Link className="inline-flex min-h-10 items-center rounded-md border border-slate-300 bg-white px-3 text-sm font-medium" href={`${base}/messages`}>Messages</Link>}
            {scope.mode === 'dashboard' && <Link className="inline-flex min-h-10 items-center rounded-md border border-slate-300 bg-white px-3 text-sm font-medium" href={`${base}/sources`}>Sources</Link>}
            {scope.mode === 'dashboard' && scope.canManageEnvironment && <Button onClick={() => setPortal(true)}>Customer portal link</Button>}
            {!scope.readOnly && <Button variant="primary" onClick={() => setAdding(true)}>Add endpoint</Button>}
          </>
        }
      />
      <div className="flex flex-col gap-4">
        <Card title="Endpoints">
          {endpoints.isPending ? <Loading /> : endpoints.error ? <ErrorBox error={endpoints.error} /> : endpoints.data.data.length === 0 ? (
            <Empty>No endpoints yet. {scope.readOnly ? '' : 'Add one to start receiving webhooks.'}</Empty>
          ) : (
            <Table caption="Endpoints and their health over the last 24 hours" head={['Endpoint', 'State', 'Success (24 h)', 'Latency', 'Last error']}>
              {endpoints.data.data.map((ep) => {
                const h = byId.get(ep.id);
                return (
                  <tr key={ep.id}>
                    <Td>
                      <Link className="break-all font-medium text-accent underline-offset-2 hover:underline" href={`${base}/endpoints/${enc(ep.id)}`}>{ep.url}</Link>
                      {ep.description && <div className="text-xs text-slate-500">{ep.description}</div>}
                      <div className="text-xs text-slate-500">{ep.filterTypes ? ep.filterTypes.join(', ') : 'All event types'}</div>
                    </Td>
                    <Td>{h ? <HealthBadge state={h.state} /> : ep.disabled ? <HealthBadge state="disabled" /> : '—'}</Td>
                    <Td className="whitespace-nowrap">{h ? `${formatPercent(h.successRate)}${h.attempts ? ` of ${h.attempts}` : ''}` : '—'}</Td>
                    <Td className="whitespace-nowrap">{formatMs(h?.meanLatencyMs ?? null)}</Td>
                    <Td className="max-w-64 text-xs">
                      {h?.lastError ? (
                        <>
                          <div className="text-red-700">{h.lastError.responseStatusCode ? `HTTP ${h.lastError.responseStatusCode}` : h.lastError.errorClass ?? 'error'}</div>
                          <div className="break-words text-slate-500">{formatTime(h.lastError.timestamp)}</div>
                        </>
                      ) : '—'}
                    </Td>
                  </tr>
                );
              })}
            </Table>
          )}
        </Card>
        <Card title="Deliveries, last 24 hours">
          {health.isPending ? <Loading /> : health.error ? <ErrorBox error={health.error} /> : <DeliveryChart health={health.data} />}
        </Card>
      </div>
      <Dialog open={adding} onClose={() => setAdding(false)} title="Add endpoint" wide>
        {adding && <EndpointForm appId={appId} onDone={(ep) => { setAdding(false); navigate(`${base}/endpoints/${enc(ep.id)}`); }} />}
      </Dialog>
      <Dialog open={portal} onClose={() => setPortal(false)} title="Customer portal link" wide>
        {portal && <PortalLink appId={appId} />}
      </Dialog>
    </>
  );
}

/** Makes a portal link for the customer (POST /api/v1/auth/app-portal-access/{app}). */
function PortalLink({ appId }: { appId: string }) {
  const [hours, setHours] = useState('1');
  const [readOnly, setReadOnly] = useState(false);
  const [name, setName] = useState('');
  const [logoUrl, setLogoUrl] = useState('');
  const [accent, setAccent] = useState('');
  const make = useMutation({
    mutationFn: () => {
      const branding: Record<string, string> = {};
      if (name.trim()) branding.name = name.trim();
      if (logoUrl.trim()) branding.logoUrl = logoUrl.trim();
      if (accent) branding.accentColor = accent;
      return api<{ url: string; token: string }>('POST', `/api/v1/auth/app-portal-access/${enc(appId)}`, {
        expiry: Math.round(Number(hours) * 3600), readOnly, ...(Object.keys(branding).length ? { branding } : {}),
      });
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    make.mutate();
  };
  const embed = make.data ? `<iframe src="${make.data.url}" title="Webhooks" style="width:100%;height:720px;border:0"></iframe>` : '';
  return (
    <form onSubmit={submit} className="flex flex-col gap-4">
      <p className="text-sm text-slate-600">The customer sees only this application: its endpoints, messages, attempts and your event catalogue. Anyone with the link has that access until it expires, so send it over a private channel or embed it in your own signed-in page.</p>
      <TextField label="Valid for (hours)" type="number" min={0.01} max={168} step="any" required value={hours} onChange={(e) => setHours(e.target.value)} />
      <Checkbox label="Read-only (the customer cannot change anything)" checked={readOnly} onChange={(e) => setReadOnly(e.target.checked)} />
      <details className="rounded-md border border-slate-200 p-3">
        <summary className="cursor-pointer text-sm font-medium">Branding (optional)</summary>
        <div className="mt-3 flex flex-col gap-3">
          <TextField label="Name" maxLength={64} value={name} onChange={(e) => setName(e.target.value)} hint="Defaults to KOPPEL_PORTAL_NAME." />
          <TextField label="Logo URL" type="url" value={logoUrl} onChange={(e) => setLogoUrl(e.target.value)} placeholder="https://…/logo.png" hint="An https URL." />
          <TextField label="Accent colour" value={accent} onChange={(e) => setAccent(e.target.value)} placeholder="#4f46e5" pattern="#[0-9a-fA-F]{6}" />
        </div>
      </details>
      <ErrorBox error={make.error} />
      <div className="flex justify-end"><Button type="submit" variant="primary" busy={make.isPending}>Create link</Button></div>
      {make.data && (
        <div className="flex flex-col gap-2">
          <p className="text-sm font-medium">Portal link</p>
          <CodeBlock label="Portal link">{make.data.url}</CodeBlock>
          <div className="flex flex-wrap gap-2">
            <CopyButton text={make.data.url} label="Copy link" />
            <a className="inline-flex min-h-10 items-center rounded-md border border-slate-300 px-3 text-sm font-medium" href={make.data.url} target="_blank" rel="noopener noreferrer">Open portal</a>
          </div>
          <p className="text-sm font-medium">Embed in your site</p>
          <CodeBlock label="Embed code">{embed}</CodeBlock>
          <p className="text-xs text-slate-500">Your site's origin must be in KOPPEL_PORTAL_FRAME_ANCESTORS, or browsers refuse to show the portal in a frame.</p>
        </div>
      )}
    </form>
  );
}
