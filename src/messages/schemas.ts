/** Message shapes (Svix v1: MessageIn, MessageOut). */
import { Type } from 'typebox';
import { ApplicationIn } from '../applications/schemas.js';
import { Channel, EventTypeName, NAME_PATTERN, Nullable } from '../http/common.js';

export const MessageIn = Type.Object(
  {
    eventType: EventTypeName,
    payload: Type.Record(Type.String(), Type.Unknown(), { description: 'The event, a JSON object; delivered as the request body.' }),
    eventId: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 256, pattern: NAME_PATTERN, description: 'Your id for this event; a second message with the same eventId in the application is refused with 409.' }))),
    channels: Type.Optional(Nullable(Type.Array(Channel, { minItems: 1, maxItems: 10, uniqueItems: true }))),
    tags: Type.Optional(Nullable(Type.Array(Type.String({ maxLength: 128, pattern: NAME_PATTERN }), { maxItems: 5, uniqueItems: true }))),
    payloadRetentionPeriod: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 365, description: 'Days the payload is kept; without this or payloadRetentionHours, KOPPEL_RETENTION_DAYS (default 30). The message stays, without its payload, until KOPPEL_RETENTION_DAYS have passed as well; its attempts are kept for KOPPEL_RETENTION_DAYS.' }))),
    payloadRetentionHours: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 8760, description: 'Hours the payload is kept (overrides payloadRetentionPeriod).' }))),
    deliverAt: Type.Optional(Nullable(Type.String({ format: 'date-time', description: 'Deliver no earlier than this time.' }))),
    application: Type.Optional(Nullable(ApplicationIn)),
  },
  { $id: 'MessageIn', additionalProperties: false },
);

export const messageOutFields = {
  id: Type.String({ description: 'Koppel id, msg_…; also the webhook-id header of every delivery.' }),
  eventType: Type.String(),
  eventId: Nullable(Type.String()),
  channels: Nullable(Type.Array(Type.String())),
  tags: Nullable(Type.Array(Type.String())),
  payload: Type.Record(Type.String(), Type.Unknown()),
  timestamp: Type.String({ format: 'date-time' }),
};
export const MessageOut = Type.Object(messageOutFields, { $id: 'MessageOut' });

export const BulkMessageIn = Type.Object(
  { messages: Type.Array(MessageIn, { minItems: 1, maxItems: 1000, description: 'Up to 1,000 messages, written in one transaction.' }) },
  { $id: 'BulkMessageIn', additionalProperties: false },
);
export const BulkMessageOut = Type.Object(
  {
    data: Type.Array(Nullable(MessageOut), { description: 'One entry per input message, in order; null where the message was refused (see errors).' }),
    errors: Type.Array(Type.Object({ index: Type.Integer(), code: Type.String(), detail: Type.String() }), { description: 'Messages refused, e.g. a repeated eventId (code conflict).' }),
  },
  { $id: 'BulkMessageOut' },
);
