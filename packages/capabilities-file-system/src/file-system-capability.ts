import {
  type Capability,
  defineCapability,
  defineTool,
  EverrunsError,
  type FileStat,
  type GrepLimitName,
  type ToolErrorResult,
  toolError,
} from '@everruns-ts/core';
import { z } from 'zod';
import { re2jsRegexEngine } from './re2js-regex-engine.js';

/** Id of the {@link fileSystemCapability}, as upstream (`session_file_system`). */
export const FILE_SYSTEM_CAPABILITY_ID = 'session_file_system';

/** Schema of {@link FileSystemCapabilityConfig}. Every field has a default. */
export const fileSystemCapabilityConfigSchema = z.strictObject({
  /** Lines `read_file` returns when the model gives no `limit`. Default 2,000. */
  defaultReadLines: z.number().int().positive().default(2_000),
  /** Most characters of content one `read_file` returns; the rest is left for the next page. Default 100,000. */
  maxReadChars: z.number().int().positive().default(100_000),
  /** Most entries `list_directory` returns. Default 500. */
  maxListEntries: z.number().int().positive().default(500),
  /** Most matches `grep_files` returns. Default 200. */
  maxGrepMatches: z.number().int().positive().default(200),
  /**
   * Most occurrences one `edit_file` with `replace_all` replaces; more is a tool error (the
   * replacement would hold the process for too long on a large file). Default 10,000.
   */
  maxEditReplacements: z.number().int().positive().default(10_000),
});

/** Per-session configuration of {@link fileSystemCapability}. */
export type FileSystemCapabilityConfig = z.output<typeof fileSystemCapabilityConfigSchema>;

const DEFAULT_CONFIG: FileSystemCapabilityConfig = fileSystemCapabilityConfigSchema.parse({});

/** Result of `read_file` for a text file. */
export interface ReadFileResult {
  path: string;
  content: string;
  /** Lines in the whole file. */
  total_lines: number;
  /** 1-based first and last line returned (0 and 0 when none). */
  lines_shown: { start: number; end: number };
  /** True when lines before or after the returned ones exist. */
  truncated: boolean;
  /** `offset` of the next page, when there is one. */
  next_offset?: number;
  size_bytes: number;
}

/** One entry of `list_directory`. */
export interface DirectoryEntry {
  name: string;
  path: string;
  is_directory: boolean;
  is_readonly: boolean;
  size_bytes: number;
  updated_at: string;
}

const pathField = z
  .string()
  .min(1)
  .describe(
    'Workspace path, for example "/docs/notes.md" ("/workspace/docs/notes.md" also works).',
  );

/**
 * Runs a file-system call and turns every {@link EverrunsError} except `ABORTED` into a tool error
 * naming the tool, the stable code and the problem, so the model can correct itself.
 */
async function reported<T>(
  toolName: string,
  run: () => Promise<T | ToolErrorResult>,
): Promise<T | ToolErrorResult> {
  try {
    return await run();
  } catch (error) {
    if (EverrunsError.isInstance(error) && error.code !== 'ABORTED') {
      return toolError(`${toolName} failed (${error.code}): ${error.message}`);
    }
    throw error;
  }
}

function entryOf(stat: FileStat): DirectoryEntry {
  return {
    name: stat.name,
    path: stat.path,
    is_directory: stat.isDirectory,
    is_readonly: stat.isReadonly,
    size_bytes: stat.size,
    updated_at: stat.updatedAt,
  };
}

/** Occurrences of `needle` in `haystack`, counting no further than `max`. */
function countOccurrences(haystack: string, needle: string, max: number): number {
  let count = 0;
  for (let index = haystack.indexOf(needle); index !== -1 && count < max; ) {
    count++;
    index = haystack.indexOf(needle, index + needle.length);
  }
  return count;
}

function configOf(config: unknown): FileSystemCapabilityConfig {
  return (config as FileSystemCapabilityConfig | undefined) ?? DEFAULT_CONFIG;
}

const readFileTool = defineTool({
  name: 'read_file',
  description:
    'Read a text file of the session workspace. Returns a page of lines: use offset and limit to page through large files. Binary files return their metadata only.',
  inputSchema: z.strictObject({
    path: pathField,
    offset: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('First line to return, 0-based. Default 0.'),
    limit: z.number().int().min(1).optional().describe('Most lines to return. Default 2000.'),
  }),
  idempotent: true,
  execute: (input, context) =>
    reported('read_file', async () => {
      const config = configOf(context.config);
      const offset = input.offset ?? 0;
      const limit = input.limit ?? config.defaultReadLines;
      const file = await context.fileSystem.readFile(input.path, {
        offset,
        limit,
        signal: context.signal,
      });
      if (file.encoding === 'base64') {
        return {
          path: file.path,
          encoding: 'base64',
          size_bytes: file.size,
          note: 'Binary file: its content is not shown.',
        };
      }
      const totalLines = file.totalLines ?? countLines(file.content);
      let content = file.content;
      let shown = countLines(content);
      let cut = false;
      if (content.length > config.maxReadChars) {
        cut = true;
        const head = content.slice(0, config.maxReadChars);
        const lastNewline = head.lastIndexOf('\n');
        if (lastNewline >= 0) {
          content = head.slice(0, lastNewline + 1);
          shown = countLines(content);
        } else {
          // A single line longer than the cap: return its start and move on to the next line.
          content = `${head}\n…[line ${offset + 1} is longer than ${config.maxReadChars} characters; the rest of it is not shown]`;
          shown = 1;
        }
      }
      const end = offset + shown;
      const result: ReadFileResult = {
        path: file.path,
        content,
        total_lines: totalLines,
        lines_shown: shown === 0 ? { start: 0, end: 0 } : { start: offset + 1, end },
        truncated: cut || offset > 0 || end < totalLines,
        size_bytes: file.size,
      };
      if (end < totalLines) result.next_offset = end;
      return result;
    }),
});

