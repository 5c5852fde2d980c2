/**
 * send-example: an example event of a catalogue type, delivered to one endpoint only. Returns the
 * message as the API shows it and when its payload expires.
 */
import type { Context } from '../context.js';
import { ApiError } from '../http/errors.js';
import { newId } from '../lib/ids.js';
import type { ApplicationRow, EndpointRow, MessageRow } from '../store/schema.js';
import { exampleForEventType } from './example.js';
import { messageOut } from './routes.js';

export async function sendExample(ctx: Context, app: ApplicationRow, ep: EndpointRow, eventType: string, index: number) {
  const et = await ctx.store.getEventType(app.environment_id, eventType);
  if (!et) throw new ApiError('not_found', `Event type "${eventType}" not found; create it in the catalogue first.`);
  const payload = exampleForEventType(et.schemas === null ? null : JSON.parse(et.schemas), index);
  if (!payload) {
    throw new ApiError('bad_request', `Event type "${eventType}" has no schema or example to build a payload from; add "examples" to its JSON Schema.`);
  }
  const now = Date.now();
  const message: MessageRow = {
    id: newId('msg', now), environment_id: app.environment_id, app_id: app.id, event_type: eventType, event_id: null,
    channels: null, tags: null, payload: JSON.stringify(payload), created_at: now, expires_at: now + ctx.config.retentionMs,
  };
  await ctx.messages.write({ message, dueAt: now, onlyEndpoint: ep });
  return { out: messageOut(message), expiresAt: message.expires_at };
}
