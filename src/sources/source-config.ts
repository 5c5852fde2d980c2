/** A source's settings as stored (JSON in `sources.config`), and its API form. */
import type { Static } from 'typebox';
import type { Config } from '../config.js';
import { iso } from '../http/common.js';
import type { SourceRow } from '../store/schema.js';
import type { HmacOptions, ProviderName } from './providers/index.js';
import type { SourceOut } from './schemas.js';

export interface SourceConfig {
  hmac: HmacOptions | null;
  toleranceSeconds: number;
  eventTypeExpression: string | null;
  defaultEventType: string | null;
  dedupe: { by: 'provider' | 'body' | 'expression' | 'none'; expression: string | null; windowSeconds: number };
  channels: string[] | null;
  metadata: Record<string, string>;
}

export const DEFAULT_DEDUPE_WINDOW_S = 86_400;
export const DEFAULT_TOLERANCE_S = 300;

export const parseSourceConfig = (row: SourceRow): SourceConfig => JSON.parse(row.config) as SourceConfig;

export function sourceOut(row: SourceRow, config: Pick<Config, 'publicUrl'>): Static<typeof SourceOut> {
  const c = parseSourceConfig(row);
  return {
    id: row.id,
    uid: row.uid,
    name: row.name,
    description: row.description,
    provider: row.provider as ProviderName,
    ingestUrl: `${config.publicUrl}/in/${row.id}`,
    hmac: c.hmac,
    toleranceSeconds: c.toleranceSeconds,
    eventTypeExpression: c.eventTypeExpression,
    defaultEventType: c.defaultEventType,
    dedupe: c.dedupe,
    channels: c.channels,
    disabled: !!row.disabled,
    metadata: c.metadata,
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
  };
}
