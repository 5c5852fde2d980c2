/**
 * The event catalogue: event types with description, group, JSON Schema and examples. Operators
 * create and edit them; customers (portal, application keys) browse them.
 */
import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, enc, type EventType, type ListOut } from '../api';
import { JsonField } from '../components/endpoint-form';
import { Badge, Button, Card, Checkbox, CodeBlock, Dialog, Empty, ErrorBox, Loading, PageHeader, TextField } from '../components/ui';
import { useTitle } from '../router';
import { useScope } from '../scope';

const latest = (et: EventType) => (et.schemas ? et.schemas[Object.keys(et.schemas).sort((a, b) => Number(b) - Number(a))[0]] : null);

export function EventTypesPage() {
  const scope = useScope();
  const canEdit = scope.canManageEnvironment && !scope.readOnly && scope.mode === 'dashboard';
  useTitle(`Event types · ${scope.mode === 'portal' ? 'Webhooks' : 'Koppel'}`);
  const [archived, setArchived] = useState(false);
  const list = useQuery({
    queryKey: ['event-types', 'with-content', archived],
    queryFn: () => api<ListOut<EventType>>('GET', `/api/v1/event-type?limit=250&with_content=true${archived ? '&include_archived=true' : ''}`),
  });
  const [editing, setEditing] = useState<EventType | 'new' | null>(null);
  const groups = new Map<string, EventType[]>();
  for (const et of list.data?.data ?? []) groups.set(et.groupName ?? 'Other', [...(groups.get(et.groupName ?? 'Other') ?? []), et]);

  return (
    <>
      <PageHeader
        title={scope.mode === 'portal' ? 'Event catalogue' : 'Event types'}
        subtitle="The events you can subscribe to, with the shape of their payloads."
        actions={canEdit && <Button variant="primary" onClick={() => setEditing('new')}>New event type</Button>}
      />
      {canEdit && <div className="mb-3"><Checkbox label="Show archived" checked={archived} onChange={(e) => setArchived(e.target.checked)} /></div>}
      {list.isPending ? <Loading /> : list.error ? <ErrorBox error={list.error} /> : list.data.data.length === 0 ? (
        <Card><Empty>No event types yet.{canEdit ? ' Create one per kind of event your product sends, e.g. invoice.paid.' : ''}</Empty></Card>
      ) : (
        <div className="flex flex-col gap-4">
          {[...groups.entries()].map(([group, types]) => (
            <Card key={group} title={group}>
              <ul className="flex flex-col divide-y divide-slate-100">
                {types.map((et) => {
                  const schema = latest(et);
                  const examples: unknown[] = Array.isArray(schema?.examples) ? schema.examples : [];
                  return (
                    <li key={et.name} className="py-3">
                      <div className="flex flex-wrap items-center justify-between gap-2">
                        <div className="flex flex-wrap items-center gap-2">
                          <span className="font-mono text-sm font-semibold">{et.name}</span>
                          {et.deprecated && <Badge tone="amber">Deprecated</Badge>}
                          {et.archived && <Badge>Archived</Badge>}
                        </div>
                        {canEdit && <Button onClick={() => setEditing(et)} aria-label={`Edit ${et.name}`}>Edit</Button>}
                      </div>
                      {et.description && <p className="mt-1 text-sm text-slate-600">{et.description}</p>}
                      {schema && (
                        <details className="mt-2">
                          <summary className="cursor-pointer text-sm text-accent">Schema and examples</summary>
                          <div className="mt-2 grid gap-2 md:grid-cols-2">
                            <div><p className="mb-1 text-xs font-medium text-slate-500">JSON Schema</p><CodeBlock label={`Schema of ${et.name}`}>{JSON.stringify(withoutExamples(schema), null, 2)}</CodeBlock></div>
                            <div><p className="mb-1 text-xs font-medium text-slate-500">Example</p>{examples.length ? <CodeBlock label={`Example of ${et.name}`}>{JSON.stringify(examples[0], null, 2)}</CodeBlock> : <Empty>No example.</Empty>}</div>
                          </div>
                        </details>
                      )}
                    </li>
                  );
                })}
              </ul>
            </Card>
          ))}
        </div>
      )}
      <Dialog open={editing !== null} onClose={() => setEditing(null)} title={editing === null || editing === 'new' ? 'New event type' : `Edit ${editing.name}`} wide>
        {editing !== null && <EventTypeForm eventType={editing === 'new' ? null : editing} onDone={() => setEditing(null)} />}
      </Dialog>
    </>
  );
}

