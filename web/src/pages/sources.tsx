/**
 * Sources of an application: URLs that receive one provider's webhooks (Stripe, GitHub, Shopify,
 * WooCommerce, Slack, Standard Webhooks / Svix or a generic HMAC scheme), verify them and turn them
 * into messages. The list, a create/edit form with the provider's options, and each source's event
 * log (accepted, duplicate, rejected with the reason, ignored).
 */
import { useId, useState, type FormEvent } from 'react';
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { PROVIDERS, api, enc, type Dedupe, type HmacSettings, type ListOut, type Provider, type Source, type SourceEvent, type SourceEventStatus } from '../api';
import {
  Badge, Button, Card, Checkbox, CodeBlock, CopyButton, Dialog, Empty, ErrorBox, Field, Loading, PageHeader, Select, Table, Td, TextField, Textarea,
  formatTime, prettyText,
} from '../components/ui';
import { Link, navigate, useTitle } from '../router';
import { useScope } from '../scope';
import { describeLoadError } from './dashboard-app';

export const providerLabel: Record<Provider, string> = {
  stripe: 'Stripe',
  github: 'GitHub',
  shopify: 'Shopify',
  woocommerce: 'WooCommerce',
  slack: 'Slack',
  'standard-webhooks': 'Standard Webhooks / Svix',
  hmac: 'Generic HMAC',
};

const secretHint: Record<Provider, string> = {
  stripe: "The endpoint's signing secret from the Stripe dashboard (whsec_…).",
  github: 'The secret you entered in the webhook settings on GitHub.',
  shopify: "Your app's client secret (or the webhook signing secret shown in the Shopify admin).",
  woocommerce: 'The secret set on the webhook in WooCommerce → Settings → Advanced → Webhooks.',
  slack: "Your Slack app's signing secret.",
  'standard-webhooks': 'The whsec_… secret (or a whpk_… public key for Ed25519 signatures).',
  hmac: 'The shared secret the sender signs with.',
};

const statusTone = { accepted: 'green', duplicate: 'blue', rejected: 'red', ignored: 'slate' } as const;
export function SourceEventBadge({ status }: { status: SourceEventStatus }) {
  return <Badge tone={statusTone[status]}>{status[0].toUpperCase() + status.slice(1)}</Badge>;
}

const sourcesPath = (appId: string) => `/api/v1/app/${enc(appId)}/source`;

export function SourcesPage({ appId }: { appId: string }) {
  const scope = useScope();
  const base = scope.appPath(appId);
  const [adding, setAdding] = useState(false);
  useTitle(`Sources · ${scope.mode === 'portal' ? 'Webhooks' : 'Koppel'}`);
  const list = useQuery({ queryKey: ['sources', appId], queryFn: () => api<ListOut<Source>>('GET', `${sourcesPath(appId)}?limit=250`) });
  if (list.error) return <ErrorBox error={describeLoadError(list.error, 'This application')} />;
  return (
    <>
      {scope.mode === 'dashboard' && <nav aria-label="Breadcrumb" className="mb-2 text-sm"><Link className="text-accent underline-offset-2 hover:underline" href={base}>← Application</Link></nav>}
      <PageHeader
        title="Sources"
        subtitle="URLs that receive a provider's webhooks, check their signatures and turn them into messages."
        actions={!scope.readOnly && <Button variant="primary" onClick={() => setAdding(true)}>New source</Button>}
      />
      <Card>
        {list.isPending ? <Loading /> : list.data.data.length === 0 ? (
          <Empty>No sources yet.{scope.readOnly ? '' : ' Create one and give its URL to the provider (your webshop, payment provider, …).'}</Empty>
        ) : (
          <Table caption="Sources of this application" head={['Source', 'Provider', 'Status', 'URL for the provider']}>
            {list.data.data.map((s) => (
              <tr key={s.id}>
                <Td>
                  <Link className="break-words font-medium text-accent underline-offset-2 hover:underline" href={`${base}/sources/${enc(s.id)}`}>{s.name}</Link>
                  {s.description && <div className="text-xs text-slate-500">{s.description}</div>}
                </Td>
                <Td className="whitespace-nowrap">{providerLabel[s.provider] ?? s.provider}</Td>
                <Td>{s.disabled ? <Badge>Disabled</Badge> : <Badge tone="green">Enabled</Badge>}</Td>
                <Td>
                  <div className="flex flex-wrap items-center gap-2">
                    <code className="break-all text-xs">{s.ingestUrl}</code>
                    <CopyButton text={s.ingestUrl} label="Copy URL" />
                  </div>
                </Td>
              </tr>
            ))}
          </Table>
        )}
      </Card>
      <Dialog open={adding} onClose={() => setAdding(false)} title="New source" wide>
        {adding && <SourceForm appId={appId} onDone={(s) => { setAdding(false); navigate(`${base}/sources/${enc(s.id)}`); }} />}
      </Dialog>
    </>
  );
}

