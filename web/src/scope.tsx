/**
 * What the signed-in user may see and where its pages live: the dashboard (operators, every
 * application of an environment) or the portal (one customer's application, perhaps read-only).
 * Pages are shared; they ask the scope for links and permissions.
 */
import { createContext, useContext } from 'react';
import type { SessionOut } from './api';

export interface Scope {
  mode: 'dashboard' | 'portal';
  session: SessionOut;
  /** Writes refused (read-only portal link): forms and buttons that change things are hidden. */
  readOnly: boolean;
  /** Only environment and admin principals manage the event catalogue and applications. */
  canManageEnvironment: boolean;
  appPath: (appId: string) => string;
  catalogPath: string;
}

export const ScopeContext = createContext<Scope | null>(null);

export function useScope(): Scope {
  const s = useContext(ScopeContext);
  if (!s) throw new Error('useScope outside a ScopeContext');
  return s;
}

export function makeScope(mode: 'dashboard' | 'portal', session: SessionOut): Scope {
  return {
    mode,
    session,
    readOnly: session.readOnly,
    canManageEnvironment: session.kind !== 'application',
    appPath: (appId) => (mode === 'portal' ? '/portal' : `/apps/${encodeURIComponent(appId)}`),
    catalogPath: mode === 'portal' ? '/portal/event-types' : '/event-types',
  };
}
