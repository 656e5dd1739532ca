// IDE configurations for a session come from one place, `virserver ide-config`: this
// module runs it and merges what it prints into a list of launch configurations.
import { execFile } from 'node:child_process';

export type LaunchConfiguration = { name: string; type: string; request: string } & Record<string, unknown>;

export type IdeConfigKind = 'cortex-debug' | 'virserver' | 'gdb';

function isLaunchConfiguration(value: unknown): value is LaunchConfiguration {
    return (
        value instanceof Object &&
        !Array.isArray(value) &&
        'name' in value &&
        typeof value.name === 'string' &&
        'type' in value &&
        typeof value.type === 'string' &&
        'request' in value &&
        typeof value.request === 'string'
    );
}

/**
 * The configurations in `virserver ide-config` output: a launch.json document
 * (`{"configurations": [...]}`), a list of configurations, or one configuration.
 */
export function parseIdeConfigOutput(stdout: string): LaunchConfiguration[] {
    let document: unknown;
    try {
        document = JSON.parse(stdout);
    } catch {
        throw new Error(`virserver ide-config printed no JSON: ${stdout.slice(0, 200)}`);
    }
    const list: unknown[] =
        document instanceof Object && 'configurations' in document && Array.isArray(document.configurations)
            ? (document.configurations as unknown[])
            : Array.isArray(document)
              ? (document as unknown[])
              : [document];
    const configurations = list.filter(isLaunchConfiguration);
    if (configurations.length === 0 || configurations.length !== list.length) {
        throw new Error('virserver ide-config printed something that is not a launch configuration (name, type, request)');
    }
    return configurations;
}

/** `existing` with each of `added` replacing the configuration of the same name, or appended. */
export function mergeConfigurations(existing: readonly unknown[], added: readonly LaunchConfiguration[]): unknown[] {
    const names = new Set(added.map((configuration) => configuration.name));
    const kept = existing.filter((configuration) => !(isLaunchConfiguration(configuration) && names.has(configuration.name)));
    return [...kept, ...added];
}

/** Runs `virserver ide-config` and returns the configurations it prints. */
export function runIdeConfig(
    executable: string,
    serverUrl: string,
    sessionId: string,
    kind: IdeConfigKind,
    environment: Record<string, string> = {},
): Promise<LaunchConfiguration[]> {
    const args = ['ide-config', '--server', serverUrl, '--session', sessionId, '--kind', kind];
    return new Promise((resolve, reject) => {
        const env = { ...process.env, ...environment };
        execFile(executable, args, { timeout: 30000, env }, (error, stdout, stderr) => {
            if (error) {
                const detail = stderr.trim() || error.message;
                reject(new Error(`${executable} ${args.join(' ')} failed: ${detail}`));
                return;
            }
            try {
                resolve(parseIdeConfigOutput(stdout));
            } catch (parseError) {
                reject(parseError instanceof Error ? parseError : new Error(String(parseError)));
            }
        });
    });
}
