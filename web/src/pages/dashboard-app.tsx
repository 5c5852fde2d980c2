/**
 * The operator dashboard: sign-in, the environment switcher, navigation and routes.
 */
import { useEffect, useState, type FormEvent, type ReactNode } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, api, getEnvironment, setCredentials, setEnvironment, setUnauthorizedHandler, type Environment, type ListOut, type SessionOut } from '../api';
import { Button, ErrorBox, Loading, Select, TextField, cx } from '../components/ui';
import { Link, match, navigate, usePath, useTitle } from '../router';
import { ScopeContext, makeScope } from '../scope';
import { ApplicationPage } from './application';
import { ApplicationsPage } from './applications';
import { EndpointPage } from './endpoint';
import { EventTypesPage } from './event-types';
import { MessagePage, MessagesPage } from './messages';
import { SourcePage, SourcesPage } from './sources';

type State = { status: 'loading' } | { status: 'signed-out'; reason?: string } | { status: 'signed-in'; session: SessionOut };

export function DashboardApp() {
  const [state, setState] = useState<State>({ status: 'loading' });
  const queryClient = useQueryClient();

  useEffect(() => {
    setCredentials({ kind: 'cookie', csrf: null });
    setUnauthorizedHandler(() => {
      queryClient.clear();
      setState({ status: 'signed-out', reason: 'Your session ended; sign in again.' });
    });
    api<SessionOut>('GET', '/api/v1/auth/session')
      .then((session) => {
        setCredentials({ kind: 'cookie', csrf: session.csrfToken });
        setState({ status: 'signed-in', session });
      })
      .catch(() => setState({ status: 'signed-out' }));
    return () => setUnauthorizedHandler(null);
  }, [queryClient]);

  if (state.status === 'loading') return <div className="p-6"><Loading /></div>;
  if (state.status === 'signed-out') {
    return (
      <SignIn
        reason={state.reason}
        onSignedIn={(session) => {
          setCredentials({ kind: 'cookie', csrf: session.csrfToken });
          queryClient.clear();
          setState({ status: 'signed-in', session });
        }}
      />
    );
  }
  return (
    <ScopeContext.Provider value={makeScope('dashboard', state.session)}>
      <Shell
        session={state.session}
        onSignOut={async () => {
          await api('POST', '/api/v1/auth/logout').catch(() => undefined);
          setEnvironment(null);
          queryClient.clear();
          setState({ status: 'signed-out', reason: 'You have signed out.' });
        }}
      />
    </ScopeContext.Provider>
  );
}

function SignIn({ onSignedIn, reason }: { onSignedIn: (s: SessionOut) => void; reason?: string }) {
  useTitle('Sign in · Koppel');
  const [key, setKey] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const session = await api<SessionOut>('POST', '/api/v1/auth/session', { apiKey: key.trim() });
      // The key was only needed for this request; the session cookie carries on.
      setKey('');
      onSignedIn(session);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="flex min-h-screen items-center justify-center p-4">
      <form onSubmit={submit} className="flex w-full max-w-sm flex-col gap-4 rounded-lg border border-slate-200 bg-white p-6 shadow-sm" aria-labelledby="signin-title">
        <div>
          <h1 id="signin-title" tabIndex={-1} className="text-xl font-semibold">Sign in to Koppel</h1>
          <p className="mt-1 text-sm text-slate-500">Use an API key: the admin key Koppel printed at its first start, or an environment key.</p>
        </div>
        {reason && <p role="status" className="text-sm text-slate-600">{reason}</p>}
        <TextField
          label="API key"
          name="apiKey"
          type="password"
          autoComplete="off"
          spellCheck={false}
          required
          value={key}
          onChange={(e) => setKey(e.target.value)}
          placeholder="kpl_…"
          autoFocus
        />
        <ErrorBox error={error} />
        <Button type="submit" variant="primary" busy={busy}>Sign in</Button>
        <p className="text-xs text-slate-500">The key is exchanged for a session cookie that scripts cannot read; it is not stored in this browser.</p>
      </form>
    </main>
  );
}

