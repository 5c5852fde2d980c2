/**
 * One endpoint: health, settings, signing secret (reveal, copy, rotate), a test event with its
 * result shown live, recent attempts, and recovery of failed messages since a time.
 */
import { useEffect, useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, enc, type Attempt, type Endpoint, type HealthOut, type ListOut, type Message } from '../api';
import { DeliveryChart } from '../components/chart';
import { AuthCard } from '../components/endpoint-auth';
import { EndpointForm, useCatalogue } from '../components/endpoint-form';
import { EndpointVersions } from '../components/endpoint-versions';
import { TransformationCard } from '../components/transformation-editor';
import {
  Badge, Button, Card, CodeBlock, CopyButton, Dialog, Empty, ErrorBox, Field, HealthBadge, Loading, Notice, PageHeader, Select, StatusBadge, Table, Td, TextField,
  formatMs, formatPercent, formatTime, fromLocalInput, prettyText, toLocalInput,
} from '../components/ui';
import { Link, navigate, useTitle } from '../router';
import { useScope } from '../scope';
import { describeLoadError } from './dashboard-app';

export function EndpointPage({ appId, endpointId }: { appId: string; endpointId: string }) {
  const scope = useScope();
  const qc = useQueryClient();
  const base = scope.appPath(appId);
  const path = `/api/v1/app/${enc(appId)}/endpoint/${enc(endpointId)}`;
  const ep = useQuery({ queryKey: ['endpoint', appId, endpointId], queryFn: () => api<Endpoint>('GET', path) });
  const health = useQuery({
    queryKey: ['health', appId, endpointId],
    queryFn: () => api<HealthOut>('GET', `/api/v1/app/${enc(appId)}/endpoint-health?endpoint_id=${enc(endpointId)}&buckets=24`),
    refetchInterval: 15_000,
  });
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);
  useTitle(`Endpoint · ${scope.mode === 'portal' ? 'Webhooks' : 'Koppel'}`);

  const toggle = useMutation({
    mutationFn: (disabled: boolean) => api<Endpoint>('PATCH', path, { disabled }),
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: ['endpoint', appId, endpointId] });
      qc.invalidateQueries({ queryKey: ['health', appId] });
    },
  });
  const remove = useMutation({
    mutationFn: () => api('DELETE', path),
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: ['endpoints', appId] });
      navigate(base);
    },
  });

  if (ep.error) return <ErrorBox error={describeLoadError(ep.error, 'This endpoint')} />;
  if (!ep.data) return <Loading />;
  const e = ep.data;
  const h = health.data?.endpoints[0];
  return (
    <>
      <nav aria-label="Breadcrumb" className="mb-2 text-sm"><Link className="text-accent underline-offset-2 hover:underline" href={base}>← Endpoints</Link></nav>
      <PageHeader
        title={<span className="break-all">{e.url}</span>}
        subtitle={<span className="font-mono text-xs">{e.id}</span>}
        actions={!scope.readOnly && (
          <>
            <Button onClick={() => setEditing(true)}>Edit</Button>
            <Button onClick={() => toggle.mutate(!e.disabled)} busy={toggle.isPending}>{e.disabled ? 'Enable' : 'Disable'}</Button>
            <Button variant="danger" onClick={() => setDeleting(true)}>Delete</Button>
          </>
        )}
      />
      <ErrorBox error={toggle.error} />
      <div className="grid grid-cols-1 gap-4 lg:grid-cols-2">
        <Card title="Health, last 24 hours" className="lg:col-span-2">
          {h ? (
            <div className="flex flex-col gap-4">
              <dl className="grid grid-cols-2 gap-3 text-sm sm:grid-cols-4">
                <div><dt className="text-slate-500">State</dt><dd><HealthBadge state={h.state} /></dd></div>
                <div><dt className="text-slate-500">Success rate</dt><dd className="font-medium">{formatPercent(h.successRate)}</dd></div>
                <div><dt className="text-slate-500">Mean latency</dt><dd className="font-medium">{formatMs(h.meanLatencyMs)}</dd></div>
                <div><dt className="text-slate-500">Attempts</dt><dd className="font-medium">{h.attempts}</dd></div>
              </dl>
              {h.lastError && (
                <div className="text-sm">
                  <p className="text-slate-500">Last error, {formatTime(h.lastError.timestamp)}</p>
                  <p className="break-words text-red-700">{h.lastError.responseStatusCode ? `HTTP ${h.lastError.responseStatusCode}` : h.lastError.errorClass}{h.lastError.errorDetail ? ` — ${h.lastError.errorDetail}` : ''}</p>
                </div>
              )}
              {health.data && <DeliveryChart health={health.data} />}
            </div>
          ) : health.error ? <ErrorBox error={health.error} /> : <Loading />}
        </Card>
        <Card title="Settings">
          <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-2 text-sm">
            <dt className="text-slate-500">Description</dt><dd className="break-words">{e.description || '—'}</dd>
            <dt className="text-slate-500">Event types</dt><dd className="flex flex-wrap gap-1">{e.filterTypes ? e.filterTypes.map((t) => <Badge key={t} tone="blue">{t}</Badge>) : 'All'}</dd>
            <dt className="text-slate-500">Channels</dt><dd className="break-words">{e.channels ? e.channels.join(', ') : 'All'}</dd>
            <dt className="text-slate-500">Rate limit</dt><dd>{e.rateLimit ? `${e.rateLimit}/s` : 'None'}</dd>
            <dt className="text-slate-500">Status</dt><dd>{e.disabled ? 'Disabled' : 'Enabled'}</dd>
            {e.version !== undefined && <><dt className="text-slate-500">Version</dt><dd>{e.version}</dd></>}
          </dl>
          <Headers appId={appId} endpointId={endpointId} />
        </Card>
        <SecretCard path={path} />
        <AuthCard appId={appId} endpointId={endpointId} />
        {!scope.readOnly && <TestEvent appId={appId} endpoint={e} />}
        {!scope.readOnly && <Recover path={path} />}
        <TransformationCard appId={appId} endpointId={endpointId} />
        <EndpointVersions appId={appId} endpointId={endpointId} />
        <Card title="Recent attempts" className="lg:col-span-2"><Attempts appId={appId} endpointId={endpointId} /></Card>
      </div>
      <Dialog open={editing} onClose={() => setEditing(false)} title="Edit endpoint" wide>
        {editing && <EditEndpoint appId={appId} endpoint={e} onDone={() => setEditing(false)} />}
      </Dialog>
      <Dialog open={deleting} onClose={() => setDeleting(false)} title="Delete endpoint">
        <p className="text-sm">Delete this endpoint and its delivery history? Deliveries to it stop at once.</p>
        <ErrorBox error={remove.error} />
        <div className="mt-4 flex justify-end gap-2">
          <Button onClick={() => setDeleting(false)}>Cancel</Button>
          <Button variant="danger" busy={remove.isPending} onClick={() => remove.mutate()}>Delete endpoint</Button>
        </div>
      </Dialog>
    </>
  );
}

