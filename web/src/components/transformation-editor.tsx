/**
 * An endpoint's transformation: a mapping table (source field → target field, value maps,
 * defaults, constants, fields that cannot be mapped), a JSONata expression or a JavaScript
 * handler. "Preview" runs the candidate on the endpoint's recent messages without saving and shows
 * input, output, unmapped source fields, missing required target fields and errors.
 */
import { useId, useRef, useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, api, enc, type MappingField, type PreviewOut, type Transformation, type TransformationKind } from '../api';
import { JsonField } from './endpoint-form';
import { Badge, Button, Card, Checkbox, CodeBlock, Dialog, Empty, ErrorBox, Field, Input, Loading, Notice, Select, Table, Td, TextField, Textarea, cx, formatMs } from './ui';
import { useScope } from '../scope';

type From = 'source' | 'expression' | 'value';
interface Pair { id: number; from: string; to: string }
interface Row {
  id: number;
  from: From;
  source: string;
  expression: string;
  value: string;
  target: string;
  notMappable: boolean;
  pairs: Pair[];
  default: string;
  note: string;
}

let nextId = 1;
const newPair = (from = '', to = ''): Pair => ({ id: nextId++, from, to });
const newRow = (): Row => ({ id: nextId++, from: 'source', source: '', expression: '', value: '', target: '', notMappable: false, pairs: [], default: '', note: '' });

const JS_TEMPLATE = `function handler(webhook) {
  // webhook: { method, url, eventType, messageId, payload }
  webhook.payload = { ...webhook.payload };
  return webhook;
}`;

