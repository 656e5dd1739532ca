// The extension's settings and the one GraphQL client that follows `virserver.serverUrl`.
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

/** Hands out a client for the configured server, replaced when the URL setting changes. */
export class Connection implements vscode.Disposable {
    private current: GraphQLClient | undefined;
    private readonly changeEmitter = new vscode.EventEmitter<void>();
    readonly onDidChange = this.changeEmitter.event;
    private readonly watcher: vscode.Disposable;

    constructor() {
        this.watcher = vscode.workspace.onDidChangeConfiguration((event) => {
            if (event.affectsConfiguration('virserver')) {
                this.current?.dispose();
                this.current = undefined;
                this.changeEmitter.fire();
            }
        });
    }

    /** The client of the configured server; throws a VirServerError for a bad URL. */
    client(): GraphQLClient {
        this.current ??= new GraphQLClient(readSettings().serverUrl);
        return this.current;
    }

    /** A client for another server (a launch configuration's `server`). */
    clientFor(serverUrl: string | undefined): GraphQLClient {
        if (serverUrl === undefined || serverUrl === this.client().serverUrl) {
            return this.client();
        }
        return new GraphQLClient(serverUrl);
    }

    dispose(): void {
        this.current?.dispose();
        this.watcher.dispose();
        this.changeEmitter.dispose();
    }
}
