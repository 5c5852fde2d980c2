/** What a system under test offers the scenarios. */

export type SystemId = 'ceiling' | 'bullmq' | 'koppel-sqlite' | 'koppel-pg';
export const SYSTEM_IDS: SystemId[] = ['ceiling', 'bullmq', 'koppel-sqlite', 'koppel-pg'];

export interface EndpointTarget {
  url: string;
  /** whsec_… secret deliveries to this endpoint must be signed with. */
  secret: string;
}

export interface ProcessInfo {
  role: string;
  pid: number;
}

/** One running instance of a system, fresh for one scenario. */
export interface Deployment {
  /** Subscribes these endpoints to every message created afterwards. */
  addEndpoints(targets: EndpointTarget[]): Promise<void>;
  /** Creates one message (fanned out to every endpoint); resolves once the system accepted it. */
  createOne(body: string): Promise<void>;
  /** Creates messages in one request (at most maxBatch); resolves once all are accepted. */
  createMany(bodies: string[]): Promise<void>;
  maxBatch: number;
  /** The processes of the system (for peak RSS and CPU time). */
  processes(): ProcessInfo[];
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Unique per scenario run: names databases, queues and log files. */
  tag: string;
  /** Extra KOPPEL_* settings (for experiments, e.g. KOPPEL_ENDPOINT_CONCURRENCY=50). */
  koppelEnv: Record<string, string>;
  /** Node flags for Koppel processes (e.g. --cpu-prof). */
  koppelNodeArgs: string[];
  bullmqConcurrency: number;
}

export interface SystemDef {
  id: SystemId;
  label: string;
  start(opts: StartOptions): Promise<Deployment>;
  /** Once per benchmark, after every run (e.g. stop a Redis the benchmark started). */
  shutdown?(): Promise<void>;
}