function EditEndpoint({ appId, endpoint, onDone }: { appId: string; endpoint: Endpoint; onDone: () => void }) {
  const headers = useQuery({ queryKey: ['headers', appId, endpoint.id], queryFn: () => api<{ headers: Record<string, string>; sensitive: string[] }>('GET', `/api/v1/app/${enc(appId)}/endpoint/${enc(endpoint.id)}/headers`) });
  if (headers.isPending) return <Loading />;
  // Sensitive header values are never sent back; editing would erase them, so only the visible ones are edited.
  const editable = headers.data && headers.data.sensitive.length === 0 ? headers.data.headers : undefined;
  return (
    <>
      {headers.data && headers.data.sensitive.length > 0 && <p className="mb-3 text-xs text-slate-500">This endpoint has secret headers ({headers.data.sensitive.join(', ')}); custom headers are left unchanged here.</p>}
      <EndpointForm appId={appId} endpoint={endpoint} headers={editable} onDone={onDone} />
    </>
  );
}

function Headers({ appId, endpointId }: { appId: string; endpointId: string }) {
  const headers = useQuery({ queryKey: ['headers', appId, endpointId], queryFn: () => api<{ headers: Record<string, string>; sensitive: string[] }>('GET', `/api/v1/app/${enc(appId)}/endpoint/${enc(endpointId)}/headers`) });
  if (!headers.data) return null;
  const entries = Object.entries(headers.data.headers);
  if (entries.length === 0 && headers.data.sensitive.length === 0) return null;
  return (
    <div className="mt-4">
      <h3 className="text-sm font-medium">Custom headers</h3>
      <ul className="mt-1 flex flex-col gap-1 text-xs">
        {entries.map(([k, v]) => <li key={k} className="break-all font-mono"><span className="text-slate-500">{k}:</span> {v}</li>)}
        {headers.data.sensitive.map((k) => <li key={k} className="font-mono"><span className="text-slate-500">{k}:</span> (hidden)</li>)}
      </ul>
    </div>
  );
}

