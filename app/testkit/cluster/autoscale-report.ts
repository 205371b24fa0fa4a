// The figures of an autoscale run, computed from what the run recorded (the
// stand-in's decisions, the pods per state, the ReplicaSet stand-in's
// scale-down choices, the clients' closes, the connection samples): how
// fast the replica count followed each load step, how many clients each
// scale-down moved against the fewest it could have, which closes the
// scaling caused, and the imbalance between serving pods. Pure, so the
// definitions are unit-tested on made-up timelines.
import type { AutoscalerDecision } from './autoscaler-controller.js';
import type { ClusterEvent, ReplicaCount, Sample, ScaleDownChoice } from './local-cluster.js';
import type { Plateau } from '../load-profile.js';

/** How the replica count followed one level of the load profile. Times are seconds from the moment the load began to change. */
export interface StepReaction {
  readonly clients: number;
  readonly direction: Plateau['direction'];
  /** ms since the cluster started when the load began to move to this level. */
  readonly changeAt: number;
  /** ms since the cluster started when the level ended. */
  readonly until: number;
  /** Serving pods when the load began to change. */
  readonly replicasBefore: number;
  /** spec.replicas at the end of the level: the count the autoscaler settled on. */
  readonly replicasAfter: number;
  /** The first decision that changed spec.replicas after the change. */
  readonly firstDecisionSeconds: number | undefined;
  /** The first decision that set replicasAfter. */
  readonly desiredSeconds: number | undefined;
  /** When the serving pods (the Service's endpoints) reached replicasAfter and stayed there to the end of the level. */
  readonly servingSeconds: number | undefined;
  /** Scale-down: when the last pod removed for this level had finished its drain and exited. */
  readonly drainedSeconds: number | undefined;
  /** spec.replicas = serving pods at the end of the level, nothing starting or terminating. */
  readonly settled: boolean;
  /** Closes clients saw during the level, by code: 1012 are the drains of removed pods, 1013 the rebalancer moving clients onto new pods, 1000 clients leaving. */
  readonly closes: Readonly<Record<string, number>>;
}

/** One scale-down: the clients it moved against the fewest any choice of pods could have moved. */
export interface ScaleDownMove {
  /** ms since the cluster started. */
  readonly t: number;
  readonly from: number;
  readonly to: number;
  /** Every pod it could delete, as it saw them. */
  readonly candidates: ScaleDownChoice['candidates'];
  readonly victims: readonly { readonly pod: string; readonly cost: number; readonly connections: number; readonly drained: number | undefined }[];
  /** The deleted pods' open connections at the moment of the choice. */
  readonly moved: number;
  /** What their drains closed with 1012 (their "drain started" counts), when every one of them logged it. */
  readonly drained: number | undefined;
  /**
   * The fewest clients deleting `from − to` of the `from` candidate pods
   * could have moved: the sum of the smallest `from − to` connection counts
   * among the candidates at the moment of the choice (a pod not serving yet
   * counts 0).
   */
  readonly fewestPossible: number;
}

/** Each decision at or after `fromMs`, in order. */
function decisionsFrom(decisions: readonly AutoscalerDecision[], fromMs: number, untilMs: number): AutoscalerDecision[] {
  return decisions.filter((d) => d.t >= fromMs && d.t < untilMs);
}

/** The last count at or before `t` (the first one if none). */
function countAt(counts: readonly ReplicaCount[], t: number): ReplicaCount {
  let found = counts[0]!;
  for (const count of counts) {
    if (count.t <= t) found = count;
    else break;
  }
  return found;
}

/**
 * The reaction to each level after the first. `plateaus` are in seconds
 * since the profile started, which was `profileStart` ms after the cluster.
 */
