import {
  type Capability,
  defineCapability,
  defineTool,
  EverrunsError,
  normalizeWorkspacePath,
  type ToolContext,
  toolError,
} from '@everruns-ts/core';
import { z } from 'zod';
import { runShell } from './run-shell.js';

/** Id of the {@link virtualBashCapability}, as upstream (`virtual_bash`). */
export const VIRTUAL_BASH_CAPABILITY_ID = 'virtual_bash';

/** The shell path of the workspace root; `/workspace/x` and `/x` name the same file. */
export const SHELL_WORKSPACE_ROOT = '/workspace';

/** Schema of {@link VirtualBashConfig}. Every field has a default. */
export const virtualBashConfigSchema = z
  .strictObject({
    /** Wall time of one `bash` call when the model names none, in milliseconds. Default 30,000. */
    timeoutMs: z.number().int().positive().max(3_600_000).default(30_000),
    /** Most wall time a model may ask for with `timeout_ms`, in milliseconds. Default 60,000. */
    maxTimeoutMs: z.number().int().positive().max(3_600_000).default(60_000),
    /** Most characters of stdout returned; the rest is cut out with a marker. Default 30,000. */
    maxOutputChars: z.number().int().min(200).default(30_000),
    /** Most characters of stderr returned; the rest is cut out with a marker. Default 4,096. */
    maxErrorChars: z.number().int().min(200).default(4_096),
    /** Most commands one call runs, loops and functions included. Default 1,000. */
    maxCommands: z.number().int().positive().default(1_000),
    /** Most iterations of one `while`/`for`/`until` loop. Default 10,000. */
    maxLoopIterations: z.number().int().positive().default(10_000),
    /** Deepest function recursion. Default 100. */
    maxCallDepth: z.number().int().positive().default(100),
    /** Longest script accepted, in bytes. Default 1,000,000. */
    maxScriptBytes: z.number().int().positive().default(1_000_000),
    /**
     * Most bytes of stdout plus stderr the shell buffers before it stops the script (the
     * returned text is then cut to `maxOutputChars`/`maxErrorChars`). Default 16 MiB.
     */
    /**
     * Heap of the child process a call runs in (`--max-old-space-size`), in MiB; a script that
     * needs more ends only that process and gets a tool error. Default 512.
     */
    maxWorkerMemoryMb: z.number().int().min(32).max(16_384).default(512),
    maxBufferedOutputBytes: z
      .number()
      .int()
      .positive()
      .default(16 * 1024 * 1024),
  })
  .refine((config) => config.timeoutMs <= config.maxTimeoutMs, {
    message: 'timeoutMs must not exceed maxTimeoutMs',
    path: ['timeoutMs'],
  });

/** Per-session configuration of {@link virtualBashCapability}. */
export type VirtualBashConfig = z.output<typeof virtualBashConfigSchema>;

/** Result of a `bash` call that ran to its end, as upstream's tool shapes it. */
export interface BashResult {
  stdout: string;
  stderr: string;
  exit_code: number;
  /** `exit_code === 0`. */
  success: boolean;
  /** True when stdout or stderr was cut to the configured size. */
  truncated: boolean;
  /** Lines of stdout before any cut. */
  total_lines: number;
}

const inputSchema = z.strictObject({
  commands: z
    .string()
    .min(1)
    .describe(
      'The bash script to run: one command, or several joined by newlines, ;, && or pipes.',
    ),
  working_dir: z
    .string()
    .min(1)
    .optional()
    .describe('Directory the script starts in, a workspace path. Default /workspace (the root).'),
  timeout_ms: z
    .number()
    .int()
    .positive()
    .optional()
    .describe('Wall-time limit of this call in milliseconds; capped by the configuration.'),
});

function configOf(config: unknown): VirtualBashConfig {
  return (config as VirtualBashConfig | undefined) ?? virtualBashConfigSchema.parse({});
}