export function SourcePage({ appId, sourceId }: { appId: string; sourceId: string }) {
  const scope = useScope();
  const qc = useQueryClient();
  const base = scope.appPath(appId);
  const path = `${sourcesPath(appId)}/${enc(sourceId)}`;
  const src = useQuery({ queryKey: ['source', appId, sourceId], queryFn: () => api<Source>('GET', path) });
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);
  useTitle(`${src.data?.name ?? 'Source'} · ${scope.mode === 'portal' ? 'Webhooks' : 'Koppel'}`);
  const remove = useMutation({
    mutationFn: () => api('DELETE', path),
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: ['sources', appId] });
      navigate(`${base}/sources`);
    },
  });
  if (src.error) return <ErrorBox error={describeLoadError(src.error, 'This source')} />;
  if (!src.data) return <Loading />;
  const s = src.data;
  return (
    <>
      <nav aria-label="Breadcrumb" className="mb-2 text-sm"><Link className="text-accent underline-offset-2 hover:underline" href={`${base}/sources`}>← Sources</Link></nav>
      <PageHeader
        title={s.name}
        subtitle={<span className="font-mono text-xs">{s.id}{s.uid ? ` · uid ${s.uid}` : ''}</span>}
        actions={!scope.readOnly && (
          <>
            <Button onClick={() => setEditing(true)}>Edit</Button>
            <Button variant="danger" onClick={() => setDeleting(true)}>Delete</Button>
          </>
        )}
      />
      <div className="grid grid-cols-1 gap-4 lg:grid-cols-2">
        <Card title="URL for the provider">
          <p className="mb-2 text-sm text-slate-600">Enter this URL as the webhook address at {providerLabel[s.provider] ?? s.provider}. Requests with a wrong or missing signature are refused with 401 and logged below.</p>
          <CodeBlock label="Source URL">{s.ingestUrl}</CodeBlock>
          <div className="mt-2"><CopyButton text={s.ingestUrl} label="Copy URL" /></div>
        </Card>
        <Card title="Settings">
          <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-2 text-sm">
            <dt className="text-slate-500">Provider</dt><dd>{providerLabel[s.provider] ?? s.provider}</dd>
            <dt className="text-slate-500">Status</dt><dd>{s.disabled ? 'Disabled (answers 403)' : 'Enabled'}</dd>
            {s.description && <><dt className="text-slate-500">Description</dt><dd className="break-words">{s.description}</dd></>}
            {s.hmac && (
              <>
                <dt className="text-slate-500">Signature</dt>
                <dd className="break-words">{s.hmac.algorithm.toUpperCase()}, {s.hmac.encoding}, in <code>{s.hmac.header}</code>{s.hmac.prefix ? <> after <code>{s.hmac.prefix}</code></> : null}</dd>
                {s.hmac.timestampHeader && <><dt className="text-slate-500">Timestamp header</dt><dd><code>{s.hmac.timestampHeader}</code></dd></>}
                {s.hmac.idHeader && <><dt className="text-slate-500">Delivery id header</dt><dd><code>{s.hmac.idHeader}</code></dd></>}
                <dt className="text-slate-500">Signed content</dt><dd className="break-all"><code>{s.hmac.signedContent ?? (s.hmac.timestampHeader ? '{timestamp}.{body}' : '{body}')}</code></dd>
              </>
            )}
            <dt className="text-slate-500">Timestamp tolerance</dt><dd>{s.toleranceSeconds} s</dd>
            <dt className="text-slate-500">Event type</dt><dd className="break-all">{s.eventTypeExpression ? <code>{s.eventTypeExpression}</code> : "The provider's"}{s.defaultEventType ? ` (default ${s.defaultEventType})` : ''}</dd>
            <dt className="text-slate-500">De-duplication</dt><dd className="break-all">{s.dedupe.by === 'none' ? 'None' : <>By {s.dedupe.by}{s.dedupe.expression ? <> (<code>{s.dedupe.expression}</code>)</> : null}, within {s.dedupe.windowSeconds} s</>}</dd>
            <dt className="text-slate-500">Channels</dt><dd className="break-words">{s.channels ? s.channels.join(', ') : 'None'}</dd>
          </dl>
        </Card>
        <Card title="Event log" className="lg:col-span-2"><SourceLog appId={appId} sourceId={s.id} /></Card>
      </div>
      <Dialog open={editing} onClose={() => setEditing(false)} title="Edit source" wide>
        {editing && <SourceForm appId={appId} source={s} onDone={() => setEditing(false)} />}
      </Dialog>
      <Dialog open={deleting} onClose={() => setDeleting(false)} title="Delete source">
        <p className="text-sm">Delete this source and its event log? Its URL stops accepting webhooks at once (the provider gets 404). Messages it already made stay.</p>
        <ErrorBox error={remove.error} />
        <div className="mt-4 flex justify-end gap-2">
          <Button onClick={() => setDeleting(false)}>Cancel</Button>
          <Button variant="danger" busy={remove.isPending} onClick={() => remove.mutate()}>Delete source</Button>
        </div>
      </Dialog>
    </>
  );
}