function SecretCard({ path }: { path: string }) {
  const scope = useScope();
  const [shown, setShown] = useState(false);
  const [rotating, setRotating] = useState(false);
  const secret = useQuery({ queryKey: ['secret', path], queryFn: () => api<{ key: string; publicKey?: string }>('GET', `${path}/secret`), enabled: shown, staleTime: 0 });
  const rotate = useMutation({
    mutationFn: () => api('POST', `${path}/secret/rotate`, {}),
    onSuccess: () => {
      setRotating(false);
      setShown(true);
      secret.refetch();
    },
  });
  return (
    <Card title="Signing secret">
      <p className="mb-3 text-sm text-slate-600">Your receiver verifies each delivery's <code>webhook-signature</code> header with this secret.</p>
      {shown ? (
        secret.data ? (
          <div className="flex flex-col gap-2">
            <CodeBlock label="Signing secret">{secret.data.key}</CodeBlock>
            <div className="flex flex-wrap gap-2"><CopyButton text={secret.data.key} /><Button onClick={() => setShown(false)}>Hide</Button></div>
          </div>
        ) : secret.error ? <ErrorBox error={secret.error} /> : <Loading />
      ) : scope.readOnly ? (
        // The server refuses to reveal secrets to read-only portal links.
        <p className="text-sm text-slate-600">Ask for a portal link with write access to see the secret.</p>
      ) : (
        <div className="flex items-center gap-2"><code className="text-sm tracking-widest text-slate-400">whsec_••••••••••••</code><Button onClick={() => setShown(true)}>Reveal</Button></div>
      )}
      {!scope.readOnly && (
        <div className="mt-4 border-t border-slate-100 pt-3">
          <Button variant="danger" onClick={() => setRotating(true)}>Rotate secret</Button>
          {rotate.isSuccess && <div className="mt-2"><Notice>Secret rotated. The previous one keeps signing for 24 hours.</Notice></div>}
        </div>
      )}
      <Dialog open={rotating} onClose={() => setRotating(false)} title="Rotate signing secret">
        <p className="text-sm">A new secret is made now. For 24 hours deliveries carry signatures with both, so you can update your receiver without losing any.</p>
        <ErrorBox error={rotate.error} />
        <div className="mt-4 flex justify-end gap-2">
          <Button onClick={() => setRotating(false)}>Cancel</Button>
          <Button variant="danger" busy={rotate.isPending} onClick={() => rotate.mutate()}>Rotate now</Button>
        </div>
      </Dialog>
    </Card>
  );
}

