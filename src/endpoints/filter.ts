/** Which endpoints a message goes to: event type filter (exact or wildcard) and channels. */
import type { EndpointRow } from '../store/schema.js';

const compiled = new Map<string, RegExp>();

function wildcard(pattern: string): RegExp {
  let re = compiled.get(pattern);
  if (!re) {
    re = new RegExp('^' + pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\-]/g, '\\$&')).join('.*') + '$');
    if (compiled.size > 10_000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re;
}

/** True when an event type passes an endpoint's filter list (null = every type). */
export function eventTypeMatches(filters: string[] | null, eventType: string): boolean {
  if (filters === null) return true;
  for (const f of filters) {
    if (f === eventType) return true;
    if (f.includes('*') && wildcard(f).test(eventType)) return true;
  }
  return false;
}

/** An endpoint with channels receives only messages on at least one of them. */
export function channelsMatch(endpointChannels: string[] | null, messageChannels: string[] | null): boolean {
  if (endpointChannels === null) return true;
  if (!messageChannels) return false;
  return messageChannels.some((c) => endpointChannels.includes(c));
}

export function endpointMatches(ep: EndpointRow, eventType: string, channels: string[] | null): boolean {
  return (
    !ep.disabled &&
    eventTypeMatches(ep.event_types === null ? null : JSON.parse(ep.event_types), eventType) &&
    channelsMatch(ep.channels === null ? null : JSON.parse(ep.channels), channels)
  );
}