function SourceLog({ appId, sourceId }: { appId: string; sourceId: string }) {
  const base = useScope().appPath(appId);
  const [status, setStatus] = useState<'' | SourceEventStatus>('');
  const filterId = useId();
  const log = useInfiniteQuery({
    queryKey: ['source-events', appId, sourceId, status],
    initialPageParam: null as string | null,
    queryFn: ({ pageParam }) => api<ListOut<SourceEvent>>('GET', `${sourcesPath(appId)}/${enc(sourceId)}/event?limit=50${status ? `&status=${status}` : ''}${pageParam ? `&iterator=${enc(pageParam)}` : ''}`),
    getNextPageParam: (last) => (last.done || !last.iterator ? undefined : last.iterator),
    refetchInterval: 5_000,
  });
  const events = log.data?.pages.flatMap((p) => p.data) ?? [];
  return (
    <div className="flex flex-col gap-3">
      <div className="max-w-xs">
        <Field id={filterId} label="Status">
          <Select id={filterId} value={status} onChange={(e) => setStatus(e.target.value as '' | SourceEventStatus)}>
            <option value="">All</option>
            <option value="accepted">Accepted</option>
            <option value="duplicate">Duplicate</option>
            <option value="rejected">Rejected</option>
            <option value="ignored">Ignored</option>
          </Select>
        </Field>
      </div>
      {log.isPending ? <Loading /> : log.error ? <ErrorBox error={log.error} /> : events.length === 0 ? (
        <Empty>{status ? `No ${status} requests.` : 'No requests received yet. Send a test webhook from the provider.'}</Empty>
      ) : (
        <ul className="flex flex-col divide-y divide-slate-100" aria-label="Requests received" data-testid="source-log">
          {events.map((e) => (
            <li key={e.id} className="py-2">
              <details>
                <summary className="flex cursor-pointer flex-wrap items-center gap-x-3 gap-y-1 text-sm">
                  <SourceEventBadge status={e.status} />
                  <span className="whitespace-nowrap text-slate-500">{formatTime(e.timestamp)}</span>
                  {e.eventType && <span className="break-all font-mono text-xs">{e.eventType}</span>}
                  {e.reason && <span className="break-words text-slate-700">{e.reason}</span>}
                </summary>
                <div className="mt-2 flex flex-col gap-2 text-sm">
                  <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1">
                    <dt className="text-slate-500">Event id</dt><dd className="break-all font-mono text-xs">{e.id}</dd>
                    <dt className="text-slate-500">Size</dt><dd>{e.bodyBytes} bytes</dd>
                    {e.dedupeKey && <><dt className="text-slate-500">De-duplication key</dt><dd className="break-all font-mono text-xs">{e.dedupeKey}</dd></>}
                    {e.messageId && <><dt className="text-slate-500">Message</dt><dd><Link className="break-all font-mono text-xs text-accent underline" href={`${base}/messages/${enc(e.messageId)}`}>{e.messageId}</Link></dd></>}
                  </dl>
                  <p className="text-xs font-medium text-slate-500">Headers</p>
                  <CodeBlock label={`Headers of ${e.id}`}>{Object.entries(e.headers).map(([k, v]) => `${k}: ${v}`).join('\n')}</CodeBlock>
                  <p className="text-xs font-medium text-slate-500">Body</p>
                  {e.payload !== null ? <CodeBlock label={`Body of ${e.id}`}>{prettyText(e.payload)}</CodeBlock> : <Empty>Not kept: the body of an unverified request is not stored.</Empty>}
                </div>
              </details>
            </li>
          ))}
        </ul>
      )}
      {log.hasNextPage && <div><Button busy={log.isFetchingNextPage} onClick={() => log.fetchNextPage()}>Load older requests</Button></div>}
    </div>
  );
}

