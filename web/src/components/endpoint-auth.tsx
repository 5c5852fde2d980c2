/**
 * The credentials Koppel sends to the target API: an API-key header, a bearer token or basic
 * auth. Stored encrypted; the API never returns them, so this card shows only the kind, the
 * header and the user name, and a change always replaces the whole credential.
 */
import { useId, useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, enc, type EndpointAuth } from '../api';
import { Button, Card, Dialog, ErrorBox, Field, Loading, Notice, Select, TextField } from './ui';
import { describeAuth } from './endpoint-versions';
import { useScope } from '../scope';

type Kind = 'api-key' | 'bearer' | 'basic';

export function AuthCard({ appId, endpointId }: { appId: string; endpointId: string }) {
  const scope = useScope();
  const qc = useQueryClient();
  const path = `/api/v1/app/${enc(appId)}/endpoint/${enc(endpointId)}/auth`;
  const auth = useQuery({ queryKey: ['endpoint', appId, endpointId, 'auth'], queryFn: () => api<EndpointAuth>('GET', path) });
  const [editing, setEditing] = useState(false);
  const [removing, setRemoving] = useState(false);
  const [kind, setKind] = useState<Kind>('api-key');
  const [header, setHeader] = useState('X-Api-Key');
  const [secret, setSecret] = useState('');
  const [username, setUsername] = useState('');
  const [notice, setNotice] = useState<string | null>(null);
  const kindId = useId();
  const refresh = () => qc.invalidateQueries({ queryKey: ['endpoint', appId, endpointId] });

  const save = useMutation({
    mutationFn: () => {
      const body = kind === 'api-key' ? { type: kind, header: header.trim(), key: secret } : kind === 'bearer' ? { type: kind, token: secret } : { type: kind, username, password: secret };
      return api<EndpointAuth>('PUT', path, body);
    },
    onSuccess: () => {
      setSecret('');
      setEditing(false);
      setNotice('Auth saved.');
      refresh();
    },
  });
  const remove = useMutation({
    mutationFn: () => api('DELETE', path),
    onSuccess: () => {
      setRemoving(false);
      setNotice('Auth removed.');
      refresh();
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate();
  };
  const has = auth.data && auth.data.type !== 'none';
  return (
    <Card title="Auth for the target API">
      <p className="mb-3 text-sm text-slate-600">Credentials sent with every delivery, stored encrypted. They are never shown again; to change one, enter it anew.</p>
      {auth.isPending ? <Loading /> : auth.error ? <ErrorBox error={auth.error} /> : (
        <p className="text-sm" data-testid="auth-summary"><span className="text-slate-500">Current: </span><span className="break-words font-medium">{describeAuth(auth.data)}</span></p>
      )}
      {notice && <div className="mt-2"><Notice>{notice}</Notice></div>}
      {!scope.readOnly && !editing && auth.data && (
        <div className="mt-3 flex flex-wrap gap-2">
          <Button onClick={() => { setNotice(null); save.reset(); setEditing(true); }}>{has ? 'Replace auth' : 'Set auth'}</Button>
          {has && <Button variant="danger" onClick={() => { setNotice(null); remove.reset(); setRemoving(true); }}>Remove auth</Button>}
        </div>
      )}
      {!scope.readOnly && editing && (
        <form onSubmit={submit} className="mt-3 flex flex-col gap-3 border-t border-slate-100 pt-3">
          <Field id={kindId} label="Kind">
            <Select id={kindId} value={kind} onChange={(e) => { setKind(e.target.value as Kind); setSecret(''); }}>
              <option value="api-key">API key in a header</option>
              <option value="bearer">Bearer token</option>
              <option value="basic">Basic auth (user name and password)</option>
            </Select>
          </Field>
          {kind === 'api-key' && <TextField label="Header name" required maxLength={256} value={header} onChange={(e) => setHeader(e.target.value)} placeholder="X-Api-Key" />}
          {kind === 'basic' && <TextField label="User name" required maxLength={512} autoComplete="off" value={username} onChange={(e) => setUsername(e.target.value)} />}
          <TextField
            label={kind === 'api-key' ? 'API key' : kind === 'bearer' ? 'Token' : 'Password'}
            type="password"
            autoComplete="new-password"
            spellCheck={false}
            required
            value={secret}
            onChange={(e) => setSecret(e.target.value)}
          />
          <ErrorBox error={save.error} />
          <div className="flex flex-wrap justify-end gap-2">
            <Button onClick={() => { setSecret(''); setEditing(false); }}>Cancel</Button>
            <Button type="submit" variant="primary" busy={save.isPending}>Save auth</Button>
          </div>
        </form>
      )}
      <Dialog open={removing} onClose={() => setRemoving(false)} title="Remove auth">
        <p className="text-sm">Stop sending credentials to this endpoint? The target API may then refuse deliveries. This makes a new version you can roll back.</p>
        <ErrorBox error={remove.error} />
        <div className="mt-4 flex justify-end gap-2">
          <Button onClick={() => setRemoving(false)}>Cancel</Button>
          <Button variant="danger" busy={remove.isPending} onClick={() => remove.mutate()}>Remove auth</Button>
        </div>
      </Dialog>
    </Card>
  );
}
