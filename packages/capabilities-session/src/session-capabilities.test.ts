import { defineCapability, defineTool, type Message, toolError } from '@everruns-ts/core';
import { LlmSimConfig, LlmSimDriver, type LlmSimToolCall } from '@everruns-ts/driver-llmsim';
import { InProcessRuntimeBuilder } from '@everruns-ts/runtime';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  redactSecretValues,
  resolveSecretReferences,
  SESSION_CAPABILITY_ID,
  SESSION_STORAGE_CAPABILITY_ID,
  secretReferencesIn,
  secretValueForms,
  sessionCapability,
  sessionStorageCapability,
} from './index.js';

function toolResults(messages: Message[]) {
  const results = new Map<string, { content: string; isError: boolean; json: unknown }>();
  for (const message of messages)
    for (const part of message.content)
      if (part.type === 'tool_result') {
        let json: unknown;
        try {
          json = JSON.parse(part.content);
        } catch {}
        results.set(part.toolCallId, { ...part, json });
      }
  return results;
}

async function sessionRuntime(calls: LlmSimToolCall[]) {
  const driver = new LlmSimDriver(
    LlmSimConfig.sequence(['', 'done']).withToolCallSequence([calls, []]),
  );
  const runtime = await new InProcessRuntimeBuilder()
    .capability(sessionCapability)
    .capability(sessionStorageCapability)
    .driver(driver)
    .defaultModel({ model: 'llmsim-model', providerType: 'llmsim' })
    .singleSession((session) =>
      session
        .harness('assistant', '')
        .withCapability(SESSION_CAPABILITY_ID)
        .withCapability(SESSION_STORAGE_CAPABILITY_ID)
        .sessionTitle('Old title')
        .sessionLocale('uk'),
    )
    .build();
  return { runtime, driver, sessionId: runtime.defaultSessionId() as string };
}

async function runCalls(calls: LlmSimToolCall[]) {
  const setup = await sessionRuntime(calls);
  const result = await setup.runtime.runTextTurn(setup.sessionId, 'go');
  expect(result).toMatchObject({ success: true, response: 'done' });
  return { ...setup, results: toolResults(await setup.runtime.messages(setup.sessionId)) };
}

function errorOf(results: Map<string, { content: string; isError: boolean }>, id: string) {
  expect(results.get(id)?.isError, `${id}: ${results.get(id)?.content}`).toBe(true);
  return results.get(id)?.content ?? '';
}

describe('session capability', () => {
  it('reads the session and writes its title through a real turn', async () => {
    const { runtime, sessionId, results } = await runCalls([
      { id: 'info', name: 'get_session_info', arguments: {} },
      { id: 'title', name: 'write_session_title', arguments: { title: '  Trip to Lviv  ' } },
      { id: 'after', name: 'get_session_info', arguments: {} },
    ]);
    expect(results.get('info')?.json).toMatchObject({
      session_id: sessionId,
      title: 'Old title',
      locale: 'uk',
      status: 'active',
      agent_id: null,
    });
    expect(results.get('title')?.json).toEqual({
      session_id: sessionId,
      title: 'Trip to Lviv',
      updated: true,
    });
    expect(results.get('after')?.json).toMatchObject({ title: 'Trip to Lviv' });
    expect((await runtime.getSession(sessionId))?.title).toBe('Trip to Lviv');
  });

  it('reports a blank title, a wrong type and extra fields as tool errors', async () => {
    const { results } = await runCalls([
      { id: 'blank', name: 'write_session_title', arguments: { title: '   ' } },
      { id: 'missing', name: 'write_session_title', arguments: {} },
      { id: 'type', name: 'write_session_title', arguments: { title: 7 } },
      { id: 'long', name: 'write_session_title', arguments: { title: 'x'.repeat(201) } },
      { id: 'extra', name: 'get_session_info', arguments: { verbose: true } },
    ]);
    expect(errorOf(results, 'blank')).toMatch(/write_session_title: title:/);
    expect(errorOf(results, 'missing')).toMatch(/title:/);
    expect(errorOf(results, 'type')).toMatch(/title: .*string/);
    expect(errorOf(results, 'long')).toMatch(/title: .*200/);
    expect(errorOf(results, 'extra')).toContain('verbose');
  });
});

