/**
 * The one error type of facesight. `code` says what kind of failure it is:
 * - E_INPUT: an input (image, tensor, option) is wrong
 * - E_MODEL: a model file, descriptor or weights are wrong or unsupported
 * - E_DEVICE: a requested device is not usable here
 * - E_STATE: the object was disposed
 * - E_NO_FACE: an image that must show a face (verify) shows none
 * - E_DATABASE: a face database file is damaged or not one
 * - E_NATIVE: the native addon could not be loaded
 * - E_INTERNAL: a bug in facesight
 * Argument mistakes are also instances of TypeError or RangeError via `kind`.
 */
export type FaceErrorCode = 'E_INPUT' | 'E_MODEL' | 'E_DEVICE' | 'E_STATE' | 'E_NO_FACE' | 'E_DATABASE' | 'E_NATIVE' | 'E_INTERNAL';

const brand = Symbol.for('facesight.FaceError');

export class FaceError extends Error {
  readonly code: FaceErrorCode;

  constructor(code: FaceErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FaceError';
    this.code = code;
    brandError(this);
  }

  /** Argument errors are TypeError / RangeError instances that are FaceErrors too. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && brand in value;
  }
}

function brandError(error: Error): void {
  Object.defineProperty(error, brand, { value: true, enumerable: false });
}

/** A wrong argument type: `instanceof TypeError` and `instanceof FaceError`, code E_INPUT. */
export class FaceTypeError extends TypeError {
  readonly code: FaceErrorCode = 'E_INPUT';
  constructor(message: string) {
    super(message);
    this.name = 'TypeError';
    brandError(this);
  }
}

/** An argument of the right type but out of range: `instanceof RangeError` and `instanceof FaceError`. */
export class FaceRangeError extends RangeError {
  readonly code: FaceErrorCode = 'E_INPUT';
  constructor(message: string) {
    super(message);
    this.name = 'RangeError';
    brandError(this);
  }
}

/** Describes a received value for messages: type, and the value when short. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (ArrayBuffer.isView(value)) return `${value.constructor.name} of length ${(value as unknown as { length?: number }).length ?? value.byteLength}`;
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'string') return value.length > 60 ? `a string of length ${value.length}` : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${typeof value} ${String(value)}`;
  if (typeof value === 'function') return 'a function';
  return `an object (${Object.prototype.toString.call(value).slice(8, -1)})`;
}

/** "Expected X for Y but received Z" as a TypeError. */
export function invalidType(expected: string, what: string, received: unknown): FaceTypeError {
  return new FaceTypeError(`Expected ${expected} for ${what} but received ${describeValue(received)}`);
}

/** The same for a value of the right type but out of range. */
export function invalidRange(expected: string, what: string, received: unknown): FaceRangeError {
  return new FaceRangeError(`Expected ${expected} for ${what} but received ${describeValue(received)}`);
}

/**
 * Rebuilds a native rejection as a FaceError whose stack is the caller's (captured before the
 * async call), with the native message and code.
 */
export function fromNative(error: unknown, callerStack: Error): FaceError {
  const native = error as { code?: string; message?: string };
  const code = (native?.code as FaceErrorCode) ?? 'E_INTERNAL';
  const result = new FaceError(code, native?.message ?? String(error), { cause: error });
  result.stack = `FaceError: ${result.message}\n${(callerStack.stack ?? '').split('\n').slice(1).join('\n')}`;
  return result;
}
