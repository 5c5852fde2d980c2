/**
 * Create or edit an endpoint: URL, description, event types picked from the catalogue (or
 * wildcards such as `order.*`), channels, custom headers, rate limit, enabled.
 */
import { useId, useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, enc, type Endpoint, type EventType, type ListOut } from '../api';
import { Badge, Button, Checkbox, ErrorBox, Field, Input, TextField, Textarea } from './ui';

export function useCatalogue() {
  return useQuery({ queryKey: ['event-types', 'with-content'], queryFn: () => api<ListOut<EventType>>('GET', '/api/v1/event-type?limit=250&with_content=true') });
}

/** Event type filter: "all" (null) or a list of names and wildcards. */
function EventTypePicker({ value, onChange }: { value: string[] | null; onChange: (v: string[] | null) => void }) {
  const catalogue = useCatalogue();
  const [pattern, setPattern] = useState('');
  const id = useId();
  const selected = value ?? [];
  const toggle = (name: string) => onChange(selected.includes(name) ? selected.filter((n) => n !== name) : [...selected, name]);
  const groups = new Map<string, EventType[]>();
  for (const et of catalogue.data?.data ?? []) {
    const g = et.groupName ?? 'Other';
    groups.set(g, [...(groups.get(g) ?? []), et]);
  }
  const wildcards = selected.filter((n) => n.includes('*'));
  const addPattern = () => {
    const p = pattern.trim();
    if (!/^[a-zA-Z0-9\-_.*]+$/.test(p) || selected.includes(p)) return;
    onChange([...selected, p]);
    setPattern('');
  };
  return (
    <fieldset className="flex flex-col gap-2 rounded-md border border-slate-200 p-3">
      <legend className="px-1 text-sm font-medium">Event types</legend>
      <Checkbox label="All event types" checked={value === null} onChange={(e) => onChange(e.target.checked ? null : [])} />
      {value !== null && (
        <>
          {catalogue.isPending && <p className="text-xs text-slate-500">Loading the catalogue…</p>}
          <div className="flex max-h-56 flex-col gap-2 overflow-y-auto">
            {[...groups.entries()].map(([group, types]) => (
              <div key={group} role="group" aria-label={group}>
                <p className="text-xs font-semibold uppercase text-slate-500">{group}</p>
                {types.map((et) => (
                  <div key={et.name}>
                    <Checkbox label={<><span className="font-mono text-xs">{et.name}</span>{et.description && <span className="text-slate-500"> — {et.description}</span>}</>} checked={selected.includes(et.name)} onChange={() => toggle(et.name)} />
                  </div>
                ))}
              </div>
            ))}
          </div>
          <div className="flex flex-col gap-1">
            <label htmlFor={id} className="text-xs font-medium">Add a wildcard or a name not in the catalogue</label>
            <div className="flex gap-2">
              <Input id={id} value={pattern} placeholder="order.*" onChange={(e) => setPattern(e.target.value)} onKeyDown={(e) => { if (e.key === 'Enter') { e.preventDefault(); addPattern(); } }} />
              <Button onClick={addPattern}>Add</Button>
            </div>
          </div>
          {wildcards.length > 0 && (
            <ul className="flex flex-wrap gap-1" aria-label="Wildcards">
              {wildcards.map((w) => (
                <li key={w}><button type="button" className="rounded-full" aria-label={`Remove ${w}`} onClick={() => toggle(w)}><Badge tone="blue">{w} ✕</Badge></button></li>
              ))}
            </ul>
          )}
          {selected.length === 0 && <p className="text-xs text-amber-700">Pick at least one event type, or choose all.</p>}
        </>
      )}
    </fieldset>
  );
}

type HeaderRow = { name: string; value: string };

