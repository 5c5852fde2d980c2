/** Source shapes (Koppel extension): SourceIn / SourcePatch / SourceOut and the event log. */
import { Type } from 'typebox';
import { Channel, EventTypeName, Metadata, Nullable, Uid } from '../http/common.js';
import { PROVIDERS } from './providers/index.js';

const HEADER_NAME = '^[!#$%&\'*+\\-.^_`|~0-9A-Za-z]+$';

export const Provider = Type.Union(PROVIDERS.map((p) => Type.Literal(p)), {
  description: 'Whose signature scheme to verify: stripe, github, shopify, woocommerce, slack, standard-webhooks (also Svix) or hmac (configure it in `hmac`).',
});

export const HmacSettings = Type.Object(
  {
    header: Type.String({ minLength: 1, maxLength: 256, pattern: HEADER_NAME, description: 'The header that carries the signature.' }),
    algorithm: Type.Union([Type.Literal('sha1'), Type.Literal('sha256'), Type.Literal('sha512')], { default: 'sha256' }),
    encoding: Type.Union([Type.Literal('hex'), Type.Literal('base64')], { description: 'How the signature is written.' }),
    prefix: Type.Optional(Nullable(Type.String({ maxLength: 64, description: 'Text before the signature, e.g. "sha256=".' }))),
    timestampHeader: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 256, pattern: HEADER_NAME, description: 'A header with the Unix time of sending; checked against toleranceSeconds.' }))),
    idHeader: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 256, pattern: HEADER_NAME, description: 'A header with the delivery id, used for de-duplication.' }))),
    signedContent: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 512, description: 'What is signed: {body}, {timestamp} and {id} are replaced; default "{body}", or "{timestamp}.{body}" with a timestamp header.' }))),
  },
  { $id: 'SourceHmacSettings', additionalProperties: false },
);

export const Dedupe = Type.Object(
  {
    by: Type.Union([Type.Literal('provider'), Type.Literal('body'), Type.Literal('expression'), Type.Literal('none')], {
      description: "provider: the provider's delivery id (the body's hash when it sends none); body: the body's SHA-256; expression: a JSONata expression over {headers, body}; none: no de-duplication.",
    }),
    expression: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 4096 }))),
    windowSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 30 * 86400, default: 86400, description: 'How long a key counts: a repeat after this is a new event.' })),
  },
  { $id: 'SourceDedupe', additionalProperties: false },
);

const common = {
  name: Type.String({ minLength: 1, maxLength: 256 }),
  uid: Type.Optional(Nullable(Uid())),
  description: Type.Optional(Type.String({ maxLength: 4096 })),
  provider: Provider,
  secret: Type.String({ minLength: 1, maxLength: 1024, description: "The provider's signing secret (Stripe's whsec_…, GitHub's webhook secret, Shopify's client secret, …). Stored encrypted; never returned." }),
  hmac: Type.Optional(Nullable(HmacSettings)),
  toleranceSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400, default: 300, description: 'For signed timestamps: how far from now they may be.' })),
  eventTypeExpression: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 4096, description: "JSONata over {headers, body, provider} giving the event type; default: the provider's (GitHub event and action, Shopify or WooCommerce topic, Stripe and Standard Webhooks type)." }))),
  defaultEventType: Type.Optional(Nullable(EventTypeName)),
  dedupe: Type.Optional(Dedupe),
  channels: Type.Optional(Nullable(Type.Array(Channel, { minItems: 1, maxItems: 10, uniqueItems: true, description: 'Channels the messages are sent on.' }))),
  disabled: Type.Optional(Type.Boolean()),
  metadata: Type.Optional(Metadata),
};

export const SourceIn = Type.Object(common, { $id: 'SourceIn', additionalProperties: false });

export const SourcePatch = Type.Object(
  Object.fromEntries(Object.entries(common).map(([k, v]) => [k, Type.Optional(v)])) as { [K in keyof typeof common]: ReturnType<typeof Type.Optional<(typeof common)[K]>> },
  { $id: 'SourcePatch', additionalProperties: false },
);

export const SourceOut = Type.Object(
  {
    id: Type.String({ description: 'Koppel id, src_…' }),
    uid: Nullable(Type.String()),
    name: Type.String(),
    description: Type.String(),
    provider: Type.String(),
    ingestUrl: Type.String({ description: 'Give this URL to the provider.' }),
    hmac: Nullable(HmacSettings),
    toleranceSeconds: Type.Integer(),
    eventTypeExpression: Nullable(Type.String()),
    defaultEventType: Nullable(Type.String()),
    dedupe: Type.Object({ by: Type.String(), expression: Nullable(Type.String()), windowSeconds: Type.Integer() }),
    channels: Nullable(Type.Array(Type.String())),
    disabled: Type.Boolean(),
    metadata: Metadata,
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'SourceOut' },
);

export const SourceEventOut = Type.Object(
  {
    id: Type.String({ description: 'sevt_…' }),
    status: Type.Union([Type.Literal('accepted'), Type.Literal('duplicate'), Type.Literal('rejected'), Type.Literal('ignored')]),
    reason: Nullable(Type.String({ description: 'Why it was rejected, ignored, or which event it duplicates.' })),
    eventType: Nullable(Type.String()),
    dedupeKey: Nullable(Type.String()),
    messageId: Nullable(Type.String({ description: 'The message it became (accepted events).' })),
    headers: Type.Record(Type.String(), Type.String()),
    payload: Nullable(Type.String({ description: 'The body as received (not kept for rejected requests).' })),
    bodyBytes: Type.Integer(),
    timestamp: Type.String({ format: 'date-time' }),
  },
  { $id: 'SourceEventOut' },
);

export const IngestOut = Type.Object(
  {
    id: Type.String({ description: 'The source event, sevt_…' }),
    status: Type.String({ description: 'accepted, duplicate or ignored' }),
    messageId: Type.Optional(Type.String()),
    duplicateOf: Type.Optional(Type.String()),
    reason: Type.Optional(Type.String()),
  },
  { $id: 'IngestOut' },
);
