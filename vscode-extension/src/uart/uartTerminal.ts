// A session's console UART as a terminal: output from the `uartOutput` subscription
// (a replay of recent output first), keystrokes sent with `sendUartInput`.
import * as vscode from 'vscode';
import type { GraphQLClient, Subscription } from '../api/graphqlClient';
import { sendUartInput, subscribeUart } from '../api/queries';
import type { TestLog } from '../testLog';

/** Terminal text for UART bytes: bare line feeds become CR LF. */
export function toTerminalText(data: string): string {
    return data.replace(/\r?\n/g, '\r\n');
}

export class UartPseudoterminal implements vscode.Pseudoterminal {
    private readonly writeEmitter = new vscode.EventEmitter<string>();
    private readonly closeEmitter = new vscode.EventEmitter<void>();
    readonly onDidWrite = this.writeEmitter.event;
    readonly onDidClose = this.closeEmitter.event;
    private subscription: Subscription | undefined;
    private bytesSeen = 0;

    constructor(
        private readonly client: GraphQLClient,
        readonly sessionId: string,
        private readonly testLog: TestLog,
    ) {}

    open(): void {
        this.writeEmitter.fire(`\x1b[2mVirServer UART of session ${this.sessionId}; typing sends input.\x1b[0m\r\n`);
        this.subscription = subscribeUart(this.client, this.sessionId, {
            next: ({ uartOutput }) => {
                if (uartOutput.dropped > 0) {
                    this.writeEmitter.fire(`\r\n\x1b[33m[${uartOutput.dropped} chunks dropped]\x1b[0m\r\n`);
                }
                this.bytesSeen += uartOutput.data.length;
                this.writeEmitter.fire(toTerminalText(uartOutput.data));
                this.testLog.write({
                    event: 'uartBytes',
                    sessionId: this.sessionId,
                    bytes: uartOutput.data.length,
                    total: this.bytesSeen,
                    text: uartOutput.data.slice(0, 500),
                });
            },
            error: (error) => {
                this.writeEmitter.fire(`\r\n\x1b[31m[UART: ${error.message}]\x1b[0m\r\n`);
                this.testLog.write({ event: 'uartError', sessionId: this.sessionId, error: error.message });
            },
            complete: () => this.writeEmitter.fire('\r\n\x1b[2m[UART stream ended]\x1b[0m\r\n'),
        });
    }

    handleInput(data: string): void {
        sendUartInput(this.client, this.sessionId, data).catch((error: unknown) => {
            const message = error instanceof Error ? error.message : String(error);
            this.writeEmitter.fire(`\r\n\x1b[31m[input not sent: ${message}]\x1b[0m\r\n`);
        });
    }

    close(): void {
        this.subscription?.dispose();
        this.subscription = undefined;
        this.writeEmitter.dispose();
        this.closeEmitter.dispose();
    }
}

/** One terminal per session: opening it again shows the one already open. */
export class UartTerminals implements vscode.Disposable {
    private readonly terminals = new Map<string, vscode.Terminal>();
    private readonly closeListener: vscode.Disposable;

    constructor(private readonly testLog: TestLog) {
        this.closeListener = vscode.window.onDidCloseTerminal((terminal) => {
            for (const [id, open] of this.terminals) {
                if (open === terminal) {
                    this.terminals.delete(id);
                }
            }
        });
    }

    show(client: GraphQLClient, sessionId: string, name: string, preserveFocus = false): void {
        let terminal = this.terminals.get(sessionId);
        if (!terminal) {
            const pty = new UartPseudoterminal(client, sessionId, this.testLog);
            terminal = vscode.window.createTerminal({ name: `UART: ${name}`, pty });
            this.terminals.set(sessionId, terminal);
            this.testLog.write({ event: 'uartOpened', sessionId });
        }
        terminal.show(preserveFocus);
    }

    dispose(): void {
        this.closeListener.dispose();
        for (const terminal of this.terminals.values()) {
            terminal.dispose();
        }
        this.terminals.clear();
    }
}