function withoutExamples(schema: Record<string, unknown>) {
  const { examples: _examples, ...rest } = schema;
  return rest;
}

function EventTypeForm({ eventType, onDone }: { eventType: EventType | null; onDone: () => void }) {
  const qc = useQueryClient();
  const schema = eventType ? latest(eventType) : null;
  const [name, setName] = useState(eventType?.name ?? '');
  const [description, setDescription] = useState(eventType?.description ?? '');
  const [group, setGroup] = useState(eventType?.groupName ?? '');
  const [deprecated, setDeprecated] = useState(eventType?.deprecated ?? false);
  const [archived, setArchived] = useState(eventType?.archived ?? false);
  const [schemaText, setSchemaText] = useState(schema ? JSON.stringify(withoutExamples(schema), null, 2) : '{\n  "type": "object",\n  "properties": {}\n}');
  const [examplesText, setExamplesText] = useState(Array.isArray(schema?.examples) ? JSON.stringify(schema.examples, null, 2) : '[\n  {}\n]');
  const [formError, setFormError] = useState<string | null>(null);

  const save = useMutation({
    mutationFn: (body: Record<string, unknown>) =>
      eventType ? api<EventType>('PUT', `/api/v1/event-type/${enc(eventType.name)}`, body) : api<EventType>('POST', '/api/v1/event-type', { name: name.trim(), ...body }),
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: ['event-types'] });
      onDone();
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setFormError(null);
    let parsed: Record<string, unknown> | null = null;
    let examples: unknown = undefined;
    try {
      parsed = schemaText.trim() ? JSON.parse(schemaText) : null;
      examples = examplesText.trim() ? JSON.parse(examplesText) : undefined;
    } catch {
      setFormError('The schema and the examples must be valid JSON.');
      return;
    }
    if (parsed !== null && (typeof parsed !== 'object' || Array.isArray(parsed))) return setFormError('The schema must be a JSON object.');
    if (examples !== undefined && (!Array.isArray(examples) || examples.some((x) => !x || typeof x !== 'object' || Array.isArray(x)))) {
      return setFormError('Examples must be a JSON array of objects (payloads).');
    }
    // Examples live in the schema (JSON Schema's own `examples`), where send-example finds them.
    const schemas = parsed ? { '1': { ...parsed, ...(examples ? { examples } : {}) } } : null;
    save.mutate({ description, groupName: group.trim() || null, schemas, deprecated, archived });
  };
  return (
    <form onSubmit={submit} className="flex flex-col gap-4">
      <TextField label="Name" required disabled={!!eventType} value={name} onChange={(e) => setName(e.target.value)} pattern="[a-zA-Z0-9\-_.]+" maxLength={256} placeholder="invoice.paid" hint="Dotted, like resource.action." autoFocus={!eventType} />
      <TextField label="Description" value={description} maxLength={4096} onChange={(e) => setDescription(e.target.value)} />
      <TextField label="Group" value={group} onChange={(e) => setGroup(e.target.value)} pattern="[a-zA-Z0-9\-_.]+" placeholder="invoices" hint="Event types of a group are shown together." />
      <JsonField label="JSON Schema of the payload" value={schemaText} onChange={setSchemaText} rows={10} />
      <JsonField label="Examples (a JSON array of payloads)" value={examplesText} onChange={setExamplesText} rows={6} hint="The first example is what “Send test event” sends." />
      <div className="flex flex-wrap gap-4">
        <Checkbox label="Deprecated" checked={deprecated} onChange={(e) => setDeprecated(e.target.checked)} />
        {eventType && <Checkbox label="Archived" checked={archived} onChange={(e) => setArchived(e.target.checked)} />}
      </div>
      <ErrorBox error={formError ?? save.error} />
      <div className="flex justify-end"><Button type="submit" variant="primary" busy={save.isPending}>{eventType ? 'Save event type' : 'Create event type'}</Button></div>
    </form>
  );
}
