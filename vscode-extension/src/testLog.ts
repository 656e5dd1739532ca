// Test mode: with VIRSERVER_EXTENSION_TEST_LOG set, one JSON line per notable event is
// appended to that file, so an end-to-end test can follow the extension without pixels.
import { appendFileSync } from 'node:fs';

export type TestLogRecord = { event: string } & Record<string, unknown>;

export class TestLog {
    constructor(private file: string | undefined) {}

    static fromEnvironment(env: NodeJS.ProcessEnv = process.env): TestLog {
        const file = env.VIRSERVER_EXTENSION_TEST_LOG;
        return new TestLog(file === undefined || file === '' ? undefined : file);
    }

    get enabled(): boolean {
        return this.file !== undefined;
    }

    write(record: TestLogRecord): void {
        if (this.file === undefined) {
            return;
        }
        const line = JSON.stringify({ time: new Date().toISOString(), ...record });
        try {
            appendFileSync(this.file, line + '\n');
        } catch (error) {
            // A broken log must not break the extension; say so once on the console.
            console.error(`VirServer: cannot append to the test log ${this.file}:`, error);
            this.file = undefined;
        }
    }
}
