// A stand-in for the `vscode` module: the small part of the API the extension uses,
// with state tests can set and inspect (`stubState`). A fake, named as such: it checks
// the extension's logic, not VS Code.
type Listener<T> = (value: T) => void;

export class EventEmitter<T> {
    private listeners: Listener<T>[] = [];
    readonly event = (listener: Listener<T>): { dispose(): void } => {
        this.listeners.push(listener);
        return { dispose: () => (this.listeners = this.listeners.filter((l) => l !== listener)) };
    };
    fire(value: T): void {
        for (const listener of [...this.listeners]) {
            listener(value);
        }
    }
    dispose(): void {
        this.listeners = [];
    }
}

export enum TreeItemCollapsibleState {
    None = 0,
    Collapsed = 1,
    Expanded = 2,
}

export class ThemeColor {
    constructor(readonly id: string) {}
}

export class ThemeIcon {
    constructor(readonly id: string, readonly color?: ThemeColor) {}
}

export class TreeItem {
    id?: string;
    description?: string;
    tooltip?: string;
    iconPath?: ThemeIcon;
    contextValue?: string;
    constructor(readonly label: string, readonly collapsibleState: TreeItemCollapsibleState) {}
}

export class Uri {
    private constructor(readonly fsPath: string) {}
    static file(fsPath: string): Uri {
        return new Uri(fsPath);
    }
    static joinPath(base: Uri, ...parts: string[]): Uri {
        return new Uri([base.fsPath, ...parts].join('/'));
    }
}

export class DebugAdapterExecutable {
    constructor(readonly command: string, readonly args: string[], readonly options?: { cwd?: string }) {}
}

export class DebugAdapterServer {
    constructor(readonly port: number, readonly host?: string) {}
}

export const stubState = {
    configuration: new Map<string, unknown>(),
    workspaceFolders: undefined as { uri: Uri; name: string; index: number }[] | undefined,
    errorMessages: [] as string[],
    terminalWrites: [] as string[],
};

export const workspace = {
    getConfiguration(section: string) {
        return {
            get<T>(key: string, fallback: T): T {
                const value = stubState.configuration.get(`${section}.${key}`);
                return value === undefined ? fallback : (value as T);
            },
        };
    },
    onDidChangeConfiguration: new EventEmitter<{ affectsConfiguration(section: string): boolean }>().event,
    get workspaceFolders() {
        return stubState.workspaceFolders;
    },
};

export const window = {
    showErrorMessage(message: string): Promise<undefined> {
        stubState.errorMessages.push(message);
        return Promise.resolve(undefined);
    },
    onDidCloseTerminal: new EventEmitter<unknown>().event,
};
