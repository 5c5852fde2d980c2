/** Application shapes (Svix v1: ApplicationIn, ApplicationOut, ApplicationPatch). */
import { Type } from 'typebox';
import { Metadata, Nullable, Uid } from '../http/common.js';

const name = Type.String({ minLength: 1, maxLength: 256, description: 'Display name, e.g. the customer company.' });
const throttleRate = Nullable(Type.Integer({ minimum: 1, maximum: 65535, description: 'Maximum messages per second delivered to each endpoint of this application.' }));

export const ApplicationIn = Type.Object(
  {
    name,
    uid: Type.Optional(Nullable(Uid())),
    metadata: Type.Optional(Metadata),
    throttleRate: Type.Optional(throttleRate),
    rateLimit: Type.Optional(throttleRate),
  },
  { $id: 'ApplicationIn', additionalProperties: false },
);

export const ApplicationPatch = Type.Object(
  {
    name: Type.Optional(name),
    uid: Type.Optional(Nullable(Uid())),
    metadata: Type.Optional(Metadata),
    throttleRate: Type.Optional(throttleRate),
    rateLimit: Type.Optional(throttleRate),
  },
  { $id: 'ApplicationPatch', additionalProperties: false },
);

export const ApplicationOut = Type.Object(
  {
    id: Type.String({ description: 'Koppel id, app_…' }),
    uid: Nullable(Type.String()),
    name: Type.String(),
    metadata: Metadata,
    throttleRate: Nullable(Type.Integer()),
    rateLimit: Nullable(Type.Integer()),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'ApplicationOut' },
);
