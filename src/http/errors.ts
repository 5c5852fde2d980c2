/**
 * The error catalogue. Every error Koppel answers with has a stable `code`, an HTTP status and a
 * detail that tells the caller how to fix it, rendered as `{code, detail}` (the Svix error shape).
 * docs/api.md lists the same codes; a test keeps the two in step.
 */
export const ERRORS = {
  authentication_failed: { status: 401, detail: 'Missing or invalid API key: send "Authorization: Bearer <key>" with a key created by Koppel.' },
  forbidden: { status: 403, detail: 'This API key may not do that: use a key of the environment (or an admin key).' },
  not_found: { status: 404, detail: 'Entity not found.' },
  conflict: { status: 409, detail: 'A resource with that identifier already exists.' },
  idempotency_conflict: { status: 409, detail: 'A request with this idempotency-key is still being processed; retry after it finishes.' },
  idempotency_not_replayable: { status: 409, detail: 'The first request with this idempotency-key succeeded, and its response carried a credential that Koppel shows only once and does not keep, so it cannot be sent again.' },
  idempotency_key_reused: { status: 422, detail: 'This idempotency-key was already used with a different request body or path; use a new key for a different request.' },
  validation: { status: 422, detail: 'The request did not validate.' },
  bad_request: { status: 400, detail: 'The request is malformed.' },
  invalid_text: { status: 400, detail: 'A text value contains the NUL character (\\u0000), which cannot be stored; remove it and send the request again.' },
  invalid_json: { status: 400, detail: 'The request body is not valid JSON: send a UTF-8 JSON document with Content-Type: application/json.' },
  unsupported_media_type: { status: 415, detail: 'Send the body as JSON with Content-Type: application/json.' },
  payload_too_large: { status: 413, detail: 'The request body is too large; split it into smaller requests.' },
  signature_invalid: { status: 401, detail: 'The webhook signature did not verify; check the source secret and that the provider posts to this source.' },
  source_disabled: { status: 403, detail: 'This source is disabled; enable it to receive webhooks again.' },
  unavailable: { status: 503, detail: 'Koppel is shutting down or its database is unreachable; retry shortly.' },
  internal: { status: 500, detail: 'An unexpected error occurred; it has been logged.' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** A failure to report to the API caller; thrown by services, rendered by the HTTP layer. */
export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    detail?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(detail ?? ERRORS[code].detail);
    this.status = ERRORS[code].status;
  }
}


/** One item of a 422 response, in the shape Svix and FastAPI use. */
export interface ValidationItem {
  loc: (string | number)[];
  msg: string;
  type: string;
}

/** A 422 with per-field problems: `{code: "validation", detail: [{loc, msg, type}]}`. */
export class ValidationFailed extends Error {
  constructor(readonly items: ValidationItem[]) {
    super(items.map((i) => `${i.loc.join('.')}: ${i.msg}`).join('; '));
  }
}

export const invalidField = (loc: (string | number)[], msg: string, type = 'value_error') =>
  new ValidationFailed([{ loc, msg, type }]);
