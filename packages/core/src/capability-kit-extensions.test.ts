import { describe, expect, it } from 'vitest';
import type { Capability } from './capability.js';
import { defineCapability } from './capability-kit.js';
import { type Harness, harnessSchema, type Session, sessionSchema } from './domain.js';
import { foldOverlay } from './engine/fold-overlay.js';
import { EverrunsError } from './errors.js';

// defineCapability's checks of hooks and commands, and the `disabled` marker of a capability
// entry in the overlay fold.

function rejection(capability: unknown): EverrunsError {
  try {
    defineCapability(capability as Capability);
  } catch (error) {
    expect(error).toBeInstanceOf(EverrunsError);
    return error as EverrunsError;
  }
  throw new Error('defineCapability accepted it');
}

const base = { id: 'ext', name: 'Ext', description: '', tools: [] };

describe('defineCapability hooks and commands', () => {
  it('refuses a hook that is not a function, naming it', () => {
    for (const hook of ['beforeModelCall', 'beforeToolCall', 'afterToolCall']) {
      const error = rejection({ ...base, [hook]: 'later' });
      expect(error.code).toBe('INVALID_INPUT');
      expect(error.message).toContain(hook);
    }
  });

  it('refuses a command with a bad name, a missing execute or declared twice', () => {
    const execute = () => 'ok';
    const slash = rejection({ ...base, commands: [{ name: '/todos', description: '', execute }] });
    expect(slash.code).toBe('INVALID_INPUT');
    expect(slash.message).toContain('commands');
    const noExecute = rejection({ ...base, commands: [{ name: 'todos', description: '' }] });
    expect(noExecute.message).toContain('execute');
    const twice = rejection({
      ...base,
      commands: [
        { name: 'todos', description: '', execute },
        { name: 'todos', description: 'again', execute },
      ],
    });
    expect(twice.code).toBe('DUPLICATE_ID');
    expect(twice.message).toContain('/todos');
  });

  it('keeps valid hooks and commands, frozen', () => {
    const defined = defineCapability({
      ...base,
      beforeToolCall: () => undefined,
      commands: [{ name: 'status', description: 'Shows the status.', execute: () => 'fine' }],
    });
    expect(defined.commands?.map((command) => command.name)).toEqual(['status']);
    expect(Object.isFrozen(defined.commands)).toBe(true);
    expect(typeof defined.beforeToolCall).toBe('function');
  });
});

describe('a disabled capability entry', () => {
  const harness: Harness = harnessSchema.parse({
    id: 'h',
    name: 'h',
    capabilities: [{ id: 'clock' }, { id: 'notes', config: { a: 1 } }],
  });

  it('switches off what an earlier layer switched on, for that layer and the ones after', () => {
    const session: Session = sessionSchema.parse({
      id: 's',
      harnessId: 'h',
      capabilities: [{ id: 'clock', disabled: true }],
    });
    expect(foldOverlay([harness], null, session).capabilities).toEqual([
      { id: 'notes', config: { a: 1 } },
    ]);
  });

  it('is validated by the schema and a later entry of the id switches it on again', () => {
    expect(
      sessionSchema.safeParse({
        id: 's',
        harnessId: 'h',
        capabilities: [{ id: 'clock', disabled: 'yes' }],
      }).success,
    ).toBe(false);
    const session: Session = sessionSchema.parse({
      id: 's',
      harnessId: 'h',
      capabilities: [{ id: 'clock', disabled: true }, { id: 'clock' }],
    });
    expect(foldOverlay([harness], null, session).capabilities.map((entry) => entry.id)).toEqual([
      'notes',
      'clock',
    ]);
  });
});