const ESC = '\\u001b';
const BEL = '\\u0007';
/** Terminal control sequences (CSI, OSC, two-character escapes), removed from the output as upstream does. */
const TERMINAL_CONTROL = new RegExp(
  `${ESC}\\[[0-?]*[ -/]*[@-~]|${ESC}\\][^${BEL}${ESC}]*(?:${BEL}|${ESC}\\\\)|${ESC}[@-Z\\\\-_]`,
  'g',
);

/** Keeps the head and the tail of `text` within `max` characters, with a marker between. */
export function truncateOutput(text: string, max: number): { text: string; truncated: boolean } {
  if (text.length <= max) return { text, truncated: false };
  const marker = (cut: number) => `\n[... ${cut} characters truncated ...]\n`;
  const room = max - marker(text.length).length;
  const head = Math.ceil((room * 2) / 3);
  const tail = room - head;
  const cut = text.length - head - tail;
  return {
    text: text.slice(0, head) + marker(cut) + (tail > 0 ? text.slice(text.length - tail) : ''),
    truncated: true,
  };
}

function countLines(text: string): number {
  if (text === '') return 0;
  const newlines = text.split('\n').length - 1;
  return text.endsWith('\n') ? newlines : newlines + 1;
}

const LIMIT_MESSAGE = /(?:too many|limit exceeded|exceeded|increase executionLimits\.)/i;

/**
 * The message of a just-bash limit stop, or null when the script ended on its own. just-bash
 * reports a limit only in-band, as a last stderr line `bash: … increase executionLimits.…` with
 * exit code 126 (its result has no other mark), so that is what is recognised. A script that
 * prints such a line itself and exits 126 gets the same tool error: it only changes how its own
 * result is shown, never what ran.
 */
function limitStop(exitCode: number, stderr: string): string | null {
  if (exitCode !== 126) return null;
  const line = stderr.trimEnd().split('\n').pop() ?? '';
  if (!/executionLimits\.|limit exceeded/.test(line) || !LIMIT_MESSAGE.test(line)) return null;
  return line
    .replace(/^bash: /, '')
    .replace(/, increase executionLimits\.\w+$/, '')
    .trim();
}

async function executeBash(
  input: z.output<typeof inputSchema>,
  context: ToolContext<VirtualBashConfig>,
): Promise<unknown> {
  const config = configOf(context.config);
  const timeoutMs = Math.min(input.timeout_ms ?? config.timeoutMs, config.maxTimeoutMs);
  if (Buffer.byteLength(input.commands, 'utf8') > config.maxScriptBytes) {
    return toolError(`The script is longer than ${config.maxScriptBytes} bytes`);
  }
  let cwd = SHELL_WORKSPACE_ROOT;
  if (input.working_dir !== undefined) {
    let directory: string;
    try {
      directory = normalizeWorkspacePath(input.working_dir);
    } catch (error) {
      return toolError(error instanceof Error ? error.message : String(error));
    }
    const stat = await context.fileSystem.statFile(directory);
    if (!stat?.isDirectory) {
      return toolError(`working_dir ${input.working_dir} is not a directory of the workspace`);
    }
    cwd = directory === '/' ? SHELL_WORKSPACE_ROOT : `${SHELL_WORKSPACE_ROOT}${directory}`;
  }
  const outcome = await runShell({
    script: input.commands,
    cwd,
    env: {
      HOME: SHELL_WORKSPACE_ROOT,
      WORKSPACE: SHELL_WORKSPACE_ROOT,
      USER: 'everruns',
      LOGNAME: 'everruns',
      HOSTNAME: 'everruns',
      SHELL: '/bin/bash',
      PATH: '/usr/local/bin:/usr/bin:/bin',
    },
    fileSystem: context.fileSystem,
    signal: context.signal,
    limits: {
      timeoutMs,
      maxCommandCount: config.maxCommands,
      maxLoopIterations: config.maxLoopIterations,
      maxCallDepth: config.maxCallDepth,
      maxSourceBytes: config.maxScriptBytes,
      maxOutputSize: config.maxBufferedOutputBytes,
      maxWorkerMemoryMb: config.maxWorkerMemoryMb,
    },
  });
  switch (outcome.kind) {
    case 'timed_out':
      return toolError(`Command timed out after ${timeoutMs}ms; the shell was stopped`);
    case 'aborted':
      throw new EverrunsError({
        code: 'ABORTED',
        message: 'The bash command was cancelled; the shell was stopped',
      });
    case 'failed':
      return toolError(`Bash execution error: ${outcome.message}`);
  }
  const limit = limitStop(outcome.exitCode, outcome.stderr);
  if (limit !== null) {
    const partial = truncateOutput(
      outcome.stdout.replace(TERMINAL_CONTROL, ''),
      config.maxErrorChars,
    );
    return toolError(
      `Bash execution error: the script was stopped by a limit: ${limit}` +
        (partial.text === '' ? '' : `\nOutput before the stop:\n${partial.text}`),
    );
  }
  const stdoutClean = outcome.stdout.replace(TERMINAL_CONTROL, '');
  const refused = outcome.refusals.map((message) => `workspace refused: ${message}\n`).join('');
  const stderrClean = outcome.stderr.replace(TERMINAL_CONTROL, '') + refused;
  const stdout = truncateOutput(stdoutClean, config.maxOutputChars);
  const stderr = truncateOutput(stderrClean, config.maxErrorChars);
  const result: BashResult = {
    stdout: stdout.text,
    stderr: stderr.text,
    exit_code: outcome.exitCode,
    success: outcome.exitCode === 0,
    truncated: stdout.truncated || stderr.truncated,
    total_lines: countLines(stdoutClean),
  };
  return result;
}

