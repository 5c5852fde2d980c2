/**
 * Messages of an application with filters (type, channel, time; status per endpoint), and one
 * message: its payload, where it went, every attempt with request headers and response, resend.
 */
import { useId, useState, type FormEvent } from 'react';
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, enc, type Attempt, type Endpoint, type EndpointMessage, type ListOut, type Message, type MessageDestination } from '../api';
import { useCatalogue } from '../components/endpoint-form';
import {
  Badge, Button, Card, CodeBlock, Empty, ErrorBox, Field, Input, Loading, Notice, PageHeader, Select, StatusBadge, Table, Td, formatMs, formatTime, fromLocalInput, prettyText,
} from '../components/ui';
import { Link, useTitle } from '../router';
import { useScope } from '../scope';
import { describeLoadError } from './dashboard-app';

interface Filters {
  eventType: string;
  channel: string;
  after: string;
  before: string;
  endpoint: string;
  status: string;
}
const empty: Filters = { eventType: '', channel: '', after: '', before: '', endpoint: '', status: '' };

export function MessagesPage({ appId }: { appId: string }) {
  const scope = useScope();
  const base = scope.appPath(appId);
  useTitle(`Messages · ${scope.mode === 'portal' ? 'Webhooks' : 'Koppel'}`);
  const [draft, setDraft] = useState<Filters>(empty);
  const [filters, setFilters] = useState<Filters>(empty);
  const catalogue = useCatalogue();
  const endpoints = useQuery({ queryKey: ['endpoints', appId], queryFn: () => api<ListOut<Endpoint>>('GET', `/api/v1/app/${enc(appId)}/endpoint?limit=250`) });

  const query = () => {
    const q = new URLSearchParams({ limit: '50', with_content: 'false' });
    if (filters.eventType) q.set('event_types', filters.eventType);
    if (filters.channel) q.set('channel', filters.channel);
    const after = fromLocalInput(filters.after);
    const before = fromLocalInput(filters.before);
    if (after) q.set('after', after);
    if (before) q.set('before', before);
    if (filters.endpoint && filters.status) q.set('status', filters.status);
    return q;
  };
  const list = useInfiniteQuery({
    queryKey: ['messages', appId, filters],
    initialPageParam: null as string | null,
    queryFn: ({ pageParam }) => {
      const q = query();
      if (pageParam) q.set('iterator', pageParam);
      // The delivery status belongs to a message at one endpoint, so status filters go through that endpoint.
      const path = filters.endpoint ? `/api/v1/app/${enc(appId)}/endpoint/${enc(filters.endpoint)}/msg` : `/api/v1/app/${enc(appId)}/msg`;
      return api<ListOut<Message | EndpointMessage>>('GET', `${path}?${q}`);
    },
    getNextPageParam: (last) => (last.done ? null : last.iterator),
  });
  const rows = list.data?.pages.flatMap((p) => p.data) ?? [];
  const set = (k: keyof Filters) => (e: { target: { value: string } }) => setDraft({ ...draft, [k]: e.target.value });
  const apply = (e: FormEvent) => {
    e.preventDefault();
    setFilters(draft);
  };
  const ids = { type: useId(), channel: useId(), after: useId(), before: useId(), endpoint: useId(), status: useId() };

  return (
    <>
      {scope.mode === 'dashboard' && <nav aria-label="Breadcrumb" className="mb-2 text-sm"><Link className="text-accent underline-offset-2 hover:underline" href={base}>← Application</Link></nav>}
      <PageHeader title="Messages" subtitle="Every event sent to this application, newest first." />
      <Card>
        <form onSubmit={apply} className="mb-4 grid gap-3 sm:grid-cols-2 lg:grid-cols-3" aria-label="Filter messages">
          <Field id={ids.type} label="Event type">
            <Select id={ids.type} value={draft.eventType} onChange={set('eventType')}>
              <option value="">Any</option>
              {(catalogue.data?.data ?? []).map((t) => <option key={t.name} value={t.name}>{t.name}</option>)}
            </Select>
          </Field>
          <Field id={ids.channel} label="Channel"><Input id={ids.channel} value={draft.channel} onChange={set('channel')} placeholder="project-1" pattern="[a-zA-Z0-9\-_.]+" /></Field>
          <Field id={ids.after} label="After"><Input id={ids.after} type="datetime-local" value={draft.after} onChange={set('after')} /></Field>
          <Field id={ids.before} label="Before"><Input id={ids.before} type="datetime-local" value={draft.before} onChange={set('before')} /></Field>
          <Field id={ids.endpoint} label="Endpoint">
            <Select id={ids.endpoint} value={draft.endpoint} onChange={set('endpoint')}>
              <option value="">Any</option>
              {(endpoints.data?.data ?? []).map((e) => <option key={e.id} value={e.id}>{e.url}</option>)}
            </Select>
          </Field>
          <Field id={ids.status} label="Status at that endpoint" hint={draft.endpoint ? undefined : 'Choose an endpoint first.'}>
            <Select id={ids.status} value={draft.status} onChange={set('status')} disabled={!draft.endpoint}>
              <option value="">Any</option>
              <option value="0">Succeeded</option>
              <option value="1">Pending</option>
              <option value="2">Failed</option>
              <option value="3">Sending</option>
            </Select>
          </Field>
          <div className="flex items-end gap-2 sm:col-span-2 lg:col-span-3">
            <Button type="submit" variant="primary">Apply filters</Button>
            <Button onClick={() => { setDraft(empty); setFilters(empty); }}>Clear</Button>
          </div>
        </form>
        {list.isPending ? <Loading /> : list.error ? <ErrorBox error={list.error} /> : rows.length === 0 ? <Empty>No messages match.</Empty> : (
          <Table caption="Messages" head={['Event type', 'Message', ...(filters.endpoint ? ['Status'] : []), 'Channels', 'Time']}>
            {rows.map((m) => (
              <tr key={m.id}>
                <Td><span className="font-mono text-xs">{m.eventType}</span></Td>
                <Td><Link className="font-mono text-xs text-accent underline" href={`${base}/messages/${enc(m.id)}`}>{m.eventId ?? m.id}</Link></Td>
                {filters.endpoint && <Td>{'status' in m ? <StatusBadge status={m.status} /> : '—'}</Td>}
                <Td className="text-xs">{m.channels?.join(', ') ?? '—'}</Td>
                <Td className="whitespace-nowrap">{formatTime(m.timestamp)}</Td>
              </tr>
            ))}
          </Table>
        )}
        {list.hasNextPage && <div className="mt-3"><Button onClick={() => list.fetchNextPage()} busy={list.isFetchingNextPage}>Load more</Button></div>}
      </Card>
    </>
  );
}