export function EndpointForm({ appId, endpoint, headers, onDone }: { appId: string; endpoint?: Endpoint; headers?: Record<string, string>; onDone: (ep: Endpoint) => void }) {
  const qc = useQueryClient();
  const [url, setUrl] = useState(endpoint?.url ?? '');
  const [description, setDescription] = useState(endpoint?.description ?? '');
  const [types, setTypes] = useState<string[] | null>(endpoint ? endpoint.filterTypes : null);
  const [channels, setChannels] = useState((endpoint?.channels ?? []).join(', '));
  const [rate, setRate] = useState(endpoint?.rateLimit ? String(endpoint.rateLimit) : '');
  const [enabled, setEnabled] = useState(!endpoint?.disabled);
  const [rows, setRows] = useState<HeaderRow[]>(Object.entries(headers ?? {}).map(([name, value]) => ({ name, value })));

  const save = useMutation({
    mutationFn: async () => {
      const ch = channels.split(',').map((c) => c.trim()).filter(Boolean);
      const hdrs = Object.fromEntries(rows.filter((r) => r.name.trim()).map((r) => [r.name.trim(), r.value]));
      const body = {
        url: url.trim(),
        description,
        filterTypes: types && types.length ? types : null,
        channels: ch.length ? ch : null,
        rateLimit: rate ? Number(rate) : null,
        disabled: !enabled,
      };
      if (!endpoint) return api<Endpoint>('POST', `/api/v1/app/${enc(appId)}/endpoint`, { ...body, headers: hdrs });
      const ep = await api<Endpoint>('PATCH', `/api/v1/app/${enc(appId)}/endpoint/${enc(endpoint.id)}`, body);
      if (headers !== undefined) await api('PUT', `/api/v1/app/${enc(appId)}/endpoint/${enc(endpoint.id)}/headers`, { headers: hdrs });
      return ep;
    },
    onSuccess: (ep) => {
      qc.invalidateQueries({ queryKey: ['endpoints', appId] });
      qc.invalidateQueries({ queryKey: ['endpoint', appId, ep.id] });
      qc.invalidateQueries({ queryKey: ['headers', appId, ep.id] });
      onDone(ep);
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate();
  };
  const headersId = useId();
  return (
    <form onSubmit={submit} className="flex flex-col gap-4">
      <TextField label="Endpoint URL" type="url" required value={url} onChange={(e) => setUrl(e.target.value)} placeholder="https://example.com/webhooks" hint="Koppel posts each event here, signed." autoFocus />
      <TextField label="Description" value={description} maxLength={4096} onChange={(e) => setDescription(e.target.value)} />
      <EventTypePicker value={types} onChange={setTypes} />
      <TextField label="Channels (optional)" value={channels} onChange={(e) => setChannels(e.target.value)} placeholder="project-1, project-2" hint="Only messages sent on one of these channels; comma-separated. Empty for all." />
      <TextField label="Rate limit (optional)" type="number" min={1} max={65535} value={rate} onChange={(e) => setRate(e.target.value)} hint="Most deliveries per second to this endpoint." />
      <fieldset className="flex flex-col gap-2 rounded-md border border-slate-200 p-3">
        <legend className="px-1 text-sm font-medium">Custom headers</legend>
        <p id={headersId} className="text-xs text-slate-500">Sent with every delivery, e.g. an authorization header your receiver expects.</p>
        {rows.map((r, i) => (
          <div key={i} className="flex flex-wrap gap-2 sm:flex-nowrap">
            <Input aria-label={`Header ${i + 1} name`} placeholder="X-Header-Name" value={r.name} onChange={(e) => setRows(rows.map((x, j) => (j === i ? { ...x, name: e.target.value } : x)))} />
            <Input aria-label={`Header ${i + 1} value`} placeholder="value" value={r.value} onChange={(e) => setRows(rows.map((x, j) => (j === i ? { ...x, value: e.target.value } : x)))} />
            <Button variant="ghost" aria-label={`Remove header ${i + 1}`} onClick={() => setRows(rows.filter((_, j) => j !== i))}>Remove</Button>
          </div>
        ))}
        <div><Button aria-describedby={headersId} onClick={() => setRows([...rows, { name: '', value: '' }])}>Add header</Button></div>
      </fieldset>
      <Checkbox label="Enabled (deliveries are sent)" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
      <ErrorBox error={save.error} />
      <div className="flex justify-end">
        <Button type="submit" variant="primary" busy={save.isPending} disabled={types !== null && types.length === 0}>{endpoint ? 'Save endpoint' : 'Create endpoint'}</Button>
      </div>
    </form>
  );
}

/** A JSON editor field that checks the text parses. */
export function JsonField({ label, value, onChange, hint, rows = 8 }: { label: string; value: string; onChange: (v: string) => void; hint?: string; rows?: number }) {
  const id = useId();
  let error: string | null = null;
  if (value.trim()) {
    try {
      JSON.parse(value);
    } catch (e) {
      error = `Not valid JSON: ${(e as Error).message}`;
    }
  }
  return (
    <Field id={id} label={label} hint={hint} error={error}>
      <Textarea id={id} rows={rows} spellCheck={false} value={value} onChange={(e) => onChange(e.target.value)} aria-invalid={error ? true : undefined} />
    </Field>
  );
}