describe('session_storage capability', () => {
  it('sets, gets, lists and deletes values', async () => {
    const { runtime, sessionId, results } = await runCalls([
      { id: 'set', name: 'kv_store', arguments: { operation: 'set', key: 'city', value: 'Lviv' } },
      {
        id: 'set2',
        name: 'kv_store',
        arguments: { operation: 'set', key: 'budget', value: '{"eur":300}' },
      },
      { id: 'get', name: 'kv_store', arguments: { operation: 'get', key: 'city' } },
      { id: 'list', name: 'kv_store', arguments: { operation: 'list' } },
      { id: 'del', name: 'kv_store', arguments: { operation: 'delete', key: 'city' } },
      { id: 'gone', name: 'kv_store', arguments: { operation: 'get', key: 'city' } },
    ]);
    expect(results.get('set')?.json).toEqual({ operation: 'set', key: 'city', stored: true });
    expect(results.get('get')?.json).toEqual({
      operation: 'get',
      key: 'city',
      found: true,
      value: 'Lviv',
    });
    expect(results.get('list')?.json).toEqual({
      operation: 'list',
      keys: ['budget', 'city'],
      count: 2,
    });
    expect(results.get('del')?.json).toEqual({ operation: 'delete', key: 'city', deleted: true });
    expect(results.get('gone')?.json).toEqual({
      operation: 'get',
      key: 'city',
      found: false,
      value: null,
    });
    expect(await runtime.backends.storage.getValue(sessionId, 'budget')).toBe('{"eur":300}');
  });

  it('reports missing keys and values, unknown operations and extra fields as tool errors', async () => {
    const { results } = await runCalls([
      { id: 'no-key', name: 'kv_store', arguments: { operation: 'get' } },
      { id: 'no-value', name: 'kv_store', arguments: { operation: 'set', key: 'a' } },
      { id: 'op', name: 'kv_store', arguments: { operation: 'upsert', key: 'a' } },
      { id: 'long', name: 'kv_store', arguments: { operation: 'get', key: 'k'.repeat(256) } },
      { id: 'type', name: 'kv_store', arguments: { operation: 'set', key: 'a', value: 3 } },
      { id: 'extra', name: 'kv_store', arguments: { operation: 'list', ttl: 5 } },
      {
        id: 'reserved',
        name: 'kv_store',
        arguments: { operation: 'get', key: 'everruns:runtime/tool-started/x' },
      },
      { id: 'secret-set', name: 'secret_store', arguments: { operation: 'set', name: 'a' } },
      {
        id: 'secret-value',
        name: 'secret_store',
        arguments: { operation: 'get', name: 'a', value: 'x' },
      },
      { id: 'secret-name', name: 'secret_store', arguments: { operation: 'delete' } },
    ]);
    expect(errorOf(results, 'no-key')).toContain('key is required for the get operation');
    expect(errorOf(results, 'no-value')).toContain('value is required for the set operation');
    expect(errorOf(results, 'op')).toMatch(/kv_store: operation:/);
    expect(errorOf(results, 'long')).toMatch(/key: .*255/);
    expect(errorOf(results, 'type')).toMatch(/value: .*string/);
    expect(errorOf(results, 'extra')).toContain('ttl');
    expect(errorOf(results, 'reserved')).toContain('reserved for the platform');
    expect(errorOf(results, 'secret-set')).toMatch(/secret_store: operation:/);
    expect(errorOf(results, 'secret-value')).toContain('value');
    expect(errorOf(results, 'secret-name')).toContain('name is required for the delete operation');
  });

  it('keeps a secret value out of messages, events, contexts, model requests and logs while a tool uses it', async () => {
    const secret = `tok/${crypto.randomUUID()}+?&=ü`;
    const forms = secretValueForms(secret);
    expect(forms).toContain(encodeURIComponent(secret));
    expect(forms).toContain(btoa(String.fromCharCode(...new TextEncoder().encode(secret))));
    let authorized = false;
    const api = defineCapability({
      id: `test_api_${crypto.randomUUID().slice(0, 8)}`,
      name: 'Test API',
      description: 'calls a pretend API with a bearer token',
      tools: [
        defineTool({
          name: 'call_api',
          description: 'Calls the API; authorization may hold secret references.',
          inputSchema: z.strictObject({ authorization: z.string() }),
          execute: async (input, context) => {
            const header = await resolveSecretReferences(input.authorization, context);
            authorized = header === `Bearer ${secret}`;
            // The pretend server echoes what it got, in every form; the tool redacts before returning.
            const echoed = `server saw ${header} / ${btoa(header)} / ${encodeURIComponent(header)}`;
            const names = secretReferencesIn(input.authorization);
            const secrets = new Map<string, string>();
            for (const name of names)
              secrets.set(name, (await context.storage.getSecret(context.sessionId, name)) ?? '');
            return { authorized, response: redactSecretValues(echoed, secrets) };
          },
        }),
        defineTool({
          name: 'unknown_secret',
          description: 'resolves a secret that does not exist',
          inputSchema: z.strictObject({}),
          execute: async (_input, context) => {
            try {
              return await resolveSecretReferences('secret://nope', context);
            } catch (error) {
              return toolError((error as Error).message);
            }
          },
        }),
      ],
    });
    const driver = new LlmSimDriver(
      LlmSimConfig.sequence(['', 'done']).withToolCallSequence([
        [
          { id: 'list', name: 'secret_store', arguments: { operation: 'list' } },
          { id: 'get', name: 'secret_store', arguments: { operation: 'get', name: 'api_token' } },
          {
            id: 'call',
            name: 'call_api',
            arguments: { authorization: 'Bearer secret://api_token' },
          },
          { id: 'missing', name: 'unknown_secret', arguments: {} },
        ],
        [],
      ]),
    );
    const logged: string[] = [];
    const restore = captureOutput(logged);
    let turnId: string;
    let runtime: Awaited<ReturnType<InProcessRuntimeBuilder['build']>>;
    let sessionId: string;
    try {
      runtime = await new InProcessRuntimeBuilder()
        .capability(sessionStorageCapability)
        .capability(api)
        .driver(driver)
        .defaultModel({ model: 'llmsim-model', providerType: 'llmsim' })
        .singleSession((session) =>
          session
            .harness('secretive', '')
            .withCapability(SESSION_STORAGE_CAPABILITY_ID)
            .withCapability(api.id),
        )
        .build();
      sessionId = runtime.defaultSessionId() as string;
      await runtime.backends.storage.setSecret(sessionId, 'api_token', secret);
      const result = await runtime.runTextTurn(sessionId, 'call the API with my token');
      expect(result).toMatchObject({ success: true, response: 'done' });
      turnId = result.turnId;
    } finally {
      restore();
    }
    expect(authorized).toBe(true);
    const messages = await runtime.messages(sessionId);
    const results = toolResults(messages);
    expect(results.get('list')?.json).toMatchObject({
      secrets: [{ name: 'api_token', reference: 'secret://api_token' }],
    });
    expect(results.get('get')?.json).toEqual({
      operation: 'get',
      name: 'api_token',
      found: true,
      reference: 'secret://api_token',
    });
    expect(results.get('call')?.json).toMatchObject({
      authorized: true,
      response: expect.stringContaining('server saw Bearer secret://api_token'),
    });
    expect(results.get('missing')).toMatchObject({
      isError: true,
      content: expect.stringContaining('Unknown secret secret://nope'),
    });
    const places: Record<string, string> = {
      messages: JSON.stringify(messages),
      events: JSON.stringify(runtime.events()),
      loadContext: JSON.stringify(await runtime.loadContext(sessionId)),
      turnContext: JSON.stringify(runtime.turnContext(turnId)),
      modelRequests: JSON.stringify(driver.requests),
      logs: logged.join('\n'),
    };
    expect(places.turnContext?.length).toBeGreaterThan(100);
    for (const [place, text] of Object.entries(places))
      for (const form of forms) expect(text.includes(form), `${place} holds ${form}`).toBe(false);
  });
});

