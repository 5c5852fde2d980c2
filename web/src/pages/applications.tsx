/** Applications of the environment: search, create, open. */
import { useMemo, useState, type FormEvent } from 'react';
import { useInfiniteQuery, useMutation, useQueryClient } from '@tanstack/react-query';
import { api, type Application, type ListOut } from '../api';
import { Button, Card, Dialog, Empty, ErrorBox, Input, Loading, PageHeader, Table, Td, TextField, formatTime } from '../components/ui';
import { Link, navigate, useTitle } from '../router';

export function ApplicationsPage() {
  useTitle('Applications · Koppel');
  const [search, setSearch] = useState('');
  const [creating, setCreating] = useState(false);
  const apps = useInfiniteQuery({
    queryKey: ['apps'],
    initialPageParam: null as string | null,
    queryFn: ({ pageParam }) => api<ListOut<Application>>('GET', `/api/v1/app?limit=250${pageParam ? `&iterator=${encodeURIComponent(pageParam)}` : ''}`),
    getNextPageParam: (last) => (last.done ? null : last.iterator),
  });
  const all = useMemo(() => apps.data?.pages.flatMap((p) => p.data) ?? [], [apps.data]);
  const q = search.trim().toLowerCase();
  // The API lists by id; the search filters what is loaded (up to 250 per page, more on demand).
  const shown = q ? all.filter((a) => a.name.toLowerCase().includes(q) || (a.uid ?? '').toLowerCase().includes(q) || a.id.toLowerCase().includes(q)) : all;

  return (
    <>
      <PageHeader title="Applications" subtitle="One application per customer; each has its own endpoints and messages." actions={<Button variant="primary" onClick={() => setCreating(true)}>New application</Button>} />
      <Card>
        <div className="mb-3">
          <label htmlFor="app-search" className="sr-only">Search applications</label>
          <Input id="app-search" type="search" placeholder="Search by name, uid or id" value={search} onChange={(e) => setSearch(e.target.value)} />
        </div>
        {apps.isPending ? <Loading /> : apps.error ? <ErrorBox error={apps.error} /> : shown.length === 0 ? (
          <Empty>{q ? 'No application matches.' : 'No applications yet. Create one for each customer.'}</Empty>
        ) : (
          <Table caption="Applications" head={['Name', 'UID', 'ID', 'Created']}>
            {shown.map((a) => (
              <tr key={a.id}>
                <Td><Link className="font-medium text-accent underline-offset-2 hover:underline" href={`/apps/${encodeURIComponent(a.id)}`}>{a.name}</Link></Td>
                <Td className="break-all text-slate-600">{a.uid ?? '—'}</Td>
                <Td className="font-mono text-xs text-slate-500">{a.id}</Td>
                <Td className="whitespace-nowrap text-slate-500">{formatTime(a.createdAt)}</Td>
              </tr>
            ))}
          </Table>
        )}
        {apps.hasNextPage && <div className="mt-3"><Button onClick={() => apps.fetchNextPage()} busy={apps.isFetchingNextPage}>Load more</Button></div>}
      </Card>
      <Dialog open={creating} onClose={() => setCreating(false)} title="New application">
        <CreateApplication onDone={(a) => { setCreating(false); navigate(`/apps/${encodeURIComponent(a.id)}`); }} />
      </Dialog>
    </>
  );
}

function CreateApplication({ onDone }: { onDone: (a: Application) => void }) {
  const qc = useQueryClient();
  const [name, setName] = useState('');
  const [uid, setUid] = useState('');
  const create = useMutation({
    mutationFn: () => api<Application>('POST', '/api/v1/app', { name: name.trim(), ...(uid.trim() ? { uid: uid.trim() } : {}) }),
    onSuccess: (a) => {
      qc.invalidateQueries({ queryKey: ['apps'] });
      onDone(a);
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate();
  };
  return (
    <form onSubmit={submit} className="flex flex-col gap-4">
      <TextField label="Name" required maxLength={256} value={name} onChange={(e) => setName(e.target.value)} hint="Usually the customer's company name." autoFocus />
      <TextField label="UID (optional)" value={uid} onChange={(e) => setUid(e.target.value)} pattern="[a-zA-Z0-9\-_.]+" maxLength={256} hint="Your own id for this customer; usable instead of the app_… id." />
      <ErrorBox error={create.error} />
      <div className="flex justify-end"><Button type="submit" variant="primary" busy={create.isPending}>Create application</Button></div>
    </form>
  );
}
