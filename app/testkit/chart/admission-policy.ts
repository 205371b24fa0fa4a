// A rendered ValidatingAdmissionPolicy, evaluated as the API server would for
// one UPDATE request: its matchConditions, then its variables in order, then
// each validation, with @marcbachmann/cel-js (standard CEL and its macros;
// the policies here use nothing of Kubernetes' own CEL libraries).
import { evaluate } from '@marcbachmann/cel-js';
import type { Manifest } from './k8s-schemas.js';

interface PolicySpec {
  matchConditions?: { name: string; expression: string }[];
  variables?: { name: string; expression: string }[];
  validations: { expression: string; message?: string; messageExpression?: string }[];
}

export interface AdmissionRequest {
  readonly username: string;
  readonly object: unknown;
  readonly oldObject: unknown;
}

export interface PolicyVerdict {
  /** Every matchCondition held: the policy applies to the request. */
  readonly applies: boolean;
  /** It applies and every validation held, or it does not apply. */
  readonly allowed: boolean;
  /** The messages of the validations that failed. */
  readonly messages: readonly string[];
}

export function evaluatePolicy(policy: Manifest, { username, object, oldObject }: AdmissionRequest): PolicyVerdict {
  const spec = policy.spec as PolicySpec;
  const context: Record<string, unknown> = { request: { operation: 'UPDATE', userInfo: { username } }, object, oldObject };
  const applies = (spec.matchConditions ?? []).every((condition) => evaluate(condition.expression, context) === true);
  if (!applies) return { applies, allowed: true, messages: [] };
  const variables: Record<string, unknown> = {};
  context.variables = variables;
  for (const variable of spec.variables ?? []) variables[variable.name] = evaluate(variable.expression, context);
  const messages = spec.validations
    .filter((validation) => evaluate(validation.expression, context) !== true)
    .map((validation) => (validation.messageExpression ? String(evaluate(validation.messageExpression, context)) : (validation.message ?? validation.expression)));
  return { applies, allowed: messages.length === 0, messages };
}
