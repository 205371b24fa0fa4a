// Which pods a ReplicaSet deletes when it scales down: the order of
// ActivePodsWithRanks.Less in kube-controller-manager
// (pkg/controller/controller_utils.go), for pods on one node: Pending before
// Running, not ready before ready, lower controller.kubernetes.io/pod-deletion-cost
// before higher, then the newer pod first. (The real order also puts unscheduled
// pods first, pods doubled up on a node before others, and pods with more
// container restarts before others; the local cluster has one node, no
// scheduler and no restarts.)

/** A pod as the ReplicaSet stand-in ranks it. */
export interface DeletionCandidate {
  readonly name: string;
  readonly phase: string;
  readonly ready: boolean;
  /** The pod-deletion-cost annotation (0 when absent, as the controller reads it). */
  readonly cost: number;
  /** ms since the epoch; newer pods go first among equals. */
  readonly createdAt: number;
}

const PHASE_ORDER: Readonly<Record<string, number>> = { Pending: 0, Unknown: 1, Running: 2 };

/** The `count` candidates the ReplicaSet would delete first, in deletion order. */
export function podsToDelete<T extends DeletionCandidate>(candidates: readonly T[], count: number): T[] {
  const ranked = [...candidates].sort(
    (a, b) => (PHASE_ORDER[a.phase] ?? 2) - (PHASE_ORDER[b.phase] ?? 2) || Number(a.ready) - Number(b.ready) || a.cost - b.cost || b.createdAt - a.createdAt,
  );
  return ranked.slice(0, Math.max(0, count));
}
