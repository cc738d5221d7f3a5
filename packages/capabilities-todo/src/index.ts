export {
  latestTodos,
  TODO_CAPABILITY_ID,
  type TodoItem,
  type TodosCommandData,
  todoCapability,
  todoItemSchema,
  type WriteTodosResult,
} from './todo-capability.js';