const orNull = (v: string) => (v.trim() ? v.trim() : null);

export function SourceForm({ appId, source, onDone }: { appId: string; source?: Source; onDone: (s: Source) => void }) {
  const qc = useQueryClient();
  const [name, setName] = useState(source?.name ?? '');
  const [description, setDescription] = useState(source?.description ?? '');
  const [provider, setProvider] = useState<Provider>(source?.provider ?? 'stripe');
  const [secret, setSecret] = useState('');
  const [hmac, setHmac] = useState<Required<{ [K in keyof HmacSettings]: string }>>({
    header: source?.hmac?.header ?? '',
    algorithm: source?.hmac?.algorithm ?? 'sha256',
    encoding: source?.hmac?.encoding ?? 'hex',
    prefix: source?.hmac?.prefix ?? '',
    timestampHeader: source?.hmac?.timestampHeader ?? '',
    idHeader: source?.hmac?.idHeader ?? '',
    signedContent: source?.hmac?.signedContent ?? '',
  });
  const [tolerance, setTolerance] = useState(String(source?.toleranceSeconds ?? 300));
  const [typeBy, setTypeBy] = useState<'provider' | 'expression'>(source?.eventTypeExpression ? 'expression' : 'provider');
  const [typeExpr, setTypeExpr] = useState(source?.eventTypeExpression ?? '');
  const [defaultType, setDefaultType] = useState(source?.defaultEventType ?? '');
  const [dedupeBy, setDedupeBy] = useState<Dedupe['by']>(source?.dedupe.by ?? 'provider');
  const [dedupeExpr, setDedupeExpr] = useState(source?.dedupe.expression ?? '');
  const [dedupeWindow, setDedupeWindow] = useState(String(source?.dedupe.windowSeconds ?? 86400));
  const [channels, setChannels] = useState((source?.channels ?? []).join(', '));
  const [enabled, setEnabled] = useState(!source?.disabled);
  const providerChanged = !!source && provider !== source.provider;
  const needSecret = !source || providerChanged;
  const ids = { provider: useId(), algorithm: useId(), encoding: useId(), typeBy: useId(), typeExpr: useId(), dedupeBy: useId(), dedupeExpr: useId() };
  const setH = (k: keyof HmacSettings) => (e: { target: { value: string } }) => setHmac({ ...hmac, [k]: e.target.value });

  const save = useMutation({
    mutationFn: () => {
      const ch = channels.split(',').map((c) => c.trim()).filter(Boolean);
      const body: Record<string, unknown> = {
        name: name.trim(),
        description,
        provider,
        hmac: provider === 'hmac'
          ? {
              header: hmac.header.trim(), algorithm: hmac.algorithm, encoding: hmac.encoding, prefix: hmac.prefix ? hmac.prefix : null,
              timestampHeader: orNull(hmac.timestampHeader), idHeader: orNull(hmac.idHeader), signedContent: orNull(hmac.signedContent),
            }
          : null,
        toleranceSeconds: Number(tolerance),
        eventTypeExpression: typeBy === 'expression' ? orNull(typeExpr) : null,
        defaultEventType: orNull(defaultType),
        dedupe: { by: dedupeBy, expression: dedupeBy === 'expression' ? orNull(dedupeExpr) : null, windowSeconds: Number(dedupeWindow) },
        channels: ch.length ? ch : null,
        disabled: !enabled,
      };
      if (secret) body.secret = secret;
      return source
        ? api<Source>('PATCH', `${sourcesPath(appId)}/${enc(source.id)}`, body)
        : api<Source>('POST', sourcesPath(appId), body);
    },
    onSuccess: (s) => {
      setSecret('');
      qc.invalidateQueries({ queryKey: ['sources', appId] });
      qc.invalidateQueries({ queryKey: ['source', appId, s.id] });
      onDone(s);
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate();
  };
  return (
    <form onSubmit={submit} className="flex flex-col gap-4">
      <TextField label="Name" required maxLength={256} value={name} onChange={(e) => setName(e.target.value)} placeholder="Webshop orders" autoFocus />
      <TextField label="Description" maxLength={4096} value={description} onChange={(e) => setDescription(e.target.value)} />
      <Field id={ids.provider} label="Provider">
        <Select id={ids.provider} value={provider} onChange={(e) => setProvider(e.target.value as Provider)}>
          {PROVIDERS.map((p) => <option key={p} value={p}>{providerLabel[p]}</option>)}
        </Select>
      </Field>
      <TextField
        label="Signing secret"
        type="password"
        autoComplete="off"
        spellCheck={false}
        required={needSecret}
        value={secret}
        onChange={(e) => setSecret(e.target.value)}
        hint={`${secretHint[provider]} Stored encrypted and never shown again.${source && !needSecret ? ' Leave empty to keep the current secret.' : ''}`}
      />
      {provider === 'hmac' && (
        <fieldset className="flex flex-col gap-3 rounded-md border border-slate-200 p-3">
          <legend className="px-1 text-sm font-medium">HMAC signature</legend>
          <TextField label="Signature header" required value={hmac.header} onChange={setH('header')} placeholder="X-Signature" />
          <div className="grid gap-3 sm:grid-cols-2">
            <Field id={ids.algorithm} label="Algorithm">
              <Select id={ids.algorithm} value={hmac.algorithm} onChange={setH('algorithm')}>
                <option value="sha256">HMAC-SHA256</option>
                <option value="sha512">HMAC-SHA512</option>
                <option value="sha1">HMAC-SHA1</option>
              </Select>
            </Field>
            <Field id={ids.encoding} label="Encoding">
              <Select id={ids.encoding} value={hmac.encoding} onChange={setH('encoding')}>
                <option value="hex">Hex</option>
                <option value="base64">Base64</option>
              </Select>
            </Field>
          </div>
          <TextField label="Prefix (optional)" maxLength={64} value={hmac.prefix} onChange={setH('prefix')} placeholder="sha256=" hint="Text before the signature in the header." />
          <TextField label="Timestamp header (optional)" value={hmac.timestampHeader} onChange={setH('timestampHeader')} placeholder="X-Timestamp" hint="Unix time of sending; checked against the tolerance below." />
          <TextField label="Delivery id header (optional)" value={hmac.idHeader} onChange={setH('idHeader')} placeholder="X-Delivery-Id" hint="Used for de-duplication." />
          <TextField label="Signed content (optional)" maxLength={512} value={hmac.signedContent} onChange={setH('signedContent')} placeholder="{timestamp}.{body}" hint="{body}, {timestamp} and {id} are replaced. Default {body}, or {timestamp}.{body} with a timestamp header." />
        </fieldset>
      )}
      <TextField label="Timestamp tolerance (seconds)" type="number" min={1} max={86400} required value={tolerance} onChange={(e) => setTolerance(e.target.value)} hint="How far a signed timestamp may be from now." />
      <fieldset className="flex flex-col gap-3 rounded-md border border-slate-200 p-3">
        <legend className="px-1 text-sm font-medium">Event type</legend>
        <Field id={ids.typeBy} label="Event type from">
          <Select id={ids.typeBy} value={typeBy} onChange={(e) => setTypeBy(e.target.value as 'provider' | 'expression')}>
            <option value="provider">The provider (topic, event header or type field)</option>
            <option value="expression">A JSONata expression</option>
          </Select>
        </Field>
        {typeBy === 'expression' && (
          <Field id={ids.typeExpr} label="Event type expression" hint="JSONata over {headers, body, provider}, e.g. body.event & &quot;.&quot; & body.status">
            <Textarea id={ids.typeExpr} rows={2} required spellCheck={false} value={typeExpr} onChange={(e) => setTypeExpr(e.target.value)} aria-describedby={`${ids.typeExpr}-hint`} />
          </Field>
        )}
        <TextField label="Default event type (optional)" value={defaultType} onChange={(e) => setDefaultType(e.target.value)} placeholder="webhook" hint="Used when neither names one." />
      </fieldset>
      <fieldset className="flex flex-col gap-3 rounded-md border border-slate-200 p-3">
        <legend className="px-1 text-sm font-medium">De-duplication</legend>
        <Field id={ids.dedupeBy} label="Recognise repeats by">
          <Select id={ids.dedupeBy} value={dedupeBy} onChange={(e) => setDedupeBy(e.target.value as Dedupe['by'])}>
            <option value="provider">The provider's delivery id</option>
            <option value="body">The body (SHA-256)</option>
            <option value="expression">A JSONata expression</option>
            <option value="none">Do not de-duplicate</option>
          </Select>
        </Field>
        {dedupeBy === 'expression' && (
          <Field id={ids.dedupeExpr} label="De-duplication expression" hint="JSONata over {headers, body}, e.g. body.id & &quot;-&quot; & body.status">
            <Textarea id={ids.dedupeExpr} rows={2} required spellCheck={false} value={dedupeExpr} onChange={(e) => setDedupeExpr(e.target.value)} aria-describedby={`${ids.dedupeExpr}-hint`} />
          </Field>
        )}
        {dedupeBy !== 'none' && <TextField label="Window (seconds)" type="number" min={1} max={2592000} required value={dedupeWindow} onChange={(e) => setDedupeWindow(e.target.value)} hint="A repeat after this is a new event." />}
      </fieldset>
      <TextField label="Channels (optional)" value={channels} onChange={(e) => setChannels(e.target.value)} placeholder="webshop" hint="Channels the messages are sent on; comma-separated." />
      <Checkbox label="Enabled (webhooks are accepted)" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
      <ErrorBox error={save.error} />
      <div className="flex justify-end"><Button type="submit" variant="primary" busy={save.isPending}>{source ? 'Save source' : 'Create source'}</Button></div>
    </form>
  );
}
