export {
  type BashResult,
  SHELL_WORKSPACE_ROOT,
  truncateOutput,
  VIRTUAL_BASH_CAPABILITY_ID,
  type VirtualBashConfig,
  virtualBashCapability,
  virtualBashConfigSchema,
} from './virtual-bash-capability.js';
