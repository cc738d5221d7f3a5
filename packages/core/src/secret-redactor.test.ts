import { describe, expect, it } from 'vitest';
import { createSecretRedactor, secretForms } from './secret-redactor.js';

const SECRET = `key_${crypto.randomUUID()}/+= é`;

describe('createSecretRedactor', () => {
  it('replaces every common encoding of a secret', () => {
    const bytes = Buffer.from(SECRET);
    const redactor = createSecretRedactor([SECRET]);
    const forms = {
      raw: SECRET,
      upper: SECRET.toUpperCase(),
      url: encodeURIComponent(SECRET),
      form: encodeURIComponent(SECRET).replaceAll('%20', '+'),
      lowerPercent: encodeURIComponent(SECRET).toLowerCase(),
      everyByte: [...bytes].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join(''),
      urlQuery: new URL(`http://host/?${SECRET}`).search.slice(1),
      base64: bytes.toString('base64'),
      base64Unpadded: bytes.toString('base64').replace(/=+$/, ''),
      base64url: bytes.toString('base64url'),
      base64urlPadded: `${bytes.toString('base64url')}=`,
      basic: Buffer.from(`user:${SECRET}`).toString('base64'),
      offsetOne: Buffer.from(`a${SECRET}`).toString('base64url'),
      hex: bytes.toString('hex'),
      hexUpper: bytes.toString('hex').toUpperCase(),
      json: JSON.stringify(SECRET).slice(1, -1).replaceAll('/', '\\/'),
      html: SECRET.replaceAll('&', '&amp;').replaceAll("'", '&#39;'),
    };
    for (const [name, form] of Object.entries(forms)) {
      const redacted = redactor.redact(`before ${form} after`);
      expect(redacted, name).toMatch(/^before .*\[secret\].* after$/);
      // At most one boundary character of a base64 text stays on each side.
      expect(redacted.length, name).toBeLessThanOrEqual('before [secret] after'.length + 6);
    }
  });

  it('leaves text without the secret alone and ignores empty secrets', () => {
    const redactor = createSecretRedactor([SECRET, '']);
    const text = 'nothing to see: key_, /+=, base64 aGVsbG8=';
    expect(redactor.redact(text)).toBe(text);
    expect(createSecretRedactor([]).redact(text)).toBe(text);
  });

  it('removes the beginning of a secret that a cut left at the end', () => {
    const redactor = createSecretRedactor([SECRET]);
    expect(redactor.redactCut(`kept ${SECRET.slice(0, 10)}`)).toBe('kept ');
    expect(redactor.redactCut(`kept ${Buffer.from(SECRET).toString('hex').slice(0, 9)}`)).toBe(
      'kept ',
    );
    expect(redactor.redactCut(`kept ${SECRET} tail`)).toBe('kept [secret] tail');
  });

  it('takes extra forms, such as how a converter renders the secret', () => {
    const redactor = createSecretRedactor([SECRET]);
    const escaped = SECRET.replaceAll('_', '\\_');
    expect(redactor.redact(escaped)).not.toBe('[secret]');
    redactor.addForms([escaped]);
    expect(redactor.redact(escaped)).toBe('[secret]');
  });

  it('runs in time proportional to the text', () => {
    const redactor = createSecretRedactor([SECRET, 'another-secret-value']);
    const started = performance.now();
    redactor.redact(`${'key_'.repeat(250_000)}%`.repeat(1));
    redactor.redact('%'.repeat(1_000_000));
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});

describe('createSecretRedactor against encodings a server chains', () => {
  it('finds base64 that was URL-encoded or JSON-escaped, double URL-encoding and ASCII-only JSON', () => {
    // The first nine characters encode to `fn5+Pz8/Pj4+`: base64 with both `+` and `/`.
    const secret = `~~~???>>>${crypto.randomUUID()}é`;
    const base64 = Buffer.from(secret).toString('base64');
    expect(base64).toMatch(/[+/].*[+/]/);
    const redactor = createSecretRedactor([secret]);
    const forms = {
      urlEncodedBase64: encodeURIComponent(base64),
      urlEncodedBase64Lower: encodeURIComponent(base64).replaceAll(/%2[BF3D]/g, (sequence) =>
        sequence.toLowerCase(),
      ),
      jsonEscapedBase64: base64.replaceAll('/', '\\/'),
      urlEncodedBasic: encodeURIComponent(Buffer.from(`user:${secret}`).toString('base64')),
      doubleUrlEncoded: encodeURIComponent(encodeURIComponent(secret)),
      asciiJson: JSON.stringify(secret).slice(1, -1).replace('é', '\\u00e9'),
    };
    for (const [name, form] of Object.entries(forms)) {
      const redacted = redactor.redact(`before ${form} after`);
      // `dXNlcj` encodes `user:` only; at most one boundary character depends on the secret.
      expect(redacted.replace('dXNlcj', ''), name).toMatch(/^before .?\[secret\] after$/);
    }
  });
});

describe('createSecretRedactor with named secrets', () => {
  it('replaces each secret with its own replacement, the longer secret first', () => {
    const short = `s_${crypto.randomUUID()}`;
    const long = `${short}-and-more`;
    const redactor = createSecretRedactor([
      { value: short, replacement: 'secret://short' },
      { value: long, replacement: 'secret://long' },
      'unnamed-secret-value',
    ]);
    const text = [
      long,
      short.toUpperCase(),
      Buffer.from(long).toString('base64url'),
      Buffer.from(short).toString('hex'),
      'unnamed-secret-value',
    ].join(' ');
    expect(redactor.redact(text)).toBe(
      'secret://long secret://short secret://long secret://short [secret]',
    );
    expect(redactor.longestForm).toBeGreaterThanOrEqual(Buffer.from(long).toString('hex').length);
  });
});

describe('secretForms', () => {
  it('lists base64 cores at the three byte offsets, in both alphabets', () => {
    const forms = secretForms('0123456789abcdef');
    expect(forms.base64.map((form) => form.alphabet)).toEqual([
      '[A-Za-z0-9+/]',
      '[A-Za-z0-9+/]',
      '[A-Za-z0-9+/]',
      '[A-Za-z0-9_-]',
      '[A-Za-z0-9_-]',
      '[A-Za-z0-9_-]',
    ]);
    expect(forms.caseInsensitive).toContain('30313233343536373839616263646566');
  });
});
