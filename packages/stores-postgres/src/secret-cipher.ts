import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { EverrunsError } from '@everruns-ts/core';
import { decodeText, encodeText } from './text-codec.js';

/**
 * A key that encrypts secrets: 32 bytes for AES-256-GCM, named by an id that is stored with every
 * value it encrypts (so keys can be rotated). `key` is raw bytes, or a string of 64 hex digits,
 * or base64 of 32 bytes.
 */
export interface SecretKey {
  /** Short name of the key, stored in clear beside each value; never the key itself. */
  id: string;
  /** The 32 key bytes. */
  key: Uint8Array | string;
}

/**
 * Several keys: `current` encrypts new values; `previous` keys still decrypt values written
 * before a rotation.
 */
export interface SecretKeyring {
  current: SecretKey;
  previous?: SecretKey[];
}

/** A value as stored: the id of the key that sealed it and `version | iv | tag | ciphertext`. */
export interface SealedSecret {
  keyId: string;
  sealed: Buffer;
}

const FORMAT_VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

function keyBytes(secretKey: SecretKey): Buffer {
  const { key } = secretKey;
  let bytes: Buffer;
  if (typeof key === 'string') {
    bytes = /^[0-9a-fA-F]{64}$/.test(key) ? Buffer.from(key, 'hex') : Buffer.from(key, 'base64');
  } else bytes = Buffer.from(key);
  if (bytes.length !== 32) {
    throw new EverrunsError({
      code: 'CONFIGURATION',
      message: `Secret key ${JSON.stringify(secretKey.id)} must be 32 bytes (64 hex digits or base64 of 32 bytes); got ${bytes.length} bytes`,
      details: { keyId: secretKey.id },
    });
  }
  return bytes;
}

/**
 * Seals and opens secrets with AES-256-GCM. Each value gets a fresh 96-bit IV; the additional
 * authenticated data binds a sealed value to where it is stored, so a value copied to another row
 * fails to open.
 */
export class SecretCipher {
  readonly #current: { id: string; bytes: Buffer };
  readonly #keys = new Map<string, Buffer>();

  constructor(keys: SecretKey | SecretKeyring) {
    const ring: SecretKeyring = 'current' in keys ? keys : { current: keys };
    for (const secretKey of [ring.current, ...(ring.previous ?? [])]) {
      if (typeof secretKey.id !== 'string' || secretKey.id.length === 0) {
        throw new EverrunsError({
          code: 'CONFIGURATION',
          message: 'Every secret key needs a non-empty id',
        });
      }
      if (!this.#keys.has(secretKey.id)) this.#keys.set(secretKey.id, keyBytes(secretKey));
    }
    this.#current = { id: ring.current.id, bytes: this.#keys.get(ring.current.id)! };
  }

  /** Id of the key new values are sealed with. */
  get currentKeyId(): string {
    return this.#current.id;
  }

  /** Encrypts `plaintext`, bound to `context`. */
  seal(plaintext: string, context: Buffer): SealedSecret {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#current.bytes, iv);
    cipher.setAAD(this.#aad(this.#current.id, context));
    const body = Buffer.concat([cipher.update(encodeText(plaintext), 'utf8'), cipher.final()]);
    const sealed = Buffer.concat([Buffer.from([FORMAT_VERSION]), iv, cipher.getAuthTag(), body]);
    return { keyId: this.#current.id, sealed };
  }

  /**
   * Decrypts a sealed value. Throws `SECRET_KEY_MISMATCH` when the key it was sealed with is not
   * configured, or when the configured key of that id does not open it (a different key under
   * the same id, or tampered data).
   */
  open(secret: SealedSecret, context: Buffer, what: string): string {
    const key = this.#keys.get(secret.keyId);
    if (key === undefined) {
      throw new EverrunsError({
        code: 'SECRET_KEY_MISMATCH',
        message: `${what} was encrypted with key ${JSON.stringify(secret.keyId)}, which is not configured (configured: ${[...this.#keys.keys()].map((id) => JSON.stringify(id)).join(', ')})`,
        details: { storedKeyId: secret.keyId, configuredKeyIds: [...this.#keys.keys()] },
      });
    }
    const { sealed } = secret;
    try {
      if (sealed.length < 1 + IV_BYTES + TAG_BYTES || sealed[0] !== FORMAT_VERSION) {
        throw new Error('unknown format');
      }
      const iv = sealed.subarray(1, 1 + IV_BYTES);
      const tag = sealed.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
      const body = sealed.subarray(1 + IV_BYTES + TAG_BYTES);
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(this.#aad(secret.keyId, context));
      decipher.setAuthTag(tag);
      const plaintext = Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
      return decodeText(plaintext);
    } catch (error) {
      throw new EverrunsError({
        code: 'SECRET_KEY_MISMATCH',
        message: `${what} could not be decrypted with key ${JSON.stringify(secret.keyId)}: the configured key differs from the one it was encrypted with, or the stored value was altered`,
        details: { storedKeyId: secret.keyId },
        cause: error,
      });
    }
  }

  #aad(keyId: string, context: Buffer): Buffer {
    return Buffer.concat([
      Buffer.from(`everruns-ts/secret/v1\u0000${keyId}\u0000`, 'utf8'),
      context,
    ]);
  }
}
