export {
  TODO_CAPABILITY_ID,
  type TodoItem,
  todoCapability,
  todoItemSchema,
  type WriteTodosResult,
} from './todo-capability.js';
