// What `serve` counts, for /metrics (Prometheus). One registry per server, so that tests
// and replicas in one process never share counters.
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

export function serveMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'gitops_bot_' });
  const failures = new Counter({
    name: 'gitops_bot_job_failures_total',
    help: 'Events whose handling failed: error, timeout (ran past the job timeout), worker (the worker thread died)',
    labelNames: ['reason'],
    registers: [registry],
  });
  for (const reason of ['error', 'timeout', 'worker']) failures.inc({ reason }, 0);
  return {
    registry,
    failures,
    deliveries: new Counter({
      name: 'gitops_bot_webhook_deliveries_total',
      help: 'Webhook deliveries by event and outcome',
      labelNames: ['event', 'result'],
      registers: [registry],
    }),
    alerts: new Counter({
      name: 'gitops_bot_bypass_alerts_total',
      help: 'Merges and pushes that bypassed the approval rules',
      labelNames: ['kind'],
      registers: [registry],
    }),
    deployFailures: new Counter({
      name: 'gitops_bot_deploy_failures_total',
      help: 'Deployments the in-cluster agent did not bring to Healthy, once per revision: degraded, sync_failed, timeout',
      labelNames: ['environment', 'reason'],
      registers: [registry],
    }),
    moves: new Counter({
      name: 'gitops_bot_deploy_ref_moves_total',
      help: 'deploy_ref fast-forwards after a merge that passed the rules',
      registers: [registry],
    }),
    verdicts: new Counter({
      name: 'gitops_bot_gate_verdicts_total',
      help: 'Gate evaluations by state',
      labelNames: ['state'],
      registers: [registry],
    }),
    restarts: new Counter({
      name: 'gitops_bot_worker_restarts_total',
      help: 'Times the worker thread died (or was stuck) and was started again',
      registers: [registry],
    }),
    ack: new Histogram({
      name: 'gitops_bot_webhook_ack_seconds',
      help: 'Time to acknowledge a delivery',
      buckets: [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5],
      registers: [registry],
    }),
  };
}

export type ServeMetrics = ReturnType<typeof serveMetrics>;
