/**
 * The customer portal: one application, opened from a link made by
 * POST /api/v1/auth/app-portal-access/{app_id}. The token arrives in the URL fragment (never sent
 * to a server), is moved into this tab's sessionStorage so a reload keeps working, and removed
 * from the address bar. It is sent as a bearer token; no cookie is involved, which is what lets
 * the portal work inside a cross-site iframe.
 */
import { useEffect, useState, type ReactNode } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, enc, setCredentials, setUnauthorizedHandler, type Application, type SessionOut } from '../api';
import { Button, Loading, cx } from '../components/ui';
import { Link, match, usePath } from '../router';
import { ScopeContext, makeScope } from '../scope';
import { ApplicationPage } from './application';
import { NotFound } from './dashboard-app';
import { EndpointPage } from './endpoint';
import { EventTypesPage } from './event-types';
import { MessagePage, MessagesPage } from './messages';
import { SourcePage, SourcesPage } from './sources';

const STORAGE_KEY = 'koppel.portal.token';

function takeToken(): string | null {
  const hash = new URLSearchParams(window.location.hash.slice(1));
  const fromLink = hash.get('token');
  if (fromLink) {
    try {
      window.sessionStorage.setItem(STORAGE_KEY, fromLink);
    } catch {
      /* storage disabled (some embedded contexts): the token stays in memory only */
    }
    window.history.replaceState(null, '', window.location.pathname + window.location.search);
    return fromLink;
  }
  try {
    return window.sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

type State = { status: 'loading' } | { status: 'refused'; reason: string } | { status: 'ready'; session: SessionOut };

export function PortalApp() {
  const [state, setState] = useState<State>({ status: 'loading' });
  const queryClient = useQueryClient();

  useEffect(() => {
    const token = takeToken();
    if (!token) {
      setState({ status: 'refused', reason: 'This page needs a portal link. Open the link you were given again, or ask for a new one.' });
      return;
    }
    setCredentials({ kind: 'bearer', token });
    const refuse = () => {
      queryClient.clear();
      try {
        window.sessionStorage.removeItem(STORAGE_KEY);
      } catch {
        /* ignore */
      }
      setState({ status: 'refused', reason: 'This portal link has expired or is not valid. Ask for a new link.' });
    };
    setUnauthorizedHandler(refuse);
    api<SessionOut>('GET', '/api/v1/auth/session')
      .then((session) => {
        if (session.branding) document.documentElement.style.setProperty('--accent', session.branding.accentColor);
        setState({ status: 'ready', session });
      })
      .catch(refuse);
    return () => setUnauthorizedHandler(null);
  }, [queryClient]);

  if (state.status === 'loading') return <div className="p-6"><Loading /></div>;
  if (state.status === 'refused') {
    return (
      <main className="flex min-h-screen items-center justify-center p-4">
        <div className="max-w-md rounded-lg border border-slate-200 bg-white p-6 text-center">
          <h1 tabIndex={-1} className="text-lg font-semibold">Access refused</h1>
          <p className="mt-2 text-sm text-slate-600">{state.reason}</p>
        </div>
      </main>
    );
  }
  return (
    <ScopeContext.Provider value={makeScope('portal', state.session)}>
      <PortalShell session={state.session} onSignOut={() => {
        api('POST', '/api/v1/auth/logout').catch(() => undefined);
        try {
          window.sessionStorage.removeItem(STORAGE_KEY);
        } catch {
          /* ignore */
        }
        queryClient.clear();
        setState({ status: 'refused', reason: 'You have signed out of the portal. Open your link again to come back.' });
      }} />
    </ScopeContext.Provider>
  );
}

function PortalShell({ session, onSignOut }: { session: SessionOut; onSignOut: () => void }) {
  const path = usePath();
  const appId = session.applicationId!;
  const app = useQuery({ queryKey: ['app', appId], queryFn: () => api<Application>('GET', `/api/v1/app/${enc(appId)}`) });
  const branding = session.branding ?? { name: 'Webhooks', logoUrl: null, accentColor: '#4f46e5' };

  const nav = [
    { href: '/portal', label: 'Endpoints', active: path === '/portal' || path.startsWith('/portal/endpoints') },
    { href: '/portal/messages', label: 'Messages', active: path.startsWith('/portal/messages') },
    { href: '/portal/sources', label: 'Sources', active: path.startsWith('/portal/sources') },
    { href: '/portal/event-types', label: 'Event catalogue', active: path.startsWith('/portal/event-types') },
  ];
  let page: ReactNode;
  let m: Record<string, string> | null;
  if (path === '/portal' || path === '/portal/') page = <ApplicationPage appId={appId} />;
  else if ((m = match('/portal/endpoints/:ep', path))) page = <EndpointPage appId={appId} endpointId={m.ep} />;
  else if ((m = match('/portal/messages/:msg', path))) page = <MessagePage appId={appId} msgId={m.msg} />;
  else if (path === '/portal/messages') page = <MessagesPage appId={appId} />;
  else if ((m = match('/portal/sources/:src', path))) page = <SourcePage appId={appId} sourceId={m.src} />;
  else if (path === '/portal/sources') page = <SourcesPage appId={appId} />;
  else if (path === '/portal/event-types') page = <EventTypesPage />;
  else page = <NotFound />;

  return (
    <div className="min-h-screen">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-10 focus:rounded focus:bg-white focus:px-3 focus:py-2">Skip to content</a>
      <header className="border-b border-slate-200 bg-white">
        <div className="h-1 bg-accent" />
        <div className="mx-auto flex max-w-5xl flex-wrap items-center gap-x-4 gap-y-2 px-4 py-3">
          <div className="flex min-w-0 items-center gap-2">
            {branding.logoUrl && <img src={branding.logoUrl} alt="" className="h-7 w-auto max-w-28 object-contain" referrerPolicy="no-referrer" />}
            <span className="truncate font-semibold" data-testid="portal-brand">{branding.name}</span>
            {app.data && <span className="truncate text-sm text-slate-500">· {app.data.name}</span>}
            {session.readOnly && <span className="rounded-full border border-slate-300 px-2 py-0.5 text-xs text-slate-600">Read-only</span>}
          </div>
          <nav aria-label="Portal" className="order-last flex w-full gap-1 overflow-x-auto sm:order-none sm:w-auto">
            {nav.map((n) => (
              <Link key={n.href} href={n.href} aria-current={n.active ? 'page' : undefined} className={cx('rounded px-3 py-1.5 text-sm whitespace-nowrap', n.active ? 'bg-accent text-white' : 'text-slate-600 hover:bg-slate-100')}>
                {n.label}
              </Link>
            ))}
          </nav>
          <Button variant="ghost" className="ml-auto" onClick={onSignOut}>Sign out</Button>
        </div>
      </header>
      <main id="main" className="mx-auto max-w-5xl px-4 py-6">{page}</main>
    </div>
  );
}
