/**
 * Svix-style keyset pagination: `limit`, `iterator`, `order`; answers carry `iterator` (continue
 * after the last item), `prevIterator` (go back from the first item; a leading "-" marks the
 * reverse direction) and `done`.
 */
import { Type } from 'typebox';
import type { Order, Page, PageRequest } from '../store/port.js';
import { invalidField } from './errors.js';
import { ID_PATTERN } from '../lib/ids.js';

export const PaginationQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 250, default: 50, description: 'Items per page (1–250).' })),
  iterator: Type.Optional(Type.String({ maxLength: 300, description: 'Iterator from a previous page: `iterator` to go on, `prevIterator` to go back.' })),
  order: Type.Optional(Type.Union([Type.Literal('ascending'), Type.Literal('descending')], { description: 'Sort order.' })),
};

export interface ListQuery {
  limit?: number;
  iterator?: string;
  order?: 'ascending' | 'descending';
}

export interface ListOut<T> {
  data: T[];
  done: boolean;
  iterator: string | null;
  prevIterator: string | null;
}

/** Runs a keyset query honouring forward and backward iterators. */
export async function listPage<R, T>(
  q: ListQuery,
  defaultOrder: Order,
  keyOf: (row: R) => string,
  fetch: (page: PageRequest) => Promise<Page<R>>,
  toOut: (row: R) => T,
  validIterator: (key: string) => boolean = () => true,
): Promise<ListOut<T>> {
  const limit = q.limit ?? 50;
  const order: Order = q.order === 'ascending' ? 'asc' : q.order === 'descending' ? 'desc' : defaultOrder;
  let iterator = q.iterator ?? null;
  const backwards = iterator !== null && iterator.startsWith('-');
  if (backwards) iterator = iterator!.slice(1);
  if (iterator !== null && !validIterator(iterator)) {
    throw invalidField(['query', 'iterator'], 'invalid iterator; pass back an iterator from a previous response', 'value_error.iterator');
  }
  if (!backwards) {
    const page = await fetch({ limit, after: iterator, order });
    const items = page.items;
    return {
      data: items.map(toOut),
      done: page.done,
      iterator: items.length ? keyOf(items[items.length - 1]) : iterator,
      prevIterator: items.length ? `-${keyOf(items[0])}` : null,
    };
  }
  const reverse: Order = order === 'asc' ? 'desc' : 'asc';
  const page = await fetch({ limit, after: iterator, order: reverse });
  const items = page.items.slice().reverse();
  return {
    data: items.map(toOut),
    // Going back, "done" means nothing more precedes these items.
    done: page.done,
    iterator: items.length ? keyOf(items[items.length - 1]) : null,
    prevIterator: items.length ? `-${keyOf(items[0])}` : null,
  };
}

/** An iterator check for lists keyed by ids of one prefix (app_, msg_, …). */
export const isIteratorOf = (prefix: string) => (key: string) => ID_PATTERN.test(key) && key.startsWith(`${prefix}_`);

/** The list response schema for items of `item`. */
export function ListResponse<T extends import('typebox').TSchema>(item: T, id: string) {
  return Type.Object(
    {
      data: Type.Array(item),
      done: Type.Boolean(),
      iterator: Type.Union([Type.String(), Type.Null()]),
      prevIterator: Type.Union([Type.String(), Type.Null()]),
    },
    { $id: id },
  );
}
