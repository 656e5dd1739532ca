// Every GraphQL document the extension sends, with the shapes of their results; the
// names follow schema.graphql at the repository root.
import type { GraphQLClient, Subscription, SubscriptionHandlers } from './graphqlClient';

export type SessionState = 'CREATED' | 'RUNNING' | 'PAUSED' | 'STOPPED' | 'EXITED' | 'CRASHED';
export type JobState = 'QUEUED' | 'RUNNING' | 'PASSED' | 'FAILED' | 'ERROR' | 'TIMED_OUT' | 'CANCELLED';
export type PowerAction = 'ON' | 'OFF' | 'RESET';

export interface SessionSummary {
    id: string;
    name: string;
    state: SessionState;
    exitCode: number | null;
    stateReason: string | null;
    coverage: boolean;
    gdbAddress: string | null;
    board: { id: string };
    currentProgram: { name: string } | null;
}

export interface JobSummary {
    id: string;
    name: string;
    state: JobState;
    failureReason: string | null;
    exitCode: number | null;
    coverage: boolean;
    programName: string;
    boardTemplate: string;
    session: { id: string } | null;
}

export interface SessionEvent {
    sessionId: string;
    kind: string;
    state: SessionState;
    exitCode: number | null;
    message: string | null;
    reason: string | null;
    pc: string | null;
    function: string | null;
    file: string | null;
    line: number | null;
}

export interface UartChunk {
    seq: number;
    data: string;
    dropped: number;
}

export interface DebuggerInfo {
    path: string | null;
    version: string | null;
    dap: boolean;
}

const SESSION_FIELDS = `id name state exitCode stateReason coverage gdbAddress board { id } currentProgram { name }`;

/** Every document, by the root field it asks for; tests validate them against schema.graphql. */
export const DOCUMENTS = {
    sessions: `query { sessions { ${SESSION_FIELDS} } }`,
    session: `query($id: ID!) { session(id: $id) { ${SESSION_FIELDS} } }`,
    jobs: `query($first: Int!) { jobs(first: $first) { nodes { id name state failureReason exitCode coverage programName boardTemplate session { id } } } }`,
    powerSession: `mutation($id: ID!, $action: PowerAction!) { powerSession(id: $id, action: $action) { ${SESSION_FIELDS} } }`,
    deleteSession: `mutation($id: ID!) { deleteSession(id: $id) }`,
    sendUartInput: `mutation($sessionId: ID!, $data: String!) { sendUartInput(sessionId: $sessionId, data: $data) }`,
    coverage: `query($sessionId: ID, $jobId: ID) { coverage(sessionId: $sessionId, jobId: $jobId) { lcov } }`,
    debugger: `query { debugger { path version dap } }`,
    dapAddress: `query($id: ID!) { session(id: $id) { dapAddress } }`,
    sessionEvents: `subscription($sessionId: ID!) { sessionEvents(sessionId: $sessionId) { sessionId kind state exitCode message reason pc function file line } }`,
    uartOutput: `subscription($sessionId: ID!) { uartOutput(sessionId: $sessionId) { seq data dropped } }`,
} as const;

export async function listSessions(client: GraphQLClient): Promise<SessionSummary[]> {
    const data = await client.request<{ sessions: SessionSummary[] }>(DOCUMENTS.sessions);
    return data.sessions;
}

export async function getSession(client: GraphQLClient, id: string): Promise<SessionSummary> {
    const data = await client.request<{ session: SessionSummary }>(
        DOCUMENTS.session,
        { id },
    );
    return data.session;
}

export async function listJobs(client: GraphQLClient, first = 20): Promise<JobSummary[]> {
    const data = await client.request<{ jobs: { nodes: JobSummary[] } }>(
        DOCUMENTS.jobs,
        { first },
    );
    return data.jobs.nodes;
}

export async function powerSession(client: GraphQLClient, id: string, action: PowerAction): Promise<SessionSummary> {
    const data = await client.request<{ powerSession: SessionSummary }>(
        DOCUMENTS.powerSession,
        { id, action },
    );
    return data.powerSession;
}

export async function deleteSession(client: GraphQLClient, id: string): Promise<void> {
    await client.request<{ deleteSession: boolean }>(DOCUMENTS.deleteSession, { id });
}

export async function sendUartInput(client: GraphQLClient, sessionId: string, data: string): Promise<void> {
    await client.request<{ sendUartInput: boolean }>(
        DOCUMENTS.sendUartInput,
        { sessionId, data },
    );
}

/** The LCOV tracefile of a session's latest run or of a job. */
export async function coverageLcov(client: GraphQLClient, source: { sessionId: string } | { jobId: string }): Promise<string> {
    const data = await client.request<{ coverage: { lcov: string } }>(
        DOCUMENTS.coverage,
        source,
    );
    return data.coverage.lcov;
}

/** The GDB the server runs for its DAP endpoints. */
export async function debuggerInfo(client: GraphQLClient): Promise<DebuggerInfo> {
    const data = await client.request<{ debugger: DebuggerInfo }>(DOCUMENTS.debugger);
    return data.debugger;
}

/** The TCP DAP endpoint (host:port) of a powered session, when the server offers one. */
export async function dapAddress(client: GraphQLClient, sessionId: string): Promise<string | null> {
    const data = await client.request<{ session: { dapAddress: string | null } }>(
        DOCUMENTS.dapAddress,
        { id: sessionId },
    );
    return data.session.dapAddress;
}

export function subscribeSessionEvents(
    client: GraphQLClient,
    sessionId: string,
    handlers: SubscriptionHandlers<{ sessionEvents: SessionEvent }>,
): Subscription {
    return client.subscribe(
        DOCUMENTS.sessionEvents,
        { sessionId },
        handlers,
    );
}

export function subscribeUart(
    client: GraphQLClient,
    sessionId: string,
    handlers: SubscriptionHandlers<{ uartOutput: UartChunk }>,
): Subscription {
    return client.subscribe(
        DOCUMENTS.uartOutput,
        { sessionId },
        handlers,
    );
}