function countLines(content: string): number {
  if (content === '') return 0;
  let lines = 0;
  for (let index = content.indexOf('\n'); index !== -1; index = content.indexOf('\n', index + 1))
    lines++;
  return content.endsWith('\n') ? lines : lines + 1;
}

const writeFileTool = defineTool({
  name: 'write_file',
  description:
    'Create a file or replace its whole content. Parent directories are created. Use edit_file to change part of an existing file.',
  inputSchema: z.strictObject({
    path: pathField,
    content: z.string().describe('The whole new content.'),
    encoding: z
      .enum(['text', 'base64'])
      .optional()
      .describe('"text" (default) for UTF-8 text, "base64" for binary data.'),
  }),
  idempotent: true,
  execute: (input, context) =>
    reported('write_file', async () => {
      const existed = (await context.fileSystem.statFile(input.path)) !== null;
      const stat = await context.fileSystem.writeFile(
        input.path,
        input.content,
        input.encoding ?? 'text',
      );
      return { path: stat.path, size_bytes: stat.size, created: !existed };
    }),
});

const editFileTool = defineTool({
  name: 'edit_file',
  description:
    'Replace an exact piece of text in a file. old_text must occur exactly once (add surrounding lines to make it unique) unless replace_all is true.',
  inputSchema: z.strictObject({
    path: pathField,
    old_text: z.string().min(1).describe('The exact text to replace, whitespace included.'),
    new_text: z.string().describe('The replacement text.'),
    replace_all: z
      .boolean()
      .optional()
      .describe('Replace every occurrence instead of exactly one. Default false.'),
  }),
  execute: (input, context) =>
    reported('edit_file', async () => {
      const file = await context.fileSystem.readFile(input.path, {
        encoding: 'text',
        signal: context.signal,
      });
      const config = configOf(context.config);
      const count = countOccurrences(file.content, input.old_text, config.maxEditReplacements + 1);
      if (count === 0) {
        return toolError(
          `edit_file failed: old_text was not found in ${file.path}. Read the file and copy the exact text, including whitespace.`,
        );
      }
      const times =
        count > config.maxEditReplacements ? `more than ${config.maxEditReplacements}` : `${count}`;
      if (count > 1 && !input.replace_all) {
        return toolError(
          `edit_file failed: old_text is ambiguous, it occurs ${times} times in ${file.path}. Include more surrounding text to make it unique, or set replace_all.`,
        );
      }
      if (count > config.maxEditReplacements) {
        return toolError(
          `edit_file failed (LIMIT_EXCEEDED): old_text occurs ${times} times in ${file.path}; one edit replaces at most ${config.maxEditReplacements} (maxEditReplacements). Use a longer old_text, or write the new content with write_file.`,
        );
      }
      const stat = await context.fileSystem.editFile(input.path, input.old_text, input.new_text, {
        replaceAll: input.replace_all ?? false,
      });
      return { path: stat.path, replacements: count, size_bytes: stat.size };
    }),
});

const deleteFileTool = defineTool({
  name: 'delete_file',
  description:
    'Delete a file or directory. A non-empty directory needs recursive=true. The workspace root cannot be deleted.',
  inputSchema: z.strictObject({
    path: pathField,
    recursive: z
      .boolean()
      .optional()
      .describe('Delete a directory with everything in it. Default false.'),
  }),
  idempotent: true,
  execute: (input, context) =>
    reported('delete_file', async () => {
      const deleted = await context.fileSystem.deleteFile(input.path, input.recursive ?? false);
      if (!deleted) {
        // The store deletes nothing and answers false for a non-empty directory without
        // `recursive` (as upstream's); the model learns which of the two it was.
        const stat = await context.fileSystem.statFile(input.path);
        if (stat?.isDirectory) {
          return toolError(
            `delete_file failed (IS_A_DIRECTORY): Directory is not empty. Use recursive=true to delete: ${stat.path}`,
          );
        }
        return toolError(`delete_file failed (FILE_NOT_FOUND): nothing exists at ${input.path}`);
      }
      return { path: input.path, deleted: true };
    }),
});