/** Text typed in a value cell: numbers, true/false/null, "quoted text", arrays and objects are JSON; anything else is text. */
export function parseLoose(s: string): unknown {
  const t = s.trim();
  if (/^(-?\d|true$|false$|null$|"|\[|\{)/.test(t)) {
    try {
      return JSON.parse(t);
    } catch {
      /* not JSON: plain text */
    }
  }
  return s;
}
/** The inverse: how a stored value is shown in a cell so that parseLoose gives it back. */
export function showLoose(v: unknown): string {
  if (typeof v === 'string') return parseLoose(v) === v ? v : JSON.stringify(v);
  return JSON.stringify(v);
}

function rowFromField(f: MappingField): Row {
  return {
    ...newRow(),
    from: f.expression !== undefined ? 'expression' : f.value !== undefined ? 'value' : 'source',
    source: f.source ?? '',
    expression: f.expression ?? '',
    value: f.value !== undefined ? showLoose(f.value) : '',
    target: f.target ?? '',
    notMappable: f.target === null,
    pairs: Object.entries(f.values ?? {}).map(([k, v]) => newPair(k, showLoose(v))),
    default: f.default !== undefined ? showLoose(f.default) : '',
    note: f.note ?? '',
  };
}

function fieldFromRow(r: Row): MappingField {
  const f: MappingField = { target: r.notMappable ? null : r.target.trim() };
  if (r.from === 'source') f.source = r.source.trim();
  else if (r.from === 'expression') f.expression = r.expression;
  else f.value = parseLoose(r.value);
  if (!r.notMappable && r.from !== 'value') {
    const pairs = r.pairs.filter((p) => p.from !== '');
    if (pairs.length) f.values = Object.fromEntries(pairs.map((p) => [p.from, parseLoose(p.to)]));
    if (r.default.trim() !== '') f.default = parseLoose(r.default);
  }
  if (r.note.trim()) f.note = r.note.trim();
  return f;
}

/** "mapping.fields.2.target: …" → "Row 3, target: …" */
function friendlyError(err: unknown): unknown {
  if (!(err instanceof ApiError)) return err;
  return new Error(err.message.replace(/mapping\.fields\.(\d+)\.?/g, (_m, n) => `Row ${Number(n) + 1}, `).replace(/, :/g, ':'));
}

export function TransformationCard({ appId, endpointId }: { appId: string; endpointId: string }) {
  const scope = useScope();
  const path = `/api/v1/app/${enc(appId)}/endpoint/${enc(endpointId)}/transformation`;
  const t = useQuery({ queryKey: ['endpoint', appId, endpointId, 'transformation'], queryFn: () => api<Transformation>('GET', path) });
  // Kept here: saving re-creates the editor from the saved transformation.
  const [notice, setNotice] = useState<string | null>(null);
  return (
    <Card title="Transformation" className="lg:col-span-2">
      <p className="mb-3 text-sm text-slate-600">Reshapes each payload into what the target API expects before it is signed and sent. Every saved change is a new version.</p>
      {t.isPending ? <Loading /> : t.error ? <ErrorBox error={t.error} /> : scope.readOnly ? <ReadOnlyTransformation t={t.data} /> : (
        <Editor key={t.data.updatedAt ?? 'none'} path={path} saved={t.data} appId={appId} endpointId={endpointId} onSaved={setNotice} />
      )}
      {notice && <div className="mt-3"><Notice>{notice}</Notice></div>}
    </Card>
  );
}

function ReadOnlyTransformation({ t }: { t: Transformation }) {
  if (!t.kind) return <Empty>This endpoint sends payloads unchanged.</Empty>;
  return (
    <div className="flex flex-col gap-3 text-sm">
      <p>{t.kind === 'mapping' ? 'Mapping table' : t.kind === 'jsonata' ? 'JSONata' : 'JavaScript'}, {t.enabled ? 'enabled' : 'disabled'}</p>
      {t.mapping ? (
        <Table caption="Mapping table" head={['Source', 'Target', 'Values', 'Default', 'Note']}>
          {t.mapping.fields.map((f, i) => (
            <tr key={i}>
              <Td className="break-all font-mono text-xs">{f.source ?? (f.expression !== undefined ? `= ${f.expression}` : `constant ${showLoose(f.value)}`)}</Td>
              <Td className="break-all font-mono text-xs">{f.target ?? <Badge tone="amber">Cannot be mapped</Badge>}</Td>
              <Td className="break-all text-xs">{f.values ? Object.entries(f.values).map(([k, v]) => `${k} → ${showLoose(v)}`).join(', ') : '—'}</Td>
              <Td className="break-all text-xs">{f.default !== undefined ? showLoose(f.default) : '—'}</Td>
              <Td className="break-words text-xs">{f.note ?? '—'}</Td>
            </tr>
          ))}
        </Table>
      ) : <CodeBlock label="Transformation code">{t.code ?? t.expression ?? ''}</CodeBlock>}
    </div>
  );
}

function Editor({ path, saved, appId, endpointId, onSaved }: { path: string; saved: Transformation; appId: string; endpointId: string; onSaved: (notice: string | null) => void }) {
  const qc = useQueryClient();
  const [mode, setMode] = useState<TransformationKind>(saved.kind ?? 'mapping');
  const [rows, setRows] = useState<Row[]>(() => (saved.mapping ? saved.mapping.fields.map(rowFromField) : [newRow()]));
  const [expression, setExpression] = useState(saved.kind !== 'javascript' ? (saved.expression ?? '') : '');
  const [code, setCode] = useState(saved.code ?? JS_TEMPLATE);
  const [enabled, setEnabled] = useState(saved.kind ? saved.enabled : true);
  const [schema, setSchema] = useState(saved.targetSchema ? JSON.stringify(saved.targetSchema, null, 2) : '');
  const [count, setCount] = useState('5');
  const [focusId, setFocusId] = useState<number | null>(null);
  const [removing, setRemoving] = useState(false);
  const addRowRef = useRef<HTMLButtonElement>(null);
  const ids = { expr: useId(), code: useId(), mode: useId() };

  const schemaValue = (): Record<string, unknown> | null => {
    if (!schema.trim()) return null;
    try {
      return JSON.parse(schema);
    } catch {
      throw new Error('The target schema is not valid JSON.');
    }
  };
  const candidate = () =>
    mode === 'mapping' ? { mapping: { fields: rows.map(fieldFromRow) } } : mode === 'jsonata' ? { expression } : { code };

  const preview = useMutation({ mutationFn: () => api<PreviewOut>('POST', `${path}/preview`, { ...candidate(), targetSchema: schemaValue(), count: Math.min(50, Math.max(1, Number(count) || 5)) }) });
  const save = useMutation({
    mutationFn: () => {
      onSaved(null);
      return api('PATCH', path, { ...candidate(), enabled, targetSchema: schemaValue() });
    },
    onSuccess: () => {
      onSaved('Transformation saved.');
      qc.invalidateQueries({ queryKey: ['endpoint', appId, endpointId] });
    },
  });
  const remove = useMutation({
    mutationFn: () => api('PATCH', path, { code: null }),
    onSuccess: () => {
      setRemoving(false);
      onSaved('Transformation removed; payloads are sent unchanged.');
      qc.invalidateQueries({ queryKey: ['endpoint', appId, endpointId] });
    },
  });
  const update = (id: number, patch: Partial<Row>) => setRows((rs) => rs.map((r) => (r.id === id ? { ...r, ...patch } : r)));
  const addRow = () => {
    const r = newRow();
    setRows((rs) => [...rs, r]);
    setFocusId(r.id);
  };
  const removeRow = (id: number) => {
    setRows((rs) => rs.filter((r) => r.id !== id));
    addRowRef.current?.focus();
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate();
  };

  return (
    <form onSubmit={submit} className="flex flex-col gap-4" aria-label="Transformation editor">
      <fieldset className="flex flex-wrap gap-x-4 gap-y-1">
        <legend className="mb-1 text-sm font-medium">Transformation kind</legend>
        {([['mapping', 'Mapping table'], ['jsonata', 'JSONata'], ['javascript', 'JavaScript']] as const).map(([k, label]) => (
          <label key={k} className="inline-flex min-h-8 items-center gap-2 text-sm">
            <input type="radio" name={ids.mode} value={k} checked={mode === k} onChange={() => { setMode(k); preview.reset(); }} className="size-4 accent-(--accent)" />
            {label}
          </label>
        ))}
      </fieldset>

      {mode === 'mapping' && (
        <div className="flex flex-col gap-3">
          <p className="text-xs text-slate-500">One row per target field. Paths are dotted (<code>billing.email</code>, <code>line_items[0].sku</code>). A value map translates values (unlisted ones pass through); a default is used when the field is absent or, with a value map, its value is not listed. Values and defaults: numbers, true, false, null and "quoted text" are JSON; anything else is text.</p>
          <ol className="flex flex-col gap-2" aria-label="Mapping rows">
            {rows.map((r, i) => (
              <li key={r.id}>
                <MappingRow row={r} index={i} autoFocus={focusId === r.id} onChange={(p) => update(r.id, p)} onRemove={() => removeRow(r.id)} canRemove={rows.length > 1} />
              </li>
            ))}
          </ol>
          <div><Button ref={addRowRef} onClick={addRow}>Add row</Button></div>
        </div>
      )}
      {mode === 'jsonata' && (
        <Field id={ids.expr} label="JSONata expression" hint="Its value over the payload is sent; $eventType and $messageId are bound.">
          <Textarea id={ids.expr} rows={10} spellCheck={false} required value={expression} onChange={(e) => setExpression(e.target.value)} aria-describedby={`${ids.expr}-hint`} placeholder={'{ "klant": { "email": billing.email } }'} />
        </Field>
      )}
      {mode === 'javascript' && (
        <Field id={ids.code} label="JavaScript code" hint="Runs in a QuickJS sandbox without network, timers or file system; the returned webhook's payload is sent.">
          <Textarea id={ids.code} rows={12} spellCheck={false} required value={code} onChange={(e) => setCode(e.target.value)} aria-describedby={`${ids.code}-hint`} />
        </Field>
      )}

      <details className="rounded-md border border-slate-200 p-3">
        <summary className="cursor-pointer text-sm font-medium">Target schema (optional)</summary>
        <div className="mt-3">
          <JsonField label="JSON Schema of what the target API expects" value={schema} onChange={setSchema} rows={6} hint="The preview reports required fields the output lacks. Without it, the event type's schema is used." />
        </div>
      </details>

      <Checkbox label="Enabled (deliveries are transformed)" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />

      <div className="flex flex-wrap items-end gap-2 border-t border-slate-100 pt-3">
        <div className="w-40"><TextField label="Messages to preview" type="number" min={1} max={50} value={count} onChange={(e) => setCount(e.target.value)} /></div>
        <Button busy={preview.isPending} onClick={() => preview.mutate()}>Preview</Button>
        <Button type="submit" variant="primary" busy={save.isPending}>Save transformation</Button>
        {saved.kind && <Button variant="danger" onClick={() => { remove.reset(); setRemoving(true); }}>Remove transformation</Button>}
      </div>
      <ErrorBox error={friendlyError(save.error)} />
      <div aria-live="polite">
        {preview.error ? <ErrorBox error={friendlyError(preview.error)} /> : preview.data ? <PreviewView p={preview.data} /> : null}
      </div>

      <Dialog open={removing} onClose={() => setRemoving(false)} title="Remove transformation">
        <p className="text-sm">Send payloads unchanged from now on? This makes a new version you can roll back.</p>
        <ErrorBox error={remove.error} />
        <div className="mt-4 flex justify-end gap-2">
          <Button onClick={() => setRemoving(false)}>Cancel</Button>
          <Button variant="danger" busy={remove.isPending} onClick={() => remove.mutate()}>Remove transformation</Button>
        </div>
      </Dialog>
    </form>
  );
}

function MappingRow({ row, index, autoFocus, onChange, onRemove, canRemove }: { row: Row; index: number; autoFocus: boolean; onChange: (p: Partial<Row>) => void; onRemove: () => void; canRemove: boolean }) {
  const n = index + 1;
  const ids = { from: useId(), src: useId(), target: useId(), dflt: useId(), note: useId() };
  const [pairFocus, setPairFocus] = useState<number | null>(null);
  const addValueRef = useRef<HTMLButtonElement>(null);
  const srcLabel = row.from === 'source' ? 'Source field' : row.from === 'expression' ? 'Expression' : 'Constant value';
  const srcValue = row.from === 'source' ? row.source : row.from === 'expression' ? row.expression : row.value;
  const setSrc = (v: string) => onChange(row.from === 'source' ? { source: v } : row.from === 'expression' ? { expression: v } : { value: v });
  const mapsValues = !row.notMappable && row.from !== 'value';
  const label = 'text-xs font-medium text-slate-600';
  return (
    <fieldset className={cx('rounded-md border px-3 pb-3 pt-1', row.notMappable ? 'border-amber-200 bg-amber-50/40' : 'border-slate-200')}>
      <legend className="px-1 text-xs font-semibold text-slate-500">Row {n}</legend>
      <div className="grid gap-2 sm:grid-cols-[8.5rem_minmax(0,1fr)_minmax(0,1fr)]">
        <div className="flex flex-col gap-1">
          <label htmlFor={ids.from} className={label}>From</label>
          <Select id={ids.from} value={row.from} onChange={(e) => onChange({ from: e.target.value as From, ...(e.target.value !== 'source' ? { notMappable: false } : {}) })}>
            <option value="source">Source field</option>
            <option value="expression">Expression</option>
            <option value="value">Constant</option>
          </Select>
        </div>
        <div className="flex flex-col gap-1">
          <label htmlFor={ids.src} className={label}>{srcLabel}</label>
          <Input id={ids.src} required={row.from !== 'value'} spellCheck={false} autoFocus={autoFocus} value={srcValue} onChange={(e) => setSrc(e.target.value)} placeholder={row.from === 'source' ? 'billing.email' : row.from === 'expression' ? '$sum(line_items.total)' : 'webshop'} className="font-mono" />
        </div>
        <div className="flex flex-col gap-1">
          <label htmlFor={ids.target} className={label}>Target field</label>
          <Input id={ids.target} required={!row.notMappable} disabled={row.notMappable} spellCheck={false} value={row.notMappable ? '' : row.target} onChange={(e) => onChange({ target: e.target.value })} placeholder={row.notMappable ? 'not sent' : 'klant.email'} className="font-mono" />
        </div>
      </div>
      {mapsValues && row.pairs.length > 0 && (
        <div className="mt-2 flex flex-col gap-2 rounded-md bg-slate-50 p-2" role="group" aria-label={`Value map of row ${n}`}>
          <p className={label}>Value map</p>
          {row.pairs.map((p, j) => (
            <div key={p.id} className="flex flex-wrap items-center gap-2 sm:flex-nowrap">
              <Input aria-label={`Row ${n} source value ${j + 1}`} placeholder="Actieve Klant" autoFocus={pairFocus === p.id} value={p.from} onChange={(e) => onChange({ pairs: row.pairs.map((x) => (x.id === p.id ? { ...x, from: e.target.value } : x)) })} />
              <span aria-hidden="true" className="text-slate-400">→</span>
              <Input aria-label={`Row ${n} target value ${j + 1}`} placeholder="actief" value={p.to} onChange={(e) => onChange({ pairs: row.pairs.map((x) => (x.id === p.id ? { ...x, to: e.target.value } : x)) })} />
              <Button variant="ghost" aria-label={`Remove value ${j + 1} of row ${n}`} onClick={() => { onChange({ pairs: row.pairs.filter((x) => x.id !== p.id) }); addValueRef.current?.focus(); }}>Remove</Button>
            </div>
          ))}
        </div>
      )}
      <div className="mt-2 flex flex-wrap items-end gap-2">
        <div className="flex min-h-10 items-center">
          <Checkbox label="Cannot be mapped" checked={row.notMappable} disabled={row.from !== 'source'} onChange={(e) => onChange({ notMappable: e.target.checked })} />
        </div>
        {mapsValues && (
          <>
            <Button ref={addValueRef} aria-label={`Add value to row ${n}`} onClick={() => { const p = newPair(); setPairFocus(p.id); onChange({ pairs: [...row.pairs, p] }); }}>Add value</Button>
            <div className="flex w-full flex-col gap-1 sm:w-40">
              <label htmlFor={ids.dflt} className={label}>Default (optional)</label>
              <Input id={ids.dflt} value={row.default} onChange={(e) => onChange({ default: e.target.value })} />
            </div>
          </>
        )}
        <div className="flex min-w-40 flex-1 flex-col gap-1">
          <label htmlFor={ids.note} className={label}>Note (optional)</label>
          <Input id={ids.note} maxLength={1024} value={row.note} onChange={(e) => onChange({ note: e.target.value })} placeholder={row.notMappable ? 'Why it cannot be mapped' : ''} />
        </div>
        <Button variant="danger" disabled={!canRemove} onClick={onRemove}>Remove row {n}</Button>
      </div>
    </fieldset>
  );
}
function FieldList({ title, fields, tone, testId }: { title: string; fields: string[]; tone: 'amber' | 'red' | 'slate'; testId: string }) {
  return (
    <div data-testid={testId}>
      <p className="text-xs font-medium text-slate-500">{title}</p>
      {fields.length === 0 ? <p className="text-sm">None</p> : (
        <ul className="mt-1 flex flex-wrap gap-1">{fields.map((f) => <li key={f}><Badge tone={tone}>{f}</Badge></li>)}</ul>
      )}
    </div>
  );
}

function PreviewView({ p }: { p: PreviewOut }) {
  return (
    <section aria-label="Preview" className="flex flex-col gap-3 rounded-md border border-slate-200 p-3" data-testid="preview">
      <h3 className="text-sm font-semibold">Preview on {p.results.length} recent message{p.results.length === 1 ? '' : 's'}</h3>
      <div className="grid gap-3 sm:grid-cols-3">
        <FieldList title="Unmapped source fields" fields={p.unmappedSourceFields} tone="amber" testId="unmapped" />
        <FieldList title="Missing required target fields" fields={p.missingRequiredFields} tone="red" testId="missing" />
        <FieldList title="Marked as not mappable" fields={p.notMappableFields} tone="slate" testId="not-mappable" />
      </div>
      {p.compiled && (
        <details>
          <summary className="cursor-pointer text-sm text-accent">Compiled JSONata</summary>
          <div className="mt-2"><CodeBlock label="Compiled JSONata">{p.compiled}</CodeBlock></div>
        </details>
      )}
      {p.results.length === 0 ? <Empty>This endpoint has no recent messages to run it on. Send one first (e.g. a test event).</Empty> : (
        <ol className="flex flex-col gap-3">
          {p.results.map((r, i) => (
            <li key={r.messageId ?? i} className="rounded-md border border-slate-100 p-2" data-testid="preview-result">
              <div className="flex flex-wrap items-center gap-2 text-sm">
                {r.ok ? <Badge tone="green">OK</Badge> : <Badge tone="red">Error</Badge>}
                <span className="break-all font-mono text-xs">{r.eventType}</span>
                {r.messageId && <span className="break-all font-mono text-xs text-slate-500">{r.messageId}</span>}
                <span className="text-xs text-slate-500">{formatMs(Math.round(r.durationMs))}</span>
              </div>
              {r.error && <p className="mt-1 break-words text-sm text-red-700">{r.errorKind ? `${r.errorKind}: ` : ''}{r.error}</p>}
              {r.missingRequiredFields.length > 0 && <p className="mt-1 break-words text-sm text-red-700">Missing required: {r.missingRequiredFields.join(', ')}</p>}
              {r.schemaErrors.length > 0 && <ul className="mt-1 list-disc pl-5 text-sm text-amber-800">{r.schemaErrors.map((e, j) => <li key={j} className="break-words">{e}</li>)}</ul>}
              <div className="mt-2 grid gap-2 md:grid-cols-2">
                <div className="min-w-0"><p className="mb-1 text-xs font-medium text-slate-500">Input</p><CodeBlock label={`Input ${i + 1}`}>{JSON.stringify(r.input, null, 2)}</CodeBlock></div>
                <div className="min-w-0"><p className="mb-1 text-xs font-medium text-slate-500">Output</p><CodeBlock label={`Output ${i + 1}`}>{r.output === undefined ? '(none)' : JSON.stringify(r.output, null, 2)}</CodeBlock></div>
              </div>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
