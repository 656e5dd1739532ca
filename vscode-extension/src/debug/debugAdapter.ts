// How VS Code reaches a VirServer debugger: `virserver dap --server URL` on stdio, or,
// for an attach to a session whose server offers one, its TCP DAP endpoint.
import { existsSync } from 'node:fs';
import * as vscode from 'vscode';
import { VirServerError } from '../api/graphqlClient';
import { dapAddress, debuggerInfo } from '../api/queries';
import { Connection, readSettings, resolveExecutable } from '../settings';
import type { TestLog } from '../testLog';
import { ConfigurationError, normalizeConfiguration, parseHostPort } from './configuration';

export class VirServerConfigurationProvider implements vscode.DebugConfigurationProvider {
    constructor(private readonly connection: Connection, private readonly testLog: TestLog) {}

    resolveDebugConfiguration(
        _folder: vscode.WorkspaceFolder | undefined,
        debugConfiguration: vscode.DebugConfiguration,
    ): vscode.DebugConfiguration | null {
        // F5 without a launch.json: let VS Code open one with the initial configuration.
        return !debugConfiguration.type && !debugConfiguration.request ? null : debugConfiguration;
    }

    /** Checks run after ${workspaceFolder} and friends are substituted. */
    async resolveDebugConfigurationWithSubstitutedVariables(
        folder: vscode.WorkspaceFolder | undefined,
        debugConfiguration: vscode.DebugConfiguration,
    ): Promise<vscode.DebugConfiguration | undefined> {
        try {
            const configuration = normalizeConfiguration(
                debugConfiguration,
                { serverUrl: readSettings().serverUrl, workspaceFolder: folder?.uri.fsPath },
                existsSync,
            );
            const info = await debuggerInfo(this.connection.clientFor(configuration.server));
            if (!info.dap) {
                throw new VirServerError(
                    `the server at ${configuration.server} has no GDB that serves DAP (found: ${info.path ?? 'none'} ${info.version ?? ''}); ` +
                        'it needs GDB >= 14 with Python (see virserver doctor)',
                    'GDB_UNAVAILABLE',
                );
            }
            return { ...debugConfiguration, ...configuration };
        } catch (error) {
            if (error instanceof ConfigurationError || error instanceof VirServerError) {
                this.testLog.write({ event: 'debugConfigurationRefused', error: error.message });
                void vscode.window.showErrorMessage(`VirServer: ${error.message}`);
                return undefined;
            }
            throw error;
        }
    }
}

export class VirServerAdapterFactory implements vscode.DebugAdapterDescriptorFactory {
    constructor(private readonly connection: Connection, private readonly testLog: TestLog) {}

    async createDebugAdapterDescriptor(session: vscode.DebugSession): Promise<vscode.DebugAdapterDescriptor> {
        const configuration = session.configuration;
        const server = typeof configuration.server === 'string' ? configuration.server : readSettings().serverUrl;
        // Under auth a session's own DAP endpoint takes tickets only: `virserver dap`
        // with the key asks for one itself.
        const token = this.connection.token();
        if (token === undefined && configuration.request === 'attach' && typeof configuration.sessionId === 'string') {
            const address = await this.sessionDapAddress(server, configuration.sessionId);
            const endpoint = address === undefined ? undefined : parseHostPort(address);
            if (endpoint) {
                this.testLog.write({ event: 'adapter', kind: 'tcp', address });
                return new vscode.DebugAdapterServer(endpoint.port, endpoint.host);
            }
        }
        // Throws a MissingExecutableError, which VS Code shows as the reason.
        const executable = resolveExecutable(readSettings());
        const args = ['dap', '--server', server];
        this.testLog.write({ event: 'adapter', kind: 'stdio', executable, args });
        const cwd = typeof configuration.cwd === 'string' ? configuration.cwd : session.workspaceFolder?.uri.fsPath;
        const env = this.connection.processEnvironment();
        return new vscode.DebugAdapterExecutable(executable, args, cwd === undefined ? { env } : { cwd, env });
    }

    /** The session's TCP DAP endpoint; none when the server has no such field or address. */
    private async sessionDapAddress(server: string, sessionId: string): Promise<string | undefined> {
        try {
            return (await dapAddress(this.connection.clientFor(server), sessionId)) ?? undefined;
        } catch (error) {
            this.testLog.write({ event: 'dapAddressUnavailable', error: error instanceof Error ? error.message : String(error) });
            return undefined;
        }
    }
}
