// The extension's settings and the one GraphQL client that follows `virserver.serverUrl`
// and the API key. The key is a secret, so it is no setting (settings end up in
// repositories): it lives in VS Code's secret storage ('VirServer: Set API Key'), or
// comes from VIRSERVER_TOKEN in the editor's environment.
import * as vscode from 'vscode';
import { GraphQLClient } from './api/graphqlClient';
import { findExecutable } from './config/executable';

export interface Settings {
    executable: string;
    serverUrl: string;
    refreshIntervalSeconds: number;
}

export function readSettings(): Settings {
    const configuration = vscode.workspace.getConfiguration('virserver');
    return {
        executable: configuration.get<string>('path', 'virserver'),
        serverUrl: configuration.get<string>('serverUrl', 'http://127.0.0.1:8080'),
        refreshIntervalSeconds: Math.max(1, configuration.get<number>('refreshIntervalSeconds', 5)),
    };
}

/** The `virserver` binary of the settings, resolved against the first workspace folder. */
export function resolveExecutable(settings: Settings): string {
    const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? process.cwd();
    return findExecutable(settings.executable, process.env.PATH, cwd);
}

/** Where the API key is kept in VS Code's secret storage. */
export const TOKEN_SECRET = 'virserver.token';

/**
 * Hands out a client for the configured server with the API key, replaced when the URL
 * setting or the key changes.
 */
export class Connection implements vscode.Disposable {
    private current: GraphQLClient | undefined;
    private stored: string | undefined;
    private readonly changeEmitter = new vscode.EventEmitter<void>();
    readonly onDidChange = this.changeEmitter.event;
    private readonly watchers: vscode.Disposable[];

    constructor(private readonly secrets?: vscode.SecretStorage) {
        this.watchers = [
            vscode.workspace.onDidChangeConfiguration((event) => {
                if (event.affectsConfiguration('virserver')) {
                    this.changed();
                }
            }),
        ];
        if (secrets) {
            this.watchers.push(
                secrets.onDidChange((event) => {
                    if (event.key === TOKEN_SECRET) {
                        void this.load();
                    }
                }),
            );
        }
    }

    /** Reads the stored key (at start, and when it changed in another window). */
    async load(): Promise<void> {
        const stored = (await this.secrets?.get(TOKEN_SECRET)) || undefined;
        if (stored !== this.stored) {
            this.stored = stored;
            this.changed();
        }
    }

    /** Stores the key (none: forgets it); the clients follow. */
    async setToken(token: string | undefined): Promise<void> {
        if (token) {
            await this.secrets?.store(TOKEN_SECRET, token);
        } else {
            await this.secrets?.delete(TOKEN_SECRET);
        }
        this.stored = token || undefined;
        this.changed();
    }

    /** The API key in force: the stored one, else VIRSERVER_TOKEN. */
    token(): string | undefined {
        return this.stored ?? (process.env.VIRSERVER_TOKEN || undefined);
    }

    /** The client of the configured server; throws a VirServerError for a bad URL. */
    client(): GraphQLClient {
        this.current ??= new GraphQLClient(readSettings().serverUrl, { token: this.token() });
        return this.current;
    }

    /** A client for another server (a launch configuration's `server`). */
    clientFor(serverUrl: string | undefined): GraphQLClient {
        if (serverUrl === undefined || serverUrl === this.client().serverUrl) {
            return this.client();
        }
        return new GraphQLClient(serverUrl, { token: this.token() });
    }

    /** The environment for a `virserver` process that talks to the server. */
    processEnvironment(): Record<string, string> {
        const token = this.token();
        return token === undefined ? {} : { VIRSERVER_TOKEN: token };
    }

    private changed(): void {
        this.current?.dispose();
        this.current = undefined;
        this.changeEmitter.fire();
    }

    dispose(): void {
        this.current?.dispose();
        for (const watcher of this.watchers) {
            watcher.dispose();
        }
        this.changeEmitter.dispose();
    }
}
