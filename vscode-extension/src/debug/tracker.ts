// Watches the DAP traffic of `virserver` debug sessions: for the test log (stops, stack
// frames, variables, output, exit) and to learn which VirServer session a launch made.
import * as vscode from 'vscode';
import type { TestLog } from '../testLog';

interface DapEvent {
    type: 'event';
    event: string;
    body?: Record<string, unknown>;
}

interface DapResponse {
    type: 'response';
    command: string;
    success: boolean;
    message?: string;
    body?: Record<string, unknown>;
}

interface DapFrame {
    name?: string;
    line?: number;
    source?: { path?: string; name?: string };
}

interface DapVariable {
    name?: string;
    value?: string;
}

function isEvent(message: unknown): message is DapEvent {
    return message instanceof Object && 'type' in message && message.type === 'event' && 'event' in message;
}

function isResponse(message: unknown): message is DapResponse {
    return message instanceof Object && 'type' in message && message.type === 'response' && 'command' in message;
}

/** The custom DAP event by which `virserver dap` names the session it debugs. */
export const SESSION_EVENT = 'virserverSession';

/** The test-log record for one adapter-to-VS Code message, or undefined when it is noise. */
export function describeAdapterMessage(message: unknown): ({ event: string } & Record<string, unknown>) | undefined {
    if (isEvent(message)) {
        const body = message.body ?? {};
        switch (message.event) {
            case 'stopped':
                return { event: 'dapStopped', reason: body.reason, threadId: body.threadId, description: body.description };
            case 'output':
                return { event: 'dapOutput', category: body.category, output: body.output };
            case 'exited':
                return { event: 'dapExited', exitCode: body.exitCode };
            case 'terminated':
                return { event: 'dapTerminated' };
            case 'initialized':
                return { event: 'dapInitialized' };
            case 'continued':
                return { event: 'dapContinued', threadId: body.threadId };
            case SESSION_EVENT:
                return { event: 'dapVirserverSession', sessionId: body.sessionId };
            default:
                return undefined;
        }
    }
    if (isResponse(message)) {
        if (!message.success) {
            return { event: 'dapError', command: message.command, message: message.message };
        }
        const body = message.body ?? {};
        if (message.command === 'stackTrace' && Array.isArray(body.stackFrames)) {
            const frames = (body.stackFrames as DapFrame[]).slice(0, 20).map((frame) => ({
                name: frame.name,
                path: frame.source?.path ?? frame.source?.name,
                line: frame.line,
            }));
            return { event: 'dapStackTrace', frames };
        }
        if (message.command === 'variables' && Array.isArray(body.variables)) {
            const variables = (body.variables as DapVariable[]).slice(0, 50).map(({ name, value }) => ({ name, value }));
            return { event: 'dapVariables', variables };
        }
        if (message.command === 'setBreakpoints' && Array.isArray(body.breakpoints)) {
            return { event: 'dapBreakpoints', breakpoints: body.breakpoints };
        }
    }
    return undefined;
}

export class VirServerTrackerFactory implements vscode.DebugAdapterTrackerFactory {
    constructor(
        private readonly testLog: TestLog,
        private readonly onSessionKnown: (debugSession: vscode.DebugSession, sessionId: string) => void,
    ) {}

    createDebugAdapterTracker(debugSession: vscode.DebugSession): vscode.DebugAdapterTracker {
        const attached: unknown = debugSession.configuration.sessionId;
        if (debugSession.configuration.request === 'attach' && typeof attached === 'string') {
            this.onSessionKnown(debugSession, attached);
        }
        return {
            onDidSendMessage: (message: unknown) => {
                if (isEvent(message) && message.event === SESSION_EVENT && typeof message.body?.sessionId === 'string') {
                    this.onSessionKnown(debugSession, message.body.sessionId);
                }
                const record = describeAdapterMessage(message);
                if (record) {
                    this.testLog.write({ ...record, debugSession: debugSession.name });
                }
            },
            onError: (error: Error) => this.testLog.write({ event: 'dapAdapterError', error: error.message }),
            onExit: (code: number | undefined, signal: string | undefined) =>
                this.testLog.write({ event: 'dapAdapterExit', code, signal }),
        };
    }
}
