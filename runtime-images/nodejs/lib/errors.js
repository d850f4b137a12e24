'use strict';
// Error documents in the shape Lambda's Node.js runtime posts and callers receive:
//
//   {"errorType": "TypeError", "errorMessage": "...", "trace": ["TypeError: ...", "    at ..."]}
//
// Errors:
//
//   Error
//   └── Fault   the runtime's own verdict; its name is a Lambda error type:
//               Runtime.ImportModuleError, Runtime.HandlerNotFound, Runtime.MalformedHandlerName,
//               Runtime.UserCodeSyntaxError, Runtime.UnmarshalError,
//               Runtime.UnhandledPromiseRejection
//
// Any other Error keeps its `name` as the type (a subclass that sets no name is an "Error", as on
// Lambda). A thrown value that is not an Error becomes {errorType: typeof value, errorMessage:
// String(value), trace: []}; a null or undefined one is reported as the string "handled". Traces
// leave out this runtime's own frames.

const path = require('path');
const util = require('util');

const RUNTIME_DIR = path.dirname(__dirname) + path.sep;

class Fault extends Error {
  /** type: a Lambda error type; cause: the error behind it, whose frames the trace shows. */
  constructor(type, message, cause) {
    super(message);
    this.name = type;
    this.errorType = type;
    this.reason = cause;
  }
}

function isError(value) {
  return (
    util.types.isNativeError(value) ||
    (value !== null &&
      typeof value === 'object' &&
      typeof value.name === 'string' &&
      typeof value.message === 'string' &&
      typeof value.stack === 'string')
  );
}

/** The lines of an error's stack without this runtime's frames. */
function traceOf(err) {
  if (typeof err.stack !== 'string') {
    return [`${err.name}: ${err.message}`];
  }
  return err.stack
    .split('\n')
    .filter((line) => !(/^\s+at /.test(line) && line.includes(RUNTIME_DIR)));
}

function errorDoc(value) {
  if (value === null || value === undefined) {
    value = 'handled';
  }
  try {
    if (value instanceof Fault) {
      const header = `${value.errorType}: ${value.message}`;
      const cause = isError(value.reason) ? traceOf(value.reason) : [];
      return { errorType: value.errorType, errorMessage: value.message, trace: [header, ...cause] };
    }
    if (isError(value)) {
      return { errorType: String(value.name), errorMessage: String(value.message), trace: traceOf(value) };
    }
    return { errorType: typeof value, errorMessage: String(value), trace: [] };
  } catch {
    // A getter that throws, a toString that throws: say so rather than fail.
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or ' +
        'more of its message, name, and stack',
      trace: [],
    };
  }
}

/**
 * An error as the runtime logs it, after a label ("Invoke Error"): a tab and a JSON object with
 * the error's own enumerable fields too (an AWS SDK error's `code`, `$metadata`).
 */
function formatted(value) {
  const doc = errorDoc(value);
  const fields = { errorType: doc.errorType, errorMessage: doc.errorMessage };
  if (isError(value) && !(value instanceof Fault)) {
    for (const key of Object.keys(value)) {
      if (!(key in fields) && key !== 'stack') {
        fields[key] = value[key];
      }
    }
  }
  fields.stack = doc.trace;
  try {
    return '\t' + JSON.stringify(fields);
  } catch {
    return '\t' + JSON.stringify({ errorType: doc.errorType, errorMessage: doc.errorMessage, stack: doc.trace });
  }
}

/** How an unhandled rejection's reason reads in an error message: "Error: boom", "oops". */
function describe(reason) {
  if (isError(reason)) {
    return `${reason.name}: ${reason.message}`;
  }
  try {
    return String(reason);
  } catch {
    return typeof reason;
  }
}

module.exports = { Fault, errorDoc, formatted, describe, isError };
