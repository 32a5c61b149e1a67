export { mergeServices } from './merge.js';
export type * from './types.js';
