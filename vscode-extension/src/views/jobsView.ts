// The Jobs view: the newest jobs of the server with their verdicts.
import * as vscode from 'vscode';
import { listJobs, type JobState, type JobSummary } from '../api/queries';
import type { Connection } from '../settings';

const STATE_ICONS: Record<JobState, vscode.ThemeIcon> = {
    QUEUED: new vscode.ThemeIcon('clock'),
    RUNNING: new vscode.ThemeIcon('sync~spin'),
    PASSED: new vscode.ThemeIcon('pass', new vscode.ThemeColor('testing.iconPassed')),
    FAILED: new vscode.ThemeIcon('error', new vscode.ThemeColor('testing.iconFailed')),
    ERROR: new vscode.ThemeIcon('warning', new vscode.ThemeColor('testing.iconErrored')),
    TIMED_OUT: new vscode.ThemeIcon('watch', new vscode.ThemeColor('testing.iconFailed')),
    CANCELLED: new vscode.ThemeIcon('circle-slash'),
};

export class JobItem extends vscode.TreeItem {
    constructor(readonly job: JobSummary) {
        super(job.name, vscode.TreeItemCollapsibleState.None);
        this.id = `job:${job.id}`;
        const verdict = job.state.toLowerCase().replace('_', ' ');
        this.description = job.failureReason ? `${verdict}: ${job.failureReason}` : verdict;
        this.iconPath = STATE_ICONS[job.state];
        this.contextValue = job.coverage ? 'job.coverage' : 'job';
        this.tooltip = [
            `Job ${job.id}`,
            `Program: ${job.programName} on ${job.boardTemplate}`,
            `Verdict: ${job.state}${job.exitCode !== null ? ` (exit ${job.exitCode})` : ''}`,
            ...(job.failureReason ? [`Reason: ${job.failureReason}`] : []),
        ].join('\n');
    }
}

export class JobsProvider implements vscode.TreeDataProvider<JobItem>, vscode.Disposable {
    private jobs: JobSummary[] = [];
    private readonly changeEmitter = new vscode.EventEmitter<void>();
    readonly onDidChangeTreeData = this.changeEmitter.event;

    constructor(private readonly connection: Connection) {}

    getTreeItem(element: JobItem): vscode.TreeItem {
        return element;
    }

    getChildren(element?: JobItem): JobItem[] {
        return element ? [] : this.jobs.map((job) => new JobItem(job));
    }

    async refresh(): Promise<void> {
        try {
            this.jobs = await listJobs(this.connection.client());
        } catch (error) {
            this.jobs = [];
            throw error;
        } finally {
            this.changeEmitter.fire();
        }
    }

    dispose(): void {
        this.changeEmitter.dispose();
    }
}
