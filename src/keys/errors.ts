/**
 * A key store that cannot start or is misused: raised at start-up or by `tessera keys`, never
 * shown to a client (the signing path turns HSM failures into `temporarily_unavailable`).
 * `code` is stable: a PKCS#11 return value name (`CKR_PIN_INCORRECT`) or a store code
 * (`KEY_FILE_MODE`). Messages never contain a PIN or key material.
 */
export class KeyStoreError extends Error {
  readonly code: string;

  constructor(message: string, code: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KeyStoreError';
    this.code = code;
  }
}

/** Error name, code and message only: never the error object (it may carry a stack with data). */
export function errorSummary(error: unknown): Record<string, unknown> {
  if (error instanceof Error)
    return { name: error.name, message: error.message, code: (error as { code?: unknown }).code };
  return { message: String(error) };
}
