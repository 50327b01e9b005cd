// Faults of a RabbitMQ cluster, and what they cost: SIGKILL of a node (the leader of the
// busiest quorum queue, or the node the fleet is connected to), the node's restart, and a
// probe that publishes with confirms at a steady rate through it all, to count what a kill
// loses (nothing, when confirms mean anything) and how long confirms pause.
// Used by `npm run chaos -- --cluster` and test/e2e/cluster.test.ts.
import type { Channel } from 'amqplib';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '../../shared/errors';
import type { AmqpConnection } from '../../shared/messaging/connection';
import type { Publisher } from '../../shared/messaging/publisher';
import type { DeclareOptions } from '../../shared/messaging/topology';
import { ClusterError, type ClusterNode, type LocalCluster } from '../cluster';

/** How long a restarted node's quorum queue members may take to be back online. */
const MEMBERS_ONLINE_MS = 180_000;
const POLL_MS = 1_000;

/** Which node a node fault kills. */
export type NodeTarget = 'quorum leader' | 'connected node';

/**
 * The leader of the namespace's busiest quorum queue: the one holding the most messages now,
 * else (all empty, as when consumers keep up) the first of `preferred` (the queue every order
 * passes through).
 */
export async function busiestQueueLeader(cluster: LocalCluster, namespace: string, preferred: readonly string[]): Promise<{ queue: string; node: ClusterNode }> {
  const queues = (await cluster.queues(`${namespace}.`)).filter((q) => q.type === 'quorum' && q.leader !== '');
  if (queues.length === 0) throw new ClusterError(`the cluster has no quorum queue of ${namespace}`);
  const rank = (name: string): number => (preferred.includes(name) ? preferred.indexOf(name) : preferred.length);
  const [busiest] = [...queues].sort((a, b) => b.messages - a.messages || rank(a.name) - rank(b.name) || a.name.localeCompare(b.name));
  const node = cluster.nodeNamed(busiest!.leader);
  if (!node) throw new ClusterError(`the leader of ${busiest!.name} is ${busiest!.leader}, not a node of the local cluster`);
  return { queue: busiest!.name, node };
}

/** The node holding the most client connections: the one the fleet's processes are connected to. */
export async function connectedNode(cluster: LocalCluster): Promise<ClusterNode> {
  const counts = [...(await cluster.connectionsByNode())].sort((a, b) => b[1] - a[1]);
  if (counts.length === 0) throw new ClusterError('no node of the cluster has a client connection');
  return cluster.node(counts[0]![0]);
}

/** Waits until every quorum queue of the namespace has all its members online (a restarted node caught up). */
export async function awaitMembersOnline(cluster: LocalCluster, namespace: string, timeoutMs = MEMBERS_ONLINE_MS): Promise<void> {
  let lagging: string[] = [];
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(POLL_MS)) {
    try {
      const queues = (await cluster.queues(`${namespace}.`)).filter((q) => q.type === 'quorum');
      lagging = queues.filter((q) => q.members.length === 0 || q.online.length < q.members.length || q.leader === '').map((q) => q.name);
      if (lagging.length === 0) return;
    } catch (err) {
      lagging = [errorMessage(err)];
    }
  }
  throw new ClusterError(`quorum queues without all their members online after ${timeoutMs / 1000} s: ${lagging.slice(0, 5).join(', ')}`);
}

/** What one node kill did. */
export interface NodeKill {
  target: NodeTarget;
  node: string;
  /** The queue whose leader it was, for a leader kill. */
  queue?: string;
  /** When the SIGKILL was sent (ms since the epoch). */
  at: number;
  /** From the kill until the node was back and every member of the namespace's queues online. */
  restartedMs: number;
}

/**
 * SIGKILLs a node of the cluster, then starts it again and waits until every quorum queue of
 * the namespace has its members online: the cluster is whole before the next fault (a second
 * node down at once would leave 1 of 3, no majority).
 * @param onKilled called right after the SIGKILL (e.g. to place an order and time its recovery)
 */
export async function killNode(cluster: LocalCluster, namespace: string, target: NodeTarget, preferredQueues: readonly string[], onKilled: (kill: { node: ClusterNode; at: number }) => void = () => undefined): Promise<NodeKill> {
  const victim = target === 'quorum leader' ? await busiestQueueLeader(cluster, namespace, preferredQueues) : { node: await connectedNode(cluster), queue: undefined };
  await cluster.kill(victim.node);
  const at = Date.now();
  onKilled({ node: victim.node, at });
  await cluster.start(victim.node);
  await awaitMembersOnline(cluster, namespace);
  return { target, node: victim.node.name, queue: victim.queue, at, restartedMs: Date.now() - at };
}

