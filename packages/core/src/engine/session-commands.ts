import { z } from 'zod';
import type { CapabilityCommand, CommandResult } from '../capability.js';
import { EverrunsError, errorMessage, throwIfAborted } from '../errors.js';
import { formatZodError } from '../format-zod-error.js';
import { lazySchema } from '../lazy-schema.js';
import { resolveTurnSetup } from './resolve-turn-setup.js';
import type { AtomDependencies, TurnSetup } from './turn-types.js';

// Slash commands of a session's capabilities (upstream's `list_commands` / `execute_command`):
// listed and run by the embedder, outside any turn and without a model call.

/** A command a session offers, as {@link listSessionCommands} lists it. */
export interface SessionCommandInfo {
  /** The name without `/` (`todos`). */
  name: string;
  /** What the user types: `/` and the name (`/todos`). */
  command: string;
  description: string;
  /** The capability that declares it. */
  capabilityId: string;
}

/** What {@link executeSessionCommand} resolves with. */
export interface SessionCommandResult extends CommandResult {
  /** The command's name without `/`. */
  command: string;
  capabilityId: string;
}

/** Options of {@link executeSessionCommand}. */
export interface ExecuteSessionCommandOptions {
  /** Cancels the command (its context's signal); the call rejects with `ABORTED`. */
  signal?: AbortSignal;
}

const COMMAND_LINE = /^\/?([a-zA-Z0-9_-]{1,64})(?:\s+([\s\S]*))?$/;

const executeSchema = lazySchema(() =>
  z.object({
    sessionId: z.string().min(1, 'must not be empty'),
    line: z.string().trim().regex(COMMAND_LINE, 'must be "/name" followed by optional arguments'),
    args: z.string().optional(),
  }),
);

/**
 * The slash commands of a session's capabilities, in capability order (a name declared by two
 * capabilities is listed once, for the first). Throws `SESSION_NOT_FOUND`, `DEPENDENCY_BLOCKED`,
 * `CAPABILITY_NOT_FOUND`, `INVALID_INPUT` (a session whose capability configuration is refused).
 */
export async function listSessionCommands(
  dependencies: AtomDependencies,
  sessionId: string,
): Promise<SessionCommandInfo[]> {
  checkSessionId(sessionId);
  const setup = await resolveTurnSetup(dependencies, sessionId);
  return commandsOf(setup).map(({ command, capabilityId }) => ({
    name: command.name,
    command: `/${command.name}`,
    description: command.description,
    capabilityId,
  }));
}

/**
 * Runs a slash command of a session: `line` is `/name` (the `/` may be left out) optionally
 * followed by its arguments; `args`, when given, are appended to them. Nothing is stored in the
 * history and no model is called; a command that succeeded is recorded as a `command.executed`
 * event (`{ command, capabilityId, hasArgs }`, never its arguments or answer). Throws `INVALID_INPUT` (a malformed line),
 * `COMMAND_NOT_FOUND` (no capability of the session declares it; details list the available
 * names), `CAPABILITY_FAILED` (the command threw or returned something else than text or a
 * `CommandResult`), `ABORTED`, and the errors of {@link listSessionCommands}.
 */
export async function executeSessionCommand(
  dependencies: AtomDependencies,
  sessionId: string,
  line: string,
  args?: string,
  options: ExecuteSessionCommandOptions = {},
): Promise<SessionCommandResult> {
  const parsed = executeSchema.safeParse({ sessionId, line, args });
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Invalid command: ${formatZodError(parsed.error)}`,
    });
  }
  const match = COMMAND_LINE.exec(parsed.data.line) as RegExpExecArray;
  const name = match[1] as string;
  const commandArgs = [match[2]?.trim() ?? '', parsed.data.args?.trim() ?? '']
    .filter((part) => part !== '')
    .join(' ');
  if (options.signal?.aborted) throwIfAborted(options.signal);
  const setup = await resolveTurnSetup(dependencies, sessionId);
  const available = commandsOf(setup);
  const found = available.find((entry) => entry.command.name === name);
  if (!found) {
    throw new EverrunsError({
      code: 'COMMAND_NOT_FOUND',
      message: `Session ${sessionId} has no command /${name}`,
      details: {
        sessionId,
        command: name,
        available: available.map((entry) => `/${entry.command.name}`),
      },
    });
  }
  const { backends } = dependencies;
  let value: unknown;
  try {
    value = await found.command.execute(commandArgs, {
      sessionId,
      command: name,
      config: found.config,
      fileSystem: setup.fileSystem,
      storage: backends.storage,
      memory: backends.memory,
      sessions: backends.sessions,
      messages: () => backends.messages.load(sessionId),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    if (options.signal?.aborted) throwIfAborted(options.signal);
    throw new EverrunsError({
      code: 'CAPABILITY_FAILED',
      message: `Command /${name} of capability ${found.capabilityId} failed: ${errorMessage(error)}`,
      details: { capabilityId: found.capabilityId, command: name },
      cause: error,
    });
  }
  if (options.signal?.aborted) throwIfAborted(options.signal);
  const result = normalizeResult(value);
  if (!result) {
    throw new EverrunsError({
      code: 'CAPABILITY_FAILED',
      message: `Command /${name} of capability ${found.capabilityId} returned neither text nor { text }`,
      details: { capabilityId: found.capabilityId, command: name },
    });
  }
  // Recorded without its arguments or answer (they may hold anything the user typed).
  await backends.events.emit({
    type: 'command.executed',
    sessionId,
    data: { command: name, capabilityId: found.capabilityId, hasArgs: commandArgs !== '' },
  });
  return { ...result, command: name, capabilityId: found.capabilityId };
}

function checkSessionId(sessionId: string): void {
  if (typeof sessionId !== 'string' || sessionId.length === 0) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: 'Invalid session id: must be a non-empty string',
    });
  }
}

function commandsOf(
  setup: TurnSetup,
): Array<{ command: CapabilityCommand; capabilityId: string; config: unknown }> {
  const seen = new Set<string>();
  const commands: Array<{ command: CapabilityCommand; capabilityId: string; config: unknown }> = [];
  for (const { capability, config } of setup.capabilities) {
    for (const command of capability.commands ?? []) {
      if (seen.has(command.name)) continue;
      seen.add(command.name);
      commands.push({ command, capabilityId: capability.id, config });
    }
  }
  return commands;
}

function normalizeResult(value: unknown): CommandResult | undefined {
  if (typeof value === 'string') return { text: value };
  if (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as CommandResult).text === 'string'
  ) {
    const { text, data } = value as CommandResult;
    return data === undefined ? { text } : { text, data };
  }
  return undefined;
}
