import t from 'tap';
import { checkExposure, ConfigError, isLoopback, loadConfig } from '../src/config.js';

t.test('defaults match the contract', async (t) => {
  const config = loadConfig({});
  t.equal(config.port, 5000);
  t.equal(config.host, '127.0.0.1');
  t.match(config.dbPath, /data\/ec2-api\.db$/);
  t.equal(config.cloud, 'auto');
  t.equal(config.endpointUrl, null);
  t.equal(config.region, 'us-east-1');
  t.same(config.apiTokens, []);
  t.equal(config.paused, false);
  t.equal(config.logLevel, 'info');
});