export function MessagePage({ appId, msgId }: { appId: string; msgId: string }) {
  const scope = useScope();
  const base = scope.appPath(appId);
  useTitle(`Message · ${scope.mode === 'portal' ? 'Webhooks' : 'Koppel'}`);
  const path = `/api/v1/app/${enc(appId)}/msg/${enc(msgId)}`;
  const msg = useQuery({ queryKey: ['message', appId, msgId], queryFn: () => api<Message>('GET', path) });
  const destinations = useQuery({
    queryKey: ['destinations', appId, msgId],
    queryFn: () => api<ListOut<MessageDestination>>('GET', `${path}/endpoint?limit=250`),
    refetchInterval: 5_000,
  });
  const attempts = useQuery({
    queryKey: ['message-attempts', appId, msgId],
    queryFn: () => api<ListOut<Attempt>>('GET', `/api/v1/app/${enc(appId)}/attempt/msg/${enc(msgId)}?limit=100`),
    refetchInterval: 5_000,
  });
  if (msg.error) return <ErrorBox error={describeLoadError(msg.error, 'This message')} />;
  if (!msg.data) return <Loading />;
  const m = msg.data;
  return (
    <>
      <nav aria-label="Breadcrumb" className="mb-2 text-sm"><Link className="text-accent underline-offset-2 hover:underline" href={`${base}/messages`}>← Messages</Link></nav>
      <PageHeader title={<span className="font-mono">{m.eventType}</span>} subtitle={<span className="font-mono text-xs">{m.id}{m.eventId ? ` · eventId ${m.eventId}` : ''} · {formatTime(m.timestamp)}</span>} />
      <div className="flex flex-col gap-4">
        <Card title="Payload">
          {m.channels && <p className="mb-2 text-sm">Channels: {m.channels.map((c) => <Badge key={c}>{c}</Badge>)}</p>}
          <CodeBlock label="Payload">{JSON.stringify(m.payload, null, 2)}</CodeBlock>
        </Card>
        <Card title="Endpoints">
          {destinations.isPending ? <Loading /> : destinations.error ? <ErrorBox error={destinations.error} /> : destinations.data.data.length === 0 ? <Empty>No endpoint subscribed to this message.</Empty> : (
            <ul className="flex flex-col divide-y divide-slate-100">
              {destinations.data.data.map((d) => <Destination key={d.id} appId={appId} msgId={m.id} d={d} />)}
            </ul>
          )}
        </Card>
        <Card title="Attempts">
          {attempts.isPending ? <Loading /> : attempts.error ? <ErrorBox error={attempts.error} /> : attempts.data.data.length === 0 ? <Empty>No attempts yet.</Empty> : (
            <ol className="flex flex-col gap-2">
              {attempts.data.data.map((a) => <AttemptItem key={a.id} a={a} />)}
            </ol>
          )}
        </Card>
      </div>
    </>
  );
}

