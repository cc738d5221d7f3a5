export { parseSkillFile, type SkillFile, SkillFileError } from './skill-file.js';
export {
  type DiscoveredSkill,
  discoverSkills,
  MAX_PROMPT_DESCRIPTION_CHARS,
  MAX_SKILLS_IN_PROMPT,
  SKILLS_CAPABILITY_ID,
  SKILLS_PATH,
  skillsCapability,
} from './skills-capability.js';
