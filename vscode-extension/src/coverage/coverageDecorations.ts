// Coverage in the editor: a green or red gutter bar on every line the LCOV report
// knows, and the active file's line percentage in the status bar.
import { existsSync } from 'node:fs';
import * as vscode from 'vscode';
import type { TestLog } from '../testLog';
import { parseLcov, summarize, type LcovFile } from './lcov';
import { resolveSourcePath } from './paths';

export class CoverageDecorations implements vscode.Disposable {
    private readonly covered: vscode.TextEditorDecorationType;
    private readonly uncovered: vscode.TextEditorDecorationType;
    private readonly statusBar: vscode.StatusBarItem;
    /** Workspace file path to its record. */
    private files = new Map<string, LcovFile>();
    private readonly listeners: vscode.Disposable[];

    constructor(extensionUri: vscode.Uri, private readonly testLog: TestLog) {
        this.covered = vscode.window.createTextEditorDecorationType({
            gutterIconPath: vscode.Uri.joinPath(extensionUri, 'media', 'covered.svg'),
            overviewRulerColor: '#3fb95080',
            overviewRulerLane: vscode.OverviewRulerLane.Left,
        });
        this.uncovered = vscode.window.createTextEditorDecorationType({
            gutterIconPath: vscode.Uri.joinPath(extensionUri, 'media', 'uncovered.svg'),
            backgroundColor: '#f8514914',
            isWholeLine: true,
            overviewRulerColor: '#f8514980',
            overviewRulerLane: vscode.OverviewRulerLane.Left,
        });
        this.statusBar = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 50);
        this.statusBar.command = 'virserver.clearCoverage';
        this.listeners = [
            vscode.window.onDidChangeVisibleTextEditors(() => this.decorateVisible()),
            vscode.window.onDidChangeActiveTextEditor(() => this.updateStatusBar()),
        ];
    }

    /** Shows `lcov`; returns how many of its files were found in the workspace. */
    apply(lcov: string, label: string): { found: number; total: number } {
        const records = parseLcov(lcov);
        const roots = (vscode.workspace.workspaceFolders ?? []).map((folder) => folder.uri.fsPath);
        this.files = new Map();
        for (const record of records) {
            const file = resolveSourcePath(record.path, roots, existsSync);
            if (file !== undefined) {
                this.files.set(file, record);
            }
        }
        this.statusBar.tooltip = `Coverage of ${label} (click to clear)`;
        this.decorateVisible();
        this.updateStatusBar();
        this.testLog.write({
            event: 'coverageApplied',
            label,
            files: [...this.files].map(([file, record]) => ({ file, ...summarize(record) })),
            unresolved: records.length - this.files.size,
        });
        return { found: this.files.size, total: records.length };
    }

    clear(): void {
        this.files = new Map();
        this.decorateVisible();
        this.updateStatusBar();
    }

    dispose(): void {
        for (const listener of this.listeners) {
            listener.dispose();
        }
        this.covered.dispose();
        this.uncovered.dispose();
        this.statusBar.dispose();
    }

    private decorateVisible(): void {
        for (const editor of vscode.window.visibleTextEditors) {
            const record = this.files.get(editor.document.uri.fsPath);
            const hit: vscode.Range[] = [];
            const missed: vscode.Range[] = [];
            for (const [line, hits] of record?.lines ?? []) {
                if (line < 1 || line > editor.document.lineCount) {
                    continue;
                }
                const range = new vscode.Range(line - 1, 0, line - 1, 0);
                (hits > 0 ? hit : missed).push(range);
            }
            editor.setDecorations(this.covered, hit);
            editor.setDecorations(this.uncovered, missed);
        }
    }

    private updateStatusBar(): void {
        const editor = vscode.window.activeTextEditor;
        const record = editor ? this.files.get(editor.document.uri.fsPath) : undefined;
        if (!record) {
            this.statusBar.hide();
            return;
        }
        const { found, hit, percent } = summarize(record);
        this.statusBar.text = `$(shield) ${percent}% (${hit}/${found} lines)`;
        this.statusBar.show();
    }
}