export function stepReactions(
  plateaus: readonly Plateau[],
  profileStart: number,
  decisions: readonly AutoscalerDecision[],
  counts: readonly ReplicaCount[],
  events: readonly ClusterEvent[],
  closes: readonly { readonly t: number; readonly code: number }[],
): StepReaction[] {
  return plateaus.slice(1).map((plateau) => {
    const changeAt = profileStart + plateau.changeAt * 1000;
    const until = profileStart + plateau.until * 1000;
    const seconds = (t: number | undefined): number | undefined => (t === undefined ? undefined : (t - changeAt) / 1000);
    const before = countAt(counts, changeAt);
    const end = countAt(counts, until);
    const after = end.spec;
    const within = decisionsFrom(decisions, changeAt, until);
    const firstDecision = within.find((d) => d.rescaled);
    const desired = within.find((d) => d.rescaled && d.desiredReplicas === after);
    // The serving count reached `after` and stayed: the first count of the
    // last run of counts, up to the level's end, that all have it.
    const during = counts.filter((c) => c.t > changeAt && c.t <= until);
    let servingSince: number | undefined = before.serving === after ? changeAt : undefined;
    for (const count of during) {
      if (count.serving === after) servingSince ??= count.t;
      else servingSince = undefined;
    }
    const changed = after !== before.serving;
    const exits = events.filter((e) => e.kind === 'exited' && e.t > changeAt && e.t <= until);
    const drainedAt = plateau.direction === 'down' && changed && exits.length > 0 && end.terminating === 0 ? exits.at(-1)!.t : undefined;
    const byCode: Record<string, number> = {};
    for (const close of closes) if (close.t >= changeAt && close.t < until) byCode[close.code] = (byCode[close.code] ?? 0) + 1;
    return {
      clients: plateau.clients,
      direction: plateau.direction,
      changeAt,
      until,
      replicasBefore: before.serving,
      replicasAfter: after,
      firstDecisionSeconds: seconds(firstDecision?.t),
      desiredSeconds: changed ? seconds(desired?.t) : undefined,
      servingSeconds: changed ? seconds(servingSince) : undefined,
      drainedSeconds: seconds(drainedAt),
      settled: end.serving === end.spec && end.starting === 0 && end.terminating === 0,
      closes: byCode,
    };
  });
}

/** Every scale-down against the fewest clients it could have moved; `drainedBy` gives each pod's "drain started" count. */
export function scaleDownMoves(choices: readonly ScaleDownChoice[], drainedBy: (pod: string) => number | undefined): ScaleDownMove[] {
  return choices.map((choice) => {
    const held = (c: ScaleDownChoice['candidates'][number]): number => c.connections ?? 0;
    const victims = choice.victims.map((pod) => {
      const candidate = choice.candidates.find((c) => c.pod === pod)!;
      return { pod, cost: candidate.cost, connections: held(candidate), drained: drainedBy(pod) };
    });
    const fewestPossible = choice.candidates
      .map(held)
      .sort((a, b) => a - b)
      .slice(0, victims.length)
      .reduce((a, b) => a + b, 0);
    const drained = victims.every((v) => v.drained !== undefined) ? victims.reduce((sum, v) => sum + v.drained!, 0) : undefined;
    return {
      t: choice.t,
      from: choice.from,
      to: choice.to,
      candidates: choice.candidates,
      victims,
      moved: victims.reduce((sum, v) => sum + v.connections, 0),
      drained,
      fewestPossible,
    };
  });
}

/**
 * max / mean of the connections of the pods that were endpoints of the
 * Service at each sample (pods that were there from the start, or added and
 * not yet removed): a draining pod emptying itself is not an imbalance.
 */
export function servingImbalance(samples: readonly Sample[], events: readonly ClusterEvent[], initial: readonly string[]): { t: number; ratio: number }[] {
  return samples.flatMap((sample) => {
    const serving = Object.entries(sample.connections).filter(([pod]) => {
      const added = initial.includes(pod) || events.some((e) => e.kind === 'added' && e.replica === pod && e.t <= sample.t);
      const removed = events.some((e) => e.kind === 'removed' && e.replica === pod && e.t <= sample.t);
      return added && !removed;
    });
    if (serving.length === 0) return [];
    const counts = serving.map(([, n]) => n);
    const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
    return [{ t: sample.t, ratio: mean > 0 ? Math.max(...counts) / mean : 1 }];
  });
}
