/** Endpoint shapes (Svix v1: EndpointIn/Update/Patch/Out, headers, secret, stats, recover). */
import { Type } from 'typebox';
import { Channel, Metadata, Nullable, Uid } from '../http/common.js';

/** Event type filters: exact names as in Svix, plus Koppel wildcards (`order.*`, `*`). */
export const EventTypeFilter = Type.String({ minLength: 1, maxLength: 256, pattern: '^[a-zA-Z0-9\\-_.*]+$' });
const eventTypes = Nullable(Type.Array(EventTypeFilter, { minItems: 1, maxItems: 1000, uniqueItems: true, description: 'Only these event types (wildcards such as order.* allowed); null for all.' }));
const channels = Nullable(Type.Array(Channel, { minItems: 1, maxItems: 10, uniqueItems: true, description: 'Only messages sent on one of these channels; null for all.' }));
const url = Type.String({ minLength: 1, maxLength: 65536, format: 'uri', description: 'The http(s) URL deliveries are posted to.' });
const rate = Nullable(Type.Integer({ minimum: 1, maximum: 65535, description: 'Maximum deliveries per second to this endpoint.' }));
export const SECRET_PATTERN = '^(whsec_|whsk_)?[a-zA-Z0-9+/=]{32,100}$';
const secret = Nullable(Type.String({ pattern: SECRET_PATTERN, description: 'Signing secret: whsec_… (HMAC-SHA256) or whsk_… (Ed25519); generated when omitted.' }));
export const HeaderMap = Type.Record(Type.String({ pattern: '^[!#$%&\'*+\\-.^_`|~0-9A-Za-z]+$' }), Type.String({ maxLength: 8192 }));

const common = {
  description: Type.Optional(Type.String({ maxLength: 4096 })),
  uid: Type.Optional(Nullable(Uid())),
  eventTypes: Type.Optional(eventTypes),
  filterTypes: Type.Optional(eventTypes),
  channels: Type.Optional(channels),
  metadata: Type.Optional(Metadata),
  throttleRate: Type.Optional(rate),
  rateLimit: Type.Optional(rate),
  disabled: Type.Optional(Type.Boolean()),
  version: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))),
};

export const EndpointIn = Type.Object(
  { ...common, url, secret: Type.Optional(secret), headers: Type.Optional(Nullable(HeaderMap)) },
  { $id: 'EndpointIn', additionalProperties: false },
);
export const EndpointUpdate = Type.Object({ ...common, url }, { $id: 'EndpointUpdate', additionalProperties: false });
export const EndpointPatch = Type.Object(
  { ...common, url: Type.Optional(url), secret: Type.Optional(secret) },
  { $id: 'EndpointPatch', additionalProperties: false },
);

export const endpointOutFields = {
  id: Type.String({ description: 'Koppel id, ep_…' }),
  uid: Nullable(Type.String()),
  url: Type.String(),
  description: Type.String(),
  eventTypes: Nullable(Type.Array(Type.String())),
  filterTypes: Nullable(Type.Array(Type.String())),
  channels: Nullable(Type.Array(Type.String())),
  metadata: Metadata,
  throttleRate: Nullable(Type.Integer()),
  rateLimit: Nullable(Type.Integer()),
  disabled: Type.Boolean(),
  version: Type.Integer(),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
};
export const EndpointOut = Type.Object(endpointOutFields, { $id: 'EndpointOut' });

export const EndpointHeadersIn = Type.Object({ headers: HeaderMap }, { $id: 'EndpointHeadersIn', additionalProperties: false });
export const EndpointHeadersPatchIn = Type.Object(
  { headers: Type.Record(Type.String({ pattern: '^[!#$%&\'*+\\-.^_`|~0-9A-Za-z]+$' }), Nullable(Type.String({ maxLength: 8192 }))) },
  { $id: 'EndpointHeadersPatchIn', additionalProperties: false },
);
export const EndpointHeadersOut = Type.Object(
  { headers: Type.Record(Type.String(), Type.String()), sensitive: Type.Array(Type.String()) },
  { $id: 'EndpointHeadersOut' },
);
export const EndpointSecretOut = Type.Object(
  { key: Type.String(), publicKey: Type.Optional(Type.String({ description: 'For Ed25519 (whsk_) secrets: the whpk_ public key receivers verify with.' })) },
  { $id: 'EndpointSecretOut' },
);
export const EndpointSecretRotateIn = Type.Object(
  {
    key: Type.Optional(secret),
    gracePeriodSeconds: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 604800, default: 86400, description: 'How long the old secret keeps signing beside the new one.' }))),
  },
  { $id: 'EndpointSecretRotateIn', additionalProperties: false },
);
export const EndpointStats = Type.Object(
  { success: Type.Integer(), pending: Type.Integer(), fail: Type.Integer(), sending: Type.Integer(), canceled: Type.Integer() },
  { $id: 'EndpointStats' },
);
export const RecoverIn = Type.Object(
  { since: Type.String({ format: 'date-time' }), until: Type.Optional(Nullable(Type.String({ format: 'date-time' }))) },
  { $id: 'RecoverIn', additionalProperties: false },
);
export const RecoverOut = Type.Object(
  { id: Type.String(), status: Type.String(), task: Type.String(), updatedAt: Type.String({ format: 'date-time' }), count: Type.Optional(Type.Integer({ description: 'Deliveries rescheduled.' })) },
  { $id: 'RecoverOut' },
);
export const EventExampleIn = Type.Object(
  { eventType: Type.String({ minLength: 1, maxLength: 256, pattern: '^[a-zA-Z0-9\\-_.]+$' }), exampleIndex: Type.Optional(Type.Integer({ minimum: 0, default: 0 })) },
  { $id: 'EventExampleIn', additionalProperties: false },
);
