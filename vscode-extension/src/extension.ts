// Entry point: wires the views, commands, terminals, coverage and the `virserver`
// debugger type to one connection to the configured server.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { coverageLcov, deleteSession, getSession, listSessions, powerSession, type PowerAction, type SessionSummary } from './api/queries';
import { mergeConfigurations, runIdeConfig, type LaunchConfiguration } from './config/ideConfig';
import { CoverageDecorations } from './coverage/coverageDecorations';
import { VirServerAdapterFactory, VirServerConfigurationProvider } from './debug/debugAdapter';
import { VirServerTrackerFactory } from './debug/tracker';
import { Connection, readSettings, resolveExecutable } from './settings';
import { TestLog } from './testLog';
import { UartTerminals } from './uart/uartTerminal';
import { JobItem, JobsProvider } from './views/jobsView';
import { isPowered, SessionItem, SessionsProvider } from './views/sessionsView';

function message(error: unknown): string {
    return error instanceof Error ? error.message : String(error);
}

export function activate(context: vscode.ExtensionContext): void {
    const testLog = TestLog.fromEnvironment();
    const connection = new Connection(context.secrets);
    const sessions = new SessionsProvider(connection, testLog);
    const jobs = new JobsProvider(connection);
    const uart = new UartTerminals(testLog);
    const coverage = new CoverageDecorations(context.extensionUri, testLog);
    context.subscriptions.push(connection, sessions, jobs, uart, coverage);
    context.subscriptions.push(
        vscode.window.createTreeView('virserver.sessions', { treeDataProvider: sessions, showCollapseAll: false }),
        vscode.window.createTreeView('virserver.jobs', { treeDataProvider: jobs }),
    );

    /** Both views; a failure shows in the Sessions view, and as a notification when asked. */
    const refresh = async (notify: boolean): Promise<void> => {
        try {
            await Promise.all([sessions.refresh(), jobs.refresh()]);
        } catch (error) {
            if (notify) {
                void vscode.window.showErrorMessage(`VirServer: ${message(error)}`);
            }
        }
    };

    /** The session of a view item, or one picked from the server's list. */
    const chooseSession = async (item: unknown, purpose: string, filter?: (session: SessionSummary) => boolean): Promise<SessionSummary | undefined> => {
        if (item instanceof SessionItem) {
            return item.session;
        }
        const picks = (await listSessions(connection.client())).filter(filter ?? (() => true)).map((session) => ({
            label: session.name,
            description: `${session.state.toLowerCase()} · ${session.board.id}`,
            detail: session.id,
            session,
        }));
        if (picks.length === 0) {
            void vscode.window.showWarningMessage(`VirServer: no session to ${purpose}`);
            return undefined;
        }
        return (await vscode.window.showQuickPick(picks, { placeHolder: `Session to ${purpose}` }))?.session;
    };

    /** Runs a command body, showing its failure instead of throwing. */
    const guarded =
        (body: (item?: unknown) => Promise<void>) =>
        async (item?: unknown): Promise<void> => {
            try {
                await body(item);
            } catch (error) {
                void vscode.window.showErrorMessage(`VirServer: ${message(error)}`);
            }
        };

    const power = (action: PowerAction) =>
        guarded(async (item) => {
            const session = await chooseSession(item, `power ${action.toLowerCase()}`);
            if (session) {
                await powerSession(connection.client(), session.id, action);
                await refresh(false);
            }
        });

    const bindDebugSession = (debugSession: vscode.DebugSession, sessionId: string): void => {
        testLog.write({ event: 'debugSessionBound', debugSession: debugSession.name, sessionId });
        uart.show(connection.clientFor(debugSession.configuration.server as string | undefined), sessionId, debugSession.name, true);
        void refresh(false);
    };

    context.subscriptions.push(
        vscode.commands.registerCommand('virserver.refresh', () => refresh(true)),
        vscode.commands.registerCommand('virserver.powerOn', power('ON')),
        vscode.commands.registerCommand('virserver.powerOff', power('OFF')),
        vscode.commands.registerCommand('virserver.reset', power('RESET')),
        vscode.commands.registerCommand(
            'virserver.deleteSession',
            guarded(async (item) => {
                const session = await chooseSession(item, 'delete');
                if (!session) {
                    return;
                }
                const answer = await vscode.window.showWarningMessage(
                    `Delete the VirServer session '${session.name}' with its history?`,
                    { modal: true },
                    'Delete',
                );
                if (answer === 'Delete') {
                    await deleteSession(connection.client(), session.id);
                    await refresh(false);
                }
            }),
        ),
        vscode.commands.registerCommand(
            'virserver.copyGdbAddress',
            guarded(async (item) => {
                const session = await chooseSession(item, 'copy the GDB address of', isPowered);
                if (!session) {
                    return;
                }
                const address = (await getSession(connection.client(), session.id)).gdbAddress;
                if (address === null) {
                    throw new Error(`the session '${session.name}' is not powered, so it has no GDB address`);
                }
                await vscode.env.clipboard.writeText(address);
                void vscode.window.showInformationMessage(`VirServer: copied ${address} (target extended-remote ${address})`);
            }),
        ),
        vscode.commands.registerCommand(
            'virserver.attach',
            guarded(async (item) => {
                const session = await chooseSession(item, 'attach to', isPowered);
                if (!session) {
                    return;
                }
                const started = await vscode.debug.startDebugging(vscode.workspace.workspaceFolders?.[0], {
                    type: 'virserver',
                    request: 'attach',
                    name: `VirServer: ${session.name}`,
                    server: connection.client().serverUrl,
                    sessionId: session.id,
                });
                if (!started) {
                    throw new Error(`the debugger did not start for the session '${session.name}'`);
                }
            }),
        ),
        vscode.commands.registerCommand(
            'virserver.openUart',
            guarded(async (item) => {
                const session = await chooseSession(item, 'open the UART of');
                if (session) {
                    uart.show(connection.client(), session.id, session.name);
                }
            }),
        ),
        vscode.commands.registerCommand(
            'virserver.showCoverage',
            guarded(async (item) => {
                let source: { sessionId: string } | { jobId: string };
                let label: string;
                if (item instanceof JobItem) {
                    source = { jobId: item.job.id };
                    label = `job ${item.job.name}`;
                } else {
                    const session = await chooseSession(item, 'show the coverage of', (candidate) => candidate.coverage);
                    if (!session) {
                        return;
                    }
                    source = { sessionId: session.id };
                    label = `session ${session.name}`;
                }
                const lcov = await coverageLcov(connection.client(), source);
                const { found, total } = coverage.apply(lcov, label);
                const missing = total - found;
                void vscode.window.showInformationMessage(
                    `VirServer: coverage of ${label} on ${found} file(s)` +
                        (missing > 0 ? `; ${missing} source file(s) of the report are not in this workspace` : ''),
                );
            }),
        ),
        vscode.commands.registerCommand('virserver.clearCoverage', () => coverage.clear()),
        vscode.commands.registerCommand(
            'virserver.writeCortexDebugConfig',
            guarded(async (item) => {
                const session = await chooseSession(item, 'write a cortex-debug configuration for', isPowered);
                if (!session) {
                    return;
                }
                const folder = vscode.workspace.workspaceFolders?.[0];
                if (!folder) {
                    throw new Error('open a folder first: the configuration goes into its .vscode/launch.json');
                }
                const executable = resolveExecutable(readSettings());
                const added = await runIdeConfig(executable, connection.client().serverUrl, session.id, 'cortex-debug', connection.processEnvironment());
                const withPrograms = await Promise.all(added.map((configuration) => withLocalExecutable(configuration, session, folder)));
                const launch = vscode.workspace.getConfiguration('launch', folder.uri);
                const existing = launch.get<unknown[]>('configurations', []);
                await launch.update('configurations', mergeConfigurations(existing, withPrograms), vscode.ConfigurationTarget.WorkspaceFolder);
                testLog.write({ event: 'launchConfigWritten', configurations: withPrograms });
                void vscode.window.showInformationMessage(
                    `VirServer: wrote '${withPrograms.map((configuration) => configuration.name).join("', '")}' to .vscode/launch.json (needs the cortex-debug extension)`,
                );
            }),
        ),
    );

    context.subscriptions.push(
        vscode.debug.registerDebugConfigurationProvider('virserver', new VirServerConfigurationProvider(connection, testLog)),
        vscode.debug.registerDebugAdapterDescriptorFactory('virserver', new VirServerAdapterFactory(connection, testLog)),
        vscode.debug.registerDebugAdapterTrackerFactory('virserver', new VirServerTrackerFactory(testLog, bindDebugSession)),
        vscode.debug.onDidStartDebugSession((debugSession) => {
            if (debugSession.type === 'virserver') {
                testLog.write({ event: 'debugSessionStarted', name: debugSession.name, request: debugSession.configuration.request });
            }
        }),
        vscode.debug.onDidTerminateDebugSession((debugSession) => {
            if (debugSession.type === 'virserver') {
                testLog.write({ event: 'debugSessionTerminated', name: debugSession.name });
                void refresh(false);
            }
        }),
        connection.onDidChange(() => {
            sessions.unsubscribeAll();
            void refresh(false);
        }),
        vscode.commands.registerCommand(
            'virserver.setToken',
            guarded(async () => {
                const token = await vscode.window.showInputBox({
                    title: 'VirServer API key',
                    prompt: "The token 'virserver keys create' or createApiKey printed; empty to forget the stored one",
                    password: true,
                    ignoreFocusOut: true,
                });
                if (token === undefined) {
                    return;
                }
                await connection.setToken(token.trim() || undefined);
                void vscode.window.showInformationMessage(token.trim() ? 'VirServer: API key stored' : 'VirServer: API key forgotten');
            }),
        ),
    );

    const timer = setInterval(() => void refresh(false), readSettings().refreshIntervalSeconds * 1000);
    context.subscriptions.push({ dispose: () => clearInterval(timer) });
    // The stored key first, so that the first requests carry it.
    void connection.load().then(() => refresh(false));
    testLog.write({ event: 'activated', serverUrl: readSettings().serverUrl });
}

/**
 * `configuration` with an `executable` that exists here: kept when it does, else the
 * workspace file named like the session's program, else unchanged with a warning.
 */
async function withLocalExecutable(
    configuration: LaunchConfiguration,
    session: SessionSummary,
    folder: vscode.WorkspaceFolder,
): Promise<LaunchConfiguration> {
    const given = typeof configuration.executable === 'string' ? configuration.executable : undefined;
    if (given !== undefined && existsSync(path.resolve(folder.uri.fsPath, given))) {
        return configuration;
    }
    const programName = session.currentProgram?.name;
    if (programName !== undefined) {
        const [match] = await vscode.workspace.findFiles(new vscode.RelativePattern(folder, `**/${path.basename(programName)}`), '**/node_modules/**', 1);
        if (match) {
            return { ...configuration, executable: `\${workspaceFolder}/${path.relative(folder.uri.fsPath, match.fsPath)}` };
        }
    }
    void vscode.window.showWarningMessage(
        `VirServer: the session's program ${programName ?? '(none)'} is not in this workspace; set "executable" in the configuration by hand`,
    );
    return configuration;
}

export function deactivate(): void {
    // Everything is in context.subscriptions.
}
