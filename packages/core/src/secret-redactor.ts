/** What a redacted secret is replaced with when the caller names no replacement. */
export const SECRET_PLACEHOLDER = '[secret]';

/**
 * Shortest encoded form searched for at an offset inside a longer Base64 text; shorter ones would
 * match by chance. The secret's own raw and whole-value forms are searched whatever their length.
 */
const MIN_OFFSET_FORM_CHARS = 6;

const BASE64_ALPHABET = '[A-Za-z0-9+/]';
const BASE64URL_ALPHABET = '[A-Za-z0-9_-]';

/** The encoded forms of one secret that a redactor looks for. */
export interface SecretForms {
  /**
   * Forms compared ignoring case: raw, URL-encoded (once or twice), hex, JSON-escaped (also with
   * every non-ASCII character as `\\uXXXX`) and HTML-escaped.
   */
  caseInsensitive: string[];
  /**
   * Base64 and base64url forms, compared exactly: the whole value, and the characters that only
   * the secret decides when it sits one or two bytes into a longer encoded text (as in
   * `Basic base64(user:secret)`).
   */
  base64: { alphabet: string; core: string }[];
}

/** A secret to redact and what stands for it in redacted text. */
export interface NamedSecret {
  /** The secret's value; an empty value is ignored. */
  value: string;
  /** What replaces every form of this secret (default: the redactor's replacement). */
  replacement?: string;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

function percentEncodeEveryByte(bytes: Uint8Array): string {
  let result = '';
  for (const byte of bytes) result += `%${byte.toString(16).padStart(2, '0')}`;
  return result;
}

function hexOf(bytes: Uint8Array): string {
  let result = '';
  for (const byte of bytes) result += byte.toString(16).padStart(2, '0');
  return result;
}

/** JSON string content with every character outside ASCII as `\\uXXXX` (as Python writes it). */
function asciiJson(text: string): string {
  return JSON.stringify(text)
    .slice(1, -1)
    .replace(
      /[\u0080-\uffff]/g,
      (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
}

/**
 * A base64 core as a pattern that also matches it URL-encoded (`%2B`, `%2F`) or with `/` escaped
 * as JSON may write it (`\\/`), since a base64 text often travels in a URL or JSON.
 */
function base64CorePattern(core: string): string {
  let pattern = '';
  for (const char of core) {
    if (char === '+') pattern += '(?:\\+|%2[Bb])';
    else if (char === '/') pattern += '(?:/|\\\\/|%2[Ff])';
    else pattern += escapeRegExp(char);
  }
  return pattern;
}

/** Base64 (or base64url) of `bytes`, unpadded, without Node's `Buffer`. */
function base64Of(bytes: Uint8Array, urlSafe: boolean): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  const encoded = btoa(binary).replace(/=+$/, '');
  return urlSafe ? encoded.replaceAll('+', '-').replaceAll('/', '_') : encoded;
}

/** The characters of `base64` (unpadded) that depend only on the secret placed `offset` bytes in. */
function base64Core(secretBytes: Uint8Array, offset: number, urlSafe: boolean): string {
  const bytes = new Uint8Array(offset + secretBytes.length);
  bytes.set(secretBytes, offset);
  const encoded = base64Of(bytes, urlSafe);
  const start = offset === 0 ? 0 : offset + 1;
  const end = (offset + secretBytes.length) % 3 === 0 ? encoded.length : encoded.length - 1;
  return encoded.slice(start, end);
}

/** Every form of `secret` a server or a tool could send back: see {@link SecretForms}. */
export function secretForms(secret: string): SecretForms {
  const bytes = new TextEncoder().encode(secret);
  const caseInsensitive = new Set<string>([
    secret,
    encodeURIComponent(secret),
    encodeURIComponent(secret).replaceAll('%20', '+'),
    encodeURI(secret),
    percentEncodeEveryByte(bytes),
    hexOf(bytes),
    encodeURIComponent(encodeURIComponent(secret)),
    JSON.stringify(secret).slice(1, -1),
    JSON.stringify(secret).slice(1, -1).replaceAll('/', '\\/'),
    asciiJson(secret),
    secret
      .replaceAll('&', '&amp;')
      .replaceAll('<', '&lt;')
      .replaceAll('>', '&gt;')
      .replaceAll('"', '&quot;')
      .replaceAll("'", '&#39;'),
  ]);
  for (const part of ['pathname', 'search', 'hash'] as const) {
    try {
      const url = new URL(
        `http://host/${part === 'search' ? '?' : part === 'hash' ? '#' : ''}${secret}`,
      );
      caseInsensitive.add(url[part].replace(/^\/?[?#]?/, ''));
    } catch {
      // Not every secret fits in a URL; its other forms still apply.
    }
  }
  const base64: SecretForms['base64'] = [];
  for (const urlSafe of [false, true]) {
    for (const offset of [0, 1, 2]) {
      const core = base64Core(bytes, offset, urlSafe);
      if (core.length === 0 || (offset > 0 && core.length < MIN_OFFSET_FORM_CHARS)) continue;
      const alphabet = urlSafe ? BASE64URL_ALPHABET : BASE64_ALPHABET;
      if (!base64.some((form) => form.core === core && form.alphabet === alphabet))
        base64.push({ alphabet, core });
    }
  }
  caseInsensitive.delete('');
  return { caseInsensitive: [...caseInsensitive], base64 };
}

/** Replaces secrets in text; see {@link createSecretRedactor}. */
export interface SecretRedactor {
  /**
   * `text` with every form of every secret replaced by the secret's own replacement, else
   * `replacement` (default `[secret]`).
   */
  redact(text: string, replacement?: string): string;
  /**
   * {@link SecretRedactor.redact}, for text that was cut short: a trailing beginning of a
   * secret's form (the part of a secret before the cut) is removed too.
   */
  redactCut(text: string, replacement?: string): string;
  /** Extra literal forms to redact (how a converter renders a secret), added to every later call. */
  addForms(forms: readonly string[]): void;
  /**
   * The length of the longest form searched for: text cut this many characters past a limit
   * still holds whole every secret that starts before the limit.
   */
  readonly longestForm: number;
}

interface Form {
  text: string;
  replacement: string | undefined;
}

/**
 * Builds a redactor for `secrets` (values, or values with their own replacement): raw,
 * URL-encoded (every common style), hex, JSON- and HTML-escaped forms, ignoring case; base64 and
 * base64url, with or without padding, whole or one or two bytes into a longer encoded text (the
 * characters around that only partly depend on the secret are replaced too), also URL-encoded or
 * with `/` JSON-escaped; and any literal form
 * added later with `addForms` (such as how a Markdown converter escapes the secret). Matching is
 * a single pass of a regular expression made only of literal alternatives, so it runs in time
 * proportional to the text. Longer forms win over shorter ones that overlap them.
 */
export function createSecretRedactor(secrets: ReadonlyArray<string | NamedSecret>): SecretRedactor {
  const named = new Map<string, string | undefined>();
  for (const secret of secrets) {
    const value = typeof secret === 'string' ? secret : secret.value;
    if (value.length === 0 || named.has(value)) continue;
    named.set(value, typeof secret === 'string' ? undefined : secret.replacement);
  }
  // Literal forms, keyed by their lower-cased text (matching ignores case).
  const literal = new Map<string, Form>();
  const base64Forms: { pattern: string; core: string; replacement: string | undefined }[] = [];
  for (const [value, replacement] of named) {
    const forms = secretForms(value);
    for (const form of forms.caseInsensitive) {
      const key = form.toLowerCase();
      if (!literal.has(key)) literal.set(key, { text: form, replacement });
    }
    for (const { alphabet, core } of forms.base64) {
      base64Forms.push({
        pattern: `${alphabet}?${base64CorePattern(core)}${alphabet}?(?:=|%3[Dd])*`,
        core,
        replacement,
      });
    }
  }
  base64Forms.sort((left, right) => right.pattern.length - left.pattern.length);
  // One capture group per secret's replacement, so a match tells whose it is.
  const base64Pattern =
    base64Forms.length > 0
      ? new RegExp(base64Forms.map((form) => `(${form.pattern})`).join('|'), 'g')
      : null;
  let literalPattern: RegExp | null = null;
  const compile = () => {
    literalPattern =
      literal.size > 0
        ? new RegExp(
            [...literal.values()]
              .map((form) => form.text)
              .sort((left, right) => right.length - left.length)
              .map(escapeRegExp)
              .join('|'),
            'gi',
          )
        : null;
  };
  compile();

  const redact = (text: string, replacement = SECRET_PLACEHOLDER): string => {
    let result = text;
    if (base64Pattern) {
      result = result.replace(base64Pattern, (...groups: unknown[]) => {
        for (let index = 0; index < base64Forms.length; index++) {
          if (groups[index + 1] !== undefined)
            return base64Forms[index]?.replacement ?? replacement;
        }
        return replacement;
      });
    }
    if (literalPattern) {
      result = result.replace(
        literalPattern,
        (match) => literal.get(match.toLowerCase())?.replacement ?? replacement,
      );
    }
    return result;
  };
  const longest = () =>
    Math.max(
      0,
      ...[...literal.values()].map((form) => form.text.length),
      ...base64Forms.map((form) => form.core.length + 4),
    );

  return {
    redact,
    redactCut(text, replacement = SECRET_PLACEHOLDER) {
      const result = redact(text, replacement);
      const forms = [
        ...[...literal.values()].map((form) => ({ form: form.text, ignoreCase: true })),
        ...base64Forms.map((form) => ({ form: form.core, ignoreCase: false })),
      ];
      let strip = 0;
      for (const { form, ignoreCase } of forms) {
        if (form.length < 2) continue;
        const tail = result.slice(-(form.length - 1));
        const end = ignoreCase ? tail.toLowerCase() : tail;
        const wanted = ignoreCase ? form.toLowerCase() : form;
        for (let size = Math.min(form.length - 1, end.length); size > strip; size--) {
          if (end.endsWith(wanted.slice(0, size))) {
            strip = size;
            break;
          }
        }
      }
      return strip > 0 ? result.slice(0, result.length - strip) : result;
    },
    addForms(forms) {
      let added = false;
      for (const form of forms) {
        const key = form.toLowerCase();
        if (form.length > 0 && !literal.has(key)) {
          literal.set(key, { text: form, replacement: undefined });
          added = true;
        }
      }
      if (added) compile();
    },
    get longestForm() {
      return longest();
    },
  };
}
