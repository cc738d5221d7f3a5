import {
  type Capability,
  type CapabilityCommand,
  type CommandResult,
  defineCapability,
  defineTool,
  type Message,
  parseToolArgumentsText,
} from '@everruns-ts/core';
import { z } from 'zod';

/** Id of the {@link todoCapability}, as upstream (`stateless_todo_list`). */
export const TODO_CAPABILITY_ID = 'stateless_todo_list';

/** Schema of one {@link TodoItem}. */
export const todoItemSchema = z.strictObject({
  content: z.string().trim().min(1).describe('What to do, in the imperative ("Run the tests").'),
  activeForm: z
    .string()
    .trim()
    .min(1)
    .describe('The same in the present continuous, shown while it runs ("Running the tests").'),
  status: z.enum(['pending', 'in_progress', 'completed']).describe('Where the task stands.'),
});

/** One task of the list. */
export type TodoItem = z.infer<typeof todoItemSchema>;

/** Result of `write_todos`. */
export interface WriteTodosResult {
  todos: TodoItem[];
  total_tasks: number;
  pending: number;
  in_progress: number;
  completed: number;
  /** A hint when no task, or more than one, is in progress. */
  warning?: string;
}

const writeTodosTool = defineTool({
  name: 'write_todos',
  description:
    'Write the task list of a multi-step job. Each call replaces the whole list. Every task has content (imperative), activeForm (present continuous) and status (pending, in_progress or completed); keep exactly one task in_progress.',
  inputSchema: z.strictObject({
    todos: z.array(todoItemSchema).describe('The complete list; it replaces the previous one.'),
  }),
  idempotent: true,
  execute: ({ todos }): WriteTodosResult => {
    const count = (status: TodoItem['status']) =>
      todos.filter((todo) => todo.status === status).length;
    const result: WriteTodosResult = {
      todos,
      total_tasks: todos.length,
      pending: count('pending'),
      in_progress: count('in_progress'),
      completed: count('completed'),
    };
    if (result.in_progress === 0 && result.pending > 0) {
      result.warning = 'No task is in_progress: mark the one you are working on.';
    } else if (result.in_progress > 1) {
      result.warning = `${result.in_progress} tasks are in_progress: keep exactly one.`;
    }
    return result;
  },
});

/** What the `/todos` command returns as `data`: the current list, or `null` before any. */
export interface TodosCommandData {
  todos: TodoItem[] | null;
}

const STATUS_MARKS: Record<TodoItem['status'], string> = {
  pending: '[ ]',
  in_progress: '[~]',
  completed: '[x]',
};

/**
 * The current list: the arguments of the latest `write_todos` call of the history whose result
 * was not an error (a call the tool refused did not change the list).
 */
export function latestTodos(messages: readonly Message[]): TodoItem[] | null {
  const failed = new Set<string>();
  for (const message of messages)
    for (const part of message.content)
      if (part.type === 'tool_result' && part.isError) failed.add(part.toolCallId);
  for (let index = messages.length - 1; index >= 0; index--) {
    const content = (messages[index] as Message).content;
    for (let partIndex = content.length - 1; partIndex >= 0; partIndex--) {
      const part = content[partIndex];
      if (part?.type !== 'tool_call' || part.name !== writeTodosTool.name || failed.has(part.id))
        continue;
      const args =
        typeof part.arguments === 'string'
          ? parseToolArgumentsText(part.arguments)
          : part.arguments;
      const parsed = writeTodosTool.inputSchema.safeParse(args);
      if (parsed.success) return (parsed.data as { todos: TodoItem[] }).todos;
    }
  }
  return null;
}

/** `/todos`: shows the current task list without a model call; `/todos <status>` filters it. */
const todosCommand: CapabilityCommand = {
  name: 'todos',
  description: 'Show the current task list (optionally only pending, in_progress or completed).',
  async execute(args, context): Promise<CommandResult> {
    const filter = args.trim();
    if (filter !== '' && !(filter in STATUS_MARKS)) {
      return { text: `Unknown status "${filter}": use pending, in_progress or completed.` };
    }
    const todos = latestTodos(await context.messages());
    if (todos === null) return { text: 'No task list yet.', data: { todos: null } };
    const shown = filter === '' ? todos : todos.filter((todo) => todo.status === filter);
    const done = todos.filter((todo) => todo.status === 'completed').length;
    const lines = shown.map((todo) => `${STATUS_MARKS[todo.status]} ${todo.content}`);
    return {
      text: [`Tasks (${done}/${todos.length} completed):`, ...lines].join('\n'),
      data: { todos: shown } satisfies TodosCommandData,
    };
  },
};

const SYSTEM_PROMPT = [
  'For work of three or more steps, keep a task list with write_todos; skip it for simple requests.',
  'Each call replaces the whole list. Mark a task in_progress before you start it (one at a time) and completed as soon as it is fully done; add follow-up tasks as you find them.',
  'The list lives in the conversation: the latest write_todos call is the current state.',
].join('\n');

/**
 * The `stateless_todo_list` capability: `write_todos` validates and echoes the model's task list.
 * Nothing is stored outside the conversation (hence "stateless"): the latest call is the list.
 * The `/todos` command shows that list to the user without a model call
 * (`runtime.executeCommand(sessionId, '/todos')`).
 */
export const todoCapability: Capability = defineCapability({
  id: TODO_CAPABILITY_ID,
  name: 'Task Management',
  description:
    'Lets the agent keep a structured task list for multi-step work; the state lives in the conversation history.',
  systemPrompt: SYSTEM_PROMPT,
  tools: [writeTodosTool],
  commands: [todosCommand],
});
