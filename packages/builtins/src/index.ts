export { BUILTIN_CAPABILITIES, registerBuiltins, withBuiltins } from './builtin-capabilities.js';