function TestEvent({ appId, endpoint }: { appId: string; endpoint: Endpoint }) {
  const base = useScope().appPath(appId);
  const catalogue = useCatalogue();
  const [type, setType] = useState('');
  const [msg, setMsg] = useState<Message | null>(null);
  const types = (catalogue.data?.data ?? []).filter((t) => !t.archived);
  useEffect(() => {
    if (!type && types.length) setType(types[0].name);
  }, [type, types]);
  const et = types.find((t) => t.name === type);
  const schema = et?.schemas ? et.schemas[Object.keys(et.schemas).sort((a, b) => Number(b) - Number(a))[0]] : null;
  const example = Array.isArray(schema?.examples) && schema.examples.length ? schema.examples[0] : null;
  const send = useMutation({
    mutationFn: () => api<Message>('POST', `/api/v1/app/${enc(appId)}/endpoint/${enc(endpoint.id)}/send-example`, { eventType: type }),
    onSuccess: (m) => setMsg(m),
  });
  // Poll until the attempt is there; the result then shows without a reload.
  const attempts = useQuery({
    queryKey: ['test-attempts', msg?.id],
    enabled: !!msg,
    queryFn: () => api<ListOut<Attempt>>('GET', `/api/v1/app/${enc(appId)}/attempt/msg/${enc(msg!.id)}?endpoint_id=${enc(endpoint.id)}`),
    refetchInterval: (q) => (q.state.data?.data.length ? false : 1000),
  });
  const a = attempts.data?.data[0];
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setMsg(null);
    send.mutate();
  };
  const selectId = 'test-event-type';
  return (
    <Card title="Send a test event">
      {types.length === 0 ? <Empty>The event catalogue is empty; add event types with examples first.</Empty> : (
        <form onSubmit={submit} className="flex flex-col gap-3">
          <Field id={selectId} label="Event type">
            <Select id={selectId} value={type} onChange={(e) => setType(e.target.value)}>
              {types.map((t) => <option key={t.name} value={t.name}>{t.name}</option>)}
            </Select>
          </Field>
          {example && <CodeBlock label="Example payload">{JSON.stringify(example, null, 2)}</CodeBlock>}
          <ErrorBox error={send.error} />
          <div><Button type="submit" variant="primary" busy={send.isPending}>Send test event</Button></div>
        </form>
      )}
      <div aria-live="polite" className="mt-3 text-sm">
        {msg && !a && <p role="status">Sending {msg.eventType}…</p>}
        {msg && a && (
          <div className="flex flex-col gap-2" data-testid="test-result">
            <p className="flex flex-wrap items-center gap-2">
              <StatusBadge status={a.status} />
              <span>{a.responseStatusCode ? `HTTP ${a.responseStatusCode}` : a.errorClass} in {formatMs(a.responseDurationMs)}</span>
              <Link className="text-accent underline" href={`${base}/messages/${enc(msg.id)}`}>Details</Link>
            </p>
            {a.errorDetail && <p className="break-words text-red-700">{a.errorDetail}</p>}
            {a.response && <CodeBlock label="Response body">{prettyText(a.response)}</CodeBlock>}
          </div>
        )}
      </div>
    </Card>
  );
}

function Recover({ path }: { path: string }) {
  const [since, setSince] = useState(toLocalInput(new Date(Date.now() - 86_400_000)));
  const recover = useMutation({ mutationFn: () => api<{ count?: number }>('POST', `${path}/recover`, { since: fromLocalInput(since) }) });
  return (
    <Card title="Recover failed messages">
      <form onSubmit={(e) => { e.preventDefault(); recover.mutate(); }} className="flex flex-col gap-3">
        <p className="text-sm text-slate-600">Sends every message that failed to this endpoint since a time again, e.g. after an outage of your receiver.</p>
        <TextField label="Failed since" type="datetime-local" required value={since} onChange={(e) => setSince(e.target.value)} />
        <ErrorBox error={recover.error} />
        {recover.data && <Notice>{recover.data.count ?? 0} failed messages are being sent again.</Notice>}
        <div><Button type="submit" busy={recover.isPending}>Recover</Button></div>
      </form>
    </Card>
  );
}

function Attempts({ appId, endpointId }: { appId: string; endpointId: string }) {
  const base = useScope().appPath(appId);
  const attempts = useQuery({
    queryKey: ['attempts', appId, endpointId],
    queryFn: () => api<ListOut<Attempt>>('GET', `/api/v1/app/${enc(appId)}/attempt/endpoint/${enc(endpointId)}?limit=25&with_content=false`),
    refetchInterval: 10_000,
  });
  if (attempts.isPending) return <Loading />;
  if (attempts.error) return <ErrorBox error={attempts.error} />;
  if (attempts.data.data.length === 0) return <Empty>No attempts yet.</Empty>;
  return (
    <Table caption="Recent delivery attempts to this endpoint" head={['Time', 'Message', 'Result', 'Response', 'Duration']}>
      {attempts.data.data.map((a) => (
        <tr key={a.id}>
          <Td className="whitespace-nowrap">{formatTime(a.timestamp)}</Td>
          <Td><Link className="font-mono text-xs text-accent underline" href={`${base}/messages/${enc(a.msgId)}`}>{a.msgId}</Link></Td>
          <Td><StatusBadge status={a.status} /></Td>
          <Td className="whitespace-nowrap">{a.responseStatusCode ? `HTTP ${a.responseStatusCode}` : a.errorClass ?? '—'}</Td>
          <Td className="whitespace-nowrap">{formatMs(a.responseDurationMs)}</Td>
        </tr>
      ))}
    </Table>
  );
}
