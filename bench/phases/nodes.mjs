// nodes: 1 node vs 3 nodes sharing one PostgreSQL (docs/multi-node.md),
// each draining the same creates (200, or BENCH_NODES_TASKS) against a
// fresh moto: submitted at once, spread over the nodes, timed to the last
// result, with the CPU per task of the nodes, their playbooks and
// PostgreSQL. On one machine the nodes share its cores: this measures what
// sharing the queue costs, not what more machines would gain. The pacer is
// open wide (moto meters nothing): at EC2's default RunInstances bucket both
// would sit at its floor, (N − 5) / 2 s, and compare nothing else.
import { startPostgres } from '../lib/postgres.mjs';
import { instancesPerTask, warmUp } from '../lib/ec2.mjs';
import { loginSource } from '../lib/load.mjs';
import { cpuTimes } from '../lib/procfs.mjs';
import { UNMETERED_RATES, startMoto, startService } from '../lib/procs.mjs';
import { submitCreate, waitRunsReaped, waitTerminal } from '../lib/service.mjs';
import { log, round } from '../lib/stats.mjs';

const TASKS = Number(process.env.BENCH_NODES_TASKS ?? 200);

async function drainOn(cluster, nodeCount) {
  const moto = await startMoto();
  await warmUp(moto.url);
  const db = await cluster.database();
  const nodes = [];
  try {
    for (let i = 0; i < nodeCount; i++) {
      nodes.push(await startService(moto.url, { db, name: `node-${nodeCount}-${i}`, env: { ...UNMETERED_RATES, EC2_API_NODE_ID: `bench-${i}` } }));
    }
    const nextLogin = loginSource();
    const cpu = () => nodes.map((node) => cpuTimes(node.pid));
    const before = cpu();
    const pgBefore = cluster.cpuSeconds();
    const t0 = Date.now();
    const ids = await Promise.all(Array.from({ length: TASKS }, (_, i) => submitCreate(nodes[i % nodeCount].url, nextLogin())));
    const { final, seenAllAt } = await waitTerminal(nodes[0].url, ids, t0 + Math.max(300, TASKS * 3) * 1000);
    // A playbook's CPU reaches its node's figures once it has exited and been reaped (a task's result comes earlier).
    for (const node of nodes) await waitRunsReaped(node);
    const after = cpu();
    const docs = [...final.values()];
    const last = docs.length ? Math.max(...docs.map((d) => Date.parse(d.finished_at))) : NaN;
    const self = after.reduce((s, c, i) => s + c.self - before[i].self, 0);
    const children = after.reduce((s, c, i) => s + c.children - before[i].children, 0);
    const postgres = cluster.cpuSeconds() - pgBefore;
    const counts = await instancesPerTask(moto.url, ids);
    const out = {
      nodes: nodeCount,
      tasks: TASKS,
      succeeded: docs.filter((d) => d.status === 'succeeded').length,
      last_result_s: seenAllAt ? round((last - t0) / 1000, 2) : null,
      instances: counts,
      cpu_s: { nodes: round(self, 2), playbooks: round(children, 2), postgres: round(postgres, 2) },
      cpu_s_per_task: round((self + children + postgres) / TASKS, 3),
    };
    log(`  ${nodeCount} node(s): ${out.succeeded}/${TASKS} succeeded, last result ${out.last_result_s} s, CPU ${out.cpu_s_per_task} s/task (nodes ${out.cpu_s.nodes}, playbooks ${out.cpu_s.playbooks}, postgres ${out.cpu_s.postgres})`);
    return out;
  } finally {
    for (const node of nodes) await node.stop();
    await moto.stop();
  }
}

async function phaseNodes() {
  const cluster = await startPostgres();
  try {
    return { one: await drainOn(cluster, 1), three: await drainOn(cluster, 3) };
  } finally {
    cluster.stop();
  }
}

function check(result, add) {
  for (const r of [result.one, result.three]) {
    const label = `nodes ${r.nodes} (PostgreSQL)`;
    add(label, 'succeeded', `${r.succeeded}/${r.tasks}`, `${r.tasks}/${r.tasks}`, r.succeeded === r.tasks);
    add(label, 'instances: one per task / missing / doubled', `${r.instances.tasksWithOne} / ${r.instances.missing} / ${r.instances.duplicates}`, `${r.tasks} / 0 / 0`,
      r.instances.tasksWithOne === r.tasks && r.instances.missing === 0 && r.instances.duplicates === 0);
    add(label, 'last result (s)', r.last_result_s ?? 'timed out');
    add(label, 'CPU s per task (nodes + playbooks + postgres)', r.cpu_s_per_task);
  }
}

export default { name: 'nodes', key: 'nodes', idleMoto: false, run: phaseNodes, check };
