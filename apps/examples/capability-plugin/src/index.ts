export {
  addEntry,
  CHANGELOG_CAPABILITY_ID,
  type ChangelogConfig,
  changelogCapability,
  changelogConfigSchema,
  changelogVersions,
} from './changelog-capability.js';
