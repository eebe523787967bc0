// Types of ot.js, the text operations of collaborative documents (docs/OT.md).
// Lengths and positions count Unicode code points, as the server does.

/** One part of an operation: retain n (positive), insert a string, delete n (negative). */
export type OpPart = number | string;

export const MAX_COUNT: number;

export class TextOperation {
  ops: OpPart[];
  baseLength: number;
  targetLength: number;
  retain(n: number): this;
  insert(s: string): this;
  delete(n: number): this;
  isNoop(): boolean;
  toJSON(): OpPart[];
  static fromJSON(json: OpPart[]): TextOperation;
  apply(text: string): string;
  compose(next: TextOperation): TextOperation;
  static transform(a: TextOperation, b: TextOperation): [TextOperation, TextOperation];
  /** Where code point `index` is after this op. */
  transformIndex(index: number): number;
}

/** Length of `str` in code points. */
export function cpLength(str: string): number;
/** The code point index of UTF-16 index `i16`. */
export function utf16ToCp(str: string, i16: number): number;
/** The UTF-16 index of code point index `cp`. */
export function cpToUtf16(str: string, cp: number): number;
/** The op that replaces UTF-16 range [start, end) of `oldText` by `inserted`. */
export function editToOp(oldText: string, start: number, end: number, inserted: string): TextOperation;
/** The op that turns `oldText` into `newText`. */
export function diffToOp(oldText: string, newText: string): TextOperation;