/** What a probe saw. */
export interface ProbeReport {
  published: number;
  confirmed: number;
  /** Publishes that failed (a nack, a closed channel, a timeout) and were sent again. */
  retried: number;
  /** Confirmed messages missing from the queue. */
  lost: number;
  /** Messages found more than once (a retried publish that had arrived after all). */
  duplicates: number;
  /** The longest time a message waited for its confirm, counted from when it was due, in ms. */
  worstConfirmMs: number;
  /** When that was (ms since the epoch, the moment it was due). */
  worstConfirmAt: number;
}

/** A confirm wait worth remembering when it was: below it, a message was not held up by a fault. */
const SLOW_CONFIRM_MS = 50;

/** How long one drain of the probe queue waits for more messages once it has seen none. */
const DRAIN_QUIET_MS = 2_000;

/**
 * Publishes numbered messages with confirms to a quorum queue of its own at a steady rate
 * (open loop: a message is due at its time whatever happened to the ones before), each sent
 * again until it is confirmed. A confirm pause shows as the waiting time of the messages due
 * during it.
 */
export class ConfirmProbe {
  private stopped = false;
  private readonly confirmed = new Set<number>();
  private published = 0;
  private retried = 0;
  private worst = { ms: 0, at: 0 };
  /** Messages that waited at least SLOW_CONFIRM_MS: when they were due, and how long they waited. */
  private readonly slow: Array<{ at: number; ms: number }> = [];
  private running?: Promise<void>;

  constructor(
    private readonly publisher: Publisher,
    readonly queue: string,
    private readonly ratePerSecond: number,
  ) {}

  /** Declares the probe's quorum queue; its leader goes to the node the channel is on. */
  static async declare(channel: Channel, queue: string, options: DeclareOptions): Promise<void> {
    await channel.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum', ...(options.quorumGroupSize === undefined ? {} : { 'x-quorum-initial-group-size': options.quorumGroupSize }) } });
  }

  start(): void {
    const t0 = Date.now();
    const inFlight = new Set<Promise<void>>();
    this.running = (async () => {
      for (let i = 0; !this.stopped; i++) {
        const due = t0 + (i * 1_000) / this.ratePerSecond;
        if (due > Date.now()) await sleep(due - Date.now());
        const sending = this.send(i, due);
        inFlight.add(sending);
        void sending.finally(() => inFlight.delete(sending));
      }
      await Promise.all(inFlight);
    })();
  }

  private async send(id: number, due: number): Promise<void> {
    this.published++;
    for (;;) {
      try {
        await this.publisher.publish({ exchange: '', routingKey: this.queue, content: Buffer.from(JSON.stringify({ id })), options: { messageId: String(id) } });
        break;
      } catch {
        // Not confirmed: it may have arrived or not; send it again (the check counts duplicates).
        this.retried++;
        if (this.stopped && Date.now() - due > 120_000) return;
        await sleep(100);
      }
    }
    this.confirmed.add(id);
    const waited = Date.now() - due;
    if (waited > this.worst.ms) this.worst = { ms: waited, at: due };
    if (waited >= SLOW_CONFIRM_MS) this.slow.push({ at: due, ms: waited });
  }

  /** The longest confirm wait of the messages due between two moments (ms since the epoch); 0 when none was slow. */
  worstBetween(from: number, to: number): number {
    return this.slow.filter((s) => s.at >= from && s.at <= to).reduce((worst, s) => Math.max(worst, s.ms), 0);
  }

  /** Stops publishing without counting (a run that failed). */
  halt(): void {
    this.stopped = true;
  }

  /** Stops publishing, waits for the messages in flight, then counts what the queue holds. */
  async stop(connection: AmqpConnection): Promise<ProbeReport> {
    this.stopped = true;
    await this.running;
    const found = await drainIds(connection, this.queue);
    let lost = 0;
    for (const id of this.confirmed) if (!found.has(id)) lost++;
    const duplicates = [...found.values()].reduce((n, copies) => n + copies - 1, 0);
    return { published: this.published, confirmed: this.confirmed.size, retried: this.retried, lost, duplicates, worstConfirmMs: this.worst.ms, worstConfirmAt: this.worst.at };
  }
}

/** Takes every message of the queue, by its id, with how many copies of each. */
async function drainIds(connection: AmqpConnection, queue: string): Promise<Map<number, number>> {
  await connection.waitUntilConnected(60_000);
  const channel = await connection.channelModel!.createChannel();
  channel.on('error', () => undefined);
  const found = new Map<number, number>();
  let last = Date.now();
  await channel.prefetch(1_000);
  await channel.consume(queue, (msg) => {
    if (!msg) return;
    last = Date.now();
    const id = Number((JSON.parse(msg.content.toString()) as { id: unknown }).id);
    found.set(id, (found.get(id) ?? 0) + 1);
    channel.ack(msg);
  });
  while (Date.now() - last < DRAIN_QUIET_MS) await sleep(200);
  await channel.close().catch(() => undefined);
  return found;
}
