/** IPC messages between the benchmark and its receiver process. */

export interface EndpointSpec {
  /** whsec_… secret the deliveries to this endpoint are signed with. */
  secret: string;
  /** Results are summarised per group (e.g. "healthy", "timeout"). */
  group: string;
  /** Answer each request after this many ms (slow receivers). */
  delayMs: number;
  /** Never answer until told to stop hanging (the endpoint that times out). */
  hang: boolean;
  /** Messages with seq 0..expected-1 are expected here. */
  expected: number;
  /** Missing seqs count as losses (false for the endpoint that times out). */
  checkLoss: boolean;
}

export type ReceiverRequest =
  | { type: 'setup'; endpoints: EndpointSpec[] }
  | { type: 'status' }
  | { type: 'unhang' }
  | { type: 'collect' }
  | { type: 'close' };

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export interface GroupSummary {
  group: string;
  endpoints: number;
  checkLoss: boolean;
  expected: number;
  unique: number;
  lost: number;
  duplicates: number;
  badSignatures: number;
  unexpected: number;
  requests: number;
  firstCreate: number | null;
  firstReceipt: number | null;
  lastReceipt: number | null;
  latency: LatencySummary;
  /** Latency by second of create time since firstCreate (at most 600 seconds). */
  timeline: { second: number; count: number; p50: number; max: number }[];
}

export type ReceiverReply =
  | { type: 'started' }
  | { type: 'ready'; ports: number[] }
  | { type: 'status'; unique: number; expected: number; requests: number; badSignatures: number; duplicates: number; warmup: number }
  | { type: 'summary'; groups: GroupSummary[] }
  | { type: 'ok' };
