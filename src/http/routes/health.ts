// Liveness, and which EC2 this service talks to: a newcomer on the local
// emulator must be able to tell at a glance that nothing real is launched.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Cloud } from '../../ansible/cloud.js';
import type { TaskService } from '../../tasks/service.js';
import { Health } from '../schemas.js';

export interface HealthOptions {
  service: TaskService;
  cloud: Pick<Cloud, 'kind' | 'endpointUrl' | 'region' | 'description'>;
  paused: boolean;
}

const healthRoutes: FastifyPluginAsyncTypebox<HealthOptions> = async (app, { service, cloud, paused }) => {
  app.get('/healthz', { schema: { summary: 'Liveness and cloud in use', response: { 200: Health } } }, async () => {
    const { queued, runningPlaybooks } = service.stats;
    return {
      status: 'ok' as const,
      cloud: { kind: cloud.kind, endpoint: cloud.endpointUrl, region: cloud.region, description: cloud.description },
      accepting: service.isAccepting,
      paused,
      queued,
      running_playbooks: runningPlaybooks,
    };
  });
};

export default healthRoutes;
