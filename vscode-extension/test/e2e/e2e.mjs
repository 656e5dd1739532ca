// The browser half of test/e2e/run.sh: drives the VS Code workbench with the keyboard
// and checks the extension's test log (VIRSERVER_EXTENSION_TEST_LOG), not pixels.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';

const require = createRequire(path.join(process.env.E2E_MODULES, 'noop.js'));
const puppeteer = require('puppeteer-core');
const logFile = process.env.VIRSERVER_EXTENSION_TEST_LOG;
const shots = process.env.E2E_SCREENSHOTS;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function records() {
    return readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line));
}

/** The first record from `from` on that satisfies `match`, waiting up to `ms`. */
async function waitFor(what, match, from = 0, ms = 60000) {
    const deadline = Date.now() + ms;
    for (;;) {
        const found = records().slice(from).find(match);
        if (found) {
            return found;
        }
        if (Date.now() > deadline) {
            const tail = records().slice(-15).map((record) => JSON.stringify(record)).join('\n');
            throw new Error(`timed out waiting for ${what}; the test log ends with:\n${tail}`);
        }
        await sleep(200);
    }
}

/** Waits until the adapter's console output (UART chunks, in order) since `from` matches. */
async function waitForUart(pattern, from, ms = 60000) {
    const deadline = Date.now() + ms;
    for (;;) {
        const text = records().slice(from).filter((record) => record.event === 'dapOutput' && record.category === 'stdout').map((record) => record.output).join('');
        if (pattern.test(text)) {
            return;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out waiting for UART output ${pattern}; saw ${JSON.stringify(text)}`);
        }
        await sleep(200);
    }
}

async function shot(page, name) {
    await sleep(1000);
    await page.screenshot({ path: path.join(shots, `${name}.png`) });
}

async function palette(page, command) {
    await page.keyboard.down('Control');
    await page.keyboard.down('Shift');
    await page.keyboard.press('KeyP');
    await page.keyboard.up('Shift');
    await page.keyboard.up('Control');
    await page.waitForSelector('.quick-input-widget input:focus');
    await page.keyboard.type(command);
    await sleep(500);
    const rows = await page.$$('.quick-input-list .monaco-list-row');
    for (const row of rows) {
        const label = await row.$eval('.label-name', (element) => element.textContent?.trim()).catch(() => undefined);
        if (label === command) {
            await row.click();
            return;
        }
    }
    throw new Error(`no command palette entry "${command}"`);
}

test('launch, break, inspect, see UART and the session, continue to exit', { timeout: 240000 }, async () => {
    const browser = await puppeteer.launch({
        executablePath: '/usr/bin/chromium',
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', `--user-data-dir=${path.join(path.dirname(logFile), 'chromium')}`],
        defaultViewport: { width: 1400, height: 900 },
    });
    const page = await browser.newPage();
    try {
        await page.goto(process.env.E2E_URL);
        await page.waitForSelector('.monaco-workbench', { timeout: 60000 });
        await waitFor('the extension to activate', (record) => record.event === 'activated');

        // A breakpoint on `uart_put_uint(i);` in count_to (hello.c line 19).
        await palette(page, 'Go to File...');
        await page.keyboard.type('examples/firmware/programs/hello.c');
        await sleep(800);
        await page.keyboard.press('Enter');
        await page.waitForSelector('.monaco-editor .view-lines');
        await sleep(800);
        await page.keyboard.down('Control');
        await page.keyboard.press('KeyG');
        await page.keyboard.up('Control');
        await page.keyboard.type('19');
        await page.keyboard.press('Enter');
        await sleep(300);
        await page.keyboard.press('F9');
        await shot(page, '1-breakpoint');

        const start = records().length;
        await page.keyboard.press('F5');
        await waitFor('the debug session to start', (record) => record.event === 'debugSessionStarted', start);
        const stopped = await waitFor('a stop at the breakpoint', (record) => record.event === 'dapStopped' && record.reason === 'breakpoint', start, 90000);
        assert.ok(stopped);
        // VS Code asks for the top frame first, then for the rest (startFrame 1 on).
        const stack = await waitFor('the call stack', (record) => record.event === 'dapStackTrace' && record.frames.length > 0, start);
        const [top] = stack.frames;
        const callers = await waitFor('main among the frames', (record) => record.event === 'dapStackTrace' && record.frames.some((frame) => frame.name === 'main'), start);
        const caller = callers.frames.find((frame) => frame.name === 'main');
        assert.equal(top.name, 'count_to');
        assert.equal(top.line, 19);
        assert.match(top.path, /examples\/firmware\/programs\/hello\.c$/);
        assert.equal(caller?.name, 'main');
        // The first scope (GDB's Arguments) is the one VS Code expands by itself.
        const variables = await waitFor('the variables of count_to', (record) => record.event === 'dapVariables' && record.variables.some((variable) => variable.name === 'n'), start);
        assert.equal(variables.variables.find((variable) => variable.name === 'n').value, '3');
        await waitForUart(/Hello from VirServer on mps2-an385\ncounting:/, start);
        await waitFor('the session in the VirServer view', (record) => record.event === 'sessionsRefreshed' && record.sessions.some((session) => session.state === 'RUNNING' || session.state === 'PAUSED'), start);
        await shot(page, '2-stopped-at-breakpoint');
        await palette(page, 'VirServer: Focus on Sessions View');
        await shot(page, '3-virserver-view');

        // Back in the editor at the stop (line 19): drop the breakpoint, run to the end.
        await page.click('.monaco-editor .view-lines');
        await page.keyboard.down('Control');
        await page.keyboard.press('KeyG');
        await page.keyboard.up('Control');
        await page.keyboard.type('19');
        await page.keyboard.press('Enter');
        await page.keyboard.press('F9');
        await sleep(300);
        const resumed = records().length;
        await page.keyboard.press('F5');
        await waitForUart(/counting: 1 2 3\ndone, exiting with 0\n/, start);
        await waitFor('the debug session to end', (record) => record.event === 'debugSessionTerminated', resumed, 60000);
        await shot(page, '4-exited');
    } catch (error) {
        await shot(page, 'failure');
        throw error;
    } finally {
        await browser.close();
    }
});