function EnvironmentSwitcher() {
  const queryClient = useQueryClient();
  const envs = useQuery({ queryKey: ['environments'], queryFn: () => api<ListOut<Environment>>('GET', '/api/v1/environment?limit=250') });
  const [current, setCurrent] = useState<string>(getEnvironment() ?? '');
  if (!envs.data || envs.data.data.length < 2) return null;
  return (
    <label className="flex items-center gap-2 text-sm">
      <span className="text-slate-300">Environment</span>
      <Select
        className="!w-auto !py-1 text-slate-900"
        value={current}
        onChange={(e) => {
          setCurrent(e.target.value);
          setEnvironment(e.target.value || null);
          // Everything cached belongs to the previous environment.
          queryClient.removeQueries({ predicate: (q) => q.queryKey[0] !== 'environments' });
          navigate('/');
        }}
      >
        <option value="">Default</option>
        {envs.data.data.map((e) => <option key={e.id} value={e.id}>{e.name}</option>)}
      </Select>
    </label>
  );
}

function Shell({ session, onSignOut }: { session: SessionOut; onSignOut: () => void }) {
  const path = usePath();
  const appOnly = session.kind === 'application' ? session.applicationId : null;
  useEffect(() => {
    // An application key sees only its application.
    if (appOnly && !path.startsWith(`/apps/${appOnly}`) && path !== '/event-types') navigate(`/apps/${appOnly}`, true);
  }, [appOnly, path]);

  const nav = [
    ...(appOnly ? [{ href: `/apps/${appOnly}`, label: 'Application', active: path.startsWith('/apps') }] : [{ href: '/', label: 'Applications', active: path === '/' || path.startsWith('/apps') }]),
    { href: '/event-types', label: 'Event types', active: path.startsWith('/event-types') },
  ];

  let page: ReactNode;
  let m: Record<string, string> | null;
  if ((m = match('/apps/:app/endpoints/:ep', path))) page = <EndpointPage appId={m.app} endpointId={m.ep} />;
  else if ((m = match('/apps/:app/messages/:msg', path))) page = <MessagePage appId={m.app} msgId={m.msg} />;
  else if ((m = match('/apps/:app/messages', path))) page = <MessagesPage appId={m.app} />;
  else if ((m = match('/apps/:app/sources/:src', path))) page = <SourcePage appId={m.app} sourceId={m.src} />;
  else if ((m = match('/apps/:app/sources', path))) page = <SourcesPage appId={m.app} />;
  else if ((m = match('/apps/:app', path))) page = <ApplicationPage appId={m.app} />;
  else if (path === '/event-types') page = <EventTypesPage />;
  else if (path === '/' && !appOnly) page = <ApplicationsPage />;
  else page = <NotFound />;

  return (
    <div className="min-h-screen">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-10 focus:rounded focus:bg-white focus:px-3 focus:py-2">Skip to content</a>
      <header className="bg-slate-900 text-white">
        <div className="mx-auto flex max-w-6xl flex-wrap items-center gap-x-4 gap-y-2 px-4 py-2">
          <Link href={appOnly ? `/apps/${appOnly}` : '/'} className="flex items-center gap-2 font-semibold">
            <img src="/favicon.svg" alt="" className="size-6" /> Koppel
          </Link>
          <nav aria-label="Main" className="order-last flex w-full gap-1 overflow-x-auto sm:order-none sm:w-auto">
            {nav.map((n) => (
              <Link key={n.href} href={n.href} aria-current={n.active ? 'page' : undefined} className={cx('rounded px-3 py-1.5 text-sm whitespace-nowrap', n.active ? 'bg-white/15 text-white' : 'text-slate-300 hover:text-white')}>
                {n.label}
              </Link>
            ))}
          </nav>
          <div className="ml-auto flex items-center gap-3">
            {session.kind === 'admin' && <EnvironmentSwitcher />}
            <Button variant="ghost" className="!text-slate-200 hover:!bg-white/10" onClick={onSignOut}>Sign out</Button>
          </div>
        </div>
      </header>
      <main id="main" className="mx-auto max-w-6xl px-4 py-6">{page}</main>
    </div>
  );
}

export function NotFound() {
  useTitle('Not found · Koppel');
  return (
    <div>
      <h1 tabIndex={-1} className="text-xl font-semibold">Page not found</h1>
      <p className="mt-2 text-sm text-slate-600">There is nothing at this address. <Link className="text-accent underline" href="/">Go to the start page.</Link></p>
    </div>
  );
}

/** Turns a thrown API error into a page-level message (404 reads better than a raw error). */
export function describeLoadError(err: unknown, what: string): string {
  if (err instanceof ApiError && err.status === 404) return `${what} was not found, or you do not have access to it.`;
  return err instanceof Error ? err.message : String(err);
}
