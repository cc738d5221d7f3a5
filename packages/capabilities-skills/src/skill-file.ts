import { parse as parseYaml } from 'yaml';

/** A parsed `SKILL.md`: front matter fields and the instructions below it. */
export interface SkillFile {
  name: string;
  description: string;
  /** The Markdown after the front matter. */
  body: string;
  /** Every front-matter field, as parsed. */
  metadata: Record<string, unknown>;
}

/** Why a `SKILL.md` could not be used. */
export class SkillFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SkillFileError';
  }
}

const FRONT_MATTER = /^\uFEFF?---[ \t]*\r?\n([\s\S]*?)\r?\n---[ \t]*(?:\r?\n|$)/;

/**
 * Parses a `SKILL.md`: YAML front matter between `---` lines (parsed with the `yaml` package)
 * with a non-empty string `name` and `description`, then the Markdown body. Throws
 * {@link SkillFileError} naming what is wrong.
 */
export function parseSkillFile(content: string): SkillFile {
  const match = FRONT_MATTER.exec(content);
  if (!match) throw new SkillFileError('no YAML front matter between "---" lines at the top');
  let metadata: unknown;
  try {
    metadata = parseYaml(match[1] ?? '');
  } catch (error) {
    throw new SkillFileError(`the front matter is not valid YAML: ${(error as Error).message}`);
  }
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw new SkillFileError('the front matter must be a YAML mapping');
  }
  const fields = metadata as Record<string, unknown>;
  for (const field of ['name', 'description'] as const) {
    const value = fields[field];
    if (typeof value !== 'string' || value.trim() === '') {
      throw new SkillFileError(`the front matter needs a non-empty string "${field}"`);
    }
  }
  return {
    name: (fields.name as string).trim(),
    description: (fields.description as string).trim(),
    body: content.slice(match[0].length).trim(),
    metadata: fields,
  };
}
