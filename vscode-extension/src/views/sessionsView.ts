// The Sessions view: every session of the server with its live state. The list is
// polled (the schema has no "session created" stream); the state of each listed session
// follows its `sessionEvents` subscription.
import * as vscode from 'vscode';
import type { Subscription } from '../api/graphqlClient';
import { listSessions, subscribeSessionEvents, type SessionEvent, type SessionState, type SessionSummary } from '../api/queries';
import type { Connection } from '../settings';
import type { TestLog } from '../testLog';

const POWERED: readonly SessionState[] = ['RUNNING', 'PAUSED'];

const STATE_ICONS: Record<SessionState, vscode.ThemeIcon> = {
    CREATED: new vscode.ThemeIcon('circle-outline'),
    RUNNING: new vscode.ThemeIcon('debug-start', new vscode.ThemeColor('testing.iconPassed')),
    PAUSED: new vscode.ThemeIcon('debug-pause', new vscode.ThemeColor('debugIcon.pauseForeground')),
    STOPPED: new vscode.ThemeIcon('debug-stop'),
    EXITED: new vscode.ThemeIcon('pass'),
    CRASHED: new vscode.ThemeIcon('error', new vscode.ThemeColor('testing.iconFailed')),
};

export function isPowered(session: SessionSummary): boolean {
    return POWERED.includes(session.state);
}

export class SessionItem extends vscode.TreeItem {
    constructor(readonly session: SessionSummary) {
        super(session.name, vscode.TreeItemCollapsibleState.None);
        this.id = `session:${session.id}`;
        const exit = session.state === 'EXITED' && session.exitCode !== null ? ` ${session.exitCode}` : '';
        this.description = `${session.state.toLowerCase()}${exit} · ${session.board.id}`;
        this.iconPath = STATE_ICONS[session.state];
        this.contextValue = isPowered(session) ? 'session.powered' : 'session.off';
        const lines = [
            `Session ${session.id}`,
            `Board: ${session.board.id}`,
            `Program: ${session.currentProgram?.name ?? 'none'}`,
            `State: ${session.state}${session.stateReason ? ` (${session.stateReason})` : ''}`,
            `GDB: ${session.gdbAddress ?? 'not powered'}`,
        ];
        this.tooltip = lines.join('\n');
    }
}

class MessageItem extends vscode.TreeItem {
    constructor(message: string) {
        super(message, vscode.TreeItemCollapsibleState.None);
        this.iconPath = new vscode.ThemeIcon('warning');
        this.tooltip = message;
    }
}

export class SessionsProvider implements vscode.TreeDataProvider<vscode.TreeItem>, vscode.Disposable {
    private sessions: SessionSummary[] = [];
    private error: string | undefined;
    private readonly subscriptions = new Map<string, Subscription>();
    private readonly changeEmitter = new vscode.EventEmitter<void>();
    readonly onDidChangeTreeData = this.changeEmitter.event;
    private pendingRefresh: ReturnType<typeof setTimeout> | undefined;

    constructor(private readonly connection: Connection, private readonly testLog: TestLog) {}

    getTreeItem(element: vscode.TreeItem): vscode.TreeItem {
        return element;
    }

    getChildren(element?: vscode.TreeItem): vscode.TreeItem[] {
        if (element) {
            return [];
        }
        if (this.error !== undefined) {
            return [new MessageItem(this.error)];
        }
        return this.sessions.map((session) => new SessionItem(session));
    }

    find(sessionId: string): SessionSummary | undefined {
        return this.sessions.find((session) => session.id === sessionId);
    }

    /** Re-reads the list; rejects with the server's error after showing it in the view. */
    async refresh(): Promise<void> {
        try {
            this.sessions = await listSessions(this.connection.client());
            this.error = undefined;
        } catch (error) {
            this.sessions = [];
            this.error = error instanceof Error ? error.message : String(error);
            this.unsubscribeAll();
            this.changeEmitter.fire();
            this.testLog.write({ event: 'sessionsRefreshFailed', error: this.error });
            throw error;
        }
        this.follow();
        this.changeEmitter.fire();
        this.testLog.write({
            event: 'sessionsRefreshed',
            count: this.sessions.length,
            sessions: this.sessions.map(({ id, name, state }) => ({ id, name, state })),
        });
    }

    /** Forgets subscriptions after the server URL changed. */
    unsubscribeAll(): void {
        for (const subscription of this.subscriptions.values()) {
            subscription.dispose();
        }
        this.subscriptions.clear();
    }

    dispose(): void {
        clearTimeout(this.pendingRefresh);
        this.unsubscribeAll();
        this.changeEmitter.dispose();
    }

    private follow(): void {
        const ids = new Set(this.sessions.map((session) => session.id));
        for (const [id, subscription] of this.subscriptions) {
            if (!ids.has(id)) {
                subscription.dispose();
                this.subscriptions.delete(id);
            }
        }
        for (const id of ids) {
            if (this.subscriptions.has(id)) {
                continue;
            }
            const subscription = subscribeSessionEvents(this.connection.client(), id, {
                next: ({ sessionEvents }) => this.onEvent(sessionEvents),
                error: () => this.subscriptions.delete(id),
                complete: () => this.subscriptions.delete(id),
            });
            this.subscriptions.set(id, subscription);
        }
    }

    private onEvent(event: SessionEvent): void {
        this.testLog.write({ event: 'sessionEvent', sessionId: event.sessionId, kind: event.kind, state: event.state });
        const session = this.find(event.sessionId);
        if (session) {
            session.state = event.state;
            session.exitCode = event.exitCode;
            this.changeEmitter.fire();
        }
        // The event has no GDB address or program: pick them up soon, once per burst.
        clearTimeout(this.pendingRefresh);
        this.pendingRefresh = setTimeout(() => {
            this.refresh().catch(() => undefined);
        }, 300);
    }
}