function Destination({ appId, msgId, d }: { appId: string; msgId: string; d: MessageDestination }) {
  const scope = useScope();
  const qc = useQueryClient();
  const resend = useMutation({
    mutationFn: () => api('POST', `/api/v1/app/${enc(appId)}/msg/${enc(msgId)}/endpoint/${enc(d.id)}/resend`),
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: ['destinations', appId, msgId] });
      qc.invalidateQueries({ queryKey: ['message-attempts', appId, msgId] });
    },
  });
  return (
    <li className="flex flex-wrap items-center justify-between gap-2 py-2">
      <div className="min-w-0">
        <Link className="break-all text-sm text-accent underline-offset-2 hover:underline" href={`${scope.appPath(appId)}/endpoints/${enc(d.id)}`}>{d.url}</Link>
        <div className="flex flex-wrap items-center gap-2 text-xs text-slate-500"><StatusBadge status={d.status} />{d.nextAttempt && <span>next attempt {formatTime(d.nextAttempt)}</span>}</div>
      </div>
      {!scope.readOnly && (
        <div className="flex items-center gap-2">
          {resend.isSuccess && <Notice>Resent.</Notice>}
          <ErrorBox error={resend.error} />
          <Button onClick={() => resend.mutate()} busy={resend.isPending} aria-label={`Resend to ${d.url}`}>Resend</Button>
        </div>
      )}
    </li>
  );
}

function AttemptItem({ a }: { a: Attempt }) {
  const headers = Object.entries(a.requestHeaders);
  return (
    <li className="rounded-md border border-slate-200">
      <details>
        <summary className="flex cursor-pointer flex-wrap items-center gap-2 px-3 py-2 text-sm">
          <StatusBadge status={a.status} />
          <span className="font-medium">{a.responseStatusCode ? `HTTP ${a.responseStatusCode}` : a.errorClass ?? 'no response'}</span>
          <span className="text-slate-500">{formatMs(a.responseDurationMs)}</span>
          <span className="text-slate-500">{formatTime(a.timestamp)}</span>
          {a.triggerType === 1 && <Badge tone="blue">manual</Badge>}
          <span className="w-full break-all text-xs text-slate-500 sm:w-auto">{a.url}</span>
        </summary>
        <div className="flex flex-col gap-3 border-t border-slate-200 p-3">
          {a.errorDetail && <p className="break-words text-sm text-red-700">{a.errorDetail}</p>}
          <div>
            <h3 className="mb-1 text-xs font-semibold uppercase text-slate-500">Request headers</h3>
            <Table caption="Request headers" head={['Header', 'Value']}>
              {headers.map(([k, v]) => (
                <tr key={k}><Td className="font-mono text-xs">{k}</Td><Td className="break-all font-mono text-xs">{v}</Td></tr>
              ))}
            </Table>
          </div>
          <div>
            <h3 className="mb-1 text-xs font-semibold uppercase text-slate-500">Response body{a.responseTruncated ? ' (truncated)' : ''}</h3>
            {a.response ? <CodeBlock label="Response body">{prettyText(a.response)}</CodeBlock> : <Empty>Empty.</Empty>}
          </div>
        </div>
      </details>
    </li>
  );
}
