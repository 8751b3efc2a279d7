export { escapeControl, escapeErrorMessage, escapeJson, escapeLines } from './escape.js';