const listDirectoryTool = defineTool({
  name: 'list_directory',
  description: 'List the files and directories directly under a directory, sorted by name.',
  inputSchema: z.strictObject({
    path: pathField.optional().describe('Directory to list. Default "/", the workspace root.'),
  }),
  idempotent: true,
  execute: (input, context) =>
    reported('list_directory', async () => {
      const config = configOf(context.config);
      const entries = await context.fileSystem.listDirectory(input.path ?? '/');
      const shown = entries.slice(0, config.maxListEntries).map(entryOf);
      // Count and truncation first, so a listing the runner truncates still says both.
      return {
        path: input.path ?? '/',
        count: entries.length,
        truncated: entries.length > shown.length,
        entries: shown,
      };
    }),
});

const statFileTool = defineTool({
  name: 'stat_file',
  description: 'Get the metadata of a file or directory: whether it exists, its size and type.',
  inputSchema: z.strictObject({ path: pathField }),
  idempotent: true,
  execute: (input, context) =>
    reported('stat_file', async () => {
      const stat = await context.fileSystem.statFile(input.path);
      if (!stat) return { path: input.path, exists: false };
      return { exists: true, ...entryOf(stat) };
    }),
});

/** Result of `grep_files`. */
export interface GrepFilesResult {
  matches: { path: string; line_number: number; line: string }[];
  count: number;
  /** True when matches were left out: more than `maxGrepMatches`, or a limit of the workspace. */
  truncated: boolean;
  /**
   * The workspace's grep limits that left matches out (`maxFiles`, `maxBytesScanned`,
   * `timeLimitMs`, `maxLineLength`), when any did.
   */
  limits_reached?: GrepLimitName[];
}

const grepFilesTool = defineTool({
  name: 'grep_files',
  description:
    'Search file contents with a regular expression (RE2 syntax: no backreferences or lookaround). Returns matching lines with their path and line number; truncated tells when some were left out.',
  inputSchema: z.strictObject({
    pattern: z
      .string()
      .min(1)
      .describe(
        'Regular expression in RE2 syntax (like JavaScript without backreferences and lookaround), at most 1,000 characters.',
      ),
    path_pattern: z
      .string()
      .optional()
      .describe(
        'Glob limiting the files searched, for example "*.md" or "/src/**/*.ts"; without glob characters, a part of the path ("docs").',
      ),
    ignore_case: z.boolean().optional().describe('Match case-insensitively. Default false.'),
  }),
  idempotent: true,
  execute: (input, context) =>
    reported('grep_files', async () => {
      const config = configOf(context.config);
      const limitsReached: GrepLimitName[] = [];
      const matches = await context.fileSystem.grepFiles(input.pattern, input.path_pattern, {
        maxMatches: config.maxGrepMatches + 1,
        ignoreCase: input.ignore_case ?? false,
        signal: context.signal,
        onLimitReached: (reached) => {
          if (!limitsReached.includes(reached.limit)) limitsReached.push(reached.limit);
        },
        // Linear-time matching whatever the store brings (the in-memory store's re2js is optional).
        regexEngine: re2jsRegexEngine,
      });
      const shown = matches.slice(0, config.maxGrepMatches).map((match) => ({
        path: match.path,
        line_number: match.lineNumber,
        line: match.line,
      }));
      const result: GrepFilesResult = {
        matches: shown,
        count: shown.length,
        truncated: matches.length > shown.length || limitsReached.length > 0,
      };
      if (limitsReached.length > 0) result.limits_reached = limitsReached;
      return result;
    }),
});

const SYSTEM_PROMPT = [
  'The session has a workspace of files. Paths start at the workspace root "/" ("/workspace/..." means the same); ".." is not allowed.',
  'Use list_directory and grep_files to find files, read_file to read them (page with offset and limit), write_file to create or replace a file, edit_file to change an exact piece of text, stat_file and delete_file as named.',
  'Read a file before describing or editing it. A failed call returns an error with a code such as FILE_NOT_FOUND, WRITE_BLOCKED or APPROVAL_DENIED: adjust and go on.',
].join('\n');

/**
 * The `session_file_system` capability: `read_file`, `write_file`, `edit_file`, `delete_file`,
 * `list_directory`, `stat_file` and `grep_files` on the session's workspace. Every call goes
 * through `context.fileSystem`, so the tools work unchanged on memory, real disk, approval gating
 * and the write blocklist. File-system errors reach the model as tool errors naming their code.
 */
export const fileSystemCapability: Capability<FileSystemCapabilityConfig> =
  defineCapability<FileSystemCapabilityConfig>({
    id: FILE_SYSTEM_CAPABILITY_ID,
    name: 'File System',
    description:
      'Tools to read, write, edit, delete, list, stat and search the files of the session workspace.',
    configSchema: fileSystemCapabilityConfigSchema,
    systemPrompt: SYSTEM_PROMPT,
    tools: [
      readFileTool,
      writeFileTool,
      editFileTool,
      deleteFileTool,
      listDirectoryTool,
      statFileTool,
      grepFilesTool,
    ],
  });