describe('secrets a careless tool echoes', () => {
  it('keeps every encoding of a secret out of messages, events, contexts, model requests and logs, whatever the tool returns or throws', async () => {
    const secret = `Tok_~~~???>>>${crypto.randomUUID()}`;
    const bytes = Buffer.from(secret);
    const leaks = [
      secret,
      secret.toUpperCase(),
      secret.toLowerCase(),
      encodeURIComponent(secret),
      bytes.toString('hex'),
      bytes.toString('hex').toUpperCase(),
      bytes.toString('base64'),
      bytes.toString('base64url'),
      encodeURIComponent(bytes.toString('base64')),
      // From the first character that depends on the secret alone (`user:` is 5 bytes).
      Buffer.from(`user:${secret}`).toString('base64').slice(7),
      Buffer.from(`xy${secret}`).toString('base64url').slice(3),
    ];
    const echo = (context: { sessionId: string; storage: { getSecret: Function } }) =>
      context.storage.getSecret(context.sessionId, 'api_token') as Promise<string>;
    const careless = defineCapability({
      id: `careless_${crypto.randomUUID().slice(0, 8)}`,
      name: 'Careless',
      description: 'tools that echo what they sent, without redacting',
      tools: [
        defineTool({
          name: 'echo_result',
          description: 'Returns the secret in many encodings',
          inputSchema: z.strictObject({}),
          execute: async (_input, context) => {
            await echo(context);
            return {
              sent: leaks,
              header: `Basic ${Buffer.from(`user:${secret}`).toString('base64')}`,
            };
          },
        }),
        defineTool({
          name: 'echo_error',
          description: 'Throws with the secret in many encodings',
          inputSchema: z.strictObject({}),
          execute: async (_input, context) => {
            await echo(context);
            throw new Error(`upstream refused ${leaks.join(' ')}`);
          },
        }),
        defineTool({
          name: 'echo_tool_error',
          description: 'Returns a tool error with the secret',
          inputSchema: z.strictObject({}),
          execute: async (_input, context) =>
            toolError(`bad token ${(await echo(context)).toUpperCase()}`),
        }),
      ],
    });
    const driver = new LlmSimDriver(
      LlmSimConfig.sequence(['', 'done']).withToolCallSequence([
        [
          { id: 'result', name: 'echo_result', arguments: {} },
          { id: 'error', name: 'echo_error', arguments: {} },
          { id: 'tool-error', name: 'echo_tool_error', arguments: {} },
        ],
        [],
      ]),
    );
    const logged: string[] = [];
    const restore = captureOutput(logged);
    let runtime: Awaited<ReturnType<InProcessRuntimeBuilder['build']>>;
    let sessionId: string;
    let turnId: string;
    try {
      runtime = await new InProcessRuntimeBuilder()
        .capability(careless)
        .driver(driver)
        .defaultModel({ model: 'llmsim-model', providerType: 'llmsim' })
        .singleSession((session) => session.harness('careless', '').withCapability(careless.id))
        .build();
      sessionId = runtime.defaultSessionId() as string;
      await runtime.backends.storage.setSecret(sessionId, 'api_token', secret);
      const result = await runtime.runTextTurn(sessionId, 'call the careless tools');
      expect(result).toMatchObject({ success: true, response: 'done' });
      turnId = result.turnId;
    } finally {
      restore();
    }
    const messages = await runtime.messages(sessionId);
    const results = toolResults(messages);
    expect(results.get('result')?.content).toContain('secret://api_token');
    expect(results.get('error')).toMatchObject({ isError: true });
    expect(results.get('error')?.content).toContain('upstream refused secret://api_token');
    expect(results.get('tool-error')).toEqual(
      expect.objectContaining({ isError: true, content: 'bad token secret://api_token' }),
    );
    const places: Record<string, string> = {
      messages: JSON.stringify(messages),
      events: JSON.stringify(runtime.events()),
      loadContext: JSON.stringify(await runtime.loadContext(sessionId)),
      turnContext: JSON.stringify(runtime.turnContext(turnId)),
      modelRequests: JSON.stringify(driver.requests),
      logs: logged.join('\n'),
    };
    for (const [place, text] of Object.entries(places))
      for (const form of leaks) expect(text.includes(form), `${place} holds ${form}`).toBe(false);
  });
});

