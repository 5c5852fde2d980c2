import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { ApiError } from './api';
import { DashboardApp } from './pages/dashboard-app';
import { PortalApp } from './pages/portal-app';
import './styles.css';

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // A 4xx will not get better by asking again.
      retry: (count, err) => !(err instanceof ApiError && err.status >= 400 && err.status < 500) && count < 2,
      refetchOnWindowFocus: false,
      staleTime: 5_000,
    },
  },
});

const path = window.location.pathname;
const isPortal = path === '/portal' || path.startsWith('/portal/');

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>{isPortal ? <PortalApp /> : <DashboardApp />}</QueryClientProvider>
  </StrictMode>,
);