const bashTool = defineTool({
  name: 'bash',
  description: [
    'Run a bash script in a sandboxed, simulated shell over the session workspace.',
    "The workspace is the shell's root and is also at /workspace (the start directory): the files the file tools see, and changes made here are seen by them.",
    'Common tools work: ls, cat, grep (-r), sed (-i), awk, find, head, tail, wc, sort, uniq, cut, tr, xargs, jq, mkdir, cp, mv, rm, touch, echo, printf, pipes, redirections, loops, functions.',
    'No network, no host programs; each call starts a fresh shell (variables and cd do not carry over, files do).',
    'Returns stdout, stderr and exit_code.',
  ].join(' '),
  inputSchema,
  execute: executeBash,
});

const SYSTEM_PROMPT = [
  'The bash tool runs scripts in a simulated shell whose file system is the session workspace (also reachable as /workspace): files written by bash are read by the file tools and the other way round.',
  'It has the usual text tools (grep, sed, awk, find, sort, wc, jq…) but no network and no host programs; prefer one call with a short script over many calls.',
  'Output is cut when long: filter it (head, grep, wc) rather than printing whole large files.',
].join('\n');

/**
 * The `virtual_bash` capability: a `bash` tool running scripts in just-bash, a simulated bash,
 * over the session's workspace. Scripts run in a child process with wall-time, command, loop,
 * recursion and output limits; they reach no host process, no network and no host path (every
 * file operation goes through the session's `SessionFileSystem`, with its decorators).
 * Unlike upstream it declares no dependency on `session_file_system`: the workspace is there
 * without it, so the plugin needs nothing but `@everruns-ts/core`; switch the file tools on
 * beside it when the model should have both.
 */
export const virtualBashCapability: Capability<VirtualBashConfig> =
  defineCapability<VirtualBashConfig>({
    id: VIRTUAL_BASH_CAPABILITY_ID,
    name: 'Virtual Bash',
    description:
      'Run bash scripts in a sandboxed simulated shell over the session workspace (no host processes, no network).',
    configSchema: virtualBashConfigSchema as unknown as z.ZodType<VirtualBashConfig>,
    systemPrompt: SYSTEM_PROMPT,
    tools: [bashTool],
  });
