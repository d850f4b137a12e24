'use strict';
// The function's log as Lambda's Node.js runtime writes it: each console call is one record,
//
//   2024-05-01T10:00:00.123Z	<request id>	INFO	<message>
//
// with the id of the invocation being served ("undefined" during init, as on Lambda) and the
// level of the console method: log and info INFO, debug DEBUG, warn WARN, error ERROR, trace
// TRACE, and Lambda's own console.fatal FATAL. The record is one write to stdout, so records of
// concurrent runtime processes never interleave mid-line. Unlike Lambda (whose log service splits
// records on newlines, so it turns them into "\r"), a multi-line message keeps its newlines: a
// pod's log is read as text (kubectl logs), where "\r" would garble it.

const util = require('util');

const LEVELS = {
  log: 'INFO',
  info: 'INFO',
  debug: 'DEBUG',
  warn: 'WARN',
  error: 'ERROR',
  trace: 'TRACE',
  fatal: 'FATAL',
};

/** One record: a pure function of its inputs. */
function record(now, requestId, level, args) {
  return `${now.toISOString()}\t${requestId}\t${level}\t${util.format(...args)}\n`;
}

/** Route the console through `record`; currentRequestId() names the invocation being served. */
function patchConsole(out, currentRequestId) {
  for (const [method, level] of Object.entries(LEVELS)) {
    console[method] = (...args) => {
      out.write(record(new Date(), currentRequestId(), level, args));
    };
  }
}

module.exports = { record, patchConsole };
