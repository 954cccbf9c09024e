// Which EC2 the playbooks talk to, decided once at start-up:
//   AWS_ENDPOINT_URL set        → that endpoint (no emulator);
//   EC2_API_CLOUD=local         → the bundled emulator;
//   EC2_API_CLOUD=aws           → AWS, or refuse to start without credentials;
//   EC2_API_CLOUD=auto (default)→ AWS when credentials are configured, else the emulator.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, ec2Python, type Config } from '../config.js';
import { execa } from 'execa';
import { startEmulator, type Emulator } from './emulator.js';
import { childEnvironment } from './runner.js';

export type CloudKind = 'aws' | 'local-emulator' | 'endpoint';

export interface Cloud {
  kind: CloudKind;
  endpointUrl: string | null;
  region: string;
  /** Environment for every playbook run. */
  env: Record<string, string>;
  /** One line for logs and /healthz. */
  description: string;
  stop(): Promise<void>;
}

/** Placeholder credentials for an emulator, which accepts any. */
const EMULATOR_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' };

/**
 * Whether AWS credentials are configured, by the cheap signs the standard
 * chain looks at (environment, profile, shared files, web identity,
 * container credentials). An EC2 instance role is not probed (that needs the
 * network): set EC2_API_CLOUD=aws there.
 */
export function credentialsConfigured(env: NodeJS.ProcessEnv): boolean {
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) return true;
  if (env.AWS_PROFILE || env.AWS_WEB_IDENTITY_TOKEN_FILE) return true;
  if (env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI || env.AWS_CONTAINER_CREDENTIALS_FULL_URI) return true;
  const home = env.HOME || os.homedir();
  const files = [
    env.AWS_SHARED_CREDENTIALS_FILE || path.join(home, '.aws', 'credentials'),
    env.AWS_CONFIG_FILE || path.join(home, '.aws', 'config'),
  ];
  return files.some((file) => {
    try {
      return /aws_access_key_id|credential_process|sso_session|sso_start_url|role_arn/.test(fs.readFileSync(file, 'utf8'));
    } catch {
      return false;
    }
  });
}

export async function resolveCloud(config: Config, env: NodeJS.ProcessEnv = process.env): Promise<Cloud> {
  const base = { AWS_REGION: config.region, AWS_DEFAULT_REGION: config.region };
  const hasCredentials = credentialsConfigured(env);

  if (config.endpointUrl) {
    const shown = withoutCredentials(config.endpointUrl);
    return {
      kind: 'endpoint',
      endpointUrl: shown,
      region: config.region,
      env: { ...base, AWS_ENDPOINT_URL: config.endpointUrl, ...(hasCredentials ? {} : EMULATOR_CREDENTIALS) },
      description: `EC2 endpoint ${shown} (AWS_ENDPOINT_URL)`,
      stop: async () => undefined,
    };
  }

  const mode = config.cloud === 'auto' ? (hasCredentials ? 'aws' : 'local') : config.cloud;
  if (mode === 'aws') {
    // Beyond the cheap signs, ask boto3's own chain (instance roles, SSO…).
    if (!hasCredentials && !(await botoFindsCredentials(config, env))) {
      throw new ConfigError(
        'EC2_API_CLOUD=aws but no AWS credentials resolve: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY ' +
          'or AWS_PROFILE, or run `aws configure`; or use EC2_API_CLOUD=local for the bundled emulator',
      );
    }
    return {
      kind: 'aws',
      endpointUrl: null,
      region: config.region,
      env: base,
      description: `AWS, region ${config.region}`,
      stop: async () => undefined,
    };
  }

  const emulator: Emulator = await startEmulator(config.emulatorPython);
  return {
    kind: 'local-emulator',
    endpointUrl: emulator.url,
    region: config.region,
    env: { ...base, AWS_ENDPOINT_URL: emulator.url, ...EMULATOR_CREDENTIALS },
    description: `the LOCAL EC2 EMULATOR (moto) at ${emulator.url}: no real instances are launched`,
    stop: () => emulator.stop(),
  };
}

/** The endpoint as shown in /healthz and logs: any user:password in it removed. */
function withoutCredentials(url: string): string {
  const parsed = new URL(url);
  parsed.username = '';
  parsed.password = '';
  return parsed.toString().replace(/\/+$/, '');
}

/**
 * Whether boto3's full credential chain (instance roles, SSO, …) finds
 * credentials, asked of the Python that will run the EC2 modules.
 */
async function botoFindsCredentials(config: Config, env: NodeJS.ProcessEnv): Promise<boolean> {
  const python = ec2Python(config, env.PATH ?? '');
  if (!python) {
    throw new ConfigError('ansible-playbook is not installed (or EC2_API_ANSIBLE_PLAYBOOK is wrong): run `npm run setup`, then start again');
  }
  const probe = 'import sys, boto3\nsys.exit(0 if boto3.Session().get_credentials() else 3)';
  const result = await execa(python, ['-c', probe], { env: childEnvironment({}, env), extendEnv: false, reject: false, timeout: 20_000 });
  if (result.exitCode === 0) return true;
  if (result.exitCode === 3) return false;
  throw new ConfigError(`cannot ask boto3 for credentials with ${python}: ${result.stderr.trim().split('\n').pop() ?? 'it failed'}; run \`npm run setup\``);
}
