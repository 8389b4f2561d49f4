/**
 * One error class with stable codes. Library code throws SedacError; only entry points map errors
 * to exit codes or to `{status:"error", error:{code,message}}` on MQTT. The catalogue below is the
 * source of truth; test/errors.test.ts checks that README.md documents every code.
 */

export const ERROR_CODES = {
  // Model files and bundles
  E_MODEL_NOT_FOUND: 'a model source or bundle path does not exist',
  E_MODEL_FORMAT: 'a model file is malformed: wrong magic, truncated, bad header or metadata',
  E_MODEL_UNSUPPORTED: 'the model uses an architecture, dtype or feature SEDAC does not run',
  E_MODEL_SHAPE: 'a tensor is missing or its shape disagrees with the model configuration',
  E_MODEL_TOKENIZER: 'the tokenizer is missing or malformed',
  E_MODEL_INTEGRITY: 'a bundle file does not match the sha256 recorded in its manifest',
  E_MODEL_LOAD: 'onnxruntime could not load or run a bundle graph',
  E_MODEL_FETCH: 'a model could not be downloaded from the hub: network, HTTP status or checksum',
  // Inference
  E_INFER: 'inference failed inside the engine',
  E_INPUT: 'the text given to the engine is unusable (empty after tokenization, invalid)',
  // Configuration
  E_CONFIG_INVALID: 'a configuration file or pushed config does not match the schema',
  // Requests over MQTT
  E_BAD_REQUEST: 'the request payload is not valid JSON or has wrong or missing fields',
  E_TOO_LARGE: 'the payload or text exceeds the configured limit',
  E_UNKNOWN_ROUTE: 'the request names a route that is not configured',
  E_BUSY: 'the request queue is full; retry later',
  E_EXPIRED: 'the request deadline or MQTT message expiry passed before it was served',
  E_DEGRADED: 'the requested quality floor is refused because the device is in a critical state',
  E_SHUTTING_DOWN: 'the agent is stopping and takes no new work',
  E_MQTT_CONNECT: 'the MQTT broker could not be reached or refused the connection (sedac request)',
  // CLI
  E_USAGE: 'the command line is malformed',
  E_INTERNAL: 'an unexpected internal error (a bug); the message says where',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class SedacError extends Error {
  readonly code: ErrorCode;
  /** Extra machine-readable context (never tensor data). */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'SedacError';
    this.code = code;
    this.details = details;
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** Wrap anything thrown into a SedacError, keeping a SedacError as it is. */
export function asSedacError(err: unknown, fallback: ErrorCode = 'E_INTERNAL'): SedacError {
  if (err instanceof SedacError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SedacError(fallback, message);
}

export function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CODES, code);
}