describe('dependency blockers', () => {
  it('ends the turn with the blocker message as an agent message and a turn.failed event', async () => {
    const runtime = await new InProcessRuntimeBuilder()
      .llmSim(LlmSimConfig.fixed('never called'))
      .harness({ id: 'harness_blocked', name: 'h' })
      .agent({ id: 'agent_blocked', name: 'sleepy', status: 'disabled' })
      .session({ id: 'session_blocked', harnessId: 'harness_blocked', agentId: 'agent_blocked' })
      .build();
    const result = await runtime.runTextTurn('session_blocked', 'hello?');
    expect(result).toMatchObject({ success: false, stopReason: 'dependency_blocked' });
    expect(result.error?.code).toBe('DEPENDENCY_BLOCKED');
    const messages = await runtime.messages('session_blocked');
    expect(messages.map((message) => message.role)).toEqual(['user', 'agent']);
    expect(messages[1]?.content).toEqual([
      {
        type: 'text',
        text: expect.stringContaining('its agent sleepy (agent_blocked) is disabled'),
      },
    ]);
    const failed = runtime
      .events('session_blocked')
      .filter((event) => event.type === 'turn.failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]?.data).toMatchObject({ errorCode: 'agent_disabled' });
    expect((await runtime.getSession('session_blocked'))?.status).toBe('idle');
  });
});

/** Collects everything written to the console and to stdout/stderr until the returned function runs. */
function captureOutput(into: string[]): () => void {
  const methods = ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const;
  const originals = methods.map((method) => console[method]);
  for (const method of methods)
    console[method] = (...args: unknown[]) => {
      into.push(args.map((arg) => (typeof arg === 'string' ? arg : JSON.stringify(arg))).join(' '));
    };
  const stdout = process.stdout.write.bind(process.stdout);
  const stderr = process.stderr.write.bind(process.stderr);
  const capture = (chunk: unknown) => {
    into.push(String(chunk));
    return true;
  };
  process.stdout.write = capture as typeof process.stdout.write;
  process.stderr.write = capture as typeof process.stderr.write;
  return () => {
    methods.forEach((method, index) => {
      console[method] = originals[index] as (typeof console)[typeof method];
    });
    process.stdout.write = stdout;
    process.stderr.write = stderr;
  };
}
