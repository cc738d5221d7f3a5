export {
  TEST_MATH_CAPABILITY_ID,
  type TestMathOperation,
  type TestMathResult,
  testMathCapability,
} from './test-math-capability.js';
