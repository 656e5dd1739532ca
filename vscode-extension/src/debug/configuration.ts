// The `virserver` debug configurations: defaults from the settings and checks that give
// a clear message before an adapter starts. No VS Code here, so the rules are testable.
import * as path from 'node:path';

export interface VirServerLaunch {
    type: 'virserver';
    request: 'launch';
    name: string;
    server: string;
    board: string;
    program: string;
    stopOnEntry: boolean;
    coverage: boolean;
    cwd: string;
}

export interface VirServerAttach {
    type: 'virserver';
    request: 'attach';
    name: string;
    server: string;
    sessionId: string;
}

export type VirServerConfiguration = VirServerLaunch | VirServerAttach;

export class ConfigurationError extends Error {
    constructor(message: string) {
        super(message);
        this.name = 'ConfigurationError';
    }
}

function text(value: unknown): string | undefined {
    return typeof value === 'string' && value.trim() !== '' ? value : undefined;
}

/**
 * A complete configuration from what launch.json gave: `server` falls back to the
 * setting, `cwd` to the workspace folder, and `program` is made absolute from `cwd`.
 */
export function normalizeConfiguration(
    raw: Record<string, unknown>,
    defaults: { serverUrl: string; workspaceFolder: string | undefined },
    fileExists: (file: string) => boolean,
): VirServerConfiguration {
    const name = text(raw.name) ?? 'VirServer';
    const server = text(raw.server) ?? defaults.serverUrl;
    if (raw.request === 'attach') {
        const sessionId = text(raw.sessionId);
        if (sessionId === undefined) {
            throw new ConfigurationError(`the attach configuration '${name}' needs "sessionId" (see the VirServer view)`);
        }
        return { type: 'virserver', request: 'attach', name, server, sessionId };
    }
    if (raw.request !== 'launch') {
        throw new ConfigurationError(`the configuration '${name}' has request '${String(raw.request)}': use launch or attach`);
    }
    const board = text(raw.board);
    if (board === undefined) {
        throw new ConfigurationError(`the launch configuration '${name}' needs "board", a board template id such as mps2-an385`);
    }
    const programText = text(raw.program);
    if (programText === undefined) {
        throw new ConfigurationError(`the launch configuration '${name}' needs "program", the ELF to debug`);
    }
    const cwd = text(raw.cwd) ?? defaults.workspaceFolder ?? path.dirname(path.resolve(programText));
    const program = path.resolve(cwd, programText);
    if (!fileExists(program)) {
        throw new ConfigurationError(`the program ${program} of '${name}' does not exist; build it first`);
    }
    return {
        type: 'virserver',
        request: 'launch',
        name,
        server,
        board,
        program,
        stopOnEntry: raw.stopOnEntry === true,
        coverage: raw.coverage === true,
        cwd,
    };
}

/** `host:port` as a DAP server address, or undefined when it is not one. */
export function parseHostPort(address: string): { host: string; port: number } | undefined {
    const match = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(address.trim());
    if (!match?.[1] || !match[2]) {
        return undefined;
    }
    const port = Number(match[2]);
    return port > 0 && port < 65536 ? { host: match[1], port } : undefined;
}
