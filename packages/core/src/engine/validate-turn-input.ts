import { EverrunsError } from '../errors.js';
import { formatZodError } from '../format-zod-error.js';
import { safeParseDeferringJit } from '../lazy-schema.js';
import { mergeLlmRequestOptions, parseLlmRequestOptions } from '../llm-request-options.js';
import { type InputMessage, inputMessageSchema } from '../message.js';
import type { ModelWithProvider } from '../model.js';
import type { SessionSetupSnapshot } from '../stores.js';
import { resolveModel } from './assemble-turn-context.js';
import { resolveTurnSetup, turnSetupCacheKey } from './resolve-turn-setup.js';
import { type AtomDependencies, DEFAULT_TURN_LIMITS, type TurnSetup } from './turn-types.js';

/** What {@link validateTurnInput} checks. */
export interface ValidateTurnInputRequest {
  sessionId: string;
  /** The user's message, not yet validated. */
  input: unknown;
  /** The turn the message would start; its resolved setup is cached for the turn when given. */
  turnId?: string;
  /** The turn's request options (`runTurn`'s `modelOptions`), not yet validated. */
  modelOptions?: unknown;
  /**
   * The session's setup as the caller just loaded it (`RuntimeBackends.loadSessionSetup`), so it
   * is not loaded again; its `defaultModel`, when the backend read it, stands in for the provider
   * store's. Default: loaded here.
   */
  setup?: SessionSetupSnapshot;
}

/** What {@link validateTurnInput} resolved: the parsed message and the session's setup. */
export interface ValidatedTurnInput {
  input: InputMessage;
  /** Absent when the session is blocked by a missing or disabled harness or agent. */
  setup?: TurnSetup;
  /** The model the turn would call; absent with `setup`. */
  model?: ModelWithProvider;
}

/**
 * The size of a user message as `limits.maxInputBytes` counts it: UTF-8 bytes of its
 * text parts, image `data` and `url`, and its metadata as JSON.
 */
export function inputMessageSize(input: InputMessage): number {
  let size = 0;
  for (const part of input.content) {
    if (part.type === 'text') size += utf8ByteLength(part.text);
    else if (part.type === 'image') {
      size += utf8ByteLength(part.data ?? '') + utf8ByteLength(part.url ?? '');
    }
  }
  if (input.metadata !== undefined) size += utf8ByteLength(JSON.stringify(input.metadata) ?? '');
  return size;
}

/**
 * Everything a turn needs that can be checked before its user message is stored, in order:
 * the message's shape (`INVALID_INPUT`), its size (`LIMIT_EXCEEDED`, see
 * `limits.maxInputBytes`), the session (`SESSION_NOT_FOUND`), its capabilities
 * (`CAPABILITY_NOT_FOUND`, `INVALID_INPUT` for a configuration its schema refuses), its model
 * (`MODEL_NOT_FOUND`, or `CONFIGURATION` when there is none), the model's driver
 * (`DRIVER_NOT_FOUND`) and the request options of the model and the turn (`INVALID_INPUT`, from
 * the schema, a named `toolChoice` the session's tools do not include, or the driver's
 * `checkOptions`, which gets the session's tools). A session blocked by a missing or disabled harness
 * or agent passes (its turn reports the blocker). Writes nothing.
 */
export async function validateTurnInput(
  dependencies: AtomDependencies,
  request: ValidateTurnInputRequest,
): Promise<ValidatedTurnInput> {
  const parsed = safeParseDeferringJit(inputMessageSchema, request.input);
  if (!parsed.success) {
    throw new EverrunsError({
      code: 'INVALID_INPUT',
      message: `Invalid input message: ${formatZodError(parsed.error)}`,
    });
  }
  const input = parsed.data;
  const maxInputBytes = dependencies.limits.maxInputBytes ?? DEFAULT_TURN_LIMITS.maxInputBytes;
  if (maxInputBytes !== undefined) {
    const size = inputMessageSize(input);
    if (size > maxInputBytes) {
      throw new EverrunsError({
        code: 'LIMIT_EXCEEDED',
        message: `The input message is ${size} bytes; the limit is ${maxInputBytes} (limits.maxInputBytes)`,
        details: { limit: 'maxInputBytes', size, maxInputBytes },
      });
    }
  }
  let setup: TurnSetup;
  try {
    setup = await resolveTurnSetup(dependencies, request.sessionId, request.turnId, request.setup);
  } catch (error) {
    if (EverrunsError.hasCode(error, 'DEPENDENCY_BLOCKED')) return { input };
    throw error;
  }
  try {
    const model = await resolveModel(
      dependencies,
      setup.overlay.modelId,
      request.setup?.defaultModel,
    );
    if (!dependencies.drivers.has(model.providerType)) {
      throw new EverrunsError({
        code: 'DRIVER_NOT_FOUND',
        message: `No driver is registered for provider type ${model.providerType}`,
        details: { providerType: model.providerType },
      });
    }
    // Request options: the model's and the turn's, each valid, and together sendable by the driver.
    const options = mergeLlmRequestOptions(
      parseLlmRequestOptions(model.options, `options of model ${model.model}`),
      parseLlmRequestOptions(request.modelOptions, 'turn model options'),
    );
    if (options) {
      const choice = options.toolChoice;
      if (
        typeof choice === 'object' &&
        !setup.toolSpecs.some((tool) => tool.name === choice.name)
      ) {
        throw new EverrunsError({
          code: 'INVALID_INPUT',
          message: `toolChoice names tool ${choice.name}, which the session's tools do not include`,
          details: { option: 'toolChoice', tool: choice.name },
        });
      }
      dependencies.drivers.get(model.providerType).checkOptions?.(options, model, setup.toolSpecs);
    }
    return { input, setup, model };
  } catch (error) {
    // The turn does not start: its cached setup goes with it.
    if (request.turnId !== undefined) {
      dependencies.setupCache?.delete(turnSetupCacheKey(request.sessionId, request.turnId));
    }
    throw error;
  }
}

function utf8ByteLength(text: string): number {
  let bytes = 0;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && index + 1 < text.length) {
      const next = text.charCodeAt(index + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        index++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}
