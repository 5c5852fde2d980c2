/** What request handlers and workers share: configuration, store, crypto and signals. */
import type { Logger } from 'pino';
import type { ApplicationCache } from './applications/cache.js';
import type { Config } from './config.js';
import type { SecretBox } from './crypto/secret-box.js';
import type { Authenticator } from './http/auth.js';
import type { MessageWriter } from './messages/message-writer.js';
import type { Metrics } from './metrics/metrics.js';
import type { Store } from './store/port.js';

export interface Context {
  config: Config;
  store: Store;
  box: SecretBox;
  auth: Authenticator;
  log: Logger;
  messages: MessageWriter;
  metrics: Metrics;
  /** Application lookups for message creation (src/applications/cache.ts). */
  apps: ApplicationCache;
  /** New deliveries are due (for these endpoints, when known): claim them soon. */
  wake: (endpointIds?: Iterable<string>) => void;
  defaultEnvironmentId: string;
}
